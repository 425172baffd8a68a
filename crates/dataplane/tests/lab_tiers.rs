//! The lab on tiered policies: the Calico scenario suite (`crates/engine/tests/calico/`) and
//! the network-policy-api conformance suite (`crates/engine/tests/network-policy-api/`), with
//! real packets between network namespaces. For every scenario or step the kernel, loaded with
//! the rendered ruleset, must let through exactly what the engine predicts on the whole pod
//! grid of the probed ports, and that must be what the suite expects. Namespaces are built
//! once per suite (per distinct set of pods) and reused: each scenario or step only replaces
//! the ruleset. Needs root, iproute2 and nftables, as CI has.

mod common;

#[path = "../../engine/tests/network-policy-api/harness.rs"]
mod harness;

use common::require_root;
use netfence_dataplane::{render, Lab, LabOptions, RenderOptions};
use netfence_engine::{Engine, Matrix, ProbePort};
use netfence_model::{Loader, Protocol};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn options() -> LabOptions {
    LabOptions {
        timeout: Duration::from_millis(500),
        ..LabOptions::default()
    }
}

/// The pods of an engine as (key, addresses): two engines with the same pods can share a lab.
fn pods_of(engine: &Engine) -> Vec<(String, Vec<std::net::IpAddr>)> {
    engine
        .inventory()
        .pods()
        .iter()
        .map(|p| (p.key(), p.ips.clone()))
        .collect()
}

/// Load `engine`'s ruleset into `lab` and probe every pair of pods on `ports`: the
/// disagreements with the engine, the observed matrix and the number of probes.
fn kernel_grid(lab: &Lab, engine: &Engine, ports: &[ProbePort]) -> (Vec<String>, Matrix, usize) {
    let ruleset = render(engine, &RenderOptions::default()).expect("renders");
    lab.apply(&ruleset).expect("ruleset loads");
    let options = LabOptions {
        ports: ports.to_vec(),
        ..options()
    };
    let (observed, probes) = lab.probe_matrix(engine, &options).expect("probe");
    let predicted = Matrix::compute(engine, ports);
    let wrong = observed
        .differences(&predicted)
        .expect("same pods and ports")
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
    (wrong, observed, probes)
}

fn index_of(matrix: &Matrix, key: &str) -> Option<usize> {
    matrix.endpoints.iter().position(|e| e == key)
}

#[derive(serde::Deserialize)]
struct Scenario {
    name: String,
    policies: String,
    expect: Vec<String>,
}

#[test]
fn calico_scenarios_in_the_kernel() {
    require_root();
    let started = Instant::now();
    let base = include_str!("../../engine/tests/calico/base.yaml");
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("../../engine/tests/calico/scenarios.yaml"))
            .expect("scenarios parse");
    let parsed = |line: &str| -> (String, String, ProbePort, bool) {
        let w: Vec<&str> = line.split_whitespace().collect();
        (
            w[0].to_string(),
            w[2].to_string(),
            w[3].parse().expect("port"),
            w[4] == "allow",
        )
    };
    // Every port any scenario probes: the labs listen on all of them.
    let all_ports: Vec<ProbePort> = scenarios
        .iter()
        .flat_map(|s| s.expect.iter().map(|l| parsed(l).2))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| p.protocol != Protocol::Sctp)
        .collect();
    let mut labs: Vec<(Vec<(String, Vec<std::net::IpAddr>)>, Lab)> = Vec::new();
    let mut failures = Vec::new();
    let (mut probes, mut checked, mut enforced) = (0, 0, 0);
    let mut not_grid: Vec<String> = Vec::new();
    for scenario in &scenarios {
        let mut loader = Loader::new();
        loader.load_str("base.yaml", base);
        loader.load_str("policies.yaml", &scenario.policies);
        let engine = Engine::new(loader.finish().expect("scenario loads"));
        if let Err(e) = render(&engine, &RenderOptions::default()) {
            failures.push(format!("{}: refused: {e}", scenario.name));
            continue;
        }
        let pods = pods_of(&engine);
        let lab = match labs.iter().position(|(p, _)| *p == pods) {
            Some(i) => &labs[i].1,
            None => {
                let lab = Lab::build(&engine, &all_ports).expect("lab builds");
                labs.push((pods, lab));
                &labs[labs.len() - 1].1
            }
        };
        let lines: Vec<_> = scenario.expect.iter().map(|l| parsed(l)).collect();
        let ports: Vec<ProbePort> = lines
            .iter()
            .map(|l| l.2)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (wrong, observed, sent) = kernel_grid(lab, &engine, &ports);
        enforced += 1;
        probes += sent;
        failures.extend(wrong.into_iter().map(|w| format!("{}: {w}", scenario.name)));
        for (line, (src, dst, port, expected)) in scenario.expect.iter().zip(&lines) {
            let (Some(s), Some(d)) = (index_of(&observed, src), index_of(&observed, dst)) else {
                not_grid.push(format!("{}: {line}", scenario.name));
                continue;
            };
            let p = ports.iter().position(|x| x == port).expect("probed port");
            checked += 1;
            if observed.allowed(p, s, d) != *expected {
                failures.push(format!(
                    "{}: {line}: the kernel gave {}",
                    scenario.name,
                    observed.allowed(p, s, d)
                ));
            }
        }
    }
    drop(labs);
    let only_addresses = scenarios
        .iter()
        .filter(|s| {
            not_grid
                .iter()
                .filter(|l| l.starts_with(&format!("{}: ", s.name)))
                .count()
                == s.expect.len()
        })
        .count();
    println!(
        "lab calico: {} scenarios, {enforced} enforced in the kernel, {probes} probes with real packets, {checked} pod-to-pod expectations checked, {} expectations with a bare address (not a pod grid; {only_addresses} scenarios have only those), {} disagreements ({:.1}s)",
        scenarios.len(),
        not_grid.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
