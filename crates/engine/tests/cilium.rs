//! Cilium conformance: Cilium's own expectations transcribed as data
//! (`tests/cilium/connectivity.yaml`: cilium-cli's connectivity-test policy scenarios;
//! `tests/cilium/pkg_policy.yaml`: the `pkg/policy` tests expressible as (endpoint, peer, port)
//! → verdict), over the connectivity test's topology (`tests/cilium/base.yaml`); and a scenario
//! suite (`tests/cilium/scenarios.yaml`) whose every scenario cites the Cilium documentation or
//! source line it follows; `tests/cilium/eks.yaml`: the Amazon VPC CNI's ClusterNetworkPolicy.
//! Cases that cannot be expressed say why instead of expecting.

mod common;

use netfence_engine::{Endpoint, Engine, ProbePort};
use netfence_model::Loader;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    source: String,
    #[serde(default)]
    policies: String,
    /// More manifests applied with `policies` (the connectivity test applies several).
    #[serde(default)]
    extra: String,
    /// `--cni` for the case (default: what the input gives).
    #[serde(default)]
    cni: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
    /// Why the case cannot be checked by netfence (then `expect` is empty).
    #[serde(default)]
    not_expressible: Option<String>,
}

/// The engine for a case: the topology and the case's manifests, namespaced objects without a
/// namespace going to `cilium-test` (the connectivity test applies them there).
fn engine_for(case: &Case) -> Engine {
    Engine::new(inventory_for(case, true))
}

/// The case's inventory, with or without its `extra` manifests.
fn inventory_for(case: &Case, with_extra: bool) -> netfence_model::Inventory {
    let mut loader = Loader::new();
    loader.set_default_namespace("cilium-test");
    loader.load_str("base.yaml", include_str!("cilium/base.yaml"));
    loader.load_str("policies.yaml", &case.policies);
    if with_extra {
        loader.load_str("extra.yaml", &case.extra);
    }
    let mut inventory = loader
        .finish()
        .unwrap_or_else(|e| panic!("{}: load failed:\n{e}", case.name));
    if let Some(cni) = &case.cni {
        inventory.cni = netfence_model::cilium::CniSetting {
            cni: cni.parse().expect("cni"),
            source: Some("--cni".into()),
        };
    }
    inventory
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
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() == 5 && words[1] == "->",
            "bad expectation {line:?}"
        );
        let src = endpoint(engine, words[0]);
        let port: ProbePort = words[3].parse().expect("port");
        let expected = match words[4] {
            "allow" => true,
            "deny" => false,
            other => panic!("bad verdict {other:?}"),
        };
        let destinations: Vec<Endpoint> = match words[2].parse() {
            Ok(ip) => match engine.inventory().service_by_cluster_ip(ip) {
                Some(service) => {
                    let backends = engine.inventory().service_backends(service);
                    assert!(!backends.is_empty(), "{line}: Service without backends");
                    backends.into_iter().map(Endpoint::Pod).collect()
                }
                None => vec![engine.endpoint_for_ip(ip)],
            },
            Err(_) => vec![endpoint(engine, words[2])],
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

/// The class-compressed matrix must equal the pod-by-pod one (the connection list, diff and
/// `matrix` read it) on the case's ports and the default probe ports.
fn class_matrix_disagreements(engine: &Engine, lines: &[String]) -> Vec<String> {
    let mut ports = netfence_engine::default_ports(engine.inventory());
    for line in lines {
        let port: ProbePort = line
            .split_whitespace()
            .nth(3)
            .expect("port")
            .parse()
            .expect("port");
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
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
    let cases: Vec<Case> =
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
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
    for (file, text) in [
        (
            "connectivity.yaml",
            include_str!("cilium/connectivity.yaml"),
        ),
        ("pkg_policy.yaml", include_str!("cilium/pkg_policy.yaml")),
    ] {
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
    let (passed, checked, skipped, failures) =
        run("scenarios.yaml", include_str!("cilium/scenarios.yaml"));
    println!("cilium scenarios: {passed}/{checked} pass");
    assert!(skipped.is_empty(), "scenarios are all expressible");
    assert!(checked >= 15, "at least 15 scenarios, got {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn eks_cluster_network_policy() {
    let (passed, checked, skipped, failures) = run("eks.yaml", include_str!("cilium/eks.yaml"));
    println!("eks ClusterNetworkPolicy scenarios: {passed}/{checked} pass");
    assert!(skipped.is_empty());
    assert!(checked >= 4, "at least 4 scenarios, got {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
