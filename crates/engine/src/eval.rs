//! Evaluation: verdicts with explanations, and allowed-connection sets.
//!
//! A connection is allowed iff the source's egress allows it (when the source is a pod) and
//! the destination's ingress allows it (when the destination is a pod). Each direction walks
//! the tiers in order; within a tier, the policies that select the endpoint, in order; within
//! a policy, its rules in order. Allow and Deny decide, Pass leaves the tier, Log goes on. A
//! tier that selected the endpoint and decided nothing applies its end action; after the last
//! tier the endpoint's profile allows (Kubernetes: a pod no policy selects is not isolated).

use crate::connset::{ConnSet, PortSet};
use crate::decide::PolicyId;
use crate::decide::RuleId;
use crate::ir::{
    compile, Action, CalicoEntity, CalicoNamespaceScope, Direction, NamespaceMatch, Peer,
    PolicyKind, PortMatch, Rule, Subject, Tier,
};
use crate::walk::{walk, Walker};
use netfence_model::{Inventory, Origin, Pod, PodId, PodRange, PolicyType, Protocol};
use netfence_selector::{Labels, WithLabels};
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
    /// Shared with the engines [`Engine::without_policy`] derives.
    pub(crate) inventory: std::sync::Arc<Inventory>,
    /// Shared with the engines [`Engine::rebuilt`] makes when no policy changed.
    pub(crate) tiers: std::sync::Arc<Vec<Tier>>,
    /// For each pod, for ingress (0) and egress (1): the selecting policies in evaluation order.
    /// Equal lists are one allocation (pods of a workload share theirs), and an engine from
    /// [`Engine::rebuilt`] shares the lists of the pods it kept.
    pub(crate) selecting: crate::chunked::Chunked<[Selection; 2]>,
    /// The distinct peers and subjects of the tiers' policies, shared with the engines built
    /// from this one ([`crate::resolve`]).
    pub(crate) interner: std::sync::Arc<crate::resolve::Interner>,
    /// This engine's peers and subjects resolved, each once ([`crate::resolve`]).
    pub(crate) cache: crate::resolve::Resolved,
    /// [`Engine::pod_classes`], computed on first use.
    pub(crate) pod_classes: std::sync::OnceLock<crate::pod_classes::PodClasses>,
}

/// One pod's selecting policies for one direction, in evaluation order (tier, then place in
/// the tier: [`PolicyId`]'s order).
pub(crate) type Selection = std::sync::Arc<[PolicyId]>;

/// Which policies select which pods, per direction: for each pod, for ingress (0) and egress
/// (1), the selecting policies in evaluation order. Namespaced subjects only look at the
/// pods of their namespace (pods are sorted by namespace), so this stays linear in pods for
/// clusters with thousands of namespaces. With more than a little work and two cores, the
/// policies are cut in two runs of about equal candidate counts, each run matched on its own
/// thread, and each pod's lists joined in order: the same lists as one thread makes.
fn selections(
    tiers: &[Tier],
    inventory: &Inventory,
    resolved: &crate::resolve::Resolved,
) -> Vec<[Vec<PolicyId>; 2]> {
    /// Below this many (policy, candidate pod) tests, one thread.
    const MIN_PARALLEL_CANDIDATES: usize = 50_000;
    // (tier, policy, the policy, the pods it may select)
    type Entry<'a> = (usize, usize, &'a crate::ir::Policy, PodRange);
    let policies: Vec<Entry<'_>> = tiers
        .iter()
        .enumerate()
        .flat_map(|(t, tier)| {
            tier.policies.iter().enumerate().map(move |(p, policy)| {
                let candidates = subject_candidates(&policy.subject, inventory);
                (t, p, &**policy, candidates)
            })
        })
        .collect();
    let select = |run: &[Entry<'_>]| {
        let mut selecting: Vec<[Vec<PolicyId>; 2]> =
            vec![[Vec::new(), Vec::new()]; inventory.pods().len()];
        for (t, p, policy, _) in run {
            let (t, p) = (*t, *p);
            for &id in resolved.subject_pods(&policy.subject, inventory) {
                for direction in [PolicyType::Ingress, PolicyType::Egress] {
                    if policy.rules(direction).is_some() {
                        selecting[id][direction_index(direction)].push(PolicyId::new(t, p));
                    }
                }
            }
        }
        selecting
    };
    let total: usize = policies.iter().map(|entry| entry.3.len()).sum();
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if !two_cores || total < MIN_PARALLEL_CANDIDATES || policies.len() < 2 {
        return select(&policies);
    }
    // The first policy at which the running count reaches half the total starts run two.
    let mut sum = 0;
    let cut = policies
        .iter()
        .position(|entry| {
            sum += entry.3.len();
            sum * 2 >= total
        })
        .map_or(policies.len(), |at| at + 1)
        .clamp(1, policies.len() - 1);
    let (first, second) = policies.split_at(cut);
    let (mut selecting, later) = std::thread::scope(|scope| {
        let later = scope.spawn(|| select(second));
        let selecting = select(first);
        let later = later
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (selecting, later)
    });
    for (lists, more) in selecting.iter_mut().zip(later) {
        for (list, more) in lists.iter_mut().zip(more) {
            if list.is_empty() {
                *list = more;
            } else {
                list.extend(more);
            }
        }
    }
    selecting
}

