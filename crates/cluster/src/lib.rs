//! The live Kubernetes API: a client from a kubeconfig (file and context) or the in-cluster
//! configuration, discovery of which kinds the loader reads are served, paged lists of them
//! fed object by object through [`netfence_model::Loader::load_object`] (so the inventory is
//! the one a dump of the same objects gives), and watches that keep it current.
//!
//! With the `testing` feature, the `testing` module holds an in-process API server speaking
//! the real wire protocol (TLS, bearer token, discovery, paged lists, watch streams, 410
//! Gone) for tests and benches.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod discovery;
pub mod feed;
pub mod list;
#[cfg(feature = "testing")]
pub mod testing;
pub mod watch;

pub use discovery::{discover, Served, ServedKinds};
pub use feed::{Burst, Feed};
pub use list::{read, read_into, snapshot, ReadSummary, PAGE_SIZE};
pub use watch::{object_kind, Follower, Tracker, Update, UpdateKind};

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// Where the API server is: a kubeconfig file and context, or (with neither) what kubectl
/// would use — `$KUBECONFIG` or `~/.kube/config` — and else the in-cluster service account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// `--kubeconfig PATH`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`: a context of the kubeconfig other than its current one.
    pub context: Option<String>,
}

/// What can go wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or names no usable context.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file (or `$KUBECONFIG`/`~/.kube/config` when none was given).
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Neither a kubeconfig nor the in-cluster configuration is available.
    #[error("no cluster configuration (no kubeconfig and not in a pod): {0}")]
    NoConfig(String),
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Api {
        /// The request (`list /api/v1/pods`).
        what: String,
        /// The client's error (for a refused request, the server's Status).
        #[source]
        source: kube::Error,
    },
    /// The server answered with something that is not what the API promises.
    #[error("{what}: {message}")]
    Protocol {
        /// The request.
        what: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// The HTTP status code of an API error (410 for Gone), if it is one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// A client for `source`; call inside a tokio runtime.
pub async fn client(source: &Source) -> Result<kube::Client, Error> {
    let options = KubeConfigOptions {
        context: source.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config =
        match &source.kubeconfig {
            Some(path) => {
                let shown = path.display().to_string();
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| Error::Kubeconfig {
                        path: shown,
                        message: e.to_string(),
                    })?
            }
            None if source.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| Error::Kubeconfig {
                    path: "$KUBECONFIG or ~/.kube/config".into(),
                    message: e.to_string(),
                })?,
            None => kube::Config::infer()
                .await
                .map_err(|e| Error::NoConfig(e.to_string()))?,
        };
    kube::Client::try_from(config).map_err(|source| Error::Api {
        what: "client".into(),
        source,
    })
}

/// Run `future` to completion on a one-thread runtime (the work is I/O and loading): the
/// entry point for blocking callers such as the CLI.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    Ok(runtime()?.block_on(future))
}

/// A runtime for the blocking entry points.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
