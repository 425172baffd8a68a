//! Helpers shared by the dataplane's kernel tests.

#![allow(dead_code)]

use netfence_dataplane::{Lab, LabOptions};
use netfence_engine::{Engine, Matrix, ProbePort};
use std::time::Duration;

/// Fail (not skip) when not root: these tests need network namespaces and nftables, as CI has.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
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
    let n = observed.endpoints.len();
    for (p, port) in ports.iter().enumerate() {
        for s in 0..n {
            for d in 0..n {
                assert_eq!(
                    observed.allowed(p, s, d),
                    predicted.allowed(p, s, d),
                    "{port} {} -> {}",
                    observed.endpoints[s],
                    observed.endpoints[d]
                );
            }
        }
    }
}
