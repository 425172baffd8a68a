//! Helpers shared by the conformance harnesses: locating `shared/conformance`, building
//! engines from text, and parsing e2e truth-table grids.

#![allow(dead_code)]

use netfence_engine::Engine;
use netfence_model::Loader;
use std::path::PathBuf;

#[allow(unused_imports)]
pub use netfence_conformance::conformance_dir;

/// Directory for reports (`target/`).
pub fn report_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&dir).expect("create target/");
    dir
}

/// Build an engine from (file name, text) pairs; panics with every load error.
pub fn engine_from(files: &[(&str, &str)]) -> Engine {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    match loader.finish() {
        Ok(inventory) => Engine::new(inventory),
        Err(errors) => panic!("load failed:\n{errors}"),
    }
}

/// Where the verdict index's decisions ([`netfence_engine::VerdictIndex::decide`], read from
/// side rows made by one walk over every peer class) differ from [`Engine::decide`]'s walk
/// per connection, over every pair of pods on `ports`: one line per difference.
pub fn index_decision_disagreements(
    engine: &Engine,
    ports: &[netfence_engine::ProbePort],
) -> Vec<String> {
    use netfence_engine::{Deciding, Endpoint};
    use netfence_model::PodId;
    let index = engine.verdict_index();
    let pods = engine.inventory().pods();
    let mut wrong = Vec::new();
    for a in (0..pods.len()).map(PodId::new) {
        for b in (0..pods.len()).map(PodId::new) {
            for probe in ports {
                let walked = Deciding::from(engine.decide(
                    Endpoint::Pod(a),
                    Endpoint::Pod(b),
                    probe.protocol,
                    probe.port,
                ));
                let read = index.decide(a, b, probe.protocol, probe.port);
                if read != walked {
                    wrong.push(format!(
                        "index decides {}/{} -> {}/{} {probe:?} as {read:?}, the walk as {walked:?}",
                        pods[a].namespace, pods[a].name, pods[b].namespace, pods[b].name
                    ));
                }
            }
        }
    }
    wrong
}
