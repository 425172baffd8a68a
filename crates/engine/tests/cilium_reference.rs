//! A naive Cilium reference evaluator, written from Cilium's documentation over the loaded
//! (not compiled) policies, and a property test comparing the engine with it on random
//! clusters with random CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies beside
//! Kubernetes NetworkPolicies (and the class matrix against the pod-by-pod one).
//!
//! Semantics (docs.cilium.io "Policy Enforcement Modes", "Deny Policies", "Policy Language";
//! pkg/k8s/apis/cilium.io/utils/utils.go for selector scoping): for a direction, a deny rule of
//! a selecting Cilium policy that matches denies; otherwise an endpoint no isolating policy
//! selects is allowed; otherwise some allow rule (Cilium or Kubernetes) must match. CIDR peers
//! and `world` never match a pod or a node; an `ipBlock` (the CNI is Cilium) neither. A
//! host-network pod is its node: it matches node entities when its node is known.

use netfence_engine::{Endpoint, Engine};
use netfence_model::cilium::{
    CiliumPeer, CiliumPolicy, CiliumPortSpec, CiliumRule, CiliumSelector, CiliumSubject, Entity,
};
use netfence_model::{Inventory, Loader, NpPeer, NpPortSpec, PolicyType, Protocol};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::net::IpAddr;

#[allow(dead_code)]
mod random;
use random::*;

const NODE_ADDRESS: &str = "10.0.0.100";

fn node_of(inv: &Inventory, endpoint: Endpoint) -> Option<&netfence_model::Node> {
    match endpoint {
        Endpoint::Address(ip) => inv.nodes.iter().find(|n| n.addresses.contains(&ip)),
        Endpoint::Pod(id) => {
            let pod = &*inv.pods()[id];
            if !pod.host_network {
                return None;
            }
            inv.nodes.iter().find(|n| {
                pod.node.as_deref() == Some(n.name.as_str())
                    || pod.ips.iter().any(|ip| n.addresses.contains(ip))
            })
        }
    }
}

/// A workload pod (not host-network).
fn workload(inv: &Inventory, endpoint: Endpoint) -> Option<&netfence_model::Pod> {
    match endpoint {
        Endpoint::Pod(id) if !inv.pods()[id].host_network => Some(&*inv.pods()[id]),
        _ => None,
    }
}

/// An address outside the cluster: not a pod, not a node, not a host-network pod's (its node's).
fn outside(inv: &Inventory, endpoint: Endpoint) -> Option<IpAddr> {
    match endpoint {
        Endpoint::Address(ip)
            if node_of(inv, endpoint).is_none()
                && !inv
                    .pods()
                    .iter()
                    .any(|p| p.host_network && p.ips.contains(&ip)) =>
        {
            Some(ip)
        }
        _ => None,
    }
}

fn selector_matches(
    inv: &Inventory,
    selector: &CiliumSelector,
    policy_namespace: Option<&str>,
    pod: &netfence_model::Pod,
) -> bool {
    let confined_ok = match policy_namespace {
        Some(ns) if !selector.names_namespace => pod.namespace == ns,
        _ => true,
    };
    let account: netfence_selector::Labels =
        [("name".to_string(), pod.service_account.clone())].into();
    confined_ok
        && selector.pods.matches(&pod.labels)
        && selector
            .namespaces
            .matches(&inv.namespaces()[&pod.namespace].labels)
        && selector
            .service_accounts
            .as_ref()
            .is_none_or(|s| s.matches(&account))
}

fn entity_matches(inv: &Inventory, entity: Entity, endpoint: Endpoint) -> bool {
    let node = node_of(inv, endpoint);
    match entity {
        Entity::All => {
            workload(inv, endpoint).is_some() || node.is_some() || outside(inv, endpoint).is_some()
        }
        Entity::World(family) => outside(inv, endpoint).is_some_and(|ip| match family {
            Some(4) => ip.is_ipv4(),
            Some(_) => ip.is_ipv6(),
            None => true,
        }),
        Entity::Cluster => workload(inv, endpoint).is_some() || node.is_some(),
        Entity::Host | Entity::RemoteNode => node.is_some(),
        Entity::KubeApiserver => node.is_some_and(|n| {
            n.labels
                .contains_key("node-role.kubernetes.io/control-plane")
        }),
        Entity::Unmodelled(_) => false,
    }
}

