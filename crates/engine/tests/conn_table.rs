//! The compact connection table and the word-free traces against the engine's own answers, on
//! generated clusters (Kubernetes, Calico tiers and admin policy):
//! - every class-pair cell the table computed is `allowed_conns` between two different pods
//!   of those classes, and its lines are `connlist`'s;
//! - `describe(trace)` is `explain`, and two pods of one class leave equal traces once the
//!   endpoints are dropped (that is what lets the viewer explain once per class pair).

use netfence_engine::connlist::cuts;
use netfence_engine::{conn_table, connlist, Endpoint, Engine};
use netfence_model::{Loader, Protocol};

fn engine(pods: usize, policies: usize, calico: usize, admin: usize, seed: u64) -> Engine {
    let files = netfence_gen::generate(&netfence_gen::GenOptions {
        pods,
        namespaces: 6,
        policies,
        calico,
        admin,
        seed,
    })
    .expect("generate");
    let mut loader = Loader::new();
    for (name, text) in &files {
        loader.load_str(name, text);
    }
    Engine::new(loader.finish().expect("load"))
}

/// A small deterministic generator (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const CLUSTERS: [(usize, usize, usize, usize, u64); 3] =
    [(200, 30, 0, 0, 1), (240, 30, 4, 3, 2), (180, 20, 6, 4, 3)];

#[test]
fn cells_are_the_engine_answers_between_pods_of_the_classes() {
    for (pods, policies, calico, admin, seed) in CLUSTERS {
        let engine = engine(pods, policies, calico, admin, seed);
        let table = conn_table(&engine, &cuts(&engine), None);
        assert_eq!(table.connections(), connlist(&engine), "seed {seed}");
        let (classes, _) = engine.pod_classes();
        let mut checked = 0;
        for (x, xs) in classes.iter().enumerate() {
            for (y, ys) in classes.iter().enumerate() {
                let Some(cell) = table.cell(x, y) else {
                    continue;
                };
                // Two different pods: the first of x and the last of y that is not it.
                let Some(&d) = ys.iter().rev().find(|&&d| d != xs[0]) else {
                    continue;
                };
                let expected = engine.allowed_conns(Endpoint::Pod(xs[0]), Endpoint::Pod(d));
                assert_eq!(*cell, expected, "seed {seed}: classes {x} -> {y}");
                checked += 1;
            }
        }
        assert!(checked > 100, "seed {seed}: only {checked} cells checked");
    }
}

#[test]
fn traces_describe_as_explain_and_classes_trace_alike() {
    let ports = [
        (Protocol::Tcp, 80),
        (Protocol::Tcp, 443),
        (Protocol::Udp, 53),
    ];
    for (pods, policies, calico, admin, seed) in CLUSTERS {
        let engine = engine(pods, policies, calico, admin, seed);
        let (classes, class_of) = engine.pod_classes();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let pods = engine.inventory().pods().len();
        let mut alike = 0;
        for _ in 0..3000 {
            let (s, d) = (
                netfence_model::PodId::new(rng.below(pods)),
                netfence_model::PodId::new(rng.below(pods)),
            );
            let (protocol, port) = ports[rng.below(ports.len())];
            let (src, dst) = (Endpoint::Pod(s), Endpoint::Pod(d));
            let trace = engine.trace(src, dst, protocol, port);
            assert_eq!(
                engine.describe(&trace),
                engine.explain(src, dst, protocol, port),
                "seed {seed}: {s} -> {d} {protocol:?}/{port}"
            );
            assert_eq!(trace.allowed(), engine.allowed(src, dst, protocol, port));
            // Another pod of each class, when there is one and it keeps the pods apart.
            let mut other = |pod: netfence_model::PodId| {
                let class = &classes[class_of[pod]];
                class[rng.below(class.len())]
            };
            let (s2, d2) = (other(s), other(d));
            if s == d || s2 == d2 {
                continue;
            }
            let again = engine.trace(Endpoint::Pod(s2), Endpoint::Pod(d2), protocol, port);
            assert_eq!(
                again.egress.clone().without_endpoint(),
                trace.egress.clone().without_endpoint(),
                "seed {seed}: egress {s} -> {d} vs {s2} -> {d2}"
            );
            assert_eq!(
                again.ingress.clone().without_endpoint(),
                trace.ingress.clone().without_endpoint(),
                "seed {seed}: ingress {s} -> {d} vs {s2} -> {d2}"
            );
            alike += usize::from((s, d) != (s2, d2));
        }
        assert!(
            alike > 100,
            "seed {seed}: only {alike} distinct pairs compared"
        );
    }
}
