//! The policy IR: ordered tiers of ordered policies of ordered rules.
//!
//! Every policy language compiles into this one shape. Kubernetes NetworkPolicies form the
//! tier `default` (the name and place Calico gives them: felix evaluates Kubernetes policies
//! in tier `default` at order 1000); each is a list of Allow rules, and an endpoint that any of
//! them selects is denied at the end of the tier when none allowed the connection.

use ipnet::IpNet;
use netfence_model::{
    Inventory, NetworkPolicy, NpPeer, NpPortSpec, Origin, PolicyType, PortRange, Protocol,
};
use netfence_selector::LabelSelector;
use serde::Serialize;
use std::fmt;

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
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
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
    /// Policies in evaluation order.
    pub policies: Vec<Policy>,
}

/// Which endpoints a policy applies to.
#[derive(Clone, Debug)]
pub enum Subject {
    /// Pods of one namespace matching a selector.
    PodsInNamespace {
        /// The namespace.
        namespace: String,
        /// The pod selector.
        selector: LabelSelector,
    },
}

/// One compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Source language.
    pub kind: PolicyKind,
    /// `namespace/name` or `name`.
    pub name: String,
    /// Where it was read from.
    pub origin: Origin,
    /// Which endpoints it applies to.
    pub subject: Subject,
    /// Ingress rules, or `None` when the policy does not apply to ingress.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules, or `None` when the policy does not apply to egress.
    pub egress: Option<Vec<Rule>>,
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
#[derive(Clone, Debug)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// Peers, OR-ed; empty = any peer.
    pub peers: Vec<Peer>,
    /// Ports, OR-ed; empty = any connection.
    pub ports: Vec<PortMatch>,
}

/// Which namespaces a pod peer may be in.
#[derive(Clone, Debug)]
pub enum NamespaceMatch {
    /// Exactly this namespace.
    Named(String),
    /// Namespaces whose labels match.
    Selector(LabelSelector),
}

/// A peer of a rule.
#[derive(Clone, Debug)]
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
}

/// A port condition.
#[derive(Clone, Debug)]
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

/// Compile the inventory's policies into tiers.
pub fn compile(inventory: &Inventory) -> Vec<Tier> {
    let policies = inventory
        .network_policies
        .iter()
        .map(compile_network_policy)
        .collect::<Vec<_>>();
    if policies.is_empty() {
        return Vec::new();
    }
    vec![Tier {
        name: "default".into(),
        end: TierEnd::Deny,
        policies,
    }]
}

fn compile_network_policy(policy: &NetworkPolicy) -> Policy {
    let rules = |direction: PolicyType| {
        policy.applies_to(direction).then(|| {
            policy
                .rules(direction)
                .iter()
                .map(|rule| Rule {
                    action: Action::Allow,
                    peers: rule
                        .peers
                        .iter()
                        .map(|peer| compile_peer(peer, &policy.namespace))
                        .collect(),
                    ports: rule
                        .ports
                        .iter()
                        .map(|port| match &port.port {
                            NpPortSpec::All => PortMatch::Protocol(port.protocol),
                            NpPortSpec::Range(range) => PortMatch::Range(port.protocol, *range),
                            NpPortSpec::Named(name) => {
                                PortMatch::Named(port.protocol, name.clone())
                            }
                        })
                        .collect(),
                })
                .collect()
        })
    };
    Policy {
        kind: PolicyKind::NetworkPolicy,
        name: format!("{}/{}", policy.namespace, policy.name),
        origin: policy.origin.clone(),
        subject: Subject::PodsInNamespace {
            namespace: policy.namespace.clone(),
            selector: policy.pod_selector.clone(),
        },
        ingress: rules(PolicyType::Ingress),
        egress: rules(PolicyType::Egress),
    }
}

fn compile_peer(peer: &NpPeer, policy_namespace: &str) -> Peer {
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
        NpPeer::IpBlock { cidr, except } => Peer::Net {
            net: *cidr,
            except: except.clone(),
        },
    }
}
