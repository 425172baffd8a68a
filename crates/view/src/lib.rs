//! The policy viewer (`netfence view`, `netfence serve`): what the engine says about a
//! cluster, drawn. `data` gathers it from the engine's public API (connection list, selecting
//! policies, explanations) and the audit; `html` writes one self-contained page, `svg` a
//! static graph, `overlay` aggregates observed flows, `serve` serves the page read-only and
//! `whatif` previews the reachability delta of a change for it.
//!
//! A library: it never prints and never exits.
//!
//! ```
//! use netfence_engine::Engine;
//! use netfence_model::Loader;
//! let mut loader = Loader::new();
//! loader.load_str("c.yaml", "
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: a, namespace: x, labels: {app: a}}
//! spec: {containers: [{name: c}]}
//! ");
//! let engine = Engine::new(loader.finish().unwrap());
//! let report = netfence_audit::audit_all(&engine, &Default::default(), None);
//! let data = netfence_view::data::build(&engine, &report, &Default::default());
//! let page = netfence_view::html::page(&data);
//! assert!(page.contains("x/a[Pod]"));
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod data;
pub mod html;
pub mod overlay;
pub mod serve;
pub mod svg;
pub mod whatif;

pub use data::{build, build_from, BuildOptions, ViewData};
