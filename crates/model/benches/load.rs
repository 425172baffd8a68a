//! Load benchmark (`cargo bench -p netfence-model --bench load`): parse, decode and link the
//! `netfence gen` clusters of 10k and 100k pods, as YAML (the generator's files) and as one
//! `kubectl get -o json` style `List`. Under `cargo test` (no `--bench`) it loads 1k once.
//!
//! `LOAD_PROFILE=PATH` loads one file or directory once and exits (for callgrind).

use netfence_gen::{generate, GenOptions};
use netfence_model::Loader;
use std::time::Instant;

fn load(files: &[(String, String)]) -> netfence_model::Inventory {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    loader.finish().expect("generated cluster loads")
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn main() {
    if let Ok(path) = std::env::var("LOAD_PROFILE") {
        let started = Instant::now();
        let mut loader = Loader::new();
        loader.load_path(std::path::Path::new(&path));
        let read = started.elapsed();
        let inventory = loader.finish().expect("input loads");
        println!(
            "pods {} policies {}: load {:.1} ms, finish {:.1} ms",
            inventory.pods().len(),
            inventory.network_policies.len(),
            read.as_secs_f64() * 1e3,
            (started.elapsed() - read).as_secs_f64() * 1e3
        );
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[(usize, usize, usize)] = if full {
        &[(10_000, 100, 2_000), (100_000, 1_000, 20_000)]
    } else {
        &[(1_000, 10, 200)]
    };
    let repeats = if full { 5 } else { 1 };
    for &(pods, namespaces, policies) in sizes {
        let files = generate(&GenOptions {
            pods,
            namespaces,
            policies,
            calico: 0,
            seed: 1,
        })
        .expect("valid options");
        let mut samples = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            let inventory = load(&files);
            samples.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(inventory.pods().len(), pods);
        }
        println!("{pods} pods: load {:.1} ms", median(samples));
    }
}
