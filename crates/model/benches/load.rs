//! Load benchmark (`cargo bench -p netfence-model --bench load`): parse, decode and link
//! (`Loader::load_str` then `finish`) the `netfence gen` clusters of 10k and 100k pods, as
//! YAML (the generator's files) and as one `kubectl get -o json` style `List`. The baseline,
//! in the same run, is the sequential libyaml path (`set_threads(1)`, `set_fast_yaml(false)`);
//! each figure is the median of 5 runs, alternating baseline and current. Under `cargo test`
//! (no `--bench`) it loads 1k once each way and checks both give the same inventory.
//!
//! `LOAD_PROFILE=PATH` loads one file or directory once and exits (for callgrind);
//! `LOAD_BASELINE=1` with it takes the baseline path.

use netfence_gen::{generate, GenOptions};
use netfence_model::{parse, Inventory, Loader};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Baseline,
    Current,
}

fn loader(path: Path) -> Loader {
    let mut loader = Loader::new();
    if path == Path::Baseline {
        loader.set_threads(1);
        loader.set_fast_yaml(false);
    }
    loader
}

fn load(files: &[(String, String)], path: Path) -> Inventory {
    let mut loader = loader(path);
    for (name, text) in files {
        loader.load_str(name, text);
    }
    loader.finish().expect("generated cluster loads")
}

/// The cluster as `kubectl get -o json` prints a list: one `List` of every object, indented
/// by four spaces.
fn as_kubectl_json(files: &[(String, String)]) -> Vec<(String, String)> {
    use serde::Serialize;
    let mut items = Vec::new();
    for (_, text) in files {
        for document in text.split("\n---\n") {
            let value = parse::yaml_document(document).expect("generated YAML parses");
            if !value.is_null() {
                items.push(value);
            }
        }
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items,
        "metadata": {"resourceVersion": ""}});
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    list.serialize(&mut serializer).expect("serializes");
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    vec![("cluster.json".to_string(), text)]
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn profile(path: &str) {
    let which = match std::env::var("LOAD_BASELINE").as_deref() {
        Ok("1") => Path::Baseline,
        _ => Path::Current,
    };
    let started = Instant::now();
    let mut loader = loader(which);
    loader.load_path(std::path::Path::new(path));
    let read = started.elapsed();
    let inventory = loader.finish().expect("input loads");
    println!(
        "pods {} policies {}: load {:.1} ms, finish {:.1} ms",
        inventory.pods().len(),
        inventory.network_policies.len(),
        read.as_secs_f64() * 1e3,
        (started.elapsed() - read).as_secs_f64() * 1e3
    );
}

fn main() {
    if let Ok(path) = std::env::var("LOAD_PROFILE") {
        profile(&path);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[(usize, usize, usize)] = if full {
        &[(10_000, 100, 2_000), (100_000, 1_000, 20_000)]
    } else {
        &[(1_000, 10, 200)]
    };
    let repeats = if full { 5 } else { 1 };
    println!("| input | MB | baseline ms | current ms | speed-up |");
    println!("|---|---|---|---|---|");
    for &(pods, namespaces, policies) in sizes {
        let yaml = generate(&GenOptions {
            pods,
            namespaces,
            policies,
            calico: 0,
            admin: 0,
            seed: 1,
        })
        .expect("valid options");
        let json = as_kubectl_json(&yaml);
        for (format, files) in [("YAML", &yaml), ("JSON", &json)] {
            let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
            let (mut baseline, mut current) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                for (path, samples) in [
                    (Path::Baseline, &mut baseline),
                    (Path::Current, &mut current),
                ] {
                    let t = Instant::now();
                    let inventory = load(files, path);
                    samples.push(t.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(inventory.pods().len(), pods);
                }
            }
            if !full {
                // Both paths build the same inventory.
                let one = format!("{:?}", load(files, Path::Baseline));
                assert!(one == format!("{:?}", load(files, Path::Current)));
            }
            let (baseline, current) = (median(baseline), median(current));
            println!(
                "| {pods} pods / {policies} policies, {format} | {:.1} | {baseline:.0} | {current:.0} | {:.2}× |",
                bytes as f64 / 1e6,
                baseline / current
            );
        }
    }
}
