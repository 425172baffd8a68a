//! The policy IR: ordered tiers of ordered policies of ordered rules.
//!
//! Every policy language compiles into this one shape. Kubernetes NetworkPolicies form the
//! tier `default` (the name and place Calico gives them: felix evaluates Kubernetes policies
//! in tier `default` at order 1000); each is a list of Allow rules, and an endpoint that any of
//! them selects is denied at the end of the tier when none allowed the connection.

pub use crate::resolve::{Interner, PeerId, PolicySubject, RulePeer, SubjectId};
use ipnet::IpNet;
use netfence_model::calico::{
    CalicoAction, CalicoPolicy, CalicoPort, CalicoRule, CalicoScope, EntityRule,
    ServiceAccountMatch, ServiceMatch, TierDefault,
};
use netfence_model::{
    Inventory, NetworkPolicy, NpPeer, NpPortSpec, Origin, PolicyType, PortRange, Protocol,
    TargetPort,
};
use netfence_selector::calico::Selector as CalicoSelector;
use netfence_selector::LabelSelector;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// A direction of traffic relative to the endpoint a policy selects.
pub type Direction = PolicyType;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    /// Allow the connection; evaluation ends.
    Allow,
    /// Deny the connection; evaluation ends.
    Deny,
    /// Skip the rest of the tier; evaluation continues with the next tier.
    Pass,
    /// Record and continue.
    Log,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
            Action::Log => "Log",
        })
    }
}

/// What happens to an endpoint that a tier selected but whose rules decided nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TierEnd {
    /// Deny (Calico's default; Kubernetes isolation).
    Deny,
    /// Continue with the next tier.
    Pass,
}

/// The language a policy was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PolicyKind {
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// projectcalico.org/v3 NetworkPolicy.
    CalicoNetworkPolicy,
    /// projectcalico.org/v3 GlobalNetworkPolicy.
    CalicoGlobalNetworkPolicy,
    /// policy.networking.k8s.io AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// policy.networking.k8s.io BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy.
    ClusterNetworkPolicy,
    /// cilium.io/v2 CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// cilium.io/v2 CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::CalicoNetworkPolicy => "Calico NetworkPolicy",
            PolicyKind::CalicoGlobalNetworkPolicy => "Calico GlobalNetworkPolicy",
            PolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            PolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            PolicyKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        })
    }
}

/// A tier of policies.
#[derive(Clone, Debug)]
pub struct Tier {
    /// Name (`default` for Kubernetes NetworkPolicies).
    pub name: String,
    /// What an endpoint selected by the tier gets when no rule decided.
    pub end: TierEnd,
    /// Policies in evaluation order. A compiled policy does not depend on its place in the
    /// inventory, so an engine rebuilt after a change shares the unchanged ones.
    pub policies: Vec<Arc<Policy>>,
    /// For each policy (same index): the inventory object it was compiled from. Kept beside
    /// the policies because inserting or deleting an object moves the indices of the others.
    pub sources: Vec<PolicySource>,
    /// For each policy: its sort key (order, sort name) in the tier, where a policy compiled
    /// later is placed (see [`compile`]).
    pub(crate) keys: Vec<SortKey>,
}

/// Where a policy sorts in its tier: `order` (none last), then the sort name.
/// (The name is shared: an engine rebuilt after a change copies the keys of kept policies.)
pub(crate) type SortKey = (Option<f64>, Arc<str>);

