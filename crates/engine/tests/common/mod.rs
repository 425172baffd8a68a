//! Helpers shared by the conformance harnesses: locating `shared/conformance`, building
//! engines from text, and parsing e2e truth-table grids.

#![allow(dead_code)]

use netfence_engine::Engine;
use netfence_model::Loader;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `shared/conformance`, beside the repository (`../shared` from the workspace root). Missing
/// data is a failure, never a silent skip.
pub fn conformance_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var("NETFENCE_CONFORMANCE")
            .map(PathBuf::from)
            .ok(),
        Some(root.join("../shared/conformance")),
        Some(root.join("shared/conformance")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "conformance data not found: expected ../shared/conformance beside the repository \
                 (or set NETFENCE_CONFORMANCE)"
            )
        })
}

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

/// A parsed grid: (source, destination) → allowed.
pub type Grid = BTreeMap<(String, String), bool>;

/// Parse an e2e grid: a header `-  x/a x/b …`, then one row per source of `.` / `X`.
pub fn parse_grid(text: &str) -> Result<Grid, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty grid")?
        .split_whitespace()
        .skip(1)
        .collect();
    let mut grid = Grid::new();
    for line in lines {
        let mut cells = line.split_whitespace();
        let src = cells.next().ok_or("empty row")?;
        let cells: Vec<&str> = cells.collect();
        if cells.len() != header.len() {
            return Err(format!(
                "row {src} has {} cells, header has {}",
                cells.len(),
                header.len()
            ));
        }
        for (dst, cell) in header.iter().zip(cells) {
            let allowed = match cell {
                "." => true,
                "X" => false,
                other => return Err(format!("bad cell {other:?} in row {src}")),
            };
            grid.insert((src.to_string(), dst.to_string()), allowed);
        }
    }
    Ok(grid)
}
