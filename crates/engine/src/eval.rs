//! Evaluation: verdicts with explanations, and allowed-connection sets.
//!
//! A connection is allowed iff the source's egress allows it (when the source is a pod) and
//! the destination's ingress allows it (when the destination is a pod). Each direction walks
//! the tiers in order; within a tier, the policies that select the endpoint, in order; within
//! a policy, its rules in order. Allow and Deny decide, Pass leaves the tier, Log goes on. A
//! tier that selected the endpoint and decided nothing applies its end action; after the last
//! tier the endpoint's profile allows (Kubernetes: a pod no policy selects is not isolated).

use crate::connset::{ConnSet, PortSet};
use crate::ir::{
    compile, Action, Direction, NamespaceMatch, Peer, PolicyKind, PortMatch, Rule, Subject, Tier,
    TierEnd,
};
use netfence_model::{Inventory, Origin, Pod, PodId, PolicyType, Protocol};
use serde::Serialize;
use std::net::IpAddr;

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// A pod of the inventory.
    Pod(PodId),
    /// An address that belongs to no pod.
    Address(IpAddr),
}

/// The compiled model: the inventory plus its tiers, with each pod's selecting policies
/// precomputed per direction.
pub struct Engine {
    inventory: Inventory,
    tiers: Vec<Tier>,
    /// For each pod, for ingress (0) and egress (1): (tier, policy) indices in evaluation order.
    selecting: Vec<[Vec<(usize, usize)>; 2]>,
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        PolicyType::Ingress => 0,
        PolicyType::Egress => 1,
    }
}

/// A reference to one rule, for explanations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// Tier name.
    pub tier: String,
    /// Policy language.
    pub kind: PolicyKind,
    /// Policy name (`namespace/name`).
    pub policy: String,
    /// Index of the rule within its direction.
    pub rule: usize,
    /// The rule's action.
    pub action: Action,
    /// Where the policy was read from.
    #[serde(serialize_with = "serialize_origin")]
    pub origin: Origin,
}

fn serialize_origin<S: serde::Serializer>(origin: &Origin, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}:{}", origin.file, origin.line))
}

/// A reference to a policy that selects an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Tier name.
    pub tier: String,
    /// Policy language.
    pub kind: PolicyKind,
    /// Policy name.
    pub policy: String,
}

/// How one direction was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// The endpoint is not a pod (or is a hostNetwork pod): pod policy does not apply.
    NotApplicable,
    /// No policy selects the endpoint for this direction: allowed.
    NotIsolated,
    /// A rule decided (Allow or Deny).
    Rule {
        /// The deciding rule.
        rule: RuleRef,
    },
    /// A tier selected the endpoint and no rule matched: denied at the end of the tier.
    EndOfTier {
        /// The tier.
        tier: String,
    },
    /// Every tier passed or did not decide: the profile allows.
    DefaultAllow,
    /// Source and destination are the same pod.
    SamePod,
}

/// The verdict for one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectionVerdict {
    /// Ingress or Egress.
    pub direction: PolicyType,
    /// Whether this direction allows the connection.
    pub allowed: bool,
    /// The endpoint whose policies were evaluated (`ns/pod`), if a pod.
    pub endpoint: Option<String>,
    /// Policies that select the endpoint for this direction.
    pub selected_by: Vec<PolicyRef>,
    /// Rules that matched and did not end evaluation (Pass, Log), in order.
    pub passed_through: Vec<RuleRef>,
    /// What decided.
    pub outcome: Outcome,
}

/// The verdict for a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Allowed in both directions.
    pub allowed: bool,
    /// Egress at the source.
    pub egress: DirectionVerdict,
    /// Ingress at the destination.
    pub ingress: DirectionVerdict,
}

