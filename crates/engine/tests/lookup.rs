//! The verdict index ([`netfence_engine::VerdictIndex`]) answers exactly what the tier walk
//! answers: on random Kubernetes and Calico clusters, every pair of pod addresses (and some
//! external addresses) on every port a policy mentions, on the ports next to them, and on
//! random ports, for every protocol.

use netfence_engine::{default_ports, Endpoint, Engine};
use netfence_model::{Loader, PodId, Protocol};
use std::net::IpAddr;

mod random;
use random::*;

fn check(yaml: &str, seed: u64) -> usize {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", yaml);
    let engine = Engine::new(loader.finish().expect("random cluster loads"));
    let index = engine.verdict_index();
    let mut ports: Vec<(Protocol, u16)> = default_ports(engine.inventory())
        .into_iter()
        .flat_map(|p| {
            [p.port.saturating_sub(1), p.port, p.port.saturating_add(1)]
                .map(|port| (p.protocol, port))
        })
        .collect();
    let mut g = Gen(seed ^ 0x5151);
    for _ in 0..8 {
        let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][g.below(3) as usize];
        ports.push((protocol, g.below(65536) as u16));
    }
    ports.push((Protocol::Tcp, 0));
    ports.push((Protocol::Udp, 65535));
    let mut addresses: Vec<IpAddr> = engine
        .inventory()
        .pods()
        .iter()
        .filter(|p| !p.synthetic_ip)
        .flat_map(|p| p.ips.clone())
        .collect();
    for external in [
        "192.0.2.10",
        "10.0.0.1",
        "10.1.2.3",
        "8.8.8.8",
        "2001:db8::1",
    ] {
        addresses.push(external.parse().expect("address"));
    }
    let mut checked = 0;
    for &src in &addresses {
        for &dst in &addresses {
            for &(protocol, port) in &ports {
                let expected = engine.allowed(
                    engine.endpoint_for_ip(src),
                    engine.endpoint_for_ip(dst),
                    protocol,
                    port,
                );
                assert_eq!(
                    index.allowed_ips(src, dst, protocol, port),
                    expected,
                    "seed {seed}: {src} -> {dst} {protocol:?}/{port}\n{yaml}"
                );
                // The pods and class of one call are those of the lookups one by one.
                let (a, b) = (index.pod_by_ip(src), index.pod_by_ip(dst));
                let class = a
                    .zip(b)
                    .and_then(|(a, b)| index.connection_class(a, b, protocol, port));
                assert_eq!(
                    index.connection_of_ips((src, dst), protocol, port),
                    (a, b, class),
                    "seed {seed}: {src} -> {dst} {protocol:?}/{port}"
                );
                checked += 1;
            }
        }
    }
    // Pods by id too (synthetic addresses are no lookup key, but pods are).
    let pods = engine.inventory().pods().len();
    for a in 0..pods {
        for b in 0..pods {
            let (protocol, port) = ports[(a * 7 + b) % ports.len()];
            let (a, b) = (PodId::new(a), PodId::new(b));
            assert_eq!(
                index.allowed(Endpoint::Pod(a), Endpoint::Pod(b), protocol, port),
                engine.allowed(Endpoint::Pod(a), Endpoint::Pod(b), protocol, port),
                "seed {seed}: pod {a} -> pod {b} {protocol:?}/{port}"
            );
        }
    }
    checked
}

#[test]
fn the_index_equals_the_tier_walk_on_random_clusters() {
    let mut checked = 0;
    for seed in 0..40u64 {
        let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        checked += check(&random_cluster(seed), seed);
        checked += check(&random_calico_cluster(seed), seed);
    }
    println!("verdict index: {checked} address lookups equal the tier walk");
    assert!(checked > 10_000, "too few lookups checked: {checked}");
}

/// `Kind namespace/name` of policy `id` (as `flows check` names a deciding policy).
fn policy_name(engine: &Engine, id: Option<netfence_engine::PolicyId>) -> Option<String> {
    id.and_then(|id| engine.policy(id))
        .map(|p| format!("{} {}", p.kind, p.name))
}

/// The policy named from an explanation's words (the rule of `flows check`'s `decided_by`
/// before decisions had ids): the deciding rule's policy; at a tier's end, the first
/// selecting policy of that tier; when every tier passed, the last rule passed through.
fn named_from_words(side: &netfence_engine::DirectionVerdict) -> Option<String> {
    use netfence_engine::Outcome;
    match &side.outcome {
        Outcome::Rule { rule } => Some(format!("{} {}", rule.kind, rule.policy)),
        Outcome::EndOfTier { tier } => side
            .selected_by
            .iter()
            .find(|policy| policy.tier == *tier)
            .map(|policy| format!("{} {}", policy.kind, policy.policy)),
        Outcome::DefaultAllow => side
            .passed_through
            .last()
            .map(|rule| format!("{} {}", rule.kind, rule.policy)),
        Outcome::NotApplicable | Outcome::NotIsolated | Outcome::SamePod => None,
    }
}

