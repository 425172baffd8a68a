//! Test support for every crate: locating `shared/conformance` and reading the Kubernetes e2e
//! truth tables into plain data (no dependency on the engine, so any crate can use it), and the
//! benchmarks' common sweep and statistics ([`bench`](mod@bench)).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `shared/conformance`, beside the repository (`../shared/conformance` from the workspace
/// root), or `$NETFENCE_CONFORMANCE`. Missing data is a failure, never a silent skip.
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

/// A parsed grid: (source `ns/pod`, destination `ns/pod`) → allowed.
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

/// One case of `k8s-e2e/`.
pub struct E2eCase {
    /// File name (`001-default-deny-ingress.yaml`).
    pub file: String,
    /// The upstream `It(...)` description.
    pub name: String,
    /// The upstream source file.
    pub source: String,
    /// `inventory.yaml` with the case's `extra` labels applied.
    pub inventory: String,
    /// The policies (multi-document YAML).
    pub policies: String,
    /// Expected grids by port (`TCP/80`).
    pub expect: BTreeMap<String, Grid>,
}

#[derive(serde::Deserialize)]
struct RawCase {
    name: String,
    source: String,
    #[serde(default)]
    policies: String,
    #[serde(default)]
    extra: String,
    expect: BTreeMap<String, String>,
}

fn key_of(doc: &Value) -> (String, String, String) {
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(doc, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        get(&["kind"]),
        get(&["metadata", "namespace"]),
        get(&["metadata", "name"]),
    )
}

/// The inventory with the labels of `extra` objects replacing those of the same objects.
fn merged_inventory(inventory: &str, extra: &str) -> String {
    let extras: Vec<Value> = serde_yaml_ng::Deserializer::from_str(extra)
        .map(|d| serde::Deserialize::deserialize(d).expect("extra parses"))
        .filter(|v: &Value| !v.is_null())
        .collect();
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(inventory) {
        let mut value: Value = serde::Deserialize::deserialize(doc).expect("inventory parses");
        if let Some(replacement) = extras.iter().find(|e| key_of(e) == key_of(&value)) {
            value["metadata"]["labels"] = replacement["metadata"]["labels"].clone();
        }
        docs.push(serde_yaml_ng::to_string(&value).expect("serialize"));
    }
    docs.join("---\n")
}

/// Every case of `k8s-e2e/`, sorted by file name.
pub fn k8s_e2e_cases() -> Vec<E2eCase> {
    let dir = conformance_dir().join("k8s-e2e");
    let inventory = std::fs::read_to_string(dir.join("inventory.yaml")).expect("inventory.yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("k8s-e2e dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            name.ends_with(".yaml") && name.as_bytes()[0].is_ascii_digit()
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no k8s-e2e cases in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("case");
            let raw: RawCase = serde_yaml_ng::from_str(&text).expect("case parses");
            let expect = raw
                .expect
                .iter()
                .map(|(port, grid)| (port.clone(), parse_grid(grid).expect("grid parses")))
                .collect();
            E2eCase {
                file: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                name: raw.name,
                source: raw.source,
                inventory: merged_inventory(&inventory, &raw.extra),
                policies: raw.policies,
                expect,
            }
        })
        .collect()
}

/// What the benchmarks share: the `netfence gen` sizes they sweep and how they summarise.
pub mod bench {
    /// `(pods, namespaces, policies)` for `netfence gen`: 1k, 10k and 100k pods under
    /// `cargo bench` (`full`), one small cluster under `cargo test` (a smoke run).
    pub fn sizes(full: bool) -> &'static [(usize, usize, usize)] {
        if full {
            &[
                (1_000, 10, 200),
                (10_000, 100, 2_000),
                (100_000, 1_000, 20_000),
            ]
        } else {
            &[(1_000, 10, 200)]
        }
    }

    /// This thread's time on a CPU so far, in seconds (`CLOCK_THREAD_CPUTIME_ID`, exact to
    /// the nanosecond; `/proc/thread-self/schedstat`, which this read before, is brought up
    /// to date only at scheduler ticks, so that a run of 100 ms was measured in steps of
    /// 4 ms). On a shared machine, work per CPU-second is the per-core rate a target speaks
    /// of; wall time also counts the time other processes held the core.
    pub fn cpu_seconds() -> f64 {
        let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
    }

    /// Whether this run is `cargo bench` (which passes `--bench`) rather than `cargo test`.
    pub fn full_run() -> bool {
        std::env::args().any(|a| a == "--bench")
    }

    /// The median of the samples (the upper one of an even count); machines are shared and
    /// noisy, so figures are medians.
    pub fn median(mut samples: Vec<f64>) -> f64 {
        samples.sort_by(|a, b| a.total_cmp(b));
        samples[samples.len() / 2]
    }
}