/// Per-pod selection lists as shared [`Selection`]s, equal lists one allocation.
pub(crate) fn shared_selections(
    lists: Vec<[Vec<PolicyId>; 2]>,
) -> crate::chunked::Chunked<[Selection; 2]> {
    let mut distinct: netfence_model::net::FastMap<Vec<PolicyId>, Selection> =
        netfence_model::net::FastMap::default();
    let mut share = |list: Vec<PolicyId>| -> Selection {
        if let Some(found) = distinct.get(&list) {
            return std::sync::Arc::clone(found);
        }
        let shared: Selection = std::sync::Arc::from(list.as_slice());
        distinct.insert(list, std::sync::Arc::clone(&shared));
        shared
    };
    lists
        .into_iter()
        .map(|[ingress, egress]| [share(ingress), share(egress)])
        .collect()
}

/// Maps selection lists each distinct list once, by its allocation: lists shared before stay
/// shared. Keyed by address, so every list given must stay alive while the remap is used
/// (callers borrow them from one engine's `selecting` for the whole call). `map` writes a
/// list's image into the (cleared) buffer it is given, reused between lists.
pub(crate) struct SelectionRemap<F> {
    done: netfence_model::net::FastMap<usize, Selection>,
    buffer: Vec<PolicyId>,
    map: F,
}

impl<F: FnMut(&[PolicyId], &mut Vec<PolicyId>)> SelectionRemap<F> {
    pub(crate) fn new(map: F) -> Self {
        SelectionRemap {
            done: netfence_model::net::FastMap::default(),
            buffer: Vec::new(),
            map,
        }
    }

    /// `list` mapped, computed on its allocation's first visit.
    pub(crate) fn remap(&mut self, list: &Selection) -> Selection {
        let key = std::sync::Arc::as_ptr(list).cast::<()>() as usize;
        let (map, buffer) = (&mut self.map, &mut self.buffer);
        std::sync::Arc::clone(self.done.entry(key).or_insert_with(|| {
            buffer.clear();
            map(list, buffer);
            std::sync::Arc::from(buffer.as_slice())
        }))
    }
}

/// `selecting` with each distinct list mapped once by `map` (lists shared before stay
/// shared).
pub(crate) fn remapped_selections(
    selecting: &crate::chunked::Chunked<[Selection; 2]>,
    map: impl FnMut(&[PolicyId], &mut Vec<PolicyId>),
) -> crate::chunked::Chunked<[Selection; 2]> {
    let mut remap = SelectionRemap::new(map);
    selecting
        .iter()
        .map(|[ingress, egress]| [remap.remap(ingress), remap.remap(egress)])
        .collect()
}

pub(crate) fn direction_index(direction: Direction) -> usize {
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
    /// Rules walked up to the decision (the deciding one included) that look at addresses
    /// (`ipBlock`, Calico `nets`/`notNets`, selectors over network sets) while the other side of
    /// the connection, or this endpoint for a Calico rule's own-endpoint condition, is a pod
    /// whose address is synthetic. An invented address matches no CIDR, so each of these rules
    /// was judged as if the pod were outside every range: with the pod's real address the
    /// verdict could differ. Omitted from JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_address_rules: Vec<RuleRef>,
    /// The policy that decided this direction, by id: the deciding rule's; at a tier's end,
    /// the first policy of that tier that selected the endpoint; when every tier passed, the
    /// last Pass (or Log) rule's. `None` when no policy selects the endpoint. Not serialized
    /// (the outcome says it in words).
    #[serde(skip)]
    pub deciding_policy: Option<PolicyId>,
}

/// A verdict as the rule places that decided it, without words ([`Engine::trace`]); valid
/// for the engine that made it. Equal traces read alike ([`Engine::describe`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VerdictTrace<'e> {
    /// Egress at the source.
    pub egress: DirectionTrace<'e>,
    /// Ingress at the destination.
    pub ingress: DirectionTrace<'e>,
}

impl VerdictTrace<'_> {
    /// Allowed in both directions.
    pub fn allowed(&self) -> bool {
        self.egress.allowed && self.ingress.allowed
    }
}

impl DirectionTrace<'_> {
    /// Whether this direction allows the connection.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The rule that decided this direction, when a rule did (not a tier's end, not the
    /// absence of policy).
    pub fn deciding_rule(&self) -> Option<RuleId> {
        match self.outcome {
            TracedOutcome::Rule(at, _) => Some(at),
            _ => None,
        }
    }

    /// The same trace without the pod it was evaluated at: it then equals the trace of any
    /// endpoint decided by the same rules, and describes with `endpoint: None`.
    pub fn without_endpoint(mut self) -> Self {
        self.subject = None;
        self
    }
}

/// One direction of a [`VerdictTrace`] ([`Engine::describe_direction`] gives its words).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirectionTrace<'e> {
    direction: PolicyType,
    allowed: bool,
    subject: Option<PodId>,
    selecting: &'e [PolicyId],
    outcome: TracedOutcome,
    passed_through: Vec<(RuleId, Action)>,
    unknown_address: Vec<(RuleId, Action)>,
    deciding_policy: Option<PolicyId>,
}

