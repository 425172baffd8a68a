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
use netfence_model::{
    Inventory, Loader, NetworkPolicy, NpPeer, NpPortSpec, PodId, PolicyType, Protocol,
};
use proptest::prelude::*;
use std::net::IpAddr;

mod random;
use random::*;

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
        let pod = &*inv.pods()[id];
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
            .map(|p| &**p)
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
                                    Endpoint::Pod(d) => inv.pods()[d].ports.iter().any(|c| {
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
                let pod = &*inv.pods()[id];
                if pod.host_network {
                    return false; // host traffic, not pod traffic
                }
                let ns_ok = match namespace_selector {
                    None => pod.namespace == policy.namespace,
                    Some(s) => s.matches(&inv.namespaces()[&pod.namespace].labels),
                };
                ns_ok && pod_selector.matches(&pod.labels)
            }
            Endpoint::Address(_) => false,
        },
        NpPeer::IpBlock { cidr, except } => {
            let ips: Vec<IpAddr> = match endpoint {
                Endpoint::Pod(id) if inv.pods()[id].synthetic_ip => vec![],
                Endpoint::Pod(id) => inv.pods()[id].ips.clone(),
                Endpoint::Address(ip) => vec![ip],
            };
            ips.iter()
                .any(|ip| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)))
        }
    }
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
    let mut endpoints: Vec<Endpoint> = (0..inventory.pods().len())
        .map(|id| Endpoint::Pod(PodId::new(id)))
        .collect();
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
        let n = inventory.pods().len();
        for s in 0..n {
            for d in 0..n {
                for (protocol, port) in PROBES {
                    if s != d {
                        if reference_allowed(
                            &inventory,
                            Endpoint::Pod(PodId::new(s)),
                            Endpoint::Pod(PodId::new(d)),
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
        let calico_yaml: String = kubernetes
            .network_policies
            .iter()
            .map(|p| to_calico(p))
            .collect();
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
        std::sync::Arc::make_mut(&mut calico.network_policies).clear();
        calico.calico_policies = translated.calico_policies;
        let (a, b) = (Engine::new(kubernetes.clone()), Engine::new(calico));
        prop_assert!(b.tiers().iter().all(|t| t
            .policies
            .iter()
            .all(|p| p.kind != netfence_engine::ir::PolicyKind::NetworkPolicy)));
        let mut endpoints: Vec<Endpoint> = (0..kubernetes.pods().len())
            .map(|id| Endpoint::Pod(PodId::new(id)))
            .collect();
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
        let keys: Vec<(String, String)> = list
            .iter()
            .map(|c| (c.src.to_string(), c.dst.to_string()))
            .collect();
        prop_assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: the list is not sorted by (source, destination) text"
        );
        let endpoints = |peer: &ListPeer| -> Vec<Endpoint> {
            match peer {
                ListPeer::Workload(w) => inventory
                    .pods()
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.workload == **w)
                    .map(|(id, _)| Endpoint::Pod(PodId::new(id)))
                    .collect(),
                ListPeer::External(first, _) => vec![Endpoint::Address(*first)],
            }
        };
        let v4 = |e: Endpoint| match e {
            Endpoint::Pod(id) => inventory.pods()[id].ips.iter().any(|ip| ip.is_ipv4()),
            Endpoint::Address(ip) => ip.is_ipv4(),
        };
        let mut peers: Vec<ListPeer> = inventory
            .pods()
            .iter()
            .map(|p| ListPeer::Workload(std::sync::Arc::new(p.workload.clone())))
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
    use netfence_gen::{generate, GenOptions};
    for seed in 1..4 {
        let options = GenOptions {
            pods: 240,
            namespaces: 6,
            policies: 60,
            calico: 8,
            admin: 0,
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

// ---- Calico, as felix matches packets ----------------------------------------------------
//
// A second naive reference, for Calico policies, written from felix's point of view: every
// entity field is a set of addresses (an IP set) and a packet matches by its address, never by
// which object it came from. libcalico-go `lib/backend/syncersv1/updateprocessors/rules.go`
// folds `selector`, `namespaceSelector` (and, in a namespaced policy, the policy's namespace
// as soon as any selector field is given, `notSelector` included) into one positive selector;
// `notSelector` stays as written. felix/calc/rule_scanner.go makes IP sets of both, holding the
// addresses of the workload endpoints and the CIDRs of the network sets they select; a
// destination `services` set holds (backend address, target port, protocol) members, a source
// one backend addresses only (felix/serviceindex/serviceindex.go). A pod whose address is
// unknown (synthetic) still lies in the sets its labels put it in, and in no CIDR.

use netfence_model::calico::{CalicoAction, CalicoPort, CalicoScope, EntityRule};

/// Something Calico selectors can select: a workload endpoint or a network set.
struct Member {
    labels: netfence_selector::Labels,
    /// A workload endpoint's service account: name and labels.
    account: Option<(String, netfence_selector::Labels)>,
    /// `None`: global (a GlobalNetworkSet).
    namespace: Option<String>,
    pod: Option<PodId>,
    nets: Vec<ipnet::IpNet>,
}

fn calico_members(inv: &Inventory) -> Vec<Member> {
    let mut members = Vec::new();
    for (id, pod) in inv.pods().iter().enumerate() {
        if pod.host_network {
            continue; // host traffic: not a workload endpoint
        }
        let mut labels = pod.labels.clone();
        labels.insert("projectcalico.org/namespace".into(), pod.namespace.clone());
        labels.insert(
            "projectcalico.org/serviceaccount".into(),
            pod.service_account.clone(),
        );
        labels.insert("projectcalico.org/orchestrator".into(), "k8s".into());
        let nets = if pod.synthetic_ip {
            Vec::new()
        } else {
            pod.ips.iter().map(|ip| ipnet::IpNet::from(*ip)).collect()
        };
        let account_labels = inv
            .service_accounts
            .iter()
            .find(|a| a.namespace == pod.namespace && a.name == pod.service_account)
            .map(|a| a.labels.clone())
            .unwrap_or_default();
        members.push(Member {
            labels,
            account: Some((pod.service_account.clone(), account_labels)),
            namespace: Some(pod.namespace.clone()),
            pod: Some(PodId::new(id)),
            nets,
        });
    }
    for set in &inv.network_sets {
        let mut labels = set.labels.clone();
        if let Some(ns) = &set.namespace {
            labels.insert("projectcalico.org/namespace".into(), ns.clone());
        }
        members.push(Member {
            labels,
            account: None,
            namespace: set.namespace.clone(),
            pod: None,
            nets: set.nets.clone(),
        });
    }
    members
}

/// Whether a member is in the IP set of `member_ok` and the endpoint's packet hits it.
fn in_ip_set(
    inv: &Inventory,
    members: &[Member],
    endpoint: Endpoint,
    member_ok: impl Fn(&Member) -> bool,
) -> bool {
    let addresses: Vec<IpAddr> = match endpoint {
        Endpoint::Pod(id) if inv.pods()[id].synthetic_ip => Vec::new(),
        Endpoint::Pod(id) => inv.pods()[id].ips.clone(),
        Endpoint::Address(ip) => vec![ip],
    };
    members.iter().any(|m| {
        member_ok(m)
            && (matches!(endpoint, Endpoint::Pod(id) if m.pod == Some(id))
                || addresses
                    .iter()
                    .any(|ip| m.nets.iter().any(|n| n.contains(ip))))
    })
}

/// A selector with every key under `prefix`, as libcalico-go's `parseSelectorAttachPrefix`
/// (`updateprocessors/selectors.go`) writes it; for a rule's `namespaceSelector` (`pcns.`),
/// `rules.go` then replaces `all()` with `has(projectcalico.org/namespace)` and `global()` with
/// its negation (`namespace_functions`).
fn prefix_rewrite(
    selector: &netfence_selector::calico::Selector,
    prefix: &str,
    namespace_functions: bool,
) -> netfence_selector::calico::Selector {
    use netfence_selector::calico::Selector as S;
    let key = |k: &String| format!("{prefix}{k}");
    let again = |inner: &S| prefix_rewrite(inner, prefix, namespace_functions);
    let namespaced = || S::Has("projectcalico.org/namespace".into());
    match selector {
        S::Eq(k, v) => S::Eq(key(k), v.clone()),
        S::Ne(k, v) => S::Ne(key(k), v.clone()),
        S::Contains(k, v) => S::Contains(key(k), v.clone()),
        S::StartsWith(k, v) => S::StartsWith(key(k), v.clone()),
        S::EndsWith(k, v) => S::EndsWith(key(k), v.clone()),
        S::In(k, v) => S::In(key(k), v.clone()),
        S::NotIn(k, v) => S::NotIn(key(k), v.clone()),
        S::Has(k) => S::Has(key(k)),
        S::Not(inner) => S::Not(Box::new(again(inner))),
        S::And(all) => S::And(all.iter().map(again).collect()),
        S::Or(any) => S::Or(any.iter().map(again).collect()),
        S::All if namespace_functions => namespaced(),
        S::Global if namespace_functions => S::Not(Box::new(namespaced())),
        S::All => S::All,
        S::Global => S::Global,
    }
}

/// A member's labels as a rewritten `serviceAccounts.selector` reads them: its service
/// account's labels (and name) under `pcsa.`, from the account's profile; nothing for a
/// network set.
fn pcsa_labels(member: &Member) -> netfence_selector::Labels {
    let mut labels = netfence_selector::Labels::new();
    if let Some((name, account)) = &member.account {
        for (k, v) in account {
            labels.insert(format!("pcsa.{k}"), v.clone());
        }
        labels.insert("pcsa.projectcalico.org/name".into(), name.clone());
    }
    labels
}

/// A member's labels as the rewritten namespace selector reads them: its namespace's labels
/// (and name) under `pcns.`, inherited from the namespace's profile, and
/// `projectcalico.org/namespace`; nothing for a global network set.
fn pcns_labels(inv: &Inventory, member: &Member) -> netfence_selector::Labels {
    let mut labels = netfence_selector::Labels::new();
    if let Some(ns) = &member.namespace {
        for (k, v) in &inv.namespaces()[ns].labels {
            labels.insert(format!("pcns.{k}"), v.clone());
        }
        labels.insert("pcns.projectcalico.org/name".into(), ns.clone());
        labels.insert("projectcalico.org/namespace".into(), ns.clone());
    }
    labels
}

fn calico_entity_matches(
    inv: &Inventory,
    members: &[Member],
    policy_namespace: Option<&str>,
    entity: &EntityRule,
    service_side: bool,
    endpoint: Endpoint,
) -> bool {
    let known: Vec<IpAddr> = match endpoint {
        Endpoint::Pod(id) if inv.pods()[id].synthetic_ip => Vec::new(),
        Endpoint::Pod(id) => inv.pods()[id].ips.clone(),
        Endpoint::Address(ip) => vec![ip],
    };
    let in_any = |nets: &[ipnet::IpNet]| known.iter().any(|ip| nets.iter().any(|n| n.contains(ip)));
    if !entity.nets.is_empty() && !in_any(&entity.nets) {
        return false;
    }
    if in_any(&entity.not_nets) {
        return false;
    }
    // getEndpointSelector: the namespace part, then whether it applies.
    let namespace_part = |m: &Member| -> bool {
        match (&entity.namespace_selector, policy_namespace) {
            // The selector as libcalico-go rewrites it, over the member's v1 labels.
            (Some(selector), _) => {
                prefix_rewrite(selector, "pcns.", true).matches(&pcns_labels(inv, m))
            }
            (None, Some(ns)) => m.namespace.as_deref() == Some(ns),
            (None, None) => true,
        }
    };
    // parseServiceAccounts: the pcsa.-prefixed selector AND
    // `projectcalico.org/serviceaccount in {names}`; nothing when both are empty.
    let accounts = entity
        .service_accounts
        .as_ref()
        .filter(|a| !a.names.is_empty() || a.selector.is_some());
    let account_part = |m: &Member| {
        accounts.is_none_or(|a| {
            a.selector
                .as_ref()
                .is_none_or(|s| prefix_rewrite(s, "pcsa.", false).matches(&pcsa_labels(m)))
                && (a.names.is_empty()
                    || m.labels
                        .get("projectcalico.org/serviceaccount")
                        .is_some_and(|n| a.names.contains(n)))
        })
    };
    let namespace_applies = (entity.namespace_selector.is_some() || policy_namespace.is_some())
        && (entity.selector.is_some()
            || accounts.is_some()
            || entity.not_selector.is_some()
            || entity.namespace_selector.is_some());
    let positive = entity.selector.is_some() || accounts.is_some() || namespace_applies;
    if positive
        && !in_ip_set(inv, members, endpoint, |m| {
            (!namespace_applies || namespace_part(m))
                && entity
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&m.labels))
                && account_part(m)
        })
    {
        return false;
    }
    if let Some(not) = &entity.not_selector {
        if in_ip_set(inv, members, endpoint, |m| not.matches(&m.labels)) {
            return false;
        }
    }
    if service_side {
        if let Some(service) = &entity.services {
            let Endpoint::Pod(id) = endpoint else {
                return false;
            };
            let pod = &*inv.pods()[id];
            let backend = inv.services.iter().any(|s| {
                s.namespace == service.namespace
                    && s.name == service.name
                    && !s.selector.is_empty()
                    && !s.ports.is_empty()
                    && pod.namespace == s.namespace
                    && s.selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            });
            if !backend {
                return false;
            }
        }
    }
    true
}

fn calico_reference_allowed(
    inv: &Inventory,
    src: Endpoint,
    dst: Endpoint,
    protocol: Protocol,
    port: u16,
) -> bool {
    if src == dst {
        return true;
    }
    let members = calico_members(inv);
    let number = match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    };
    let side_ok = |subject: Endpoint, direction: PolicyType, peer: Endpoint| -> bool {
        let Endpoint::Pod(id) = subject else {
            return true;
        };
        let pod = &*inv.pods()[id];
        if pod.host_network {
            return true;
        }
        let mut labels = pod.labels.clone();
        labels.insert("projectcalico.org/namespace".into(), pod.namespace.clone());
        labels.insert(
            "projectcalico.org/serviceaccount".into(),
            pod.service_account.clone(),
        );
        labels.insert("projectcalico.org/orchestrator".into(), "k8s".into());
        let mut selecting: Vec<&netfence_model::calico::CalicoPolicy> = inv
            .calico_policies
            .iter()
            .filter(|p| {
                let namespace_ok = match &p.scope {
                    CalicoScope::Namespace(ns) => ns == &pod.namespace,
                    CalicoScope::Global { namespace_selector } => {
                        namespace_selector.as_ref().is_none_or(|s| {
                            let mut ns_labels = inv.namespaces()[&pod.namespace].labels.clone();
                            ns_labels
                                .insert("projectcalico.org/name".into(), pod.namespace.clone());
                            s.matches(&ns_labels)
                        })
                    }
                };
                namespace_ok && p.selector.matches(&labels) && p.types.contains(&direction)
            })
            .collect();
        if selecting.is_empty() {
            return true;
        }
        // The generator gives every policy its own order.
        selecting.sort_by(|a, b| {
            a.order
                .unwrap_or(f64::MAX)
                .total_cmp(&b.order.unwrap_or(f64::MAX))
        });
        for policy in selecting {
            let namespace = match &policy.scope {
                CalicoScope::Namespace(ns) => Some(ns.as_str()),
                CalicoScope::Global { .. } => None,
            };
            for rule in policy.rules(direction) {
                let peer_entity = match direction {
                    PolicyType::Ingress => &rule.source,
                    PolicyType::Egress => &rule.destination,
                };
                if rule.protocol.is_some_and(|p| p != number) {
                    continue;
                }
                if !calico_entity_matches(inv, &members, namespace, peer_entity, true, peer) {
                    continue;
                }
                let port_in = |p: &CalicoPort| match p {
                    CalicoPort::Range(r) => r.first() <= port && port <= r.last(),
                    CalicoPort::Named(name) => match dst {
                        Endpoint::Pod(d) => inv.pods()[d].ports.iter().any(|c| {
                            c.name.as_deref() == Some(name.as_str())
                                && c.protocol == protocol
                                && c.port == port
                        }),
                        Endpoint::Address(_) => false,
                    },
                };
                let ports_ok =
                    rule.destination.ports.is_empty() || rule.destination.ports.iter().any(port_in);
                // Egress to a Service: (backend address, target port, protocol) members.
                let service_ok = match (&rule.destination.services, direction, dst) {
                    (Some(service), PolicyType::Egress, Endpoint::Pod(d)) => {
                        inv.services.iter().any(|s| {
                            s.namespace == service.namespace
                                && s.name == service.name
                                && s.ports.iter().any(|sp| {
                                    sp.protocol == protocol
                                        && match &sp.target {
                                            netfence_model::TargetPort::Number(n) => *n == port,
                                            netfence_model::TargetPort::Named(name) => {
                                                inv.pods()[d].ports.iter().any(|c| {
                                                    c.name.as_deref() == Some(name.as_str())
                                                        && c.protocol == protocol
                                                        && c.port == port
                                                })
                                            }
                                        }
                                })
                        })
                    }
                    (Some(_), PolicyType::Egress, Endpoint::Address(_)) => false,
                    _ => true,
                };
                if !ports_ok || !service_ok {
                    continue;
                }
                match rule.action {
                    CalicoAction::Allow => return true,
                    CalicoAction::Deny => return false,
                    CalicoAction::Log => {}
                    // Every generated policy is in tier default, the only tier: passing it
                    // leaves the profile, which allows.
                    CalicoAction::Pass => return true,
                }
            }
        }
        false // the tier selected the endpoint and decided nothing
    };
    side_ok(src, PolicyType::Egress, dst) && side_ok(dst, PolicyType::Ingress, src)
}

/// The endpoints every Calico check probes: each pod, and addresses inside and outside the
/// generated CIDRs and network sets that no pod owns (a pod's address is that pod).
fn calico_endpoints(inventory: &Inventory) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = (0..inventory.pods().len())
        .map(|id| Endpoint::Pod(PodId::new(id)))
        .collect();
    for ip in [
        "10.0.0.2",
        "10.0.0.5",
        "10.0.0.200",
        "192.0.2.1",
        "198.51.100.1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        if inventory.pod_by_ip(ip).is_none() {
            endpoints.push(Endpoint::Address(ip));
        }
    }
    endpoints
}

