//! Cilium policy compiled into the one IR, so that the one tier walk (explanations, matrix,
//! connection list, diff, what-if) evaluates it beside Kubernetes NetworkPolicy.
//!
//! Cilium's combination rules (docs.cilium.io "Policy Enforcement Modes" and "Deny Policies";
//! cilium/cilium `pkg/policy/repository.go`, `pkg/policy/rule.go`) map onto tiers so:
//! - tier `cilium-deny` (end: Pass), before `default`: every `ingressDeny`/`egressDeny` rule.
//!   "Deny policies take precedence over allow policies, regardless of whether they are a
//!   Cilium Network Policy, a Clusterwide Cilium Network Policy or even a Kubernetes Network
//!   Policy" (Deny Policies), so a matching deny ends the walk before any allow is seen;
//! - tier `default` (end: Deny): the allow rules of every policy that puts its endpoints into
//!   default deny for a direction, beside the Kubernetes NetworkPolicies: allows are OR-ed
//!   across all of them, and an endpoint any of them selects is denied at the end of the tier.
//!   A policy with only deny rules isolates too (its allow list is empty);
//! - tier `cilium-no-default-deny` (end: Pass), between them: the allow rules of policies
//!   with `enableDefaultDeny: false` for a direction, which allow without isolating ("If
//!   multiple policies apply to an endpoint, that endpoint's default deny will be enabled if
//!   any policy requests it", `Rule.EnableDefaultDeny` in `pkg/policy/api/rule.go`).
//!
//! Peers: `fromEndpoints`/`toEndpoints` become pod peers confined to the policy's namespace
//! unless the selector names the namespace or namespace labels (`getEndpointSelector` in
//! `pkg/k8s/apis/cilium.io/utils/utils.go`); CIDR peers never match a pod or a node
//! ("Layer 3 Examples": CIDR rules apply to traffic where one side is outside the cluster);
//! entities resolve against the inventory's pods and nodes; `toFQDNs`, `toGroups`,
//! `cidrGroupRef` and `k8sServiceSelector` match nothing (the loader warned).

use crate::ir::{
    Action, CalicoEntity, CalicoNamespaceScope, Interner, NamespaceMatch, Peer, Placed, Policy,
    PolicyKind, PolicySource, PortMatch, Rule, Subject, TierBuilder, TierEnd, DEFAULT_TIER_ORDER,
    KUBERNETES_POLICY_ORDER,
};
use ipnet::IpNet;
use netfence_model::calico::ServiceMatch;
use netfence_model::cilium::{
    CiliumKind, CiliumPeer, CiliumPolicy, CiliumPortSpec, CiliumRule, CiliumSelector,
    CiliumSubject, Entity,
};
use netfence_model::{Inventory, PolicyType};
use netfence_selector::calico::Selector as CalicoSelector;
use netfence_selector::{LabelSelector, Requirement};
use std::collections::{BTreeMap, BTreeSet};

/// Tier of Cilium deny rules: after the admin tier, before `cilium-no-default-deny` and
/// `default`.
pub const CILIUM_DENY_TIER: (&str, f64) = ("cilium-deny", 999_000.0);

/// Tier of the allow rules of policies that do not enable default deny for a direction.
pub const CILIUM_NO_DEFAULT_DENY_TIER: (&str, f64) = ("cilium-no-default-deny", 999_500.0);

/// The IANA protocol a rule that matches no modelled connection is confined to (HOPOPT, 0):
/// no TCP, UDP or SCTP connection has it. Used for `- {}`, for rules whose every peer is
/// unresolved, and for rules whose ports are all ICMP.
const NO_MODELLED_PROTOCOL: u8 = 0;

/// Add the compiled Cilium policies to `tiers`.
pub(crate) fn compile_into(
    tiers: &mut BTreeMap<String, TierBuilder>,
    inventory: &Inventory,
    interner: &Interner,
) {
    for index in 0..inventory.cilium_policies.len() {
        for placed in compile_policy(index, inventory, interner) {
            placed.add_to(tiers);
        }
    }
}