/// [`Outcome`] as places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TracedOutcome {
    NotApplicable,
    NotIsolated,
    Rule(RuleId, Action),
    EndOfTier(usize),
    DefaultAllow,
    SamePod,
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
        let interner = crate::resolve::Interner::default();
        let tiers = compile(&inventory, &interner);
        let cache = crate::resolve::Resolved::new();
        let selecting = selections(&tiers, &inventory, &cache);
        Engine {
            inventory: std::sync::Arc::new(inventory),
            tiers: std::sync::Arc::new(tiers),
            selecting: shared_selections(selecting),
            cache,
            interner: std::sync::Arc::new(interner),
            pod_classes: Default::default(),
        }
    }

    /// This engine with one compiled policy left out: how the cluster would answer without
    /// that policy object, for the price of copying the tiers instead of recompiling. The
    /// inventory is shared and still lists the policy; only evaluation changes (the audit's
    /// shadow check asks this once per policy). `None` when there is no such policy.
    pub fn without_policy(&self, id: PolicyId) -> Option<Engine> {
        let (tier, policy) = (id.tier(), id.index());
        if self.tiers.get(tier)?.policies.len() <= policy {
            return None;
        }
        let mut tiers = Vec::clone(&self.tiers);
        tiers[tier].remove(policy);
        // Later policies of the same tier move up one place.
        let shift = |list: &[PolicyId], out: &mut Vec<PolicyId>| {
            out.extend(list.iter().filter(|&&entry| entry != id).map(|&entry| {
                if entry.tier() == tier && entry.index() > policy {
                    PolicyId::new(tier, entry.index() - 1)
                } else {
                    entry
                }
            }));
        };
        Some(Engine {
            inventory: std::sync::Arc::clone(&self.inventory),
            tiers: std::sync::Arc::new(tiers),
            selecting: remapped_selections(&self.selecting, shift),
            // The same inventory: every peer resolves alike.
            cache: self.cache.carried(),
            interner: std::sync::Arc::clone(&self.interner),
            pod_classes: Default::default(),
        })
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
    pub fn selecting(&self, pod: PodId, direction: Direction) -> &[PolicyId] {
        &self.selecting[pod][direction_index(direction)]
    }

    /// Whether one rule peer matches an endpoint (selectors against labels, CIDRs against
    /// real addresses).
    pub fn peer_matches(&self, peer: &Peer, endpoint: Endpoint) -> bool {
        self.peer_is(peer, endpoint)
    }

    /// Whether a rule's protocol, family and port conditions accept (protocol, port) to `dst`.
    pub(crate) fn rule_accepts(
        &self,
        rule: &Rule,
        probe: crate::ports::ProbePort,
        dst: Endpoint,
    ) -> bool {
        port_matches(
            rule,
            &self.inventory,
            &Conn {
                protocol: probe.protocol,
                port: probe.port,
                dst,
            },
        )
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
            Endpoint::Pod(id) => self.inventory.pods()[id].key(),
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
        self.describe(&self.trace(src, dst, protocol, port))
    }

    /// The verdict as rule places, without words: what [`Engine::explain`] says, cheap to
    /// compute, compare and hash (no text is made). [`Engine::describe`] gives the words; equal
    /// traces describe equally, so a caller explaining many connections that read alike
    /// describes each distinct trace once.
    pub fn trace(
        &self,
        src: Endpoint,
        dst: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> VerdictTrace<'_> {
        let conn = Conn {
            protocol,
            port,
            dst,
        };
        let direction = |direction: PolicyType, subject: Endpoint, peer: Endpoint| {
            let mut side = DirectionTrace {
                direction,
                allowed: true,
                subject: None,
                selecting: &[],
                outcome: TracedOutcome::NotApplicable,
                passed_through: Vec::new(),
                unknown_address: Vec::new(),
                deciding_policy: None,
            };
            if let Endpoint::Pod(id) = subject {
                side.subject = Some(id);
                side.selecting = &self.selecting[id][direction_index(direction)];
                if src == dst {
                    side.outcome = TracedOutcome::SamePod;
                } else if !self.inventory.pods()[id].host_network {
                    let mut trace = Trace {
                        addresses: true,
                        ..Trace::default()
                    };
                    side.allowed = self.walk(direction, id, peer, &conn, Some(&mut trace));
                    side.deciding_policy = trace.deciding_policy(side.selecting);
                    side.outcome = match trace.decided {
                        Some(Decided::Rule(at, action)) => TracedOutcome::Rule(at, action),
                        Some(Decided::EndOfTier(tier)) => TracedOutcome::EndOfTier(tier),
                        None if side.selecting.is_empty() => TracedOutcome::NotIsolated,
                        None => TracedOutcome::DefaultAllow,
                    };
                    side.passed_through = trace.passed_through;
                    side.unknown_address = trace.unknown_address;
                }
            }
            side
        };
        VerdictTrace {
            egress: direction(PolicyType::Egress, src, dst),
            ingress: direction(PolicyType::Ingress, dst, src),
        }
    }

    /// A trace in words (what [`Engine::explain`] returns).
    pub fn describe(&self, trace: &VerdictTrace<'_>) -> Verdict {
        let (egress, ingress) = (
            self.describe_direction(&trace.egress),
            self.describe_direction(&trace.ingress),
        );
        Verdict {
            allowed: egress.allowed && ingress.allowed,
            egress,
            ingress,
        }
    }

    /// One direction of a trace in words.
    pub fn describe_direction(&self, side: &DirectionTrace<'_>) -> DirectionVerdict {
        let rule_ref = |&(at, action): &(RuleId, Action)| self.rule_ref(at, action);
        DirectionVerdict {
            direction: side.direction,
            allowed: side.allowed,
            endpoint: side.subject.map(|id| self.inventory.pods()[id].key()),
            selected_by: side
                .selecting
                .iter()
                .map(|&id| {
                    let tier = &self.tiers[id.tier()];
                    let policy = &tier.policies[id.index()];
                    PolicyRef {
                        tier: tier.name.clone(),
                        kind: policy.kind,
                        policy: policy.name.clone(),
                    }
                })
                .collect(),
            passed_through: side.passed_through.iter().map(rule_ref).collect(),
            outcome: match side.outcome {
                TracedOutcome::NotApplicable => Outcome::NotApplicable,
                TracedOutcome::NotIsolated => Outcome::NotIsolated,
                TracedOutcome::DefaultAllow => Outcome::DefaultAllow,
                TracedOutcome::SamePod => Outcome::SamePod,
                TracedOutcome::Rule(at, action) => Outcome::Rule {
                    rule: self.rule_ref(at, action),
                },
                TracedOutcome::EndOfTier(tier) => Outcome::EndOfTier {
                    tier: self.tiers[tier].name.clone(),
                },
            },
            unknown_address_rules: side.unknown_address.iter().map(rule_ref).collect(),
            deciding_policy: side.deciding_policy,
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

    fn rule_ref(&self, at: RuleId, action: Action) -> RuleRef {
        let tier = &self.tiers[at.policy().tier()];
        let policy = &tier.policies[at.policy().index()];
        RuleRef {
            tier: tier.name.clone(),
            kind: policy.kind,
            policy: policy.name.clone(),
            rule: at.rule(),
            action,
            origin: policy.origin.clone(),
        }
    }

    /// Walk the tiers for one direction at pod `subject` against `peer`, for one connection;
    /// with `trace`, record how it was decided.
    pub(crate) fn walk(
        &self,
        direction: Direction,
        subject: PodId,
        peer: Endpoint,
        conn: &Conn,
        trace: Option<&mut Trace>,
    ) -> bool {
        let selecting = &self.selecting[subject][direction_index(direction)];
        let mut walker = OneConnection {
            engine: self,
            subject,
            peer,
            conn,
            trace,
        };
        walk(&self.tiers, direction, selecting, &mut walker)
    }

    /// The same walk over whole connection sets: what remains undecided flows down.
    pub(crate) fn walk_set(
        &self,
        direction: Direction,
        subject: PodId,
        peer: Endpoint,
        dst: Endpoint,
    ) -> ConnSet {
        let selecting = &self.selecting[subject][direction_index(direction)];
        let mut walker = ConnectionSets {
            engine: self,
            subject,
            peer,
            dst,
        };
        walk(&self.tiers, direction, selecting, &mut walker)
    }

    /// Whether a rule's answer for this pair depends on an address netfence does not know: a
    /// peer that looks at addresses while `peer` is a pod with a synthetic address, or an
    /// own-endpoint condition that looks at addresses while `subject` has one.
    fn judged_without_address(&self, rule: &Rule, subject: PodId, peer: Endpoint) -> bool {
        let synthetic = |endpoint: Endpoint| match endpoint {
            Endpoint::Pod(id) => self.inventory.pods()[id].synthetic_ip,
            Endpoint::Address(_) => false,
        };
        (synthetic(peer) && rule.peers.iter().any(|p| self.looks_at_addresses(p)))
            || (synthetic(Endpoint::Pod(subject))
                && rule
                    .local
                    .as_ref()
                    .is_some_and(|l| self.looks_at_addresses(l)))
    }

    /// Whether a peer's answer can depend on an endpoint's address: CIDRs (`ipBlock`, Calico
    /// `nets`/`notNets`) and Calico selectors when network sets exist (their CIDRs join what
    /// the selectors match).
    pub fn looks_at_addresses(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Net { .. } => true,
            Peer::Calico(entity) => {
                !entity.nets.is_empty()
                    || !entity.not_nets.is_empty()
                    || ((entity.has_endpoint_selector() || entity.not_selector.is_some())
                        && !self.inventory.network_sets.is_empty())
            }
            Peer::Pods { .. } | Peer::Nodes(_) => false,
        }
    }

    /// The pods whose address is synthetic (no `status.podIP` in the input).
    pub fn synthetic_address_pods(&self) -> usize {
        self.inventory
            .pods()
            .iter()
            .filter(|p| p.synthetic_ip)
            .count()
    }

    /// Whether some rule's answer can depend on addresses ([`Engine::looks_at_addresses`]):
    /// then pods with synthetic addresses may be judged differently from the real cluster.
    pub fn has_address_rules(&self) -> bool {
        self.tiers.iter().any(|tier| {
            tier.policies.iter().any(|policy| {
                [&policy.ingress, &policy.egress]
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|rule| {
                        rule.peers
                            .iter()
                            .chain(rule.local.iter())
                            .any(|p| self.looks_at_addresses(p))
                    })
            })
        })
    }

    /// Whether the rule's peers match `peer` and its local condition matches `subject`.
    fn rule_peer_matches(&self, rule: &Rule, subject: PodId, peer: Endpoint) -> bool {
        (rule.peers.is_empty() || rule.peers.iter().any(|p| self.peer_is(p, peer)))
            && rule
                .local
                .as_ref()
                .is_none_or(|local| self.peer_is(local, Endpoint::Pod(subject)))
    }

    /// Whether a pod peer (namespaces and pod selector) matches `pod`; `namespace_ok`, when
    /// known, is [`Engine::peer_namespace_is`] of the pod's namespace.
    pub(crate) fn pod_peer_is(
        &self,
        namespaces: &NamespaceMatch,
        pods: &netfence_selector::LabelSelector,
        pod: &Pod,
        namespace_ok: Option<bool>,
    ) -> bool {
        // A host-network pod's traffic is its node's: pod selectors do not match it
        // (network-policy-api: "host-networked pods are not included in this type of
        // peer"; Calico and Cilium treat it as host traffic).
        if pod.host_network {
            return false;
        }
        namespace_ok.unwrap_or_else(|| self.peer_namespace_is(namespaces, &pod.namespace))
            && pods.matches(&pod.labels)
    }

    /// Whether a pod peer's namespaces include `namespace`.
    pub(crate) fn peer_namespace_is(&self, namespaces: &NamespaceMatch, namespace: &str) -> bool {
        namespaces.matches(namespace, || self.inventory.namespace_labels(namespace))
    }

    fn peer_is(&self, peer: &Peer, endpoint: Endpoint) -> bool {
        match (peer, endpoint) {
            (Peer::Pods { namespaces, pods }, Endpoint::Pod(id)) => {
                self.pod_peer_is(namespaces, pods, &self.inventory.pods()[id], None)
            }
            (Peer::Pods { .. }, Endpoint::Address(_)) => false,
            (Peer::Net { net, except }, Endpoint::Pod(id)) => {
                let pod = &*self.inventory.pods()[id];
                // An invented address is unknown: it matches no ipBlock.
                !pod.synthetic_ip && pod.ips.iter().any(|ip| in_block(*ip, net, except))
            }
            (Peer::Net { net, except }, Endpoint::Address(ip)) => in_block(ip, net, except),
            (Peer::Calico(entity), endpoint) => self.calico_entity_is(entity, endpoint, None),
            (Peer::Nodes(selector), Endpoint::Address(ip)) => self
                .inventory
                .nodes
                .iter()
                .any(|node| selector.matches(&node.labels) && node.addresses.contains(&ip)),
            (Peer::Nodes(selector), Endpoint::Pod(id)) => {
                // A host-network pod speaks with its node's address.
                let pod = &*self.inventory.pods()[id];
                pod.host_network
                    && self.inventory.nodes.iter().any(|node| {
                        selector.matches(&node.labels)
                            && (pod.node.as_deref() == Some(node.name.as_str())
                                || pod.ips.iter().any(|ip| node.addresses.contains(ip)))
                    })
            }
        }
    }

    /// Whether a pod of `namespace` is in a Calico entity's namespace scope (the part of
    /// [`Engine::calico_entity_is`] that depends only on the pod's namespace).
    pub(crate) fn calico_scope_admits(&self, entity: &CalicoEntity, namespace: &str) -> bool {
        self.calico_namespace_in_scope(&entity.scope, namespace)
    }

    /// Calico EntityRule semantics, as felix evaluates them: every field becomes a match on the
    /// packet's address (IP sets), so an endpoint matches a selector either as a workload
    /// endpoint whose labels match or because one of its addresses lies in the `nets` of a
    /// NetworkSet or GlobalNetworkSet the selector matches (docs.tigera.io "Global network
    /// set" and "Network set": when calculating the set of IPs that should match a selector,
    /// Calico includes the CIDRs of the network sets it matches, and matches packets by their
    /// addresses; felix/calc/rule_scanner.go turns selectors into IP sets).
    ///
    /// - `nets`/`notNets`: the endpoint's known addresses.
    /// - The positive selector ([`CalicoEntity::has_endpoint_selector`]): `selector`,
    ///   `serviceAccounts` and `namespaceSelector` within the scope, and in a namespaced policy
    ///   the policy's namespace as soon as any selector field is given, `notSelector` included
    ///   (libcalico-go `lib/backend/syncersv1/updateprocessors/rules.go`
    ///   `getEndpointSelector`, pinned by its `rules_test.go`: a destination with only a
    ///   `notSelector` in namespace2 gets `projectcalico.org/namespace == 'namespace2'`).
    /// - `notSelector` itself is not scoped (`rules.go` passes it through unchanged): a pod of
    ///   any namespace or an address in any network set it matches is excluded.
    /// - `services`: the pods that back the Service (their ports are the rule's ports, see
    ///   `ir.rs`); never a bare address.
    ///
    /// A pod whose address is synthetic (unknown) matches by its labels only: an invented
    /// address lies in no `nets` and no network set, as it matches no `ipBlock`. Host-network
    /// pods are not workload endpoints: only their addresses (and Services they back) match.
    ///
    /// `namespace_ok` is the answer of [`Engine::calico_scope_admits`] for the endpoint's
    /// namespace when it is a pod and the caller knows it (asked once per namespace).
    pub(crate) fn calico_entity_is(
        &self,
        entity: &CalicoEntity,
        endpoint: Endpoint,
        namespace_ok: Option<bool>,
    ) -> bool {
        let inventory = &self.inventory;
        let single: [IpAddr; 1];
        let (pod, addresses): (Option<&Pod>, &[IpAddr]) = match endpoint {
            Endpoint::Pod(id) => {
                let pod = &*inventory.pods()[id];
                (Some(pod), if pod.synthetic_ip { &[] } else { &pod.ips })
            }
            Endpoint::Address(ip) => {
                single = [ip];
                (None, &single)
            }
        };
        let in_nets = |nets: &[ipnet::IpNet]| {
            addresses
                .iter()
                .any(|ip| nets.iter().any(|n| n.contains(ip)))
        };
        if !entity.nets.is_empty() && !in_nets(&entity.nets) {
            return false;
        }
        if !entity.not_nets.is_empty() && in_nets(&entity.not_nets) {
            return false;
        }
        let workload = pod.filter(|p| !p.host_network);
        if entity.has_endpoint_selector() {
            let by_labels =
                workload.is_some_and(|pod| self.calico_pod_selected(entity, pod, namespace_ok));
            // A network set has no service account: libcalico-go `rules.go`
            // `parseServiceAccounts` turns `names` into `projectcalico.org/serviceaccount in
            // {…}`, which no set carries, and prefixes the selector's keys with `pcsa.`, which
            // no set's labels have; so only a selector that holds on no labels lets sets in.
            let accounts_ok = entity.service_accounts.as_ref().is_none_or(|accounts| {
                accounts.names.is_empty()
                    && accounts
                        .selector
                        .as_ref()
                        .is_none_or(|s| s.matches(&Labels::new()))
            });
            let by_address = accounts_ok
                && self.calico_sets_containing(addresses).any(|set| {
                    self.calico_set_in_scope(&entity.scope, set.namespace.as_deref())
                        && entity
                            .selector
                            .as_ref()
                            .is_none_or(|s| s.matches(&calico_set_labels(set)))
                });
            if !by_labels && !by_address {
                return false;
            }
        }
        if let Some(not) = &entity.not_selector {
            let by_labels = workload
                .is_some_and(|pod| with_calico_pod_labels(pod, |labels| not.matches_with(labels)));
            let by_address = self
                .calico_sets_containing(addresses)
                .any(|set| not.matches(&calico_set_labels(set)));
            if by_labels || by_address {
                return false;
            }
        }
        if let Some(service) = &entity.service {
            let backend = pod.is_some_and(|pod| {
                inventory
                    .service(&service.namespace, &service.name)
                    .is_some_and(|s| !s.ports.is_empty() && s.selects(pod))
            });
            if !backend {
                return false;
            }
        }
        true
    }

    /// Whether a workload endpoint matches an entity's positive selector by its labels:
    /// namespace in scope, `selector` and `serviceAccounts`.
    fn calico_pod_selected(
        &self,
        entity: &CalicoEntity,
        pod: &Pod,
        namespace_ok: Option<bool>,
    ) -> bool {
        if !namespace_ok
            .unwrap_or_else(|| self.calico_namespace_in_scope(&entity.scope, &pod.namespace))
        {
            return false;
        }
        if let Some(selector) = &entity.selector {
            if !with_calico_pod_labels(pod, |labels| selector.matches_with(labels)) {
                return false;
            }
        }
        if let Some(accounts) = &entity.service_accounts {
            if !accounts.names.is_empty() && !accounts.names.contains(&pod.service_account) {
                return false;
            }
            if let Some(selector) = &accounts.selector {
                let mut labels = self
                    .inventory
                    .service_account_labels(&pod.namespace, &pod.service_account);
                labels.insert("projectcalico.org/name".into(), pod.service_account.clone());
                if !selector.matches(&labels) {
                    return false;
                }
            }
        }
        true
    }

    /// The network sets (global and namespaced) whose `nets` contain one of `addresses`.
    fn calico_sets_containing<'a>(
        &'a self,
        addresses: &'a [IpAddr],
    ) -> impl Iterator<Item = &'a netfence_model::calico::NetworkSet> + 'a {
        self.inventory.network_sets.iter().filter(move |set| {
            set.nets
                .iter()
                .any(|net| addresses.iter().any(|ip| net.contains(ip)))
        })
    }

    fn calico_namespace_in_scope(&self, scope: &CalicoNamespaceScope, namespace: &str) -> bool {
        match scope {
            CalicoNamespaceScope::Same(ns) => ns == namespace,
            CalicoNamespaceScope::Any => true,
            CalicoNamespaceScope::Selector(selector) => {
                with_calico_namespace_labels(&self.inventory, namespace, |labels| {
                    selector.matches_namespace_with(Some(labels))
                })
            }
        }
    }

    /// Whether a network set (global when `namespace` is `None`) is in an entity's scope. A
    /// `namespaceSelector` sees a global set as a member of no namespace: `global()` selects it,
    /// and so does any selector that holds on an empty label set
    /// ([`netfence_selector::calico::Selector::matches_namespace_of`]).
    fn calico_set_in_scope(&self, scope: &CalicoNamespaceScope, namespace: Option<&str>) -> bool {
        match (scope, namespace) {
            (CalicoNamespaceScope::Selector(selector), None) => selector.matches_namespace_of(None),
            (CalicoNamespaceScope::Any, None) => true,
            (CalicoNamespaceScope::Same(_), None) => false,
            (scope, Some(ns)) => self.calico_namespace_in_scope(scope, ns),
        }
    }
}

