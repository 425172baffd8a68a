//! Paged lists (`limit` and `continue`, as `kubectl get --chunk-size` does) of every served
//! kind, each item given back the `apiVersion` and `kind` that list items omit and fed
//! through [`Loader::load_object`]. A continue token that expired (410 Gone) restarts that
//! kind's list from the beginning, as the API conventions ask.

use crate::discovery::{discover, Served};
use crate::watch::Tracker;
use crate::{Error, Source};
use kube::api::ListParams;
use netfence_model::{Loader, Origin};
use serde_json::Value;

/// Items per page: kubectl's default `--chunk-size`.
pub const PAGE_SIZE: u32 = 500;

/// How many times a kind's list restarts after its continue token expired.
const RESTARTS: usize = 3;

/// What a read from the cluster did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Objects fed to the loader.
    pub objects: usize,
    /// Kinds listed.
    pub kinds: usize,
    /// Pages requested.
    pub pages: usize,
    /// Kinds the server does not serve (CRDs not installed), skipped.
    pub missing: Vec<String>,
}

/// One kind's objects, complete, and the resourceVersion the list was served at.
#[derive(Clone, Debug, Default)]
pub struct Listed {
    /// The items, each with `apiVersion` and `kind` set.
    pub items: Vec<Value>,
    /// `metadata.resourceVersion` of the (first page of the) list: where a watch starts.
    pub resource_version: String,
    /// Pages requested (restarts included).
    pub pages: usize,
}

/// List every object of `served`, `page` at a time.
pub async fn list_kind(client: &kube::Client, served: &Served, page: u32) -> Result<Listed, Error> {
    let path = served.path();
    let request = kube::core::Request::new(&path);
    let mut pages = 0;
    let mut restarts = 0;
    'restart: loop {
        let mut listed = Listed::default();
        let mut token: Option<String> = None;
        loop {
            let params = ListParams {
                limit: Some(page),
                continue_token: token.clone(),
                ..ListParams::default()
            };
            let what = format!("list {path}");
            let http = request.list(&params).map_err(|e| Error::Protocol {
                what: what.clone(),
                message: e.to_string(),
            })?;
            pages += 1;
            let list: Value = match client.request::<Value>(http).await {
                Ok(list) => list,
                Err(kube::Error::Api(status)) if status.code == 410 && restarts < RESTARTS => {
                    restarts += 1;
                    continue 'restart;
                }
                Err(source) => return Err(Error::Api { what, source }),
            };
            let metadata = list.get("metadata");
            if listed.resource_version.is_empty() {
                listed.resource_version = metadata
                    .and_then(|m| m.get("resourceVersion"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
            }
            let items = match list.get("items") {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    return Err(Error::Protocol {
                        what,
                        message: "`items` is not a list".into(),
                    })
                }
            };
            for mut item in items {
                typed(&mut item, served);
                listed.items.push(item);
            }
            token = metadata
                .and_then(|m| m.get("continue"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                listed.pages = pages;
                return Ok(listed);
            }
        }
    }
}

/// Give a list item the `apiVersion` and `kind` its list omits.
pub(crate) fn typed(item: &mut Value, served: &Served) {
    if let Value::Object(map) = item {
        map.insert("apiVersion".into(), Value::String(served.api_version()));
        map.insert("kind".into(), Value::String(served.kind.to_string()));
    }
}

/// Where an object read from the cluster came from, for error messages.
pub(crate) fn origin(served: &Served, index: usize) -> Origin {
    Origin {
        file: format!("<cluster>{}", served.path()),
        document: index + 1,
        line: 1,
        item: None,
    }
}

/// Discover the served kinds and feed every object of each into `loader`.
pub async fn read_into(
    client: &kube::Client,
    loader: &mut Loader,
    page: u32,
) -> Result<ReadSummary, Error> {
    snapshot(client, loader, page)
        .await
        .map(|(summary, _)| summary)
}

/// [`read_into`], also noting every object's resourceVersion in a [`Tracker`] from which a
/// [`crate::Follower`] goes on.
pub async fn snapshot(
    client: &kube::Client,
    loader: &mut Loader,
    page: u32,
) -> Result<(ReadSummary, Tracker), Error> {
    let kinds = discover(client).await?;
    let mut summary = ReadSummary {
        missing: kinds.missing.clone(),
        ..ReadSummary::default()
    };
    let mut tracker = Tracker::new(kinds.served.clone());
    for (index, served) in kinds.served.iter().enumerate() {
        let listed = list_kind(client, served, page).await?;
        summary.kinds += 1;
        summary.pages += listed.pages;
        summary.objects += listed.items.len();
        for (position, item) in listed.items.iter().enumerate() {
            loader.load_object(item, origin(served, position));
            tracker.seen(index, item);
        }
    }
    Ok((summary, tracker))
}

/// [`read_into`] for blocking callers (the CLI): connect to `source` and read everything.
pub fn read(source: &Source, loader: &mut Loader) -> Result<ReadSummary, Error> {
    crate::runtime()?.block_on(async {
        let client = crate::client(source).await?;
        read_into(&client, loader, PAGE_SIZE).await
    })
}