/// The order of [`SortKey`]s (and of tiers by their order): by `order`, none last, then name.
pub(crate) fn by_order(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Compare two policies' [`SortKey`]s.
pub(crate) fn cmp_keys(a: &SortKey, b: &SortKey) -> std::cmp::Ordering {
    by_order(a.0, b.0).then_with(|| a.1.cmp(&b.1))
}

impl Tier {
    /// Remove the policy at `index` (with its side-table entries).
    pub(crate) fn remove(&mut self, index: usize) {
        self.policies.remove(index);
        self.sources.remove(index);
        self.keys.remove(index);
    }
}

/// Which endpoints a policy applies to. Equal values are one subject: policies hold them
/// interned ([`PolicySubject`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Pods of one namespace matching a selector.
    PodsInNamespace {
        /// The namespace.
        namespace: String,
        /// The pod selector.
        selector: LabelSelector,
    },
    /// Pods matching a pod selector in namespaces matching a namespace selector (admin policy).
    Cluster {
        /// Namespace selector.
        namespace_selector: LabelSelector,
        /// Pod selector.
        pod_selector: LabelSelector,
    },
    /// Calico: endpoints matching a selector (over pod labels plus Calico's implicit labels),
    /// in one namespace or, for a global policy, in namespaces matching a selector (or all).
    Calico {
        /// The namespace of a namespaced policy.
        namespace: Option<String>,
        /// `namespaceSelector` of a global policy.
        namespace_selector: Option<CalicoSelector>,
        /// `selector`.
        selector: CalicoSelector,
        /// `serviceAccountSelector`.
        service_account_selector: Option<CalicoSelector>,
    },
}

/// One compiled policy.
///
/// (Subjects of cluster-scoped admin policies are `Subject::Cluster`.)
#[derive(Clone, Debug)]
pub struct Policy {
    /// Source language.
    pub kind: PolicyKind,
    /// `namespace/name` or `name`.
    pub name: String,
    /// Where it was read from.
    pub origin: Origin,
    /// Which endpoints it applies to (interned: policies with equal subjects share one).
    pub subject: PolicySubject,
    /// Ingress rules, or `None` when the policy does not apply to ingress.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules, or `None` when the policy does not apply to egress.
    pub egress: Option<Vec<Rule>>,
}

/// The inventory object a compiled policy was compiled from: the kind of object and its index
/// in the inventory's list of that kind ([`Tier::sources`]). Consumers go back to the source
/// through it rather than by matching `namespace/name` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicySource {
    /// `inventory.network_policies[index]`.
    NetworkPolicy(usize),
    /// `inventory.calico_policies[index]`.
    Calico(usize),
    /// `inventory.admin_policies[index]`.
    Admin(usize),
    /// `inventory.cilium_policies[index]` (one Cilium rule may compile to several policies:
    /// its deny rules, its isolating allows, its non-isolating allows).
    Cilium(usize),
}

impl Policy {
    /// Rules for a direction, `None` when the policy does not cover it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            PolicyType::Ingress => self.ingress.as_deref(),
            PolicyType::Egress => self.egress.as_deref(),
        }
    }
}

/// One rule: it matches when the peer matches any of `peers` (or `peers` is empty) and the
/// connection matches any of `ports` (or `ports` is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// Peers, OR-ed; empty = any peer.
    pub peers: Vec<RulePeer>,
    /// Ports, OR-ed; empty = any connection.
    pub ports: Vec<PortMatch>,
    /// Ports that must not match (Calico `notPorts`).
    pub not_ports: Vec<PortMatch>,
    /// IANA protocol number the connection must have (Calico `protocol`).
    pub protocol: Option<u8>,
    /// IANA protocol number the connection must not have (Calico `notProtocol`).
    pub not_protocol: Option<u8>,
    /// Address family (4 or 6) the connection must have (Calico `ipVersion`).
    pub ip_version: Option<u8>,
    /// A condition on the policy's own endpoint (Calico: the `destination` of an ingress rule,
    /// the `source` of an egress rule, apart from ports).
    pub local: Option<RulePeer>,
}

impl Rule {
    /// A rule with only an action, peers and ports (the Kubernetes shape).
    pub fn simple(action: Action, peers: Vec<RulePeer>, ports: Vec<PortMatch>) -> Rule {
        Rule {
            action,
            peers,
            ports,
            not_ports: Vec::new(),
            protocol: None,
            not_protocol: None,
            ip_version: None,
            local: None,
        }
    }
}