#[test]
fn engine_agrees_with_the_calico_reference() {
    const CASES: u32 = 500;
    let probes = std::cell::Cell::new(0usize);
    for_random_seeds(CASES, |seed| {
        let yaml = random_calico_cluster(seed);
        let mut loader = Loader::new();
        loader.load_str("calico.yaml", &yaml);
        let inventory = loader
            .finish()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        let engine = Engine::new(inventory.clone());
        let endpoints = calico_endpoints(&inventory);
        for &src in &endpoints {
            for &dst in &endpoints {
                if matches!((src, dst), (Endpoint::Address(_), Endpoint::Address(_))) {
                    continue;
                }
                let conns = engine.allowed_conns(src, dst);
                for (protocol, port) in PROBES {
                    let expected = calico_reference_allowed(&inventory, src, dst, protocol, port);
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
                    probes.set(probes.get() + 1);
                }
            }
        }
        // The class-compressed matrix must agree too (network sets over pod addresses,
        // Service target ports and notSelector scopes change what tells pods apart).
        let ports: Vec<netfence_engine::ProbePort> = PROBES
            .iter()
            .map(|&(protocol, port)| netfence_engine::ProbePort { protocol, port })
            .collect();
        let slow = netfence_engine::Matrix::compute(&engine, &ports);
        let fast = engine.class_matrix(&ports).to_matrix(&engine);
        let wrong = fast.differences(&slow).map_err(TestCaseError::fail)?;
        prop_assert!(
            wrong.is_empty(),
            "{:?}\n{}",
            mismatches(&slow, &wrong),
            yaml
        );
        Ok(())
    });
    println!(
        "calico reference evaluator: engine agrees on {CASES} random Calico clusters ({} probes of allowed, explain and allowed_conns; class matrix equal)",
        probes.get()
    );
}