impl Engine {
    /// Compile the inventory.
    pub fn new(inventory: Inventory) -> Self {
        let tiers = compile(&inventory);
        let selecting = inventory
            .pods
            .iter()
            .map(|pod| {
                let mut per_direction: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
                if pod.host_network {
                    return per_direction;
                }
                for (t, tier) in tiers.iter().enumerate() {
                    for (p, policy) in tier.policies.iter().enumerate() {
                        if !subject_selects(&policy.subject, pod) {
                            continue;
                        }
                        for direction in [PolicyType::Ingress, PolicyType::Egress] {
                            if policy.rules(direction).is_some() {
                                per_direction[direction_index(direction)].push((t, p));
                            }
                        }
                    }
                }
                per_direction
            })
            .collect();
        Engine {
            inventory,
            tiers,
            selecting,
        }
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The compiled tiers.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The (tier, policy) indices of the policies that select `pod` for `direction`, in
    /// evaluation order; empty when the pod is not isolated (or is a hostNetwork pod).
    pub fn selecting(&self, pod: PodId, direction: Direction) -> &[(usize, usize)] {
        &self.selecting[pod][direction_index(direction)]
    }

    /// Whether one rule peer matches an endpoint (selectors against labels, CIDRs against
    /// real addresses).
    pub fn peer_matches(&self, peer: &Peer, endpoint: Endpoint) -> bool {
        self.peer_is(peer, endpoint)
    }

    /// An address as an endpoint: the pod that owns it, else the bare address.
    pub fn endpoint_for_ip(&self, ip: IpAddr) -> Endpoint {
        self.inventory
            .pod_by_ip(ip)
            .map_or(Endpoint::Address(ip), Endpoint::Pod)
    }

    /// Display name: `ns/pod` or the address.
    pub fn endpoint_name(&self, endpoint: Endpoint) -> String {
        match endpoint {
            Endpoint::Pod(id) => self.inventory.pods[id].key(),
            Endpoint::Address(ip) => ip.to_string(),
        }
    }

    /// Whether `src` may open a connection to `dst` on (protocol, port).
    pub fn allowed(&self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: u16) -> bool {
        if src == dst {
            return true;
        }
        let conn = Conn {
            protocol,
            port,
            dst,
        };
        let egress_ok = match src {
            Endpoint::Pod(id) => self.walk(PolicyType::Egress, id, dst, &conn, None),
            Endpoint::Address(_) => true,
        };
        egress_ok
            && match dst {
                Endpoint::Pod(id) => self.walk(PolicyType::Ingress, id, src, &conn, None),
                Endpoint::Address(_) => true,
            }
    }

    /// The verdict with its explanation.
    pub fn explain(&self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: u16) -> Verdict {
        let conn = Conn {
            protocol,
            port,
            dst,
        };
        let direction = |direction: PolicyType, subject: Endpoint, peer: Endpoint| {
            let mut verdict = DirectionVerdict {
                direction,
                allowed: true,
                endpoint: None,
                selected_by: Vec::new(),
                passed_through: Vec::new(),
                outcome: Outcome::NotApplicable,
            };
            if let Endpoint::Pod(id) = subject {
                verdict.endpoint = Some(self.inventory.pods[id].key());
                verdict.selected_by = self.selecting[id][direction_index(direction)]
                    .iter()
                    .map(|&(t, p)| PolicyRef {
                        tier: self.tiers[t].name.clone(),
                        kind: self.tiers[t].policies[p].kind,
                        policy: self.tiers[t].policies[p].name.clone(),
                    })
                    .collect();
                if src == dst {
                    verdict.outcome = Outcome::SamePod;
                } else if !self.inventory.pods[id].host_network {
                    let mut trace = Trace::default();
                    verdict.allowed = self.walk(direction, id, peer, &conn, Some(&mut trace));
                    verdict.passed_through = trace.passed_through;
                    verdict.outcome = trace.outcome.unwrap_or(Outcome::NotIsolated);
                }
            }
            verdict
        };
        let egress = direction(PolicyType::Egress, src, dst);
        let ingress = direction(PolicyType::Ingress, dst, src);
        Verdict {
            allowed: egress.allowed && ingress.allowed,
            egress,
            ingress,
        }
    }

    /// Every connection `src` may open to `dst`.
    pub fn allowed_conns(&self, src: Endpoint, dst: Endpoint) -> ConnSet {
        if src == dst {
            return ConnSet::all();
        }
        let egress = match src {
            Endpoint::Pod(id) => self.walk_set(PolicyType::Egress, id, dst, dst),
            Endpoint::Address(_) => ConnSet::all(),
        };
        if egress.is_empty() {
            return egress;
        }
        let ingress = match dst {
            Endpoint::Pod(id) => self.walk_set(PolicyType::Ingress, id, src, dst),
            Endpoint::Address(_) => ConnSet::all(),
        };
        egress.intersect(&ingress)
    }

    fn rule_ref(&self, t: usize, p: usize, r: usize, action: Action) -> RuleRef {
        let policy = &self.tiers[t].policies[p];
        RuleRef {
            tier: self.tiers[t].name.clone(),
            kind: policy.kind,
            policy: policy.name.clone(),
            rule: r,
            action,
            origin: policy.origin.clone(),
        }
    }

    /// Walk the tiers for one direction at pod `subject` against `peer`.
    fn walk(
        &self,
        direction: Direction,
        subject: PodId,
        peer: Endpoint,
        conn: &Conn,
        mut trace: Option<&mut Trace>,
    ) -> bool {
        let selecting = &self.selecting[subject][direction_index(direction)];
        let mut i = 0;
        while i < selecting.len() {
            let tier_index = selecting[i].0;
            let tier = &self.tiers[tier_index];
            let mut passed = false;
            'tier: while i < selecting.len() && selecting[i].0 == tier_index {
                let (t, p) = selecting[i];
                i += 1;
                let rules = self.tiers[t].policies[p].rules(direction).unwrap_or(&[]);
                for (r, rule) in rules.iter().enumerate() {
                    if !self.rule_peer_matches(rule, peer)
                        || !port_matches(rule, &self.inventory, conn)
                    {
                        continue;
                    }
                    match rule.action {
                        Action::Allow | Action::Deny => {
                            if let Some(trace) = trace.as_deref_mut() {
                                trace.outcome = Some(Outcome::Rule {
                                    rule: self.rule_ref(t, p, r, rule.action),
                                });
                            }
                            return rule.action == Action::Allow;
                        }
                        Action::Pass => {
                            if let Some(trace) = trace.as_deref_mut() {
                                trace
                                    .passed_through
                                    .push(self.rule_ref(t, p, r, rule.action));
                            }
                            passed = true;
                            break 'tier;
                        }
                        Action::Log => {
                            if let Some(trace) = trace.as_deref_mut() {
                                trace
                                    .passed_through
                                    .push(self.rule_ref(t, p, r, rule.action));
                            }
                        }
                    }
                }
            }
            while i < selecting.len() && selecting[i].0 == tier_index {
                i += 1;
            }
            if !passed && tier.end == TierEnd::Deny {
                if let Some(trace) = trace.as_deref_mut() {
                    trace.outcome = Some(Outcome::EndOfTier {
                        tier: tier.name.clone(),
                    });
                }
                return false;
            }
        }
        if let Some(trace) = trace {
            trace.outcome = Some(if selecting.is_empty() {
                Outcome::NotIsolated
            } else {
                Outcome::DefaultAllow
            });
        }
        true
    }