/// `Engine::decide` answers what `Engine::explain` answers (verdicts and deciding policies),
/// and the deciding policy by id names what the explanation's words name.
#[test]
fn decisions_equal_explanations_on_random_clusters() {
    let mut checked = 0;
    let mut decided = 0;
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 0..80u64 {
        let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for yaml in [random_cluster(seed), random_calico_cluster(seed)] {
            let mut loader = Loader::new();
            loader.load_str("cluster.yaml", &yaml);
            let engine = Engine::new(loader.finish().expect("random cluster loads"));
            let ports = default_ports(engine.inventory());
            let index = engine.verdict_index();
            let pods = engine.inventory().pods().len();
            let mut endpoints: Vec<Endpoint> =
                (0..pods).map(|id| Endpoint::Pod(PodId::new(id))).collect();
            endpoints.push(Endpoint::Address("192.0.2.10".parse().expect("address")));
            for &src in &endpoints {
                for &dst in &endpoints {
                    for probe in &ports {
                        let verdict = engine.explain(src, dst, probe.protocol, probe.port);
                        let decision = engine.decide(src, dst, probe.protocol, probe.port);
                        assert_eq!(decision.allowed, verdict.allowed, "seed {seed}");
                        assert_eq!(decision.egress.allowed, verdict.egress.allowed);
                        assert_eq!(decision.egress.policy, verdict.egress.deciding_policy);
                        assert_eq!(decision.ingress.policy, verdict.ingress.deciding_policy);
                        for side in [&verdict.egress, &verdict.ingress] {
                            assert_eq!(
                                policy_name(&engine, side.deciding_policy),
                                named_from_words(side)
                            );
                            let kind = serde_json::to_value(&side.outcome).expect("json")["reason"]
                                .to_string();
                            *outcomes.entry(kind).or_insert(0) += 1;
                        }
                        assert_eq!(decision.deciding_policy(), verdict.deciding_policy());
                        // The index's decision walks fewer sides, to the same answer.
                        if let (Endpoint::Pod(a), Endpoint::Pod(b)) = (src, dst) {
                            assert_eq!(
                                index.decide(a, b, probe.protocol, probe.port),
                                netfence_engine::Deciding::from(decision),
                                "seed {seed}: pod {a} -> pod {b} {probe:?}"
                            );
                            decided += 1;
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    println!(
        "decisions: {checked} connections equal their explanations ({decided} by the index); outcomes {outcomes:?}"
    );
    assert!(checked > 10_000, "too few connections: {checked}");
    assert!(decided > 5_000, "too few index decisions: {decided}");
    for reason in ["rule", "end-of-tier", "default-allow", "not-isolated"] {
        assert!(
            outcomes.contains_key(&format!("\"{reason}\"")),
            "no {reason} outcome exercised: {outcomes:?}"
        );
    }
}

/// When every tier passes, the last Pass or Log rule walked names the deciding policy; the
/// index reads it from its side rows in walk order, not from the first run that matched.
#[test]
fn the_index_names_the_last_pass_when_every_tier_passed() {
    let yaml = "\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: []}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: []}
status: {podIP: 10.0.0.2}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.log-all}
spec: {tier: security, order: 1, selector: all(), types: [Ingress], ingress: [{action: Log}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.pass-b}
spec:
  tier: security
  order: 2
  selector: all()
  types: [Ingress]
  ingress: [{action: Pass, source: {selector: app == 'b'}}]
";
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", yaml);
    let engine = Engine::new(loader.finish().expect("cluster loads"));
    let index = engine.verdict_index();
    let pod = |name| engine.inventory().pod_by_key("x", name).expect("pod");
    // b -> a: logged, then passed by the later policy: the pass names it. a -> b: logged
    // only, then the tier's end denies: the tier's first policy names it.
    for (src, dst, allowed, named) in [
        ("b", "a", true, "Calico GlobalNetworkPolicy security.pass-b"),
        (
            "a",
            "b",
            false,
            "Calico GlobalNetworkPolicy security.log-all",
        ),
    ] {
        let (src, dst) = (pod(src), pod(dst));
        let walked = engine.decide(
            netfence_engine::Endpoint::Pod(src),
            netfence_engine::Endpoint::Pod(dst),
            Protocol::Tcp,
            80,
        );
        let read = index.decide(src, dst, Protocol::Tcp, 80);
        assert_eq!(read, netfence_engine::Deciding::from(walked));
        assert_eq!(read.allowed, allowed);
        assert_eq!(policy_name(&engine, read.policy).as_deref(), Some(named));
    }
}

/// Nodes, an admin policy with node and network peers, and a Cilium policy with entities and
/// CIDRs, after a random cluster: the address predicates the random clusters lack.
const NODES_AND_ENTITIES: &str = "
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
status: {addresses: [{type: InternalIP, address: 10.0.0.9}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {zone: b}}
status: {addresses: [{type: InternalIP, address: 192.0.2.77}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: nodes-and-networks}
spec:
  tier: Admin
  priority: 5
  subject:
    namespaces: {matchLabels: {}}
  egress:
  - name: to-zone-a
    action: Deny
    to: [{nodes: {matchLabels: {zone: a}}}]
  - name: to-net
    action: Accept
    to: [{networks: [203.0.113.0/24, 198.51.100.128/25]}]
  - name: to-nodes
    action: Pass
    to: [{nodes: {matchLabels: {}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: entities, namespace: x}
spec:
  endpointSelector: {}
  egress:
  - {toEntities: [world]}
  - {toCIDR: [198.51.100.0/24], toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]}
  ingress:
  - {fromEntities: [host, cluster]}
  - {fromCIDRSet: [{cidr: 0.0.0.0/0, except: [192.0.2.0/25]}]}
";

/// `flows check` decides a connection with a bare address once per segment of the engine's
/// cuts (`Engine::list_cuts`, equal to `connlist::cuts`: rule peers' CIDRs, network sets, node addresses when a peer is the
/// nodes): every address of a segment must be decided as every other, from and to every pod
/// on every port a policy names, with the same deciding policy. Random Kubernetes and Calico
/// clusters (network sets, nets and notNets), and with nodes, node and network peers of an
/// admin policy, and Cilium entities and CIDRs.
#[test]
fn addresses_of_one_segment_are_decided_alike_on_random_clusters() {
    let mut compared = 0;
    for seed in 0..40u64 {
        let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for yaml in [
            random_cluster(seed),
            random_calico_cluster(seed),
            random_cluster(seed) + NODES_AND_ENTITIES,
        ] {
            let mut loader = Loader::new();
            loader.load_str("cluster.yaml", &yaml);
            let engine = Engine::new(loader.finish().expect("random cluster loads"));
            let cuts = engine.list_cuts();
            let mut g = Gen(seed ^ 0xadd);
            // Each segment's first and last address, and one between, when bare addresses.
            let mut by_segment: std::collections::BTreeMap<(bool, usize), Vec<IpAddr>> =
                Default::default();
            for (first, last) in cuts.ranges() {
                let between = match (first, last) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        let (a, b) = (u32::from(a), u32::from(b));
                        IpAddr::V4((a + (g.below(u64::from(b - a) + 1) as u32)).into())
                    }
                    _ => first,
                };
                for ip in [first, between, last] {
                    if let Endpoint::Address(_) = engine.endpoint_for_ip(ip) {
                        by_segment.entry(cuts.segment(ip)).or_default().push(ip);
                    }
                }
            }
            for ip in ["2001:db8::1", "2001:db8::2"] {
                let ip: IpAddr = ip.parse().expect("address");
                by_segment.entry(cuts.segment(ip)).or_default().push(ip);
            }
            let pods = engine.inventory().pods().len();
            let ports = default_ports(engine.inventory());
            for addresses in by_segment.values().filter(|a| a.len() > 1) {
                let first = Endpoint::Address(addresses[0]);
                for &other in &addresses[1..] {
                    let other = Endpoint::Address(other);
                    for (id, probe) in (0..pods).flat_map(|id| ports.iter().map(move |p| (id, p))) {
                        let pod = Endpoint::Pod(PodId::new(id));
                        for (a, b) in [((first, pod), (other, pod)), ((pod, first), (pod, other))] {
                            let decide = |(src, dst): (Endpoint, Endpoint)| {
                                let decision = engine.decide(src, dst, probe.protocol, probe.port);
                                (
                                    decision.allowed,
                                    decision.egress.allowed,
                                    decision.deciding_policy(),
                                )
                            };
                            assert_eq!(
                                decide(a),
                                decide(b),
                                "seed {seed}: {a:?} and {b:?} {probe:?}\n{yaml}"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    println!("address segments: {compared} decisions equal their segment's first address's");
    assert!(compared > 50_000, "too few decisions compared: {compared}");
}
