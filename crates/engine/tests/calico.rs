//! Calico policy scenarios (`tests/calico/scenarios.yaml` over `tests/calico/base.yaml`), each
//! citing the Calico source or documentation that justifies it, and the EKS guide's Calico
//! examples exactly as printed (`examples/calico-guide/`), with the effects the guide describes.

mod common;

use common::engine_from;
use netfence_engine::{Endpoint, Engine, ProbePort};

#[derive(serde::Deserialize)]
struct Scenario {
    name: String,
    source: String,
    policies: String,
    expect: Vec<String>,
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

/// Check "SRC -> DST PROTO/PORT allow|deny" lines; returns the failures.
fn check(engine: &Engine, lines: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() == 5 && words[1] == "->",
            "bad expectation {line:?}"
        );
        let (src, dst) = (endpoint(engine, words[0]), endpoint(engine, words[2]));
        let port: ProbePort = words[3].parse().expect("port");
        let expected = match words[4] {
            "allow" => true,
            "deny" => false,
            other => panic!("bad verdict {other:?}"),
        };
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
    failures
}

#[test]
fn calico_scenarios() {
    let base = include_str!("calico/base.yaml");
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("calico/scenarios.yaml")).expect("scenarios parse");
    assert!(scenarios.len() >= 40, "at least 40 scenarios");
    let mut failures = Vec::new();
    let mut checks = 0;
    for scenario in &scenarios {
        assert!(
            !scenario.source.is_empty(),
            "{} cites nothing",
            scenario.name
        );
        let engine = engine_from(&[("base.yaml", base), ("policies.yaml", &scenario.policies)]);
        checks += scenario.expect.len();
        for failure in check(&engine, &scenario.expect) {
            failures.push(format!(
                "{} ({}): {failure}",
                scenario.name, scenario.source
            ));
        }
    }
    println!(
        "calico scenarios: {} of {} pass ({checks} expectations)",
        scenarios.len()
            - failures
                .iter()
                .map(|f| f.split(" (").next().unwrap_or(""))
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        scenarios.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn guide(files: &[&str]) -> Engine {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/calico-guide");
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read_to_string(dir.join(f)).expect("example file"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    engine_from(&refs)
}

// EKS guide, "Create a default deny policy" (Calico global network policy, as printed) and
// "Create a rule to allow DNS queries" (Calico global policy equivalent, as printed).
#[test]
fn guide_default_deny_and_dns_egress() {
    let engine = guide(&["00-cluster.yaml", "10-default-deny.yaml"]);
    let lines: Vec<String> = [
        "default/sa-client -> default/app TCP/80 deny",
        "default/app -> kube-system/coredns UDP/53 deny",
        "203.0.113.1 -> default/app TCP/80 deny",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(check(&engine, &lines), Vec::<String>::new());

    let engine = guide(&[
        "00-cluster.yaml",
        "10-default-deny.yaml",
        "11-allow-dns-egress.yaml",
    ]);
    let app = endpoint(&engine, "default/app");
    let dns = endpoint(&engine, "kube-system/coredns");
    let verdict = engine.explain(app, dns, netfence_model::Protocol::Udp, 53);
    // The guide's DNS rule opens egress to kube-system on UDP 53 ...
    assert!(verdict.egress.allowed, "{verdict:?}");
    match &verdict.egress.outcome {
        netfence_engine::Outcome::Rule { rule } => {
            assert_eq!((rule.policy.as_str(), rule.rule), ("allow-dns-egress", 0))
        }
        other => panic!("egress decided by {other:?}"),
    }
    // ... but default-deny selects CoreDNS too (all()), so its ingress stays closed: with only
    // these two policies, DNS queries are still dropped at CoreDNS. netfence shows why.
    assert!(!verdict.ingress.allowed);
    assert!(matches!(
        verdict.ingress.outcome,
        netfence_engine::Outcome::EndOfTier { .. }
    ));
    let lines: Vec<String> = [
        "default/app -> kube-system/coredns TCP/53 deny",
        "default/app -> default/sa-client UDP/53 deny",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(check(&engine, &lines), Vec::<String>::new());
}

// EKS guide, netpol-sa-demo (as printed): ingress to every pod of default only from pods that
// run as a service account labelled name=my-sa.
#[test]
fn guide_service_account_policy() {
    let engine = guide(&["00-cluster.yaml", "20-netpol-sa-demo.yaml"]);
    // The Role and RoleBinding are loaded for the audit (NF-TC-012), not skipped.
    assert_eq!(engine.inventory().skipped_count(), 0);
    assert_eq!(engine.inventory().rbac_roles.len(), 1);
    assert_eq!(engine.inventory().rbac_bindings.len(), 1);
    let lines: Vec<String> = [
        "default/sa-client -> default/app TCP/80 allow",
        "default/sa-client -> default/other-client UDP/5000 allow",
        "default/other-client -> default/app TCP/80 deny",
        "kube-system/coredns -> default/app TCP/80 deny",
        "default/app -> kube-system/coredns UDP/53 allow",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(check(&engine, &lines), Vec::<String>::new());
}
