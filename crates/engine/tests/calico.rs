//! Calico policy scenarios (`tests/calico/scenarios.yaml` over `tests/calico/base.yaml`), each
//! citing the Calico source or documentation that justifies it, and the EKS guide's Calico
//! examples exactly as printed (`examples/calico-guide/`), with the effects the guide describes;
//! connections through a Service, and the rules judged without a pod's real address.

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
        let mut failed = check(&engine, &scenario.expect);
        // The index's decisions (flows check's explanations) equal the walk's.
        failed.extend(common::index_decision_disagreements(
            &engine,
            &netfence_engine::default_ports(engine.inventory()),
        ));
        for failure in failed {
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

// A connection through a Service is judged at each backend on its target port: the Calico
// docs' allow-kube-dns rule ("Use service rules in policy") lets clients reach CoreDNS through
// the kube-dns Service on both its ports, and nothing else.
#[test]
fn connections_through_a_service_are_judged_per_backend() {
    let base = include_str!("calico/base.yaml");
    let policy = "
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-kube-dns}
spec:
  selector: all()
  egress:
  - action: Allow
    destination:
      services: {name: kube-dns, namespace: kube-system}
";
    let engine = engine_from(&[("base.yaml", base), ("policies.yaml", policy)]);
    let inventory = engine.inventory();
    let web = endpoint(&engine, "dev/web");
    let dns = inventory
        .service("kube-system", "kube-dns")
        .expect("kube-dns");
    let ip = "10.96.0.10".parse().unwrap();
    assert_eq!(inventory.service_by_cluster_ip(ip), Some(dns));
    for protocol in [netfence_model::Protocol::Udp, netfence_model::Protocol::Tcp] {
        let answer = engine.explain_via_service(web, dns, protocol, 53);
        assert!(answer.allowed(), "{protocol}: {answer:?}");
        assert_eq!(answer.backends.len(), 1);
        assert_eq!(
            inventory.pods()[answer.backends[0].pod].key(),
            "kube-system/dns"
        );
        assert_eq!(answer.backends[0].target_port, 53);
    }
    // Port 80 is no Service port: no backend. Straight to the pod on 80: denied by the tier.
    let answer = engine.explain_via_service(web, dns, netfence_model::Protocol::Tcp, 80);
    assert_eq!(
        answer.no_backend,
        Some(netfence_engine::NoBackend::NoSuchPort)
    );
    assert!(!answer.allowed());
    let pod = endpoint(&engine, "kube-system/dns");
    assert!(!engine.allowed(web, pod, netfence_model::Protocol::Tcp, 80));
    // dev/web's Service maps 80 to the named port http: 8080 on the backend.
    let web_service = inventory.service("dev", "web").expect("dev/web service");
    let db = endpoint(&engine, "dev/db");
    let answer = engine.explain_via_service(db, web_service, netfence_model::Protocol::Tcp, 80);
    assert_eq!(answer.backends.len(), 1);
    assert_eq!(answer.backends[0].target_port, 8080);
    // allow-kube-dns selects every pod for egress: dev/db may not reach dev/web.
    assert!(!answer.allowed());
    assert_eq!(answer.allowed_backends(), 0);
}

// A pod without status.podIP has an invented address: a selector over a network set that
// covers 0.0.0.0/0 does not match it, and the explanation lists the rule so judged.
#[test]
fn rules_judged_without_a_known_address_are_listed() {
    let base = include_str!("calico/base.yaml");
    let policies = "
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: dev, labels: {app: pending}}
spec: {containers: [{name: c}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: everything, labels: {role: everything}}
spec: {nets: [0.0.0.0/0]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: api}
spec:
  selector: app == \"api\"
  ingress: [{action: Allow, source: {selector: role == \"everything\"}}]
";
    let engine = engine_from(&[("base.yaml", base), ("policies.yaml", policies)]);
    let api = endpoint(&engine, "prod/api");
    let pending = endpoint(&engine, "dev/pending");
    let verdict = engine.explain(pending, api, netfence_model::Protocol::Tcp, 9000);
    assert!(!verdict.allowed);
    let listed: Vec<(&str, usize)> = verdict
        .ingress
        .unknown_address_rules
        .iter()
        .map(|r| (r.policy.as_str(), r.rule))
        .collect();
    assert_eq!(listed, [("api", 0)]);
    assert!(verdict.egress.unknown_address_rules.is_empty());
    // A pod with a known address: matched through the set, nothing to list.
    let web = endpoint(&engine, "dev/web");
    let verdict = engine.explain(web, api, netfence_model::Protocol::Tcp, 9000);
    assert!(verdict.allowed);
    assert!(verdict.ingress.unknown_address_rules.is_empty());
    assert_eq!(engine.synthetic_address_pods(), 1);
    assert!(engine.has_address_rules());
}
