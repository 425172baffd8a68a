//! Following the API server: one kube-runtime watcher per followed kind (bookmarks on,
//! paged relists, a relist after 410 Gone, reconnects with backoff), turned by a [`Tracker`]
//! into object changes the loader can apply. The tracker keeps each object's
//! resourceVersion, so a relist (after a 410, or the watcher's first list repeating the
//! snapshot) yields only what really changed, and objects missing from a relist are deleted.
//! Its memory is one entry per live object, whatever the churn.

use crate::discovery::Served;
use crate::list::typed;
use crate::Error;
use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use netfence_model::{ObjectKey, ObjectKind};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// The loader's change kind for objects of `served`, or `None` when changes of that kind
/// cannot be applied incrementally (ConfigMaps, Ingresses, RBAC, cert-manager, Istio,
/// SecurityGroupPolicy, HostEndpoint): those are read once, not followed.
pub fn object_kind(served: &Served) -> Option<ObjectKind> {
    let text = match served.group {
        "" => served.kind.to_string(),
        group => format!("{}.{group}", served.kind),
    };
    text.parse().ok()
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateKind {
    /// Created or changed (the object is its new state).
    Applied,
    /// Deleted (the object is its last known state, or only its name after a relist).
    Deleted,
}

/// One object change, ready for the loader.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// Created/changed or deleted.
    pub kind: UpdateKind,
    /// The object's kind, namespace and name.
    pub key: ObjectKey,
    /// The object, with `apiVersion` and `kind`.
    pub object: Value,
}

type Name = (String, String);

/// Each followed object's resourceVersion, per kind.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    kinds: Vec<Served>,
    known: Vec<HashMap<Name, String>>,
    relisting: Vec<Option<HashSet<Name>>>,
}

fn metadata(object: &Value) -> (Name, String) {
    let text = |field: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ((text("namespace"), text("name")), text("resourceVersion"))
}

impl Tracker {
    /// A tracker for `kinds` (indices into it name a kind from then on).
    pub fn new(kinds: Vec<Served>) -> Tracker {
        let count = kinds.len();
        Tracker {
            kinds,
            known: vec![HashMap::new(); count],
            relisting: vec![None; count],
        }
    }

    /// The kinds.
    pub fn kinds(&self) -> &[Served] {
        &self.kinds
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.known.iter().map(HashMap::len).sum()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Note an object of kind `index` the snapshot read.
    pub fn seen(&mut self, index: usize, object: &Value) {
        if let Some(known) = self.known.get_mut(index) {
            let (name, rv) = metadata(object);
            known.insert(name, rv);
        }
    }

    fn key(&self, index: usize, name: &Name) -> Option<ObjectKey> {
        let served = self.kinds.get(index)?;
        Some(ObjectKey {
            kind: object_kind(served)?,
            namespace: served.namespaced.then(|| name.0.clone()),
            name: name.1.clone(),
        })
    }

    fn applied(&mut self, index: usize, mut object: Value, out: &mut Vec<Update>) {
        let Some(served) = self.kinds.get(index) else {
            return;
        };
        typed(&mut object, served);
        let (name, rv) = metadata(&object);
        if let Some(Some(seen)) = self.relisting.get_mut(index) {
            seen.insert(name.clone());
        }
        if self.known[index].get(&name) == Some(&rv) {
            return;
        }
        let Some(key) = self.key(index, &name) else {
            return;
        };
        self.known[index].insert(name, rv);
        out.push(Update {
            kind: UpdateKind::Applied,
            key,
            object,
        });
    }

    fn deleted(&mut self, index: usize, name: &Name, object: Value, out: &mut Vec<Update>) {
        if self.known[index].remove(name).is_none() {
            return;
        }
        if let Some(key) = self.key(index, name) {
            out.push(Update {
                kind: UpdateKind::Deleted,
                key,
                object,
            });
        }
    }

    /// The object changes a watcher event of kind `index` makes.
    pub fn event(&mut self, index: usize, event: watcher::Event<DynamicObject>) -> Vec<Update> {
        let mut out = Vec::new();
        if index >= self.kinds.len() {
            return out;
        }
        let value = |object: DynamicObject| serde_json::to_value(object).unwrap_or(Value::Null);
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                self.applied(index, value(object), &mut out)
            }
            watcher::Event::Delete(object) => {
                let mut object = value(object);
                typed(&mut object, &self.kinds[index]);
                let (name, _) = metadata(&object);
                self.deleted(index, &name, object, &mut out);
            }
            watcher::Event::Init => self.relisting[index] = Some(HashSet::new()),
            watcher::Event::InitDone => {
                let Some(seen) = self.relisting[index].take() else {
                    return out;
                };
                let mut gone: Vec<Name> = self.known[index]
                    .keys()
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect();
                gone.sort();
                let served = &self.kinds[index];
                let (api_version, kind) = (served.api_version(), served.kind);
                for name in gone {
                    let object = json!({"apiVersion": api_version, "kind": kind,
                        "metadata": {"namespace": name.0, "name": name.1}});
                    self.deleted(index, &name, object, &mut out);
                }
            }
        }
        out
    }
}

type Events = BoxStream<'static, (usize, Result<watcher::Event<DynamicObject>, watcher::Error>)>;

/// The watchers of every followed kind, merged, and the tracker that turns their events
/// into [`Update`]s.
pub struct Follower {
    tracker: Tracker,
    events: Events,
}

impl Follower {
    /// Watch every kind of `tracker` whose changes can be applied ([`object_kind`]).
    pub fn new(client: &kube::Client, tracker: Tracker) -> Follower {
        let streams: Vec<Events> = tracker
            .kinds()
            .iter()
            .enumerate()
            .filter(|(_, served)| object_kind(served).is_some())
            .map(|(index, served)| {
                let resource = ApiResource {
                    group: served.group.to_string(),
                    version: served.version.to_string(),
                    api_version: served.api_version(),
                    kind: served.kind.to_string(),
                    plural: served.plural.clone(),
                };
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                let config = watcher::Config::default().page_size(crate::PAGE_SIZE);
                watcher(api, config)
                    .default_backoff()
                    .map(move |event| (index, event))
                    .boxed()
            })
            .collect();
        Follower {
            tracker,
            events: futures::stream::select_all(streams).boxed(),
        }
    }

    /// The kinds not followed (read once, changes need a restart).
    pub fn unfollowed(&self) -> Vec<String> {
        self.tracker
            .kinds()
            .iter()
            .filter(|served| object_kind(served).is_none())
            .map(Served::qualified)
            .collect()
    }

    /// The tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The next batch of changes (often one; a relist may give several, or none when it
    /// only repeated what was known). An error is the watcher's: it retries by itself with
    /// backoff, so the caller reports it and calls again. `None` when there is nothing to
    /// watch.
    pub async fn next(&mut self) -> Option<Result<Vec<Update>, Error>> {
        let (index, event) = self.events.next().await?;
        Some(match event {
            Ok(event) => Ok(self.tracker.event(index, event)),
            Err(error) => Err(Error::Protocol {
                what: format!("watch {}", self.tracker.kinds()[index].path()),
                message: error.to_string(),
            }),
        })
    }

    /// [`Follower::next`], or an empty batch after `idle` without events (so that a caller
    /// can check for a stop request now and then).
    pub async fn next_or_idle(
        &mut self,
        idle: std::time::Duration,
    ) -> Option<Result<Vec<Update>, Error>> {
        match tokio::time::timeout(idle, self.next()).await {
            Ok(next) => next,
            Err(_) => Some(Ok(Vec::new())),
        }
    }
}