/// The walk for one connection: a set is "this connection" or nothing.
struct OneConnection<'a> {
    engine: &'a Engine,
    subject: PodId,
    peer: Endpoint,
    conn: &'a Conn,
    trace: Option<&'a mut Trace>,
}

impl Walker for OneConnection<'_> {
    type Set = bool;
    fn full(&self) -> bool {
        true
    }
    fn none(&self) -> bool {
        false
    }
    fn matched(&mut self, at: RuleId, rule: &Rule, undecided: &bool) -> bool {
        let engine = self.engine;
        let ports_ok = port_matches(rule, &engine.inventory, self.conn);
        if let Some(trace) = self.trace.as_deref_mut() {
            if trace.addresses
                && ports_ok
                && engine.judged_without_address(rule, self.subject, self.peer)
            {
                trace.unknown_address.push((at, rule.action));
            }
        }
        *undecided && ports_ok && engine.rule_peer_matches(rule, self.subject, self.peer)
    }
    fn on_match(&mut self, at: RuleId, action: Action, _matched: &bool) {
        let Some(trace) = self.trace.as_deref_mut() else {
            return;
        };
        match action {
            Action::Allow | Action::Deny => trace.decided = Some(Decided::Rule(at, action)),
            Action::Pass | Action::Log => trace.passed_through.push((at, action)),
        }
    }
    fn on_end_of_tier(&mut self, tier: usize, denied: &bool) {
        if let Some(trace) = self.trace.as_deref_mut() {
            if *denied {
                trace.decided = Some(Decided::EndOfTier(tier));
            }
        }
    }
}