    /// The same walk over whole connection sets: what remains undecided flows down.
    fn walk_set(
        &self,
        direction: Direction,
        subject: PodId,
        peer: Endpoint,
        dst: Endpoint,
    ) -> ConnSet {
        let selecting = &self.selecting[subject][direction_index(direction)];
        let mut allowed = ConnSet::empty();
        let mut remaining = ConnSet::all();
        let mut i = 0;
        while i < selecting.len() {
            let tier_index = selecting[i].0;
            let tier = &self.tiers[tier_index];
            let mut undecided = remaining.clone();
            let mut passed = ConnSet::empty();
            while i < selecting.len() && selecting[i].0 == tier_index {
                let (t, p) = selecting[i];
                i += 1;
                let rules = self.tiers[t].policies[p].rules(direction).unwrap_or(&[]);
                for rule in rules {
                    if undecided.is_empty() {
                        break;
                    }
                    if !self.rule_peer_matches(rule, peer) {
                        continue;
                    }
                    let matched = rule_conns(rule, &self.inventory, dst).intersect(&undecided);
                    match rule.action {
                        Action::Allow => allowed = allowed.union(&matched),
                        Action::Deny => {}
                        Action::Pass => passed = passed.union(&matched),
                        Action::Log => continue,
                    }
                    undecided = undecided.subtract(&matched);
                }
            }
            remaining = match tier.end {
                TierEnd::Deny => passed,
                TierEnd::Pass => passed.union(&undecided),
            };
        }
        allowed.union(&remaining)
    }

