//! The lab on every upstream Kubernetes e2e case (`shared/conformance/k8s-e2e`): the kernel,
//! loaded with the rendered ruleset, must let through exactly what the engine predicts, and
//! that must be what upstream expects. Real packets between network namespaces: needs root,
//! iproute2 and nftables (CI runs as root; scripts/test installs the tools).

use netfence_conformance::k8s_e2e_cases;
use netfence_dataplane::{run_lab, LabOptions};
use netfence_engine::{Engine, ProbePort};
use netfence_model::Loader;

#[test]
fn lab_agrees_with_engine_and_upstream_on_every_e2e_case() {
    let root = netfence_dataplane::running_as_root();
    assert!(
        root,
        "the lab test needs root (network namespaces and nftables); run it as root, as CI does"
    );
    let cases = k8s_e2e_cases();
    let mut failures = Vec::new();
    let (mut probes, mut setup, mut probing) = (0, 0.0, 0.0);
    for case in &cases {
        let mut loader = Loader::new();
        loader.load_str("inventory.yaml", &case.inventory);
        loader.load_str(&case.file, &case.policies);
        let engine = Engine::new(loader.finish().expect("case loads"));
        let ports: Vec<ProbePort> = case
            .expect
            .keys()
            .map(|p| p.parse().expect("port"))
            .collect();
        let options = LabOptions {
            ports: ports.clone(),
            ..LabOptions::default()
        };
        let report = match run_lab(&engine, &options) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{}: lab failed: {e}", case.file));
                continue;
            }
        };
        probes += report.probes;
        setup += report.setup.as_secs_f64();
        probing += report.probing.as_secs_f64();
        for line in &report.disagreements {
            failures.push(format!("{}: {line}", case.file));
        }
        for (p, port) in ports.iter().enumerate() {
            let grid = &case.expect[&port.to_string()];
            for ((src, dst), expected) in grid {
                if src == dst {
                    continue;
                }
                let index = |key: &String| {
                    report
                        .observed
                        .endpoints
                        .iter()
                        .position(|e| e == key)
                        .expect("endpoint")
                };
                let seen = report.observed.allowed(p, index(src), index(dst));
                if seen != *expected {
                    failures.push(format!("{}: {port} {src} -> {dst}: upstream expects {expected}, kernel gave {seen}", case.file));
                }
            }
        }
    }
    println!(
        "lab k8s-e2e: {} cases, {probes} probes with real packets, {} disagreements (setup {setup:.1}s, probing {probing:.1}s)",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