/// The walk over every connection at once.
struct ConnectionSets<'a> {
    engine: &'a Engine,
    subject: PodId,
    peer: Endpoint,
    dst: Endpoint,
}

impl Walker for ConnectionSets<'_> {
    type Set = ConnSet;
    fn full(&self) -> ConnSet {
        ConnSet::all()
    }
    fn none(&self) -> ConnSet {
        ConnSet::empty()
    }
    fn matched(&mut self, _at: RuleId, rule: &Rule, undecided: &ConnSet) -> ConnSet {
        if !self.engine.rule_peer_matches(rule, self.subject, self.peer) {
            return ConnSet::empty();
        }
        rule_conns(rule, &self.engine.inventory, self.dst).intersect(undecided)
    }
}

/// How one walk decided, as rule places (turned into text only for explanations).
#[derive(Default)]
pub(crate) struct Trace {
    /// Pass and Log rules that matched, in order.
    pub(crate) passed_through: Vec<(RuleId, Action)>,
    /// The Allow or Deny rule that decided, or the tier that denied at its end.
    pub(crate) decided: Option<Decided>,
    /// Rules judged without a real address ([`DirectionVerdict::unknown_address_rules`]);
    /// looked for only when `addresses` is set.
    pub(crate) unknown_address: Vec<(RuleId, Action)>,
    pub(crate) addresses: bool,
}

