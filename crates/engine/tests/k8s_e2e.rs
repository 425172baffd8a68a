//! The upstream Kubernetes NetworkPolicy e2e truth tables (`shared/conformance/k8s-e2e`,
//! transcribed from kubernetes/kubernetes test/e2e/network/netpol/network_policy.go): every
//! case must pass. The diagonal is ignored, as upstream's `ignoreLoopback` does.

mod common;

use common::engine_from;
use netfence_conformance::k8s_e2e_cases;
use netfence_engine::{Endpoint, ProbePort};

#[test]
fn k8s_e2e_truth_tables() {
    let cases = k8s_e2e_cases();
    let mut failures = Vec::new();
    let mut cells_checked = 0;
    for case in &cases {
        let engine = engine_from(&[
            ("inventory.yaml", &case.inventory),
            (&case.file, &case.policies),
        ]);
        let mut mismatches = Vec::new();
        for (port, grid) in &case.expect {
            let probe: ProbePort = port.parse().expect("port key");
            for ((src, dst), expected) in grid {
                if src == dst {
                    continue;
                }
                let endpoint = |key: &str| {
                    let (ns, name) = key.split_once('/').expect("ns/pod");
                    Endpoint::Pod(engine.inventory().pod_by_key(ns, name).expect("pod exists"))
                };
                let got = engine.allowed(endpoint(src), endpoint(dst), probe.protocol, probe.port);
                cells_checked += 1;
                if got != *expected {
                    mismatches.push(format!(
                        "{port} {src} -> {dst}: expected {expected}, got {got}"
                    ));
                }
            }
        }
        if !mismatches.is_empty() {
            failures.push(format!(
                "{} ({}; {}):\n  {}",
                case.file,
                case.name,
                case.source,
                mismatches.join("\n  ")
            ));
        }
    }
    println!(
        "k8s-e2e conformance: {} of {} cases pass ({} cells checked)",
        cases.len() - failures.len(),
        cases.len(),
        cells_checked
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