/// The policies `inventory.cilium_policies[index]` compiles to (none to three, each in its
/// tier), as [`compile_into`] adds them.
pub(crate) fn compile_policy(
    index: usize,
    inventory: &Inventory,
    interner: &Interner,
) -> Vec<Placed> {
    let mut out = Vec::new();
    let policy = &inventory.cilium_policies[index];
    {
        let CiliumSubject::Endpoints(selector) = &policy.subject else {
            return out; // host policies: netfence does not evaluate host endpoints
        };
        let source = PolicySource::Cilium(index);
        let subject = interner.subjects.intern(subject(policy, selector));
        let mut add = |tier: (&str, f64), end: TierEnd, order: f64, compiled: Policy| {
            out.push(Placed {
                tier: tier.0.to_string(),
                tier_order: Some(tier.1),
                end,
                order: Some(order),
                sort_name: sort_name(policy),
                policy: compiled,
                source,
            });
        };
        let base = |ingress, egress| Policy {
            kind: match policy.kind {
                CiliumKind::NetworkPolicy => PolicyKind::CiliumNetworkPolicy,
                CiliumKind::ClusterwideNetworkPolicy => PolicyKind::CiliumClusterwideNetworkPolicy,
            },
            name: policy.display_name(),
            origin: policy.origin.clone(),
            subject: subject.clone(),
            ingress,
            egress,
        };
        let compile_rules = |direction: PolicyType, deny: bool| -> Option<Vec<Rule>> {
            let (allow, denies) = policy.rules(direction);
            let list = if deny { denies } else { allow };
            let action = if deny { Action::Deny } else { Action::Allow };
            Some(
                list.iter()
                    .map(|r| compile_rule(r, action, policy, inventory, interner))
                    .collect(),
            )
        };
        let has_deny = |d| !policy.rules(d).1.is_empty();
        if has_deny(PolicyType::Ingress) || has_deny(PolicyType::Egress) {
            let ingress = has_deny(PolicyType::Ingress)
                .then(|| compile_rules(PolicyType::Ingress, true))
                .flatten();
            let egress = has_deny(PolicyType::Egress)
                .then(|| compile_rules(PolicyType::Egress, true))
                .flatten();
            add(CILIUM_DENY_TIER, TierEnd::Pass, 0.0, base(ingress, egress));
        }
        // Per direction: isolating (tier default) or allowing only (no-default-deny tier).
        let mut isolating = [None, None];
        let mut allowing = [None, None];
        for (slot, direction) in [PolicyType::Ingress, PolicyType::Egress]
            .into_iter()
            .enumerate()
        {
            if policy.isolates(direction) {
                isolating[slot] = compile_rules(direction, false);
            } else if !policy.rules(direction).0.is_empty() {
                allowing[slot] = compile_rules(direction, false);
            }
        }
        let [ingress, egress] = isolating;
        if ingress.is_some() || egress.is_some() {
            add(
                ("default", DEFAULT_TIER_ORDER),
                TierEnd::Deny,
                KUBERNETES_POLICY_ORDER,
                base(ingress, egress),
            );
        }
        let [ingress, egress] = allowing;
        if ingress.is_some() || egress.is_some() {
            add(
                CILIUM_NO_DEFAULT_DENY_TIER,
                TierEnd::Pass,
                0.0,
                base(ingress, egress),
            );
        }
    }
    out
}

fn sort_name(policy: &CiliumPolicy) -> String {
    format!(
        "{}/{}.{}",
        policy.namespace.as_deref().unwrap_or(""),
        match policy.kind {
            CiliumKind::NetworkPolicy => "cnp",
            CiliumKind::ClusterwideNetworkPolicy => "ccnp",
        },
        policy.display_name()
    )
}

/// The endpoints a policy applies to: a namespaced policy's `endpointSelector` always applies
/// in the policy's namespace (`ParseToCiliumRule` overrides any namespace it names); namespace
/// label keys still narrow it.
fn subject(policy: &CiliumPolicy, selector: &CiliumSelector) -> Subject {
    let namespace_selector = match &policy.namespace {
        Some(ns) => with_requirement(
            &selector.namespaces,
            Requirement::In(
                netfence_model::inventory::NAMESPACE_NAME_LABEL.into(),
                BTreeSet::from([ns.clone()]),
            ),
            netfence_model::inventory::NAMESPACE_NAME_LABEL,
        ),
        None => selector.namespaces.clone(),
    };
    if let Some(accounts) = &selector.service_accounts {
        return Subject::Calico {
            namespace: None,
            namespace_selector: Some(calico_selector(&namespace_selector, |k| k.to_string())),
            selector: calico_selector(&selector.pods, |k| k.to_string()),
            service_account_selector: Some(calico_selector(accounts, |_| {
                "projectcalico.org/name".to_string()
            })),
        };
    }
    match (&policy.namespace, selector.namespaces.is_everything()) {
        (Some(ns), true) => Subject::PodsInNamespace {
            namespace: ns.clone(),
            selector: selector.pods.clone(),
        },
        _ => Subject::Cluster {
            namespace_selector,
            pod_selector: selector.pods.clone(),
        },
    }
}

