//! A naive reference evaluator, written straight from the Kubernetes NetworkPolicy API
//! reference over the loaded (not compiled) policies, and a property test comparing the
//! engine with it on random clusters and policy sets.
//!
//! The reference is deliberately slow and obvious: for every question it re-scans every
//! policy. Semantics (API reference, networking.k8s.io/v1 NetworkPolicySpec):
//! a pod is isolated for a direction iff a policy in its namespace selects it and lists the
//! direction in policyTypes; then a connection is allowed iff some rule of some such policy
//! matches both the peer and the port. Egress at the source AND ingress at the destination.

use netfence_engine::{Endpoint, Engine};
use netfence_model::{Inventory, Loader, NetworkPolicy, NpPeer, NpPortSpec, PolicyType, Protocol};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::net::IpAddr;

fn reference_allowed(
    inv: &Inventory,
    src: Endpoint,
    dst: Endpoint,
    protocol: Protocol,
    port: u16,
) -> bool {
    if src == dst {
        return true;
    }
    let side_ok = |subject: Endpoint, direction: PolicyType, peer: Endpoint| -> bool {
        let Endpoint::Pod(id) = subject else {
            return true;
        };
        let pod = &inv.pods[id];
        if pod.host_network {
            return true;
        }
        let selecting: Vec<&NetworkPolicy> = inv
            .network_policies
            .iter()
            .filter(|p| {
                p.namespace == pod.namespace
                    && p.pod_selector.matches(&pod.labels)
                    && p.policy_types.contains(&direction)
            })
            .collect();
        if selecting.is_empty() {
            return true;
        }
        selecting.iter().any(|policy| {
            policy.rules(direction).iter().any(|rule| {
                let peer_ok = rule.peers.is_empty()
                    || rule
                        .peers
                        .iter()
                        .any(|p| peer_matches(inv, policy, p, peer));
                let port_ok = rule.ports.is_empty()
                    || rule.ports.iter().any(|p| {
                        p.protocol == protocol
                            && match &p.port {
                                NpPortSpec::All => true,
                                NpPortSpec::Range(r) => r.first() <= port && port <= r.last(),
                                NpPortSpec::Named(name) => match dst {
                                    Endpoint::Pod(d) => inv.pods[d].ports.iter().any(|c| {
                                        c.name.as_deref() == Some(name.as_str())
                                            && c.protocol == protocol
                                            && c.port == port
                                    }),
                                    Endpoint::Address(_) => false,
                                },
                            }
                    });
                peer_ok && port_ok
            })
        })
    };
    side_ok(src, PolicyType::Egress, dst) && side_ok(dst, PolicyType::Ingress, src)
}

fn peer_matches(
    inv: &Inventory,
    policy: &NetworkPolicy,
    peer: &NpPeer,
    endpoint: Endpoint,
) -> bool {
    match peer {
        NpPeer::Pods {
            namespace_selector,
            pod_selector,
        } => match endpoint {
            Endpoint::Pod(id) => {
                let pod = &inv.pods[id];
                if pod.host_network {
                    return false; // host traffic, not pod traffic
                }
                let ns_ok = match namespace_selector {
                    None => pod.namespace == policy.namespace,
                    Some(s) => s.matches(&inv.namespaces[&pod.namespace].labels),
                };
                ns_ok && pod_selector.matches(&pod.labels)
            }
            Endpoint::Address(_) => false,
        },
        NpPeer::IpBlock { cidr, except } => {
            let ips: Vec<IpAddr> = match endpoint {
                Endpoint::Pod(id) if inv.pods[id].synthetic_ip => vec![],
                Endpoint::Pod(id) => inv.pods[id].ips.clone(),
                Endpoint::Address(ip) => vec![ip],
            };
            ips.iter()
                .any(|ip| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)))
        }
    }
}

/// A tiny deterministic generator driven by proptest's seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: [&str; 3] = ["app", "tier", "env"];
const VALUES: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 3] = ["x", "y", "z"];