    fn rule_peer_matches(&self, rule: &Rule, peer: Endpoint) -> bool {
        rule.peers.is_empty() || rule.peers.iter().any(|p| self.peer_is(p, peer))
    }

    fn peer_is(&self, peer: &Peer, endpoint: Endpoint) -> bool {
        match (peer, endpoint) {
            (Peer::Pods { namespaces, pods }, Endpoint::Pod(id)) => {
                let pod = &self.inventory.pods[id];
                let namespace_ok = match namespaces {
                    NamespaceMatch::Named(name) => &pod.namespace == name,
                    NamespaceMatch::Selector(selector) => {
                        selector.matches(self.inventory.namespace_labels(&pod.namespace))
                    }
                };
                namespace_ok && pods.matches(&pod.labels)
            }
            (Peer::Pods { .. }, Endpoint::Address(_)) => false,
            (Peer::Net { net, except }, Endpoint::Pod(id)) => {
                let pod = &self.inventory.pods[id];
                // An invented address is unknown: it matches no ipBlock.
                !pod.synthetic_ip && pod.ips.iter().any(|ip| in_block(*ip, net, except))
            }
            (Peer::Net { net, except }, Endpoint::Address(ip)) => in_block(ip, net, except),
        }
    }
}

#[derive(Default)]
struct Trace {
    passed_through: Vec<RuleRef>,
    outcome: Option<Outcome>,
}

struct Conn {
    protocol: Protocol,
    port: u16,
    dst: Endpoint,
}

fn in_block(ip: IpAddr, net: &ipnet::IpNet, except: &[ipnet::IpNet]) -> bool {
    net.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

fn subject_selects(subject: &Subject, pod: &Pod) -> bool {
    match subject {
        Subject::PodsInNamespace {
            namespace,
            selector,
        } => &pod.namespace == namespace && selector.matches(&pod.labels),
    }
}

/// A named port resolves against the destination pod's container ports; it never matches an
/// address that is not a pod.
fn resolve_named(
    inventory: &Inventory,
    dst: Endpoint,
    name: &str,
    protocol: Protocol,
) -> Option<u16> {
    match dst {
        Endpoint::Pod(id) => inventory.pods[id].named_port(name, protocol),
        Endpoint::Address(_) => None,
    }
}

fn port_matches(rule: &Rule, inventory: &Inventory, conn: &Conn) -> bool {
    rule.ports.is_empty()
        || rule.ports.iter().any(|port| match port {
            PortMatch::Protocol(p) => *p == conn.protocol,
            PortMatch::Range(p, range) => *p == conn.protocol && range.contains(conn.port),
            PortMatch::Named(p, name) => {
                *p == conn.protocol
                    && resolve_named(inventory, conn.dst, name, *p) == Some(conn.port)
            }
        })
}

fn rule_conns(rule: &Rule, inventory: &Inventory, dst: Endpoint) -> ConnSet {
    if rule.ports.is_empty() {
        return ConnSet::all();
    }
    rule.ports.iter().fold(ConnSet::empty(), |acc, port| {
        let conns = match port {
            PortMatch::Protocol(p) => ConnSet::protocol(*p),
            PortMatch::Range(p, range) => ConnSet::ports(*p, PortSet::range(*range)),
            PortMatch::Named(p, name) => match resolve_named(inventory, dst, name, *p) {
                Some(port) => ConnSet::single(*p, port),
                None => ConnSet::empty(),
            },
        };
        acc.union(&conns)
    })
}