/// `selector` with the requirements on `key` replaced by `requirement`.
fn with_requirement(
    selector: &LabelSelector,
    requirement: Requirement,
    key: &str,
) -> LabelSelector {
    let mut requirements: Vec<Requirement> = selector
        .requirements()
        .iter()
        .filter(|r| r.key() != key)
        .cloned()
        .collect();
    requirements.push(requirement);
    LabelSelector::from_requirements(requirements)
}

/// A label selector as a Calico selector (same meaning; `rename` maps keys).
fn calico_selector(selector: &LabelSelector, rename: impl Fn(&str) -> String) -> CalicoSelector {
    let mut terms: Vec<CalicoSelector> = selector
        .requirements()
        .iter()
        .map(|r| match r {
            Requirement::In(k, values) => CalicoSelector::In(rename(k), values.clone()),
            Requirement::NotIn(k, values) => CalicoSelector::NotIn(rename(k), values.clone()),
            Requirement::Exists(k) => CalicoSelector::Has(rename(k)),
            Requirement::DoesNotExist(k) => {
                CalicoSelector::Not(Box::new(CalicoSelector::Has(rename(k))))
            }
        })
        .collect();
    match terms.len() {
        0 => CalicoSelector::All,
        1 => terms.remove(0),
        _ => CalicoSelector::And(terms),
    }
}

/// One Cilium rule: peers OR-ed, ports OR-ed, peers AND ports; a rule with peers only allows
/// them on every port, one with ports only allows every peer on them, and `- {}` selects
/// nothing (`pkg/policy/rule.go`: no L3 and no L4 section adds no filter).
fn compile_rule(
    rule: &CiliumRule,
    action: Action,
    policy: &CiliumPolicy,
    inventory: &Inventory,
    interner: &Interner,
) -> Rule {
    let peers: Vec<Peer> = rule
        .peers
        .iter()
        .flat_map(|peer| compile_peer(peer, policy, inventory))
        .collect();
    let ports: Vec<PortMatch> = rule
        .ports
        .iter()
        .flat_map(|port| {
            port.protocols
                .iter()
                .map(move |&protocol| match &port.port {
                    CiliumPortSpec::All => PortMatch::Protocol(protocol),
                    CiliumPortSpec::Range(range) => PortMatch::Range(protocol, *range),
                    CiliumPortSpec::Named(name) => PortMatch::Named(protocol, name.clone()),
                })
        })
        .collect();
    let mut compiled = Rule::simple(action, interner.peers.interned(peers), ports);
    let nothing = rule.is_empty()
        || (rule.has_peers && compiled.peers.is_empty())
        || (rule.has_ports && compiled.ports.is_empty());
    if nothing {
        compiled.peers.clear();
        compiled.ports.clear();
        compiled.protocol = Some(NO_MODELLED_PROTOCOL);
    }
    compiled
}

/// The IR peers of one Cilium peer (several for entities; none for what cannot match).
pub(crate) fn compile_peer(
    peer: &CiliumPeer,
    policy: &CiliumPolicy,
    inventory: &Inventory,
) -> Vec<Peer> {
    match peer {
        CiliumPeer::Endpoints(selector) => {
            endpoint_peers(selector, policy.namespace.as_deref(), inventory)
        }
        CiliumPeer::Entity(entity) => entity_peers(*entity, inventory),
        CiliumPeer::Cidr { net, except } => vec![outside_cluster(*net, except, inventory)],
        CiliumPeer::Nodes(selector) => vec![Peer::Nodes(selector.clone())],
        CiliumPeer::Service { namespace, name } => vec![Peer::Calico(Box::new(CalicoEntity {
            service: Some(ServiceMatch {
                name: name.clone(),
                namespace: namespace.clone(),
            }),
            ..empty_entity()
        }))],
        CiliumPeer::Fqdn(_) | CiliumPeer::Unmodelled(_) => Vec::new(),
    }
}

fn empty_entity() -> CalicoEntity {
    CalicoEntity {
        nets: Vec::new(),
        not_nets: Vec::new(),
        selector: None,
        not_selector: None,
        explicit_namespace: false,
        scope: CalicoNamespaceScope::Any,
        service_accounts: None,
        service: None,
    }
}