/// What ended a walk, when something did.
#[derive(Clone, Copy)]
pub(crate) enum Decided {
    Rule(RuleId, Action),
    EndOfTier(usize),
}

impl Trace {
    /// The policy that decided: the deciding rule's; at a tier's end, the first policy of that
    /// tier that selected the endpoint; when every tier passed, the policy of the last Pass
    /// (or Log) rule walked. `None` when nothing selected the endpoint.
    pub(crate) fn deciding_policy(&self, selecting: &[PolicyId]) -> Option<PolicyId> {
        match self.decided {
            Some(Decided::Rule(at, _)) => Some(at.policy()),
            Some(Decided::EndOfTier(tier)) => first_of_tier(selecting, tier),
            None => self.passed_through.last().map(|(at, _)| at.policy()),
        }
    }
}

/// The policy named when tier `tier` denies at its end: the first of `selecting` (the
/// endpoint's selecting policies, in evaluation order) in that tier.
pub(crate) fn first_of_tier(selecting: &[PolicyId], tier: usize) -> Option<PolicyId> {
    selecting.iter().find(|id| id.tier() == tier).copied()
}

pub(crate) struct Conn {
    pub(crate) protocol: Protocol,
    pub(crate) port: u16,
    pub(crate) dst: Endpoint,
}