/// Which namespaces a pod peer may be in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamespaceMatch {
    /// Exactly this namespace.
    Named(String),
    /// Namespaces whose labels match.
    Selector(LabelSelector),
}

impl NamespaceMatch {
    /// Whether namespace `name` is one of these namespaces; `labels` gives its labels (asked
    /// only of a selector).
    pub fn matches<'l>(
        &self,
        name: &str,
        labels: impl FnOnce() -> &'l netfence_selector::Labels,
    ) -> bool {
        match self {
            NamespaceMatch::Named(named) => named == name,
            NamespaceMatch::Selector(selector) => selector.matches(labels()),
        }
    }
}

/// A peer of a rule. Equal values are one peer: rules hold them interned ([`RulePeer`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Pods matching a pod selector, in matching namespaces.
    Pods {
        /// The namespaces.
        namespaces: NamespaceMatch,
        /// The pod selector.
        pods: LabelSelector,
    },
    /// Addresses in `net` but in none of `except`.
    Net {
        /// The CIDR.
        net: IpNet,
        /// Excluded sub-CIDRs.
        except: Vec<IpNet>,
    },
    /// A Calico entity rule (every present field must match).
    Calico(Box<CalicoEntity>),
    /// The addresses of nodes matching a selector (admin policy `nodes` peers).
    Nodes(LabelSelector),
}

/// Where a Calico entity's selectors look for endpoints and network sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CalicoNamespaceScope {
    /// The policy's own namespace (namespaced policy, no `namespaceSelector`).
    Same(String),
    /// Namespaces matching `namespaceSelector`; `global()` = non-namespaced network sets.
    Selector(CalicoSelector),
    /// Every namespace and the global network sets (global policy, no `namespaceSelector`).
    Any,
}

/// A compiled Calico `EntityRule` (without its ports, which the rule carries).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CalicoEntity {
    /// `nets` (OR; empty = any address).
    pub nets: Vec<IpNet>,
    /// `notNets`.
    pub not_nets: Vec<IpNet>,
    /// `selector`.
    pub selector: Option<CalicoSelector>,
    /// `notSelector`.
    pub not_selector: Option<CalicoSelector>,
    /// Whether `namespaceSelector` was given (then it limits endpoints even without `selector`).
    pub explicit_namespace: bool,
    /// Scope of the selectors.
    pub scope: CalicoNamespaceScope,
    /// `serviceAccounts`.
    pub service_accounts: Option<ServiceAccountMatch>,
    /// `services`.
    pub service: Option<ServiceMatch>,
}

impl CalicoEntity {
    /// Whether the entity has a positive endpoint selector once libcalico-go has folded its
    /// fields into one (`lib/backend/syncersv1/updateprocessors/rules.go`,
    /// `getEndpointSelector`): `selector`, `serviceAccounts` or `namespaceSelector`, or, in a
    /// namespaced policy, `notSelector` alone, which confines the rule to the policy's
    /// namespace (`projectcalico.org/namespace == '<ns>'`). `nets` and `services` alone do not.
    pub fn has_endpoint_selector(&self) -> bool {
        self.selector.is_some()
            || self.service_accounts.is_some()
            || self.explicit_namespace
            || (self.not_selector.is_some() && matches!(self.scope, CalicoNamespaceScope::Same(_)))
    }

    /// Whether the entity constrains anything besides ports.
    pub fn is_unconstrained(&self) -> bool {
        self.nets.is_empty()
            && self.not_nets.is_empty()
            && self.selector.is_none()
            && self.not_selector.is_none()
            && !self.explicit_namespace
            && self.service_accounts.is_none()
            && self.service.is_none()
    }
}

/// A port condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port of a protocol.
    Protocol(Protocol),
    /// A range of ports of a protocol.
    Range(Protocol, PortRange),
    /// A named container port of the destination pod.
    Named(Protocol, String),
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMatch::Protocol(p) => write!(f, "{p}"),
            PortMatch::Range(p, r) => write!(f, "{p}/{r}"),
            PortMatch::Named(p, n) => write!(f, "{p}/{n}"),
        }
    }
}