fn peer_matches(
    inv: &Inventory,
    policy: &CiliumPolicy,
    peer: &CiliumPeer,
    endpoint: Endpoint,
) -> bool {
    match peer {
        CiliumPeer::Endpoints(selector) if !selector.reserved.is_empty() => {
            selector.reserved.iter().any(|name| {
                let entity = match name.as_str() {
                    "host" => Entity::Host,
                    "remote-node" => Entity::RemoteNode,
                    "world" => Entity::World(None),
                    "kube-apiserver" => Entity::KubeApiserver,
                    _ => return false,
                };
                entity_matches(inv, entity, endpoint)
            })
        }
        CiliumPeer::Endpoints(selector) => workload(inv, endpoint)
            .is_some_and(|pod| selector_matches(inv, selector, policy.namespace.as_deref(), pod)),
        CiliumPeer::Entity(entity) => entity_matches(inv, *entity, endpoint),
        CiliumPeer::Cidr { net, except } => outside(inv, endpoint)
            .is_some_and(|ip| net.contains(&ip) && !except.iter().any(|e| e.contains(&ip))),
        CiliumPeer::Nodes(selector) => {
            node_of(inv, endpoint).is_some_and(|n| selector.matches(&n.labels))
        }
        CiliumPeer::Service { namespace, name } => workload(inv, endpoint).is_some_and(|pod| {
            inv.service(namespace, name)
                .is_some_and(|s| !s.ports.is_empty() && s.selects(pod))
        }),
        CiliumPeer::Fqdn(_) | CiliumPeer::Unmodelled(_) => false,
    }
}

fn named_port_ok(
    inv: &Inventory,
    dst: Endpoint,
    name: &str,
    protocol: Protocol,
    port: u16,
) -> bool {
    match dst {
        Endpoint::Pod(d) => inv.pods()[d]
            .ports
            .iter()
            .any(|c| c.name.as_deref() == Some(name) && c.protocol == protocol && c.port == port),
        Endpoint::Address(_) => false,
    }
}

fn rule_matches(
    inv: &Inventory,
    policy: &CiliumPolicy,
    rule: &CiliumRule,
    peer: Endpoint,
    dst: Endpoint,
    protocol: Protocol,
    port: u16,
) -> bool {
    if rule.is_empty() {
        return false; // `- {}` selects nothing
    }
    let peer_ok = !rule.has_peers
        || rule
            .peers
            .iter()
            .any(|p| peer_matches(inv, policy, p, peer));
    let port_ok = !rule.has_ports
        || rule.ports.iter().any(|p| {
            p.protocols.contains(&protocol)
                && match &p.port {
                    CiliumPortSpec::All => true,
                    CiliumPortSpec::Range(r) => r.first() <= port && port <= r.last(),
                    CiliumPortSpec::Named(name) => named_port_ok(inv, dst, name, protocol, port),
                }
        });
    peer_ok && port_ok
}