fn labels(g: &mut Gen) -> String {
    let mut out = String::from("{");
    for key in KEYS {
        if g.chance(50) {
            let _ = write!(out, "{key}: {}, ", g.pick(&VALUES));
        }
    }
    out.push('}');
    out
}

fn selector(g: &mut Gen) -> String {
    let mut out = String::from("{");
    if g.chance(50) {
        let _ = write!(
            out,
            "matchLabels: {{{}: {}}}, ",
            g.pick(&KEYS),
            g.pick(&VALUES)
        );
    }
    if g.chance(40) {
        let op = g.pick(&["In", "NotIn", "Exists", "DoesNotExist"]);
        let values = if op == "In" || op == "NotIn" {
            format!(", values: [{}, {}]", g.pick(&VALUES), g.pick(&VALUES))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "matchExpressions: [{{key: {}, operator: {op}{values}}}]",
            g.pick(&KEYS)
        );
    }
    out.push('}');
    out
}

fn peer(g: &mut Gen) -> String {
    match g.below(4) {
        0 => format!("{{podSelector: {}}}", selector(g)),
        1 => format!("{{namespaceSelector: {}}}", selector(g)),
        2 => format!(
            "{{namespaceSelector: {}, podSelector: {}}}",
            selector(g),
            selector(g)
        ),
        _ => {
            if g.chance(50) {
                "{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.0/30]}}".into()
            } else {
                format!("{{ipBlock: {{cidr: 10.0.0.{}/32}}}}", g.below(8))
            }
        }
    }
}

fn port(g: &mut Gen) -> String {
    let protocol = g.pick(&["TCP", "UDP", "SCTP"]);
    match g.below(4) {
        0 => format!("{{protocol: {protocol}}}"),
        1 => format!(
            "{{protocol: {protocol}, port: {}}}",
            g.pick(&["80", "81", "8080"])
        ),
        2 => format!(
            "{{protocol: {protocol}, port: 80, endPort: {}}}",
            g.pick(&["81", "8080"])
        ),
        _ => format!(
            "{{protocol: {protocol}, port: {}}}",
            g.pick(&["web", "alt"])
        ),
    }
}

fn rules(g: &mut Gen, peers_key: &str) -> String {
    let mut out = String::new();
    for _ in 0..g.below(3) {
        out.push_str("  - {");
        if g.chance(70) {
            let peers: Vec<String> = (0..1 + g.below(2)).map(|_| peer(g)).collect();
            let _ = write!(out, "{peers_key}: [{}], ", peers.join(", "));
        }
        if g.chance(60) {
            let ports: Vec<String> = (0..1 + g.below(2)).map(|_| port(g)).collect();
            let _ = write!(out, "ports: [{}]", ports.join(", "));
        }
        out.push_str("}\n");
    }
    out
}

fn random_cluster(seed: u64) -> String {
    let mut g = Gen(seed | 1);
    let mut yaml = String::new();
    for ns in NAMESPACES {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {}}}\n",
            labels(&mut g)
        );
    }
    for i in 0..2 + g.below(5) {
        let ns = g.pick(&NAMESPACES);
        let ip = if g.chance(70) {
            format!("status: {{podIP: 10.0.0.{i}}}\n")
        } else {
            String::new()
        };
        let host = if g.chance(10) {
            "hostNetwork: true, "
        } else {
            ""
        };
        let named = g.pick(&["web", "alt"]);
        let named_protocol = g.pick(&["TCP", "UDP"]);
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {ns}, labels: {}}}\nspec: {{{host}containers: [{{name: c, ports: [{{name: {named}, containerPort: {}, protocol: {named_protocol}}}]}}]}}\n{ip}",
            labels(&mut g),
            g.pick(&["80", "81", "8080"]),
        );
    }
    for i in 0..g.below(5) {
        let ns = g.pick(&NAMESPACES);
        let types = match g.below(4) {
            0 => "",
            1 => "  policyTypes: [Ingress]\n",
            2 => "  policyTypes: [Egress]\n",
            _ => "  policyTypes: [Ingress, Egress]\n",
        };
        let _ = write!(
            yaml,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{i}, namespace: {ns}}}\nspec:\n  podSelector: {}\n{types}",
            selector(&mut g)
        );
        let ingress = rules(&mut g, "from");
        if !ingress.is_empty() || g.chance(30) {
            let _ = write!(
                yaml,
                "  ingress:\n{}",
                if ingress.is_empty() {
                    "  - {}\n".into()
                } else {
                    ingress
                }
            );
        }
        let egress = rules(&mut g, "to");
        if !egress.is_empty() {
            let _ = write!(yaml, "  egress:\n{egress}");
        }
    }
    yaml
}