/// Order of Calico's `default` tier when no Tier object declares it (Calico ≥ 3.28 creates it
/// with order 1,000,000; docs.tigera.io "Tier" resource).
pub const DEFAULT_TIER_ORDER: f64 = 1_000_000.0;

/// Order of Kubernetes NetworkPolicies within tier `default` (Calico gives them order 1000;
/// libcalico-go `lib/backend/k8s/conversion` converts them with `Order: 1000`).
pub const KUBERNETES_POLICY_ORDER: f64 = 1000.0;

/// A tier being assembled: its order, end action and (order, sort name, policy, source)
/// entries.
pub(crate) type TierBuilder = (
    Option<f64>,
    TierEnd,
    Vec<(Option<f64>, String, Policy, PolicySource)>,
);

/// Tier of AdminNetworkPolicies: before Calico's and Kubernetes' `default` tier, as Calico's
/// built-in admin tier (order 1,000); it has no end-of-tier deny (no match continues).
pub const ADMIN_TIER: (&str, f64) = ("kube-admin", 1_000.0);

/// Tier of the BaselineAdminNetworkPolicy: after tier `default`, as Calico's built-in baseline
/// tier (order 10,000,000); reached only by traffic no NetworkPolicy decided.
pub const BASELINE_TIER: (&str, f64) = ("kube-baseline", 10_000_000.0);

/// Compile the inventory's policies into ordered tiers: tiers by `order` (none last) then name;
/// in a tier, policies by `order` (none last) then name, as felix/calc/policy_sorter.go does
/// (admin policies by `priority`, lower first, then name: network-policy-api leaves equal
/// priorities undefined, the loader warns). Equal keys keep the order policies are added in
/// (the sort is stable): NetworkPolicies, admin, Calico, then Cilium policies, each kind by
/// inventory index; an incremental rebuild places a changed object by the same rule. Rule
/// peers are interned in `peers`.
pub fn compile(inventory: &Inventory, interner: &Interner) -> Vec<Tier> {
    // (tier name) -> (order, end, [(order, sort name, policy)])
    let mut tiers: std::collections::BTreeMap<String, TierBuilder> =
        std::collections::BTreeMap::new();
    for declared in &inventory.tiers {
        let end = match declared.default_action {
            TierDefault::Deny => TierEnd::Deny,
            TierDefault::Pass => TierEnd::Pass,
        };
        tiers.insert(declared.name.clone(), (declared.order, end, Vec::new()));
    }
    let compiled = compiled_network_policies(inventory, interner);
    for ((index, policy), compiled) in inventory.network_policies.iter().enumerate().zip(compiled) {
        let (order, sort_name) = network_policy_key(policy);
        tiers
            .entry("default".into())
            .or_insert_with(|| (Some(DEFAULT_TIER_ORDER), TierEnd::Deny, Vec::new()))
            .2
            .push((
                order,
                sort_name,
                compiled,
                PolicySource::NetworkPolicy(index),
            ));
    }
    for index in 0..inventory.admin_policies.len() {
        compile_admin_entry(index, inventory, interner).add_to(&mut tiers);
    }
    for index in 0..inventory.calico_policies.len() {
        compile_calico_entry(index, inventory, interner).add_to(&mut tiers);
    }
    crate::cilium::compile_into(&mut tiers, inventory, interner);
    let mut out: Vec<(Option<f64>, String, Tier)> = tiers
        .into_iter()
        .filter(|(_, (_, _, policies))| !policies.is_empty())
        .map(|(name, (order, end, mut policies))| {
            policies.sort_by(|a, b| by_order(a.0, b.0).then_with(|| a.1.cmp(&b.1)));
            let mut tier = Tier {
                name: name.clone(),
                end,
                policies: Vec::with_capacity(policies.len()),
                sources: Vec::with_capacity(policies.len()),
                keys: Vec::with_capacity(policies.len()),
            };
            for (order, sort_name, policy, source) in policies {
                tier.policies.push(Arc::new(policy));
                tier.sources.push(source);
                tier.keys.push((order, Arc::from(sort_name)));
            }
            (order, name, tier)
        })
        .collect();
    out.sort_by(|a, b| by_order(a.0, b.0).then_with(|| a.1.cmp(&b.1)));
    out.into_iter().map(|(_, _, tier)| tier).collect()
}

