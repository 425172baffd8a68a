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