fn selects(inv: &Inventory, policy: &CiliumPolicy, pod: &netfence_model::Pod) -> bool {
    let CiliumSubject::Endpoints(selector) = &policy.subject else {
        return false;
    };
    let in_namespace = policy
        .namespace
        .as_ref()
        .is_none_or(|ns| *ns == pod.namespace);
    // A namespaced policy's endpointSelector always applies in its own namespace.
    let scoped = CiliumSelector {
        names_namespace: true,
        ..selector.clone()
    };
    in_namespace && selector_matches(inv, &scoped, None, pod)
}

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
        let Some(pod) = workload(inv, subject) else {
            return true;
        };
        let cilium: Vec<&CiliumPolicy> = inv
            .cilium_policies
            .iter()
            .filter(|p| selects(inv, p, pod))
            .collect();
        let denied = cilium.iter().any(|policy| {
            policy
                .rules(direction)
                .1
                .iter()
                .any(|r| rule_matches(inv, policy, r, peer, dst, protocol, port))
        });
        if denied {
            return false;
        }
        let kubernetes: Vec<&netfence_model::NetworkPolicy> = inv
            .network_policies
            .iter()
            .filter(|p| {
                p.namespace == pod.namespace
                    && p.pod_selector.matches(&pod.labels)
                    && p.policy_types.contains(&direction)
            })
            .map(|p| &**p)
            .collect();
        let isolated = !kubernetes.is_empty() || cilium.iter().any(|p| p.isolates(direction));
        if !isolated {
            return true;
        }
        let cilium_allows = cilium.iter().any(|policy| {
            policy
                .rules(direction)
                .0
                .iter()
                .any(|r| rule_matches(inv, policy, r, peer, dst, protocol, port))
        });
        let kubernetes_allows = kubernetes.iter().any(|policy| {
            policy.rules(direction).iter().any(|rule| {
                let peer_ok = rule.peers.is_empty()
                    || rule.peers.iter().any(|p| match p {
                        NpPeer::Pods {
                            namespace_selector,
                            pod_selector,
                        } => workload(inv, peer).is_some_and(|other| {
                            let ns_ok = match namespace_selector {
                                None => other.namespace == policy.namespace,
                                Some(s) => s.matches(&inv.namespaces()[&other.namespace].labels),
                            };
                            ns_ok && pod_selector.matches(&other.labels)
                        }),
                        // Under Cilium an ipBlock is a CIDR identity: outside the cluster only.
                        NpPeer::IpBlock { cidr, except } => outside(inv, peer).is_some_and(|ip| {
                            cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
                        }),
                    });
                let port_ok = rule.ports.is_empty()
                    || rule.ports.iter().any(|p| {
                        p.protocol == protocol
                            && match &p.port {
                                NpPortSpec::All => true,
                                NpPortSpec::Range(r) => r.first() <= port && port <= r.last(),
                                NpPortSpec::Named(name) => {
                                    named_port_ok(inv, dst, name, protocol, port)
                                }
                            }
                    });
                peer_ok && port_ok
            })
        });
        cilium_allows || kubernetes_allows
    };
    side_ok(src, PolicyType::Egress, dst) && side_ok(dst, PolicyType::Ingress, src)
}

fn cilium_selector(g: &mut Gen) -> String {
    match g.below(5) {
        0 => format!(
            "{{matchLabels: {{\"k8s:io.kubernetes.pod.namespace\": {}}}}}",
            g.pick(&NAMESPACES)
        ),
        1 => format!(
            "{{matchLabels: {{io.cilium.k8s.namespace.labels.{}: {}, {}: {}}}}}",
            g.pick(&KEYS),
            g.pick(&VALUES),
            g.pick(&KEYS),
            g.pick(&VALUES)
        ),
        2 => "{matchLabels: {\"reserved:host\": \"\"}}".into(),
        _ => selector(g),
    }
}

fn cilium_rule(g: &mut Gen, egress: bool, deny: bool) -> String {
    let (from, p) = if egress {
        ("to", "to")
    } else {
        ("from", "from")
    };
    let mut fields = Vec::new();
    if g.chance(60) {
        fields.push(match g.below(5) {
            0 => format!(
                "{from}Entities: [{}]",
                g.pick(&[
                    "world",
                    "cluster",
                    "all",
                    "host",
                    "remote-node",
                    "world-ipv4",
                    "health"
                ])
            ),
            1 => format!(
                "{p}CIDR: [{}]",
                g.pick(&["192.0.2.0/24", "10.0.0.0/24", "0.0.0.0/0"])
            ),
            2 => format!(
                "{p}CIDRSet: [{{cidr: {}, except: [192.0.2.0/25]}}]",
                g.pick(&["192.0.2.0/24", "0.0.0.0/0"])
            ),
            3 => format!("{from}Nodes: [{}]", selector(g)),
            _ => {
                let selectors: Vec<String> =
                    (0..1 + g.below(2)).map(|_| cilium_selector(g)).collect();
                format!("{from}Endpoints: [{}]", selectors.join(", "))
            }
        });
    }
    if g.chance(50) {
        let ports: Vec<String> = (0..1 + g.below(2))
            .map(|_| {
                let protocol = match g.below(5) {
                    0 => String::new(),
                    1 => ", protocol: ANY".into(),
                    _ => format!(", protocol: {}", g.pick(&["TCP", "UDP", "SCTP"])),
                };
                match g.below(4) {
                    0 => format!("{{port: \"{}\"{protocol}}}", g.pick(&["80", "81", "8080"])),
                    1 => format!(
                        "{{port: \"80\", endPort: {}{protocol}}}",
                        g.pick(&["81", "8080"])
                    ),
                    2 => format!("{{port: \"{}\"{protocol}}}", g.pick(&["web", "alt"])),
                    _ => format!("{{port: \"0\"{protocol}}}"),
                }
            })
            .collect();
        let l7 = if !deny && g.chance(20) {
            ", rules: {http: [{method: GET}]}"
        } else {
            ""
        };
        fields.push(format!("toPorts: [{{ports: [{}]{l7}}}]", ports.join(", ")));
    }
    format!("    - {{{}}}\n", fields.join(", "))
}