/// One compiled policy with its place: the tier it joins (created with `tier_order` and
/// `end` when no Tier object declares it), its sort key there and its source.
pub(crate) struct Placed {
    pub(crate) tier: String,
    pub(crate) tier_order: Option<f64>,
    pub(crate) end: TierEnd,
    pub(crate) order: Option<f64>,
    pub(crate) sort_name: String,
    pub(crate) policy: Policy,
    pub(crate) source: PolicySource,
}

impl Placed {
    /// Add to the tier being assembled (created when missing).
    pub(crate) fn add_to(self, tiers: &mut std::collections::BTreeMap<String, TierBuilder>) {
        tiers
            .entry(self.tier)
            .or_insert_with(|| (self.tier_order, self.end, Vec::new()))
            .2
            .push((self.order, self.sort_name, self.policy, self.source));
    }
}

/// The policies one inventory object compiles to, placed as [`compile`] places them: the
/// per-object entry point of an incremental rebuild (a Cilium rule gives up to three).
pub(crate) fn compile_source(
    inventory: &Inventory,
    source: PolicySource,
    interner: &Interner,
) -> Vec<Placed> {
    match source {
        PolicySource::NetworkPolicy(index) => {
            let policy = &inventory.network_policies[index];
            let (order, sort_name) = network_policy_key(policy);
            vec![Placed {
                tier: "default".into(),
                tier_order: Some(DEFAULT_TIER_ORDER),
                end: TierEnd::Deny,
                order,
                sort_name,
                policy: compile_network_policy(policy, inventory, interner),
                source,
            }]
        }
        PolicySource::Admin(index) => vec![compile_admin_entry(index, inventory, interner)],
        PolicySource::Calico(index) => vec![compile_calico_entry(index, inventory, interner)],
        PolicySource::Cilium(index) => crate::cilium::compile_policy(index, inventory, interner),
    }
}

/// `inventory.admin_policies[index]` in its tier: admin policies in [`ADMIN_TIER`], the
/// baseline in [`BASELINE_TIER`], ordered by priority (KEP-2091: a lower `priority` is
/// evaluated first), then name.
fn compile_admin_entry(index: usize, inventory: &Inventory, interner: &Interner) -> Placed {
    let policy = &inventory.admin_policies[index];
    let (tier, order) = if policy.kind.is_baseline() {
        BASELINE_TIER
    } else {
        ADMIN_TIER
    };
    Placed {
        tier: tier.to_string(),
        tier_order: Some(order),
        end: TierEnd::Pass,
        order: policy.priority.map(f64::from),
        sort_name: policy.name.clone(),
        policy: compile_admin_policy(policy, interner),
        source: PolicySource::Admin(index),
    }
}

/// `inventory.calico_policies[index]` in its tier, ordered by `order` (none last), then by
/// name (felix `calc/policy_sorter.go`); an undeclared tier has no order (`default`: Calico's).
fn compile_calico_entry(index: usize, inventory: &Inventory, interner: &Interner) -> Placed {
    let policy = &inventory.calico_policies[index];
    Placed {
        tier: policy.tier.clone(),
        tier_order: (policy.tier == "default").then_some(DEFAULT_TIER_ORDER),
        end: TierEnd::Deny,
        order: policy.order,
        sort_name: policy.display_name(),
        policy: compile_calico_policy(policy, inventory, interner),
        source: PolicySource::Calico(index),
    }
}

