//! Helpers shared by the dataplane's kernel tests.

#![allow(dead_code)]

use netfence_dataplane::{Lab, LabOptions};
use netfence_engine::{Engine, Matrix, ProbePort};
use std::time::Duration;

/// Fail (not skip) when not root: these tests need network namespaces and nftables, as CI has.
pub fn require_root() {
    assert!(
        netfence_dataplane::running_as_root(),
        "this test needs root (network namespaces and nftables), as CI has"
    );
}

/// Probe every pair on `ports` in the lab and assert it equals the engine's prediction.
pub fn assert_kernel_matches(lab: &Lab, engine: &Engine, ports: &[ProbePort]) {
    let options = LabOptions {
        ports: ports.to_vec(),
        timeout: Duration::from_millis(700),
        ..LabOptions::default()
    };
    let (observed, _) = lab.probe_matrix(engine, &options).expect("probe");
    let predicted = Matrix::compute(engine, ports);
    let wrong: Vec<String> = observed
        .differences(&predicted)
        .expect("the lab probes the engine's pods and ports")
        .into_iter()
        .map(|(p, s, d)| {
            format!(
                "{} {} -> {}: kernel {}, engine {}",
                ports[p],
                observed.endpoints[s],
                observed.endpoints[d],
                observed.allowed(p, s, d),
                predicted.allowed(p, s, d)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