const PROBES: [(Protocol, u16); 6] = [
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 81),
    (Protocol::Tcp, 8080),
    (Protocol::Udp, 80),
    (Protocol::Udp, 8080),
    (Protocol::Sctp, 80),
];

/// Run `property` on `cases` random seeds, panicking with proptest's report (which names the
/// seed) on the first failure; no failure file is written.
fn for_random_seeds(cases: u32, property: impl Fn(u64) -> Result<(), TestCaseError>) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&any::<u64>(), property) {
        panic!("{e}");
    }
}

/// The random cluster of `seed`, as YAML (for failure messages) and loaded.
fn load_random(seed: u64) -> Result<(String, Inventory), TestCaseError> {
    let yaml = random_cluster(seed);
    let mut loader = Loader::new();
    loader.load_str("random.yaml", &yaml);
    let inventory = loader
        .finish()
        .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
    Ok((yaml, inventory))
}

/// `port src -> dst` for each cell where the pod-by-pod matrix `slow` was contradicted.
fn mismatches(slow: &netfence_engine::Matrix, cells: &[(usize, usize, usize)]) -> Vec<String> {
    cells
        .iter()
        .map(|&(p, s, d)| {
            format!(
                "{} {} -> {} (pod matrix: {})",
                slow.ports[p],
                slow.endpoints[s],
                slow.endpoints[d],
                slow.allowed(p, s, d)
            )
        })
        .collect()
}

/// Compare engine and reference on one random cluster; returns the number of probes made.
fn check_cluster(seed: u64) -> Result<usize, TestCaseError> {
    let (yaml, inventory) = load_random(seed)?;
    let engine = Engine::new(inventory.clone());
    let mut endpoints: Vec<Endpoint> = (0..inventory.pods.len()).map(Endpoint::Pod).collect();
    endpoints.push(Endpoint::Address("10.0.0.2".parse().unwrap()));
    endpoints.push(Endpoint::Address("10.0.0.200".parse().unwrap()));
    endpoints.push(Endpoint::Address("192.0.2.1".parse().unwrap()));
    let mut probes = 0;
    for &src in &endpoints {
        for &dst in &endpoints {
            if matches!((src, dst), (Endpoint::Address(_), Endpoint::Address(_))) {
                continue;
            }
            let conns = engine.allowed_conns(src, dst);
            for (protocol, port) in PROBES {
                let expected = reference_allowed(&inventory, src, dst, protocol, port);
                let answers = [
                    ("allowed", engine.allowed(src, dst, protocol, port)),
                    ("explain", engine.explain(src, dst, protocol, port).allowed),
                    ("allowed_conns", conns.contains(protocol, port)),
                ];
                for (api, got) in answers {
                    prop_assert_eq!(
                        got,
                        expected,
                        "{} {:?} -> {:?} {:?}/{}\n{}",
                        api,
                        src,
                        dst,
                        protocol,
                        port,
                        yaml
                    );
                }
                probes += 1;
            }
        }
    }
    Ok(probes)
}

#[test]
fn engine_agrees_with_reference() {
    const CASES: u32 = 1000;
    let probes = std::cell::Cell::new(0usize);
    for_random_seeds(CASES, |seed| {
        probes.set(probes.get() + check_cluster(seed)?);
        Ok(())
    });
    println!(
        "reference evaluator: engine agrees on {CASES} random clusters ({} probes of allowed, explain and allowed_conns)",
        probes.get()
    );
}