/// Pods a `fromEndpoints`/`toEndpoints` selector matches.
fn endpoint_peers(
    selector: &CiliumSelector,
    namespace: Option<&str>,
    inventory: &Inventory,
) -> Vec<Peer> {
    if !selector.reserved.is_empty() {
        // `reserved:host` and friends select entities, not pods.
        return selector
            .reserved
            .iter()
            .filter_map(|name| reserved_entity(name))
            .flat_map(|entity| entity_peers(entity, inventory))
            .collect();
    }
    let confined = namespace.filter(|_| !selector.names_namespace);
    if let Some(accounts) = &selector.service_accounts {
        let scope = match confined {
            Some(ns) => CalicoNamespaceScope::Same(ns.to_string()),
            None if selector.namespaces.is_everything() => CalicoNamespaceScope::Any,
            None => CalicoNamespaceScope::Selector(calico_selector(&selector.namespaces, |k| {
                k.to_string()
            })),
        };
        return vec![Peer::Calico(Box::new(CalicoEntity {
            selector: Some(calico_selector(&selector.pods, |k| k.to_string())),
            explicit_namespace: confined.is_none(),
            scope,
            service_accounts: Some(netfence_model::calico::ServiceAccountMatch {
                names: Vec::new(),
                selector: Some(calico_selector(accounts, |_| {
                    "projectcalico.org/name".to_string()
                })),
            }),
            ..empty_entity()
        }))];
    }
    vec![Peer::Pods {
        namespaces: match confined {
            Some(ns) => NamespaceMatch::Named(ns.to_string()),
            None => NamespaceMatch::Selector(selector.namespaces.clone()),
        },
        pods: selector.pods.clone(),
    }]
}

fn reserved_entity(name: &str) -> Option<Entity> {
    Some(match name {
        "host" => Entity::Host,
        "remote-node" => Entity::RemoteNode,
        "world" => Entity::World(None),
        "world-ipv4" => Entity::World(Some(4)),
        "world-ipv6" => Entity::World(Some(6)),
        "kube-apiserver" => Entity::KubeApiserver,
        _ => return None,
    })
}

/// An entity against the inventory (`pkg/policy/api/entity.go`, `EntitySelectorMapping`):
/// `cluster` is every pod and node, `host`/`remote-node` the nodes (netfence does not tell
/// a pod's own node from the others), `kube-apiserver` the control-plane nodes, `world`
/// every address outside the cluster, `all` everything.
fn entity_peers(entity: Entity, inventory: &Inventory) -> Vec<Peer> {
    let every_pod = || Peer::Pods {
        namespaces: NamespaceMatch::Selector(LabelSelector::everything()),
        pods: LabelSelector::everything(),
    };
    let world = |family: Option<u8>| -> Vec<Peer> {
        let mut nets = Vec::new();
        if family != Some(6) {
            nets.push(IpNet::V4(ipnet::Ipv4Net::default()));
        }
        if family != Some(4) {
            nets.push(IpNet::V6(ipnet::Ipv6Net::default()));
        }
        nets.into_iter()
            .map(|net| outside_cluster(net, &[], inventory))
            .collect()
    };
    match entity {
        Entity::All => {
            let mut peers = vec![every_pod(), Peer::Nodes(LabelSelector::everything())];
            peers.extend(world(None));
            peers
        }
        Entity::World(family) => world(family),
        Entity::Cluster => vec![every_pod(), Peer::Nodes(LabelSelector::everything())],
        Entity::Host | Entity::RemoteNode => vec![Peer::Nodes(LabelSelector::everything())],
        Entity::KubeApiserver => vec![Peer::Nodes(LabelSelector::from_requirements(vec![
            Requirement::Exists("node-role.kubernetes.io/control-plane".into()),
        ]))],
        Entity::Unmodelled(_) => Vec::new(),
    }
}

/// The addresses of host-network pods with real addresses, in pod order: their nodes'
/// addresses, which [`outside_cluster`] leaves out.
pub(crate) fn host_pod_addresses(inventory: &Inventory) -> impl Iterator<Item = &std::net::IpAddr> {
    (inventory.pods().iter())
        .filter(|pod| pod.host_network && !pod.synthetic_ip)
        .flat_map(|pod| pod.ips.iter())
}

/// Addresses in `net` but not in `except`, outside the cluster: never a pod (the `notSelector`
/// `all()` excludes every workload endpoint), never a node address and never a host-network
/// pod's address, which is its node's (both excluded as host prefixes).
pub(crate) fn outside_cluster(net: IpNet, except: &[IpNet], inventory: &Inventory) -> Peer {
    let mut not_nets: Vec<IpNet> = except.to_vec();
    let host_pods = host_pod_addresses(inventory);
    not_nets.extend(
        inventory
            .nodes
            .iter()
            .flat_map(|node| node.addresses.iter())
            .chain(host_pods)
            .filter(|ip| net.contains(*ip))
            .map(|ip| IpNet::from(*ip)),
    );
    not_nets.sort();
    not_nets.dedup();
    Peer::Calico(Box::new(CalicoEntity {
        nets: vec![net],
        not_nets,
        not_selector: Some(CalicoSelector::All),
        ..empty_entity()
    }))
}
