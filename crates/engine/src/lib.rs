//! The policy engine: compile policies into the IR once, then answer verdicts with their
//! reasons, reachability matrices and workload-level connection lists from it.
//!
//! ```
//! use netfence_engine::{Engine, Endpoint};
//! use netfence_model::{Loader, Protocol};
//! let mut loader = Loader::new();
//! loader.load_str("c.yaml", "
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: a, namespace: x, labels: {app: a}}
//! spec: {containers: [{name: c}]}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: b, namespace: x}
//! spec: {containers: [{name: c}]}
//! ---
//! apiVersion: networking.k8s.io/v1
//! kind: NetworkPolicy
//! metadata: {name: deny, namespace: x}
//! spec: {podSelector: {matchLabels: {app: a}}}
//! ");
//! let engine = Engine::new(loader.finish().unwrap());
//! let a = engine.inventory().pod_by_key("x", "a").unwrap();
//! let b = engine.inventory().pod_by_key("x", "b").unwrap();
//! assert!(!engine.allowed(Endpoint::Pod(b), Endpoint::Pod(a), Protocol::Tcp, 80));
//! assert!(engine.allowed(Endpoint::Pod(a), Endpoint::Pod(b), Protocol::Tcp, 80));
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bits;
mod chunked;
pub mod cilium;
pub mod classes;
pub mod connlist;
pub mod connset;
pub mod decide;
mod delta;
pub mod eval;
pub mod incremental;
pub mod ir;
mod line_cells;
pub mod lookup;
pub mod matrix;
mod pod_classes;
pub mod ports;
mod region;
pub mod resolve;
pub mod resolved_peers;
pub mod service;
mod walk;

pub use classes::{ClassMatrix, ClassMatrixView};
pub use connlist::{
    conn_table, connlist, diff, diff_touching, ConnTable, Connection, DiffKind, DiffLine, ListPeer,
};
pub use connset::{ConnSet, PortSet};
pub use decide::{Deciding, Decision, PolicyId, RuleId, SideDecision};
pub use eval::{
    DirectionTrace, DirectionVerdict, Endpoint, Engine, Outcome, PolicyRef, RuleRef, Verdict,
    VerdictTrace,
};
pub use incremental::{Applied, Cluster, Focus, RebuildStats, Timings};
pub use lookup::{ConnectionClass, VerdictIndex};
pub use matrix::{default_ports, Matrix, MatrixView, ProbePort};
pub use service::{BackendVerdict, NoBackend, ServiceVerdict};