/// The generator must produce clusters where policies matter: both allowed and denied
/// probes, isolated pods, named ports, ipBlocks; otherwise the property test proves little.
#[test]
fn random_clusters_exercise_the_semantics() {
    let (mut allowed, mut denied, mut with_policies) = (0, 0, 0);
    for seed in 0..200u64 {
        let yaml = random_cluster(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut loader = Loader::new();
        loader.load_str("random.yaml", &yaml);
        let inventory = loader.finish().expect("generated clusters load");
        if !inventory.network_policies.is_empty() {
            with_policies += 1;
        }
        let n = inventory.pods.len();
        for s in 0..n {
            for d in 0..n {
                for (protocol, port) in PROBES {
                    if s != d {
                        if reference_allowed(
                            &inventory,
                            Endpoint::Pod(s),
                            Endpoint::Pod(d),
                            protocol,
                            port,
                        ) {
                            allowed += 1;
                        } else {
                            denied += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        with_policies > 150,
        "{with_policies} of 200 clusters have policies"
    );
    assert!(
        denied > 1000 && allowed > 1000,
        "allowed {allowed}, denied {denied}"
    );
}

/// A Kubernetes label selector written in the Calico selector language.
fn calico_selector(selector: &netfence_selector::LabelSelector) -> String {
    use netfence_selector::Requirement;
    let quote = |values: &std::collections::BTreeSet<String>| {
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let parts: Vec<String> = selector
        .requirements()
        .iter()
        .map(|r| match r {
            Requirement::In(k, v) => format!("{k} in {{{}}}", quote(v)),
            Requirement::NotIn(k, v) => format!("{k} not in {{{}}}", quote(v)),
            Requirement::Exists(k) => format!("has({k})"),
            Requirement::DoesNotExist(k) => format!("!has({k})"),
        })
        .collect();
    if parts.is_empty() {
        "all()".into()
    } else {
        parts.join(" && ")
    }
}

/// Translate a Kubernetes NetworkPolicy into Calico NetworkPolicies that mean the same:
/// one Allow rule per (peer, protocol) pair, in tier default.
fn to_calico(policy: &NetworkPolicy) -> String {
    let mut yaml = format!(
        "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: {}, namespace: {}}}\nspec:\n  selector: '{}'\n  types: [{}]\n",
        policy.name,
        policy.namespace,
        calico_selector(&policy.pod_selector),
        policy.policy_types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    );
    for direction in [PolicyType::Ingress, PolicyType::Egress] {
        let (key, peer_side) = match direction {
            PolicyType::Ingress => ("ingress", "source"),
            PolicyType::Egress => ("egress", "destination"),
        };
        let mut rules = Vec::new();
        for rule in policy.rules(direction) {
            let peers: Vec<String> = if rule.peers.is_empty() {
                vec![String::new()]
            } else {
                rule.peers
                    .iter()
                    .map(|peer| match peer {
                        NpPeer::Pods {
                            namespace_selector,
                            pod_selector,
                        } => {
                            let mut fields =
                                vec![format!("selector: '{}'", calico_selector(pod_selector))];
                            if let Some(ns) = namespace_selector {
                                fields
                                    .push(format!("namespaceSelector: '{}'", calico_selector(ns)));
                            }
                            fields.join(", ")
                        }
                        NpPeer::IpBlock { cidr, except } => {
                            let except: Vec<String> =
                                except.iter().map(|e| e.to_string()).collect();
                            format!("nets: [{cidr}], notNets: [{}]", except.join(", "))
                        }
                    })
                    .collect()
            };
            // Ports grouped by protocol; `None` = the whole protocol; no ports = any traffic.
            let mut by_protocol: std::collections::BTreeMap<&str, Option<Vec<String>>> =
                std::collections::BTreeMap::new();
            for port in &rule.ports {
                let entry = by_protocol
                    .entry(port.protocol.as_str())
                    .or_insert_with(|| Some(Vec::new()));
                match &port.port {
                    NpPortSpec::All => *entry = None,
                    NpPortSpec::Range(r) => {
                        if let Some(list) = entry {
                            list.push(format!("'{}:{}'", r.first(), r.last()));
                        }
                    }
                    NpPortSpec::Named(name) => {
                        if let Some(list) = entry {
                            list.push(name.clone());
                        }
                    }
                }
            }
            for peer in &peers {
                if by_protocol.is_empty() {
                    rules.push(format!("  - action: Allow\n    {peer_side}: {{{peer}}}\n"));
                }
                for (protocol, ports) in &by_protocol {
                    let ports = match ports {
                        None => String::new(),
                        Some(list) => format!("ports: [{}]", list.join(", ")),
                    };
                    let (source, destination) = match direction {
                        PolicyType::Ingress => (peer.clone(), ports),
                        PolicyType::Egress => (
                            [peer.clone(), ports]
                                .into_iter()
                                .filter(|s| !s.is_empty())
                                .collect::<Vec<_>>()
                                .join(", "),
                            String::new(),
                        ),
                    };
                    let destination = if direction == PolicyType::Egress {
                        source.clone()
                    } else {
                        destination
                    };
                    let source = if direction == PolicyType::Egress {
                        String::new()
                    } else {
                        source
                    };
                    rules.push(format!(
                        "  - action: Allow\n    protocol: {protocol}\n    source: {{{source}}}\n    destination: {{{destination}}}\n"
                    ));
                }
            }
        }
        if !rules.is_empty() {
            yaml.push_str(&format!("  {key}:\n{}", rules.concat()));
        }
    }
    yaml
}

#[test]
fn calico_translation_of_kubernetes_policies_gives_the_same_matrix() {
    const CASES: u32 = 300;
    for_random_seeds(CASES, |seed| {
        let (yaml, kubernetes) = load_random(seed)?;
        let calico_yaml: String = kubernetes.network_policies.iter().map(to_calico).collect();
        let mut loader = Loader::new();
        loader.load_str("calico.yaml", &calico_yaml);
        let translated = loader
            .finish()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{calico_yaml}")))?;
        prop_assert_eq!(
            translated.calico_policies.len(),
            kubernetes.network_policies.len()
        );
        let mut calico = kubernetes.clone();
        calico.network_policies.clear();
        calico.calico_policies = translated.calico_policies;
        let (a, b) = (Engine::new(kubernetes.clone()), Engine::new(calico));
        prop_assert!(b.tiers().iter().all(|t| t
            .policies
            .iter()
            .all(|p| p.kind != netfence_engine::ir::PolicyKind::NetworkPolicy)));
        let mut endpoints: Vec<Endpoint> = (0..kubernetes.pods.len()).map(Endpoint::Pod).collect();
        endpoints.push(Endpoint::Address("10.0.0.200".parse().unwrap()));
        endpoints.push(Endpoint::Address("192.0.2.1".parse().unwrap()));
        for &src in &endpoints {
            for &dst in &endpoints {
                if matches!((src, dst), (Endpoint::Address(_), Endpoint::Address(_))) {
                    continue;
                }
                for (protocol, port) in PROBES {
                    prop_assert_eq!(
                        a.allowed(src, dst, protocol, port),
                        b.allowed(src, dst, protocol, port),
                        "{:?} -> {:?} {:?}/{}\n{}\n{}",
                        src,
                        dst,
                        protocol,
                        port,
                        yaml,
                        calico_yaml
                    );
                }
            }
        }
        Ok(())
    });
    println!("calico translation: {CASES} random Kubernetes policy sets give the same matrix as Calico policies");
}

/// The class-compressed matrix must equal the pod-by-pod matrix, and count the same pairs.
#[test]
fn class_matrix_equals_the_pod_matrix() {
    const CASES: u32 = 1000;
    let probes: Vec<netfence_engine::ProbePort> = PROBES
        .iter()
        .map(|&(protocol, port)| netfence_engine::ProbePort { protocol, port })
        .collect();
    for_random_seeds(CASES, |seed| {
        let (yaml, inventory) = load_random(seed)?;
        let engine = Engine::new(inventory);
        let slow = netfence_engine::Matrix::compute(&engine, &probes);
        let classes = engine.class_matrix(&probes);
        let fast = classes.to_matrix(&engine);
        let wrong = fast.differences(&slow).map_err(TestCaseError::fail)?;
        prop_assert!(
            wrong.is_empty(),
            "{:?}\n{}",
            mismatches(&slow, &wrong),
            yaml
        );
        for p in 0..probes.len() {
            prop_assert_eq!(
                classes.allowed_pairs(p),
                slow.allowed_pairs(p).count() as u64
            );
        }
        Ok(())
    });
    println!("class matrix: equals the pod matrix on {CASES} random clusters");
}

/// The connection list (computed per pair of classes) must equal the union over every pair of
/// pods of the engine's allowed connections.
#[test]
fn connection_list_equals_the_pod_pair_union() {
    use netfence_engine::{connlist, ConnSet, ListPeer};
    for_random_seeds(300, |seed| {
        let (yaml, inventory) = load_random(seed)?;
        let engine = Engine::new(inventory);
        let inventory = engine.inventory();
        let list = connlist(&engine);
        let endpoints = |peer: &ListPeer| -> Vec<Endpoint> {
            match peer {
                ListPeer::Workload(w) => inventory
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| &p.workload == w)
                    .map(|(id, _)| Endpoint::Pod(id))
                    .collect(),
                ListPeer::External(first, _) => vec![Endpoint::Address(*first)],
            }
        };
        let v4 = |e: Endpoint| match e {
            Endpoint::Pod(id) => inventory.pods[id].ips.iter().any(|ip| ip.is_ipv4()),
            Endpoint::Address(ip) => ip.is_ipv4(),
        };
        let mut peers: Vec<ListPeer> = inventory
            .pods
            .iter()
            .map(|p| ListPeer::Workload(p.workload.clone()))
            .collect();
        peers.sort();
        peers.dedup();
        peers.extend(
            netfence_engine::connlist::external_ranges(&engine)
                .into_iter()
                .map(|(a, b)| ListPeer::External(a, b)),
        );
        for src in &peers {
            for dst in &peers {
                if src == dst
                    || matches!((src, dst), (ListPeer::External(..), ListPeer::External(..)))
                {
                    continue;
                }
                let mut expected = ConnSet::empty();
                for s in endpoints(src) {
                    for d in endpoints(dst) {
                        if s != d && v4(s) == v4(d) {
                            expected = expected.union(&engine.allowed_conns(s, d));
                        }
                    }
                }
                let got = list
                    .iter()
                    .find(|c| &c.src == src && &c.dst == dst)
                    .map(|c| c.conns.clone())
                    .unwrap_or_default();
                prop_assert_eq!(got, expected, "{} -> {}\n{}", src, dst, yaml);
            }
        }
        Ok(())
    });
}

/// `netfence gen` clusters, Calico tiers included, load cleanly, regenerate byte for byte, and
/// their class matrix equals the pod matrix.
#[test]
fn generated_clusters_are_deterministic_and_agree() {
    use netfence_engine::gen::{generate, GenOptions};
    for seed in 1..4 {
        let options = GenOptions {
            pods: 240,
            namespaces: 6,
            policies: 60,
            calico: 8,
            seed,
        };
        let files = generate(&options).expect("valid options");
        assert_eq!(files, generate(&options).unwrap(), "same seed, same bytes");
        let mut loader = Loader::new();
        for (name, text) in &files {
            loader.load_str(name, text);
        }
        let engine = Engine::new(loader.finish().expect("generated cluster loads"));
        assert!(!engine.inventory().calico_policies.is_empty());
        let ports = netfence_engine::default_ports(engine.inventory());
        let slow = netfence_engine::Matrix::compute(&engine, &ports);
        let fast = engine.class_matrix(&ports).to_matrix(&engine);
        let wrong = fast.differences(&slow).expect("same pods and ports");
        assert!(
            wrong.is_empty(),
            "seed {seed}: {:?}",
            mismatches(&slow, &wrong)
        );
    }
}
