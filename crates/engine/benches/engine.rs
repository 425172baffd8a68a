//! Engine benchmarks over `netfence gen` clusters (`cargo bench -p netfence-engine`): load,
//! compile, full matrix (class-compressed) and a single query, at 1k, 10k and 100k pods; the
//! pod-by-pod matrix at 1k as the baseline of the class matrix, in the same run. Medians; the
//! scaling exponent of load+compile+matrix across the sweep. Under `cargo test` (no `--bench`)
//! it runs a small smoke version.

use netfence_conformance::bench::{full_run, median, sizes};
use netfence_engine::{default_ports, Endpoint, Engine, Matrix};
use netfence_gen::{generate, GenOptions};
use netfence_model::{Loader, Protocol};
use std::time::Instant;

fn load(files: &[(String, String)]) -> netfence_model::Inventory {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    loader.finish().expect("generated cluster loads")
}

fn main() {
    let full = full_run();
    let repeats = if full { 5 } else { 1 };
    println!(
        "| pods | policies | classes | load ms | compile ms | matrix ms | total ms | query µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut totals = Vec::new();
    for &(pods, namespaces, policies) in sizes(full) {
        let files = generate(&GenOptions {
            pods,
            namespaces,
            policies,
            calico: 0,
            admin: 0,
            seed: 1,
        })
        .expect("valid options");
        let (mut l, mut c, mut m, mut q) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut classes = 0;
        for _ in 0..repeats {
            let t = Instant::now();
            let inventory = load(&files);
            l.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let engine = Engine::new(inventory);
            c.push(t.elapsed().as_secs_f64() * 1e3);
            let ports = default_ports(engine.inventory());
            let t = Instant::now();
            let matrix = engine.class_matrix(&ports);
            m.push(t.elapsed().as_secs_f64() * 1e3);
            classes = matrix.classes.len();
            // Single query: many random pairs, median of per-batch averages.
            let n = engine.inventory().pods().len();
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % n as u64) as usize
            };
            let batch = 10_000;
            let t = Instant::now();
            let mut allowed = 0;
            for _ in 0..batch {
                if engine.allowed(
                    Endpoint::Pod(netfence_model::PodId::new(next())),
                    Endpoint::Pod(netfence_model::PodId::new(next())),
                    Protocol::Tcp,
                    8080,
                ) {
                    allowed += 1;
                }
            }
            q.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
            std::hint::black_box(allowed);
        }
        let total = median(l.clone()) + median(c.clone()) + median(m.clone());
        totals.push((pods as f64, total));
        println!(
            "| {pods} | {policies} | {classes} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            median(l),
            median(c),
            median(m),
            total,
            median(q)
        );
    }
    if totals.len() > 1 {
        let (first, last) = (totals[0], totals[totals.len() - 1]);
        let exponent = (last.1 / first.1).ln() / (last.0 / first.0).ln();
        println!(
            "\nscaling exponent of load+compile+matrix from {} to {} pods: {exponent:.2}",
            first.0, last.0
        );
    }
    // Baseline in the same run: the pod-by-pod matrix at 1k pods against the class matrix.
    let files = generate(&GenOptions {
        pods: 1_000,
        namespaces: 10,
        policies: 200,
        calico: 0,
        admin: 0,
        seed: 1,
    })
    .expect("valid options");
    let engine = Engine::new(load(&files));
    let ports = default_ports(engine.inventory());
    let slow = median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(Matrix::compute(&engine, &ports));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    let fast = median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(engine.class_matrix(&ports));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!("\n1k pods, {} ports: pod-by-pod matrix {slow:.1} ms, class matrix {fast:.1} ms, ratio {:.4}", ports.len(), fast / slow);
}