/// The Calico generator must reach the cases the reference is there for.
#[test]
fn random_calico_clusters_exercise_the_semantics() {
    let (mut allowed, mut denied, mut sets_over_pods, mut services) = (0, 0, 0, 0);
    for seed in 0..200u64 {
        let yaml = random_calico_cluster(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut loader = Loader::new();
        loader.load_str("calico.yaml", &yaml);
        let inventory = loader.finish().expect("generated Calico clusters load");
        if inventory.network_sets.iter().any(|set| {
            inventory.pods().iter().any(|p| {
                !p.synthetic_ip
                    && p.ips
                        .iter()
                        .any(|ip| set.nets.iter().any(|n| n.contains(ip)))
            })
        }) {
            sets_over_pods += 1;
        }
        if inventory
            .calico_policies
            .iter()
            .flat_map(|p| p.ingress.iter().chain(&p.egress))
            .any(|r| r.source.services.is_some() || r.destination.services.is_some())
        {
            services += 1;
        }
        let n = inventory.pods().len();
        for s in 0..n {
            for d in 0..n {
                if s == d {
                    continue;
                }
                for (protocol, port) in PROBES {
                    if calico_reference_allowed(
                        &inventory,
                        Endpoint::Pod(PodId::new(s)),
                        Endpoint::Pod(PodId::new(d)),
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
    assert!(
        sets_over_pods > 50,
        "{sets_over_pods} clusters with network sets over pods"
    );
    assert!(services > 30, "{services} clusters with services rules");
    assert!(
        denied > 1000 && allowed > 1000,
        "allowed {allowed}, denied {denied}"
    );
}
