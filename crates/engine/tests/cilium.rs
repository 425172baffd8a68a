//! Cilium conformance: Cilium's own expectations transcribed as data
//! (`tests/cilium/connectivity.yaml`: cilium-cli's connectivity-test policy scenarios;
//! `tests/cilium/pkg_policy.yaml`: the `pkg/policy` tests expressible as (endpoint, peer, port)
//! → verdict), over the connectivity test's topology (`tests/cilium/base.yaml`); and a scenario
//! suite (`tests/cilium/scenarios.yaml`) whose every scenario cites the Cilium documentation or
//! source line it follows; `tests/cilium/eks.yaml`: the Amazon VPC CNI's ClusterNetworkPolicy.
//! Cases that cannot be expressed say why instead of expecting.

mod common;

use netfence_engine::{Endpoint, Engine};

#[path = "cilium/harness.rs"]
mod harness;

use harness::{expectation, inventory_for, Case};

/// The engine for a case (with its `extra` manifests).
fn engine_for(case: &Case) -> Engine {
    Engine::new(inventory_for(case, true))
}

/// An engine rebuilt incrementally (`Engine::rebuilt`, what `what-if` and a watch use) from
/// the case without its `extra` manifests, and back, must answer as one built afresh: one
/// Cilium object compiles to policies of one kind and name in several tiers.
fn rebuilt_disagreements(case: &Case, engine: &Engine) -> Vec<String> {
    let mut out = Vec::new();
    let without = Engine::new(inventory_for(case, false));
    let pairs = [
        (without.rebuilt(inventory_for(case, true)).0, engine),
        (engine.rebuilt(inventory_for(case, false)).0, &without),
    ];
    for (rebuilt, fresh) in &pairs {
        if netfence_engine::connlist(rebuilt) != netfence_engine::connlist(fresh) {
            out.push(
                "an incrementally rebuilt engine lists other connections than a fresh one".into(),
            );
        }
        let ports = netfence_engine::default_ports(fresh.inventory());
        if netfence_engine::Matrix::compute(rebuilt, &ports)
            != netfence_engine::Matrix::compute(fresh, &ports)
        {
            out.push("an incrementally rebuilt engine's matrix differs from a fresh one".into());
        }
    }
    out
}

fn endpoint(engine: &Engine, text: &str) -> Endpoint {
    if let Ok(ip) = text.parse() {
        return engine.endpoint_for_ip(ip);
    }
    let (ns, name) = text.split_once('/').expect("ns/pod");
    Endpoint::Pod(
        engine
            .inventory()
            .pod_by_key(ns, name)
            .unwrap_or_else(|| panic!("no pod {text}")),
    )
}

/// Check "SRC -> DST PROTO/PORT allow|deny" lines through every way the engine answers (a
/// verdict, an explanation, the allowed connection set); a destination that is a Service's
/// cluster IP is judged at its backends. Returns the failures.
fn check(engine: &Engine, lines: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    for line in lines {
        let e = expectation(line);
        let src = endpoint(engine, e.src);
        let (port, expected) = (e.port, e.allow);
        let destinations: Vec<Endpoint> = match e.dst.parse() {
            Ok(ip) => match engine.inventory().service_by_cluster_ip(ip) {
                Some(service) => {
                    let backends = engine.inventory().service_backends(service);
                    assert!(!backends.is_empty(), "{line}: Service without backends");
                    backends.into_iter().map(Endpoint::Pod).collect()
                }
                None => vec![engine.endpoint_for_ip(ip)],
            },
            Err(_) => vec![endpoint(engine, e.dst)],
        };
        for dst in destinations {
            let got = engine.allowed(src, dst, port.protocol, port.port);
            let explained = engine.explain(src, dst, port.protocol, port.port);
            let conns = engine
                .allowed_conns(src, dst)
                .contains(port.protocol, port.port);
            if got != expected || explained.allowed != expected || conns != expected {
                failures.push(format!(
                    "{line}: allowed={got}, explain={} ({:?} / {:?}), allowed_conns={conns}",
                    explained.allowed, explained.egress.outcome, explained.ingress.outcome
                ));
            }
        }
    }
    failures
}

/// The default probe ports and the case's.
fn case_ports(engine: &Engine, lines: &[String]) -> Vec<netfence_engine::ProbePort> {
    let mut ports = netfence_engine::default_ports(engine.inventory());
    for line in lines {
        let port = expectation(line).port;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// The class-compressed matrix must equal the pod-by-pod one (the connection list, diff and
/// `matrix` read it) on the case's ports and the default probe ports.
fn class_matrix_disagreements(engine: &Engine, lines: &[String]) -> Vec<String> {
    let ports = case_ports(engine, lines);
    let slow = netfence_engine::Matrix::compute(engine, &ports);
    let fast = engine.class_matrix(&ports).to_matrix(engine);
    let wrong = fast.differences(&slow).expect("same pods and ports");
    if wrong.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "class matrix differs from Matrix::compute: {wrong:?}"
        )]
    }
}

/// Run a file of cases; returns (cases that pass, cases checked, not expressible, failures).
fn run(file: &str, text: &str) -> (usize, usize, Vec<String>, Vec<String>) {
    let cases = harness::cases(file, text);
    let mut passed = 0;
    let mut checked = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(!case.source.is_empty(), "{}: cites nothing", case.name);
        if let Some(reason) = &case.not_expressible {
            assert!(
                case.expect.is_empty(),
                "{}: not expressible but expects",
                case.name
            );
            skipped.push(format!("{} ({}): {reason}", case.name, case.source));
            continue;
        }
        assert!(!case.expect.is_empty(), "{}: expects nothing", case.name);
        checked += 1;
        let engine = engine_for(case);
        let mut failed = check(&engine, &case.expect);
        failed.extend(class_matrix_disagreements(&engine, &case.expect));
        failed.extend(common::index_decision_disagreements(
            &engine,
            &case_ports(&engine, &case.expect),
        ));
        failed.extend(rebuilt_disagreements(case, &engine));
        if failed.is_empty() {
            passed += 1;
        }
        for failure in failed {
            failures.push(format!(
                "{file}: {} ({}): {failure}",
                case.name, case.source
            ));
        }
    }
    (passed, checked, skipped, failures)
}

#[test]
fn cilium_conformance() {
    let mut passed = 0;
    let mut checked = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for (file, text) in harness::FILES[..2].iter().copied() {
        let (p, c, s, f) = run(file, text);
        passed += p;
        checked += c;
        skipped.extend(s);
        failures.extend(f);
    }
    println!(
        "cilium conformance: {passed}/{checked} cases pass ({} not expressible)",
        skipped.len()
    );
    for line in &skipped {
        println!("  not expressible: {line}");
    }
    assert!(checked >= 25, "at least 25 checked cases, got {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cilium_scenarios() {
    let (passed, checked, skipped, failures) = run(harness::FILES[2].0, harness::FILES[2].1);
    println!("cilium scenarios: {passed}/{checked} pass");
    assert!(skipped.is_empty(), "scenarios are all expressible");
    assert!(checked >= 15, "at least 15 scenarios, got {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn eks_cluster_network_policy() {
    let (passed, checked, skipped, failures) = run(harness::FILES[3].0, harness::FILES[3].1);
    println!("eks ClusterNetworkPolicy scenarios: {passed}/{checked} pass");
    assert!(skipped.is_empty());
    assert!(checked >= 4, "at least 4 scenarios, got {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