/// Random Cilium policies over the random cluster's namespaces and labels.
fn random_cilium(seed: u64) -> String {
    let mut g = Gen(seed.rotate_left(17) | 1);
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {}}}\nstatus: {{addresses: [{{type: InternalIP, address: {NODE_ADDRESS}}}]}}\n",
        labels(&mut g)
    );
    for i in 0..1 + g.below(4) {
        let clusterwide = g.chance(40);
        let (kind, namespace) = if clusterwide {
            ("CiliumClusterwideNetworkPolicy", String::new())
        } else {
            (
                "CiliumNetworkPolicy",
                format!(", namespace: {}", g.pick(&NAMESPACES)),
            )
        };
        let _ = write!(
            yaml,
            "---\napiVersion: cilium.io/v2\nkind: {kind}\nmetadata: {{name: c{i}{namespace}}}\nspec:\n  endpointSelector: {}\n",
            selector(&mut g)
        );
        if g.chance(25) {
            let _ = writeln!(
                yaml,
                "  enableDefaultDeny: {{ingress: {}, egress: {}}}",
                g.chance(50),
                g.chance(50)
            );
        }
        let mut any = false;
        for (key, egress, deny) in [
            ("ingress", false, false),
            ("ingressDeny", false, true),
            ("egress", true, false),
            ("egressDeny", true, true),
        ] {
            if g.chance(45) {
                any = true;
                let _ = writeln!(yaml, "  {key}:");
                for _ in 0..1 + g.below(2) {
                    yaml.push_str(&cilium_rule(&mut g, egress, deny));
                }
            }
        }
        if !any {
            yaml.push_str("  ingress:\n    - {}\n");
        }
    }
    yaml
}

#[test]
fn engine_agrees_with_the_cilium_reference() {
    const CASES: u32 = 1000;
    let probes = std::cell::Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&any::<u64>(), |seed| {
        let yaml = format!("{}{}", random_cluster(seed), random_cilium(seed));
        let mut loader = Loader::new();
        loader.load_str("random.yaml", &yaml);
        let inventory = loader
            .finish()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(inventory.cni.cni, netfence_model::cilium::Cni::Cilium);
        let engine = Engine::new(inventory.clone());
        // The class matrix (matrix, list, diff) equals the pod-by-pod one.
        let ports = netfence_engine::default_ports(&inventory);
        let slow = netfence_engine::Matrix::compute(&engine, &ports);
        let fast = engine.class_matrix(&ports).to_matrix(&engine);
        let wrong = fast.differences(&slow).expect("same pods and ports");
        prop_assert!(
            wrong.is_empty(),
            "class matrix differs: {:?}\n{}",
            wrong,
            yaml
        );
        let mut endpoints: Vec<Endpoint> = (0..inventory.pods().len())
            .map(|id| Endpoint::Pod(netfence_model::PodId::new(id)))
            .collect();
        for ip in [NODE_ADDRESS, "10.0.0.200", "192.0.2.1", "192.0.2.200"] {
            endpoints.push(Endpoint::Address(ip.parse().expect("ip")));
        }
        for &src in &endpoints {
            for &dst in &endpoints {
                if matches!((src, dst), (Endpoint::Address(_), Endpoint::Address(_))) {
                    continue;
                }
                let conns = engine.allowed_conns(src, dst);
                for (protocol, port) in [
                    (Protocol::Tcp, 80),
                    (Protocol::Tcp, 81),
                    (Protocol::Tcp, 8080),
                    (Protocol::Udp, 80),
                    (Protocol::Sctp, 8080),
                ] {
                    let expected = reference_allowed(&inventory, src, dst, protocol, port);
                    for (api, got) in [
                        ("allowed", engine.allowed(src, dst, protocol, port)),
                        ("explain", engine.explain(src, dst, protocol, port).allowed),
                        ("allowed_conns", conns.contains(protocol, port)),
                    ] {
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
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "cilium reference: {CASES} random clusters, {} probes agree",
        probes.get()
    );
}