pub(crate) fn in_block(ip: IpAddr, net: &ipnet::IpNet, except: &[ipnet::IpNet]) -> bool {
    net.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

/// A pod's labels as Calico selectors see them: its own, plus
/// `projectcalico.org/namespace`, `projectcalico.org/serviceaccount` and
/// `projectcalico.org/orchestrator: k8s` (libcalico-go `lib/backend/k8s/conversion`), which win
/// over the pod's own; seen through a view, never copied (this runs for every policy and pod).
fn with_calico_pod_labels<R>(pod: &Pod, f: impl FnOnce(&WithLabels<'_>) -> R) -> R {
    let extra = [
        ("projectcalico.org/namespace", pod.namespace.as_str()),
        (
            "projectcalico.org/serviceaccount",
            pod.service_account.as_str(),
        ),
        ("projectcalico.org/orchestrator", "k8s"),
    ];
    f(&WithLabels {
        base: &pod.labels,
        extra: &extra,
    })
}

/// A network set's labels as Calico selectors see them: its own, plus
/// `projectcalico.org/namespace` for a namespaced NetworkSet.
fn calico_set_labels(set: &netfence_model::calico::NetworkSet) -> Labels {
    let mut labels = set.labels.clone();
    if let Some(namespace) = &set.namespace {
        labels.insert("projectcalico.org/namespace".into(), namespace.clone());
    }
    labels
}

/// A namespace's labels as Calico namespace selectors see them: its own plus
/// `projectcalico.org/name`, through a view.
fn with_calico_namespace_labels<R>(
    inventory: &Inventory,
    namespace: &str,
    f: impl FnOnce(&WithLabels<'_>) -> R,
) -> R {
    let extra = [("projectcalico.org/name", namespace)];
    f(&WithLabels {
        base: inventory.namespace_labels(namespace),
        extra: &extra,
    })
}

/// The pods a subject can select: those of its namespace for a namespaced subject (pods are
/// sorted by namespace, so a range), else every pod.
pub(crate) fn subject_candidates(subject: &Subject, inventory: &Inventory) -> PodRange {
    match subject {
        Subject::PodsInNamespace { namespace, .. }
        | Subject::Calico {
            namespace: Some(namespace),
            ..
        } => inventory.pods_in(namespace),
        _ => PodRange::new(0..inventory.pods().len()),
    }
}

/// The namespace condition of [`subject_selects`]: false when the subject selects no pod of
/// `namespace` (so a caller walking pods by namespace skips the namespace's pods).
pub(crate) fn subject_admits_namespace(
    subject: &Subject,
    inventory: &Inventory,
    namespace: &str,
) -> bool {
    match subject {
        Subject::PodsInNamespace { namespace: ns, .. }
        | Subject::Calico {
            namespace: Some(ns),
            ..
        } => ns == namespace,
        Subject::Cluster {
            namespace_selector, ..
        } => namespace_selector.matches(inventory.namespace_labels(namespace)),
        Subject::Calico {
            namespace: None,
            namespace_selector: Some(selector),
            ..
        } => with_calico_namespace_labels(inventory, namespace, |labels| {
            selector.matches_with(labels)
        }),
        Subject::Calico {
            namespace: None,
            namespace_selector: None,
            ..
        } => true,
    }
}

/// The pods of `candidates` in namespaces `subject` admits, namespace run by namespace run
/// (pods are sorted by namespace): each namespace's condition is asked once, and a namespace
/// it does not admit is skipped whole. The rest of the subject is
/// [`subject_selects_admitted`].
pub(crate) fn admitted_pods<'i>(
    subject: &'i Subject,
    inventory: &'i Inventory,
    candidates: PodRange,
) -> impl Iterator<Item = PodId> + 'i {
    let pods = inventory.pods();
    let (mut id, end) = (candidates.start.index(), candidates.end.index());
    std::iter::from_fn(move || {
        while id < end {
            let namespace = pods[id].namespace.as_str();
            let start = id;
            id += pods[start..end].partition_point(|pod| pod.namespace == namespace);
            if subject_admits_namespace(subject, inventory, namespace) {
                return Some(PodRange::new(start..id));
            }
        }
        None
    })
    .flatten()
}

/// Whether `subject` selects `pod`.
pub(crate) fn subject_selects(subject: &Subject, inventory: &Inventory, pod: &Pod) -> bool {
    subject_admits_namespace(subject, inventory, &pod.namespace)
        && subject_selects_admitted(subject, inventory, pod)
}

/// [`subject_selects`] for a pod whose namespace the subject admits
/// ([`subject_admits_namespace`], asked once per namespace by a caller walking pods by
/// namespace): its pod and service-account conditions.
pub(crate) fn subject_selects_admitted(
    subject: &Subject,
    inventory: &Inventory,
    pod: &Pod,
) -> bool {
    match subject {
        Subject::PodsInNamespace { selector, .. } => selector.matches(&pod.labels),
        Subject::Cluster { pod_selector, .. } => pod_selector.matches(&pod.labels),
        Subject::Calico {
            selector,
            service_account_selector,
            ..
        } => {
            let account_ok = || {
                service_account_selector.as_ref().is_none_or(|s| {
                    let mut labels =
                        inventory.service_account_labels(&pod.namespace, &pod.service_account);
                    labels.insert("projectcalico.org/name".into(), pod.service_account.clone());
                    s.matches(&labels)
                })
            };
            account_ok() && with_calico_pod_labels(pod, |labels| selector.matches_with(labels))
        }
    }
}

/// A named port resolves against the destination pod's container ports; it never matches an
/// address that is not a pod.
pub(crate) fn resolve_named(
    inventory: &Inventory,
    dst: Endpoint,
    name: &str,
    protocol: Protocol,
) -> Option<u16> {
    match dst {
        Endpoint::Pod(id) => inventory.pods()[id].named_port(name, protocol),
        Endpoint::Address(_) => None,
    }
}

/// The address family of a connection: that of the destination's (first) address.
fn family(inventory: &Inventory, dst: Endpoint) -> u8 {
    let ip = match dst {
        Endpoint::Pod(id) => inventory.pods()[id].ips.first().copied(),
        Endpoint::Address(ip) => Some(ip),
    };
    match ip {
        Some(IpAddr::V6(_)) => 6,
        _ => 4,
    }
}

fn port_in(ports: &[PortMatch], inventory: &Inventory, conn: &Conn) -> bool {
    ports.iter().any(|port| match port {
        PortMatch::Protocol(p) => *p == conn.protocol,
        PortMatch::Range(p, range) => *p == conn.protocol && range.contains(conn.port),
        PortMatch::Named(p, name) => {
            *p == conn.protocol && resolve_named(inventory, conn.dst, name, *p) == Some(conn.port)
        }
    })
}

/// Whether the connection meets the rule's protocol, family and port conditions.
fn port_matches(rule: &Rule, inventory: &Inventory, conn: &Conn) -> bool {
    let number = conn.protocol.number();
    rule.protocol.is_none_or(|p| p == number)
        && rule.not_protocol != Some(number)
        && rule
            .ip_version
            .is_none_or(|v| v == family(inventory, conn.dst))
        && (rule.ports.is_empty() || port_in(&rule.ports, inventory, conn))
        && !port_in(&rule.not_ports, inventory, conn)
}

fn ports_conns(ports: &[PortMatch], inventory: &Inventory, dst: Endpoint) -> ConnSet {
    ports.iter().fold(ConnSet::empty(), |acc, port| {
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

/// Every connection to `dst` that the rule's protocol, family and port conditions accept.
pub(crate) fn rule_conns(rule: &Rule, inventory: &Inventory, dst: Endpoint) -> ConnSet {
    if rule.ip_version.is_some_and(|v| v != family(inventory, dst)) {
        return ConnSet::empty();
    }
    let mut conns = if rule.ports.is_empty() {
        ConnSet::all()
    } else {
        ports_conns(&rule.ports, inventory, dst)
    };
    for protocol in Protocol::ALL {
        let number = protocol.number();
        let excluded =
            rule.protocol.is_some_and(|p| p != number) || rule.not_protocol == Some(number);
        if excluded {
            conns = conns.subtract(&ConnSet::protocol(protocol));
        }
    }
    conns.subtract(&ports_conns(&rule.not_ports, inventory, dst))
}