/// The inventory's NetworkPolicies compiled, in inventory order: with thousands of them, on
/// every core (each policy compiles on its own).
fn compiled_network_policies(inventory: &Inventory, interner: &Interner) -> Vec<Policy> {
    /// Below this many policies, one thread.
    const MIN_PARALLEL_POLICIES: usize = 1_000;
    let policies = &inventory.network_policies[..];
    let compile = |policy: &Arc<NetworkPolicy>| compile_network_policy(policy, inventory, interner);
    if policies.len() < MIN_PARALLEL_POLICIES {
        return policies.iter().map(compile).collect();
    }
    crate::connlist::in_parallel(policies, compile)
}

/// network-policy-api semantics: rules in order, the first match decides (Pass hands over to
/// NetworkPolicy); a named port matches the destination's container port of that name,
/// whatever its protocol.
fn compile_admin_policy(
    policy: &netfence_model::admin::AdminPolicy,
    interner: &Interner,
) -> Policy {
    use netfence_model::admin::AdminKind;
    use netfence_model::admin::{AdminAction, AdminPeer, AdminPort, AdminRule};
    let kind = match policy.kind {
        AdminKind::AdminNetworkPolicy => PolicyKind::AdminNetworkPolicy,
        AdminKind::BaselineAdminNetworkPolicy => PolicyKind::BaselineAdminNetworkPolicy,
        AdminKind::ClusterNetworkPolicyAdmin | AdminKind::ClusterNetworkPolicyBaseline => {
            PolicyKind::ClusterNetworkPolicy
        }
    };
    let rule = |r: &AdminRule| {
        let peers: Vec<Peer> = r
            .peers
            .iter()
            .flat_map(|p| match p {
                AdminPeer::Pods {
                    namespace_selector,
                    pod_selector,
                } => vec![Peer::Pods {
                    namespaces: NamespaceMatch::Selector(namespace_selector.clone()),
                    pods: pod_selector.clone(),
                }],
                AdminPeer::Nodes(selector) => vec![Peer::Nodes(selector.clone())],
                AdminPeer::Networks(nets) => nets
                    .iter()
                    .map(|net| Peer::Net {
                        net: *net,
                        except: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        let ports = r
            .ports
            .iter()
            .flat_map(|p| match p {
                AdminPort::Range(protocol, range) => vec![PortMatch::Range(*protocol, *range)],
                AdminPort::Named(name) => Protocol::ALL
                    .iter()
                    .map(|protocol| PortMatch::Named(*protocol, name.clone()))
                    .collect(),
            })
            .collect();
        let action = match r.action {
            AdminAction::Allow => Action::Allow,
            AdminAction::Deny => Action::Deny,
            AdminAction::Pass => Action::Pass,
        };
        // A rule whose peers all name nothing netfence can match (domainNames) matches nothing:
        // it must not turn into an any-peer rule.
        (r.peers.is_empty() || !peers.is_empty())
            .then(|| Rule::simple(action, interner.peers.interned(peers), ports))
    };
    Policy {
        kind,
        name: policy.name.clone(),
        origin: policy.origin.clone(),
        subject: interner.subjects.intern(Subject::Cluster {
            namespace_selector: policy.subject.namespace_selector.clone(),
            pod_selector: policy.subject.pod_selector.clone(),
        }),
        ingress: Some(policy.ingress.iter().filter_map(rule).collect()),
        egress: Some(policy.egress.iter().filter_map(rule).collect()),
    }
}

/// The connections an egress rule with `destination.services` may open: each Service port's
/// target port on the backend, with the port's protocol. Felix matches such a rule against an
/// IP set of (backend address, port, protocol) members built from the Service's
/// EndpointSlices (`felix/calc/rule_scanner.go`: `DstIPPortSets` with `ServiceIncludePorts`;
/// `felix/serviceindex/serviceindex.go` `membersFromEndpointSlice`), whose ports are the
/// target ports the EndpointSlice controller resolved per pod: a named target port is resolved
/// on the destination pod, as a named rule port is. The cluster IP and the Service port are
/// not members: by the time Calico's egress policy sees the packet, kube-proxy has rewritten
/// it to a backend. A Service that is missing or has no ports matches nothing (the peer
/// check in `eval.rs` insists on both).
fn service_ports(inventory: &Inventory, service: &ServiceMatch) -> Vec<PortMatch> {
    let Some(found) = inventory.service(&service.namespace, &service.name) else {
        return Vec::new();
    };
    found
        .ports
        .iter()
        .filter_map(|port| match &port.target {
            TargetPort::Number(n) => {
                PortRange::single(*n).map(|range| PortMatch::Range(port.protocol, range))
            }
            TargetPort::Named(name) => Some(PortMatch::Named(port.protocol, name.clone())),
        })
        .collect()
}

fn compile_calico_policy(
    policy: &CalicoPolicy,
    inventory: &Inventory,
    interner: &Interner,
) -> Policy {
    let (kind, namespace, namespace_selector) = match &policy.scope {
        CalicoScope::Namespace(ns) => (PolicyKind::CalicoNetworkPolicy, Some(ns.clone()), None),
        CalicoScope::Global { namespace_selector } => (
            PolicyKind::CalicoGlobalNetworkPolicy,
            None,
            namespace_selector.clone(),
        ),
    };
    let scope_for = |entity: &EntityRule| match (&entity.namespace_selector, &namespace) {
        (Some(selector), _) => CalicoNamespaceScope::Selector(selector.clone()),
        (None, Some(ns)) => CalicoNamespaceScope::Same(ns.clone()),
        (None, None) => CalicoNamespaceScope::Any,
    };
    let entity = |e: &EntityRule| CalicoEntity {
        nets: e.nets.clone(),
        not_nets: e.not_nets.clone(),
        selector: e.selector.clone(),
        not_selector: e.not_selector.clone(),
        explicit_namespace: e.namespace_selector.is_some(),
        scope: scope_for(e),
        // libcalico-go `rules.go` `parseServiceAccounts` gives `serviceAccounts: {}` (no names,
        // no selector) no selector at all: it constrains nothing.
        service_accounts: e
            .service_accounts
            .clone()
            .filter(|a| !a.names.is_empty() || a.selector.is_some()),
        service: e.services.clone(),
    };
    let as_peer = |e: CalicoEntity| {
        (!e.is_unconstrained()).then(|| interner.peers.intern(Peer::Calico(Box::new(e))))
    };
    let ports = |list: &[CalicoPort], protocol: Option<u8>| -> Vec<PortMatch> {
        let Some(p) = protocol.and_then(Protocol::from_number) else {
            return Vec::new();
        };
        list.iter()
            .map(|port| match port {
                CalicoPort::Range(range) => PortMatch::Range(p, *range),
                CalicoPort::Named(name) => PortMatch::Named(p, name.clone()),
            })
            .collect()
    };
    let compile_rule = |rule: &CalicoRule, direction: PolicyType| {
        let (peer, local) = match direction {
            PolicyType::Ingress => (&rule.source, &rule.destination),
            PolicyType::Egress => (&rule.destination, &rule.source),
        };
        let mut ports_match = match (&rule.destination.services, direction) {
            // The loader rejects destination ports beside destination services.
            (Some(service), PolicyType::Egress) => service_ports(inventory, service),
            _ => ports(&rule.destination.ports, rule.protocol),
        };
        let protocol = if rule.icmp {
            Some(rule.protocol.unwrap_or(1))
        } else {
            rule.protocol
        };
        // Ports on a protocol netfence does not model (UDPLite) can never match a modelled
        // connection: keep the protocol condition, which already excludes them.
        if !rule.destination.ports.is_empty() && ports_match.is_empty() {
            ports_match = Vec::new();
        }
        Rule {
            action: match rule.action {
                CalicoAction::Allow => Action::Allow,
                CalicoAction::Deny => Action::Deny,
                CalicoAction::Log => Action::Log,
                CalicoAction::Pass => Action::Pass,
            },
            peers: as_peer(entity(peer)).into_iter().collect(),
            ports: ports_match,
            not_ports: ports(&rule.destination.not_ports, rule.protocol),
            protocol,
            not_protocol: rule.not_protocol,
            ip_version: rule.ip_version,
            local: as_peer(entity(local)),
        }
    };
    let rules = |direction: PolicyType| {
        policy.types.contains(&direction).then(|| {
            policy
                .rules(direction)
                .iter()
                .map(|r| compile_rule(r, direction))
                .collect()
        })
    };
    Policy {
        kind,
        name: policy.display_name(),
        origin: policy.origin.clone(),
        subject: interner.subjects.intern(Subject::Calico {
            namespace: namespace.clone(),
            namespace_selector,
            selector: policy.selector.clone(),
            service_account_selector: policy.service_account_selector.clone(),
        }),
        ingress: rules(PolicyType::Ingress),
        egress: rules(PolicyType::Egress),
    }
}

/// A NetworkPolicy's [`SortKey`] in tier `default`: Kubernetes policies sit at order 1000
/// under the name `namespace/knp.default.name`, as Calico converts them.
pub(crate) fn network_policy_key(policy: &NetworkPolicy) -> (Option<f64>, String) {
    (
        Some(KUBERNETES_POLICY_ORDER),
        format!("{}/knp.default.{}", policy.namespace, policy.name),
    )
}

/// Compile one NetworkPolicy (as [`compile`] does for tier `default`).
pub(crate) fn compile_network_policy(
    policy: &NetworkPolicy,
    inventory: &Inventory,
    interner: &Interner,
) -> Policy {
    let rules = |direction: PolicyType| {
        policy.applies_to(direction).then(|| {
            policy
                .rules(direction)
                .iter()
                .map(|rule| {
                    Rule::simple(
                        Action::Allow,
                        rule.peers
                            .iter()
                            .map(|peer| {
                                interner.peers.intern(compile_peer(
                                    peer,
                                    &policy.namespace,
                                    inventory,
                                ))
                            })
                            .collect(),
                        rule.ports
                            .iter()
                            .map(|port| match &port.port {
                                NpPortSpec::All => PortMatch::Protocol(port.protocol),
                                NpPortSpec::Range(range) => PortMatch::Range(port.protocol, *range),
                                NpPortSpec::Named(name) => {
                                    PortMatch::Named(port.protocol, name.clone())
                                }
                            })
                            .collect(),
                    )
                })
                .collect()
        })
    };
    Policy {
        kind: PolicyKind::NetworkPolicy,
        name: format!("{}/{}", policy.namespace, policy.name),
        origin: policy.origin.clone(),
        subject: interner.subjects.intern(Subject::PodsInNamespace {
            namespace: policy.namespace.clone(),
            selector: policy.pod_selector.clone(),
        }),
        ingress: rules(PolicyType::Ingress),
        egress: rules(PolicyType::Egress),
    }
}

/// One NetworkPolicy peer. Under Cilium an `ipBlock` becomes a CIDR identity, which never
/// matches a pod or a node (see [`netfence_model::cilium::Cni::Cilium`]).
fn compile_peer(peer: &NpPeer, policy_namespace: &str, inventory: &Inventory) -> Peer {
    match peer {
        NpPeer::Pods {
            namespace_selector,
            pod_selector,
        } => Peer::Pods {
            namespaces: match namespace_selector {
                Some(selector) => NamespaceMatch::Selector(selector.clone()),
                None => NamespaceMatch::Named(policy_namespace.to_string()),
            },
            pods: pod_selector.clone(),
        },
        NpPeer::IpBlock { cidr, except } if !inventory.cni.cni.ip_block_matches_pods() => {
            crate::cilium::outside_cluster(*cidr, except, inventory)
        }
        NpPeer::IpBlock { cidr, except } => Peer::Net {
            net: *cidr,
            except: except.clone(),
        },
    }
}
