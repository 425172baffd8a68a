//! The region of a policy change: the cells `(source, destination, connection)` whose verdict
//! can differ when policies are created, replaced or deleted and nothing else changed, and
//! the subjects whose lines differ inside it.
//!
//! # The argument
//!
//! One direction's walk at a subject (`walk.rs`) goes down the tiers; in a tier, down the
//! policies selecting the subject, in order; in a policy, down its rules. Every connection
//! goes down on its own (the walk is pointwise), and a policy's part in it is its *outcome*
//! for (subject, peer, connection): *not selected*, *no rule matched*, or the action of the
//! first rule that matches (Allow, Deny, Pass; Log rules decide nothing). A tier whose end is
//! Deny also reads whether some policy of it selected the subject: then what no rule decided
//! is denied at its end (Calico: "If no policy in the tier ... the tier's default action is
//! applied ... defaults to Deny", <https://docs.tigera.io/calico/latest/network-policy/policy-tiers/tiered-policy>;
//! Kubernetes: a pod selected by a NetworkPolicy for a direction is isolated, only what
//! some policy allows is allowed, <https://kubernetes.io/docs/concepts/services-networking/network-policies/#the-two-sorts-of-pod-isolation>;
//! Cilium: a selected endpoint is in default deny, deny rules take precedence,
//! <https://docs.cilium.io/en/stable/security/policy/language/#deny-policies>); an admin
//! tier passes it on (AdminNetworkPolicy: "if no rule matches, the traffic is evaluated by
//! NetworkPolicy", <https://network-policy-api.sigs.k8s.io/api-overview/>). So a verdict is a
//! function of the sequence of outcomes and of the tiers' selected bits, and within a tier
//! *not selected* and *no rule matched* are one outcome when the tier's selected bit is the
//! same (always for a tier ending in Pass).
//!
//! When the pods, their context and the tiers are the same in both engines and every policy
//! kept is the same compiled object at the same place among the kept ones (`Arc` shared),
//! put both engines' changed policies into one sequence: between two kept neighbours, the
//! old ones then the new ones, each *not selected* in the engine that lacks it (a paired old
//! and new version of one object — same tier, same place, same sort key — share a slot).
//! The order among kept policies is the same, so for a subject whose tier bits agree, a
//! cell can differ only at a connection where some changed slot's outcome differs. For a
//! slot with rule lists `O` (old) and `N` (new, empty when absent) at a subject selected by
//! both: if the connection and peer match neither `O[r]` nor `N[r]` at every index where the
//! two rules differ, and both or neither at the others, both take the same first rule (or
//! none): the outcomes are equal. So the region is, per differing index, the peers of
//! `O[r]` at its connections and the peers of `N[r]` at its connections; when the two rules
//! differ only in their port, protocol and port-exclusion conditions (same action, peers and
//! own-endpoint condition), the peers at the connections one accepts and the other does
//! not. A subject selected by only one version has that version's every rule as differing
//! (against *not selected*), unless the tier ends in Deny and no other policy of the tier
//! selects it in the other engine: then its tier bit differs and its whole line is compared.
//! Own-endpoint conditions are left out (the region is larger, never smaller).
//!
//! The same argument one level up: a tier's part in the walk at a subject is its *tier
//! outcome* for (peer, connection) — Allow, Deny, or on to the next tier — and the tiers
//! without a changed slot decide alike in both engines. Within a tier the rules of the
//! policies selecting the subject are walked one after the other (the first that matches
//! decides for the tier), and what none decides is denied at a Deny end when the tier
//! selects the subject, else passed on. So a subject whose changed tiers' outcomes are equal
//! in both engines at every node (class or external range: members of one are alike for
//! every rule peer) and every connection walks alike, and none of its lines can differ: it
//! is dropped before the region is evaluated. Subjects with the same policies of the
//! changed tiers (by pointer, in both engines) share their outcomes when no rule of those
//! reads the subject or the destination (own-endpoint conditions, named ports, address
//! families): such groups are decided once per distinct set of rules matching a node, node
//! by node up to the first that differs. A rule's peer answers are asked node by node and
//! kept (a pod or Calico peer's namespace condition once per namespace); a kept policy's
//! rules are the same objects in both engines, and with the pods and their context the
//! same they answer alike, so they are asked once for both.
//! This drops, for instance, a deleted policy that an earlier one of its tier repeats, or a
//! port added to a Deny rule where the tier's end denies it anyway.
//!
//! Inside the region both engines' cells are evaluated, restricted to the region's
//! connections ([`LineCells::line_within`]); a subject with a differing cell has its whole
//! line compared as before (a line is the union of its cells, so a line with no differing
//! cell is equal). Every other line is equal in both engines.
//!
//! A cell is also inside the other node's own walk (a column's sources walk egress, a row's
//! destinations ingress: the cell is the intersection of the two walks, `Engine::allowed_conns`).
//! Before the region is evaluated, that walk is bounded over every peer at once: walked with
//! the peer left open, a rule naming peers may or may not take its part, one naming none
//! takes it surely. A node whose bound, in both engines, has nothing of a rect's connections
//! has empty cells there in both, and is not asked: an admin rule's changed port, for
//! instance, at sources whose own namespace's NetworkPolicies allow them no such egress.

use crate::connlist::{Interned, NodeCells};
use crate::connset::ConnSet;
use crate::decide::{PolicyId, RuleId};
use crate::eval::{rule_conns, Endpoint, Engine};
use crate::incremental::{changed_services, names_service};
use crate::ir::{Action, Direction, Policy, PortMatch, Rule, Tier, TierEnd};
use crate::line_cells::{selected_rules, Line, LineCells, RuleAnswers};
use crate::walk::{walk, WalkSet, Walker};
use netfence_model::{PodId, PolicyType, WorkloadRef};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// More changed policies than this: the whole lines (the region would cost more to find).
const MOST_CHANGED: usize = 64;

/// A changed slot: a policy's place in the engine before and/or after, in one tier.
struct Slot {
    tier: usize,
    old: Option<usize>,
    new: Option<usize>,
}

/// A part of the region: the nodes some peer of `rule` (of engine `side`) matches, at `ports`.
struct Rect<'e> {
    side: usize,
    rule: &'e Rule,
    ports: ConnSet,
}

/// The subjects whose lines can differ, `[ingress, egress]` (by their workloads), when the
/// change only created, replaced or deleted policies (see the module notes); `None` when it
/// did more (pods, tiers, a partition or a kept policy's place), or when the region would
/// not be cheaper than the whole lines.
pub(crate) fn changed_subjects(
    before: &Engine,
    after: &Engine,
    ranges: &[(std::net::IpAddr, std::net::IpAddr)],
) -> Option<[BTreeSet<WorkloadRef>; 2]> {
    let classes = &before.pod_classes().0;
    if before.inventory().pods().len() != after.inventory().pods().len()
        || *classes != after.pod_classes().0
    {
        return None;
    }
    let slots = changed_slots(before.tiers(), after.tiers())?;
    // Calico `services` peers read their Service when evaluated: a rule naming a changed
    // Service differs even when its compiled text does not.
    let services = changed_services(before.inventory(), after.inventory());

    let engines = [before, after];
    let n = classes.len();
    let nodes = n + ranges.len();
    let cells = [before, after].map(|engine| NodeCells {
        engine,
        classes,
        ranges,
    });
    let memos = [LineCells::new(&cells[0]), LineCells::new(&cells[1])];
    // Per direction: subjects compared whole, and (direction, rects, subjects) groups.
    let mut whole = [vec![false; n], vec![false; n]];
    // Per direction: the classes some changed slot selects (before or after).
    let mut touched = [vec![false; n], vec![false; n]];
    let mut groups: Vec<(usize, Vec<Rect<'_>>, Vec<usize>)> = Vec::new();
    for slot in &slots {
        for (d, direction) in [PolicyType::Ingress, PolicyType::Egress]
            .into_iter()
            .enumerate()
        {
            let rules = |side: usize, place: Option<usize>| -> &[Rule] {
                place
                    .and_then(|i| engines[side].tiers()[slot.tier].policies[i].rules(direction))
                    .unwrap_or(&[])
            };
            let (old_rules, new_rules) = (rules(0, slot.old), rules(1, slot.new));
            let deny_end = before.tiers()[slot.tier].end == TierEnd::Deny;
            // Subjects selected by both versions, by the old one only, by the new one only.
            let mut variants: [Vec<usize>; 3] = Default::default();
            for (c, members) in classes.iter().enumerate() {
                let rep = members[0];
                let selects = |side: usize, place: Option<usize>| {
                    place.is_some_and(|i| {
                        (engines[side].selecting(rep, direction))
                            .contains(&PolicyId::new(slot.tier, i))
                    })
                };
                let (old, new) = (selects(0, slot.old), selects(1, slot.new));
                touched[d][c] |= old || new;
                let v = match (old, new) {
                    (false, false) => continue,
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                };
                if v != 0 && deny_end {
                    let other = engines[usize::from(old)];
                    let tier_selects =
                        (other.selecting(rep, direction).iter()).any(|id| id.tier() == slot.tier);
                    if !tier_selects {
                        whole[d][c] = true;
                        continue;
                    }
                }
                variants[v].push(c);
            }
            for (v, subjects) in variants.into_iter().enumerate() {
                if subjects.is_empty() {
                    continue;
                }
                let rects = match v {
                    0 => rects(engines, old_rules, new_rules, &services),
                    1 => rects(engines, old_rules, &[], &services),
                    _ => rects(engines, &[], new_rules, &services),
                };
                groups.push((d, rects, subjects));
            }
        }
    }
    // Subjects whose changed tiers decide alike at every node and connection walk alike:
    // none of their lines can differ.
    let same = same_tier_outcomes(engines, &memos, &slots, &touched, nodes);
    for (whole, same) in whole.iter_mut().zip(&same) {
        for (whole, &same) in whole.iter_mut().zip(same) {
            *whole &= !same;
        }
    }
    for (d, _, subjects) in &mut groups {
        subjects.retain(|&c| !same[*d][c]);
    }
    groups.retain(|(_, _, subjects)| !subjects.is_empty());
    // A cell is inside the other node's own walk: nodes whose walk allows nothing of the
    // rect's connections in either engine, whatever the peer, have equal cells there.
    // Bounding costs a walk per distinct selection list of the other nodes, while the cells
    // it saves are the subjects' (their walks shared from line to line): worth it for many
    // subjects (an admin or global policy over a team's namespaces), not for a few (a
    // namespace's NetworkPolicy, whose every node the bound would walk to drop few).
    let mut ends = OtherEnds::default();
    let mut evaluations = Vec::new();
    for (d, rects, subjects) in &groups {
        for rect in rects {
            let mut others = memos[rect.side].nodes_of(rect.rule);
            if subjects.len() >= MIN_SUBJECTS_BOUNDED {
                others.retain(|&v| v >= n || ends.open(engines, classes[v][0], *d, &rect.ports));
            }
            if !others.is_empty() {
                evaluations.push((*d, others, &rect.ports, subjects));
            }
        }
    }
    if !cheaper(&whole, &evaluations, nodes) {
        return None;
    }
    let mut sets = Interned::default();
    let mut differs = whole;
    for (d, others, ports, subjects) in evaluations {
        // Columns for ingress subjects, rows for egress ones; per engine, the peer answers
        // at `others` kept from line to line.
        let kind = [Line::Column(0), Line::Row(0)][d];
        let mut within = memos.each_ref().map(|m| m.within(kind, others.clone()));
        for &c in subjects {
            if differs[d][c] {
                continue;
            }
            let line = [Line::Column(c), Line::Row(c)][d];
            let [old, new] = [0, 1]
                .map(|side| memos[side].line_within(line, ports, &mut within[side], &mut sets));
            differs[d][c] = old != new;
        }
    }
    let pods = after.inventory().pods();
    Some(differs.map(|marked| {
        (marked.iter().enumerate())
            .filter(|&(_, &m)| m)
            .flat_map(|(c, _)| classes[c].iter().map(|&id| pods[id].workload.clone()))
            .collect()
    }))
}

/// Whether evaluating the region costs less than the whole lines of its subjects (every
/// node against each subject class, as the delta does without it). A cell restricted to
/// a few ports counts an eighth: its walks are mostly shared between lines
/// ([`LineCells::line_within`]).
fn cheaper(
    whole: &[Vec<bool>; 2],
    evaluations: &[(usize, Vec<usize>, &ConnSet, &Vec<usize>)],
    nodes: usize,
) -> bool {
    let mut subjects = whole.clone();
    let mut cost = 0usize;
    for (d, others, ports, classes) in evaluations {
        for &c in *classes {
            subjects[*d][c] = true;
        }
        let cells = others.len() * classes.len();
        cost += if ports.is_all() { cells } else { cells / 8 };
    }
    let lines = subjects.iter().flatten().filter(|&&s| s).count();
    cost == 0 || cost < lines * nodes
}

/// The fewest subjects of a rect whose other nodes are bounded ([`OtherEnds`]) before the
/// region is evaluated. Debug builds (the tests) bound every rect, so that the property tests'
/// small clusters exercise the bound too; the result is the same either way.
const MIN_SUBJECTS_BOUNDED: usize = if cfg!(debug_assertions) { 1 } else { 16 };

/// The other end of the cells of a line: its own walk (a column's sources walk egress, a
/// row's destinations ingress) bounds every cell of it, so where that walk can allow none of
/// the region's connections against any peer, in both engines, the cells are empty in both.
/// The bounds are kept per engine, direction and selection list (by address), unless the
/// list's rules read the subject (`None`: asked per node).
#[derive(Default)]
struct OtherEnds {
    bounds: HashMap<(usize, usize, usize), Option<ConnSet>>,
}

impl OtherEnds {
    /// Whether the walk of `subject` (a pod of an other node of a line of direction `d`) can
    /// allow something of `ports` against some peer in either engine.
    fn open(&mut self, engines: [&Engine; 2], subject: PodId, d: usize, ports: &ConnSet) -> bool {
        let direction = [PolicyType::Egress, PolicyType::Ingress][d];
        (0..2).any(|side| {
            let engine = engines[side];
            let list = engine.selecting(subject, direction);
            let key = (side, d, list.as_ptr() as usize);
            let kept = self.bounds.entry(key).or_insert_with(|| {
                let reads_subject = selected_rules(engine, list, direction).any(|rule| {
                    rule.local.is_some()
                        || (direction == PolicyType::Ingress
                            && (rule.ip_version.is_some()
                                || (rule.ports.iter().chain(&rule.not_ports))
                                    .any(|p| matches!(p, PortMatch::Named(..)))))
                });
                (!reads_subject).then(|| may_allow(engine, direction, subject))
            });
            match kept {
                Some(bound) => !bound.intersect(ports).is_empty(),
                None => !may_allow(engine, direction, subject)
                    .intersect(ports)
                    .is_empty(),
            }
        })
    }
}

/// Every connection `subject`'s walk in `direction` allows against some peer, or more: the
/// walk of `walk.rs` with the peer left open ([`AnyPeer`]).
fn may_allow(engine: &Engine, direction: Direction, subject: PodId) -> ConnSet {
    let destination = (direction == PolicyType::Ingress).then_some(Endpoint::Pod(subject));
    let mut walker = AnyPeer {
        engine,
        subject,
        destination,
    };
    let selecting = engine.selecting(subject, direction);
    walk(engine.tiers(), direction, selecting, &mut walker).may
}

/// A connection set over every peer at once: `may` holds what it holds for some peer (or
/// more), `must` what it holds for every peer (or less).
#[derive(Clone)]
struct Bounds {
    may: ConnSet,
    must: ConnSet,
}

/// Union and difference of bounds bound the union and difference of the sets they bound
/// (a difference removes only what surely goes: `must` of the other from `may`).
impl WalkSet for Bounds {
    fn holds_nothing(&self) -> bool {
        self.may.is_empty()
    }
    fn add(&mut self, other: &Bounds) {
        self.may = self.may.union(&other.may);
        self.must = self.must.union(&other.must);
    }
    fn take_away(&mut self, other: &Bounds) {
        self.may = self.may.subtract(&other.must);
        self.must = self.must.subtract(&other.may);
    }
}

/// The walk of one subject with its peer left open. A rule that names peers may or may not
/// match the peer: the part it takes is in `may` of its outcome and in `must` of nothing, so
/// what it takes stays in `may` of the undecided set too. A rule that names none matches
/// every peer (its `local` condition reads the subject, which is known). On egress the
/// destination is the open peer: a rule whose connections depend on it (a named port, an
/// address family) accepts every connection in `may` and none in `must`. Every concrete
/// walk's sets stay between the bounds step by step (union and difference of bounds bound
/// the union and difference), so its allowed set is inside `may`.
struct AnyPeer<'e> {
    engine: &'e Engine,
    subject: PodId,
    /// The destination when it is the subject (ingress); `None` when it is the peer.
    destination: Option<Endpoint>,
}

impl Walker for AnyPeer<'_> {
    type Set = Bounds;
    fn full(&self) -> Bounds {
        Bounds {
            may: ConnSet::all(),
            must: ConnSet::all(),
        }
    }
    fn none(&self) -> Bounds {
        Bounds {
            may: ConnSet::empty(),
            must: ConnSet::empty(),
        }
    }
    fn matched(&mut self, _at: RuleId, rule: &Rule, undecided: &Bounds) -> Bounds {
        let engine = self.engine;
        let local = (rule.local.as_ref())
            .is_none_or(|local| engine.peer_matches(local, Endpoint::Pod(self.subject)));
        if !local {
            return self.none();
        }
        let (conns, known) = match self.destination {
            Some(destination) => (rule_conns(rule, engine.inventory(), destination), true),
            None => bound(engine, rule).map_or((ConnSet::all(), false), |conns| (conns, true)),
        };
        let every_peer = known && rule.peers.is_empty();
        Bounds {
            may: undecided.may.intersect(&conns),
            must: if every_peer {
                undecided.must.intersect(&conns)
            } else {
                ConnSet::empty()
            },
        }
    }
}

/// At most this many (node, rule) answers are asked of the tier outcomes' peers per change;
/// beyond, the remaining subjects are left to the region's evaluation.
const MOST_OUTCOME_WORK: usize = 1 << 25;

/// Per direction (`[ingress, egress]`), the `touched` classes whose outcome in every changed
/// tier is the same in both engines at every node and connection (see the module notes):
/// their walks, so their lines, are equal. Subjects are grouped by their policies of the
/// changed tiers in both engines (by pointer); a group is decided at every node, once per
/// distinct set of rules whose peers match the node. Groups whose rules read the subject or
/// the destination (an own-endpoint condition, a named port, an address family) are left
/// out (`false`: the region decides them).
fn same_tier_outcomes(
    engines: [&Engine; 2],
    memos: &[LineCells<'_>; 2],
    slots: &[Slot],
    touched: &[Vec<bool>; 2],
    nodes: usize,
) -> [Vec<bool>; 2] {
    let tiers: Vec<usize> = (slots.iter().map(|slot| slot.tier))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let classes = &engines[0].pod_classes().0;
    let mut same = [vec![false; classes.len()], vec![false; classes.len()]];
    let mut work = 0usize;
    // Per rule asked (numbered by address in `index_of`): the engine it was first read in and
    // its peer answers node by node; beside them (same numbers) the connections it accepts.
    let mut answers: Vec<(usize, RuleAnswers<'_>)> = Vec::new();
    let mut accepts: Vec<ConnSet> = Vec::new();
    let mut index_of: HashMap<usize, usize> = HashMap::new();
    for (d, direction) in [PolicyType::Ingress, PolicyType::Egress]
        .into_iter()
        .enumerate()
    {
        // Subjects by their selected policies of each changed tier, before then after.
        // (In the order of their first class, so that the work bound is met alike on every
        // run.)
        let mut index: HashMap<Vec<Vec<usize>>, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (c, members) in classes.iter().enumerate() {
            if !touched[d][c] {
                continue;
            }
            let key: Vec<Vec<usize>> = (engines.iter())
                .flat_map(|engine| {
                    let list = engine.selecting(members[0], direction);
                    tiers.iter().map(move |&t| {
                        (list.iter().filter(|id| id.tier() == t))
                            .map(|id| Arc::as_ptr(&engine.tiers()[t].policies[id.index()]) as usize)
                            .collect::<Vec<usize>>()
                    })
                })
                .collect();
            let next = groups.len();
            let g = *index.entry(key).or_insert(next);
            if g == next {
                groups.push(Vec::new());
            }
            groups[g].push(c);
        }
        for subjects in groups {
            // Per (engine, changed tier): the policies selecting the subject there and the
            // rules walked, in order (the tier's policies' rules one after the other: a rule
            // that matches decides for the whole tier).
            let rep = classes[subjects[0]][0];
            let walked: Vec<TierWalked<'_>> = (0..2)
                .flat_map(|side| tiers.iter().map(move |&t| (side, t)))
                .map(|(side, t)| {
                    let engine = engines[side];
                    let mut walked = TierWalked {
                        side,
                        selecting: Vec::new(),
                        firsts: Vec::new(),
                        rules: Vec::new(),
                    };
                    for &id in engine.selecting(rep, direction).iter() {
                        if id.tier() == t {
                            walked.selecting.push(id);
                            walked.firsts.push((id, walked.rules.len()));
                            let policy = &engine.tiers()[t].policies[id.index()];
                            walked.rules.extend(policy.rules(direction).unwrap_or(&[]));
                        }
                    }
                    walked
                })
                .collect();
            let reads_endpoints = (walked.iter().flat_map(|w| &w.rules)).any(|rule| {
                rule.local.is_some()
                    || rule.ip_version.is_some()
                    || (rule.ports.iter().chain(&rule.not_ports))
                        .any(|p| matches!(p, PortMatch::Named(..)))
            });
            let rules: usize = walked.iter().map(|w| w.rules.len()).sum();
            work += nodes * rules;
            if reads_endpoints || work > MOST_OUTCOME_WORK {
                continue;
            }
            // Each rule's answers, by address: a kept policy's rules are the same objects in
            // both engines and answer alike there (the pods and their context are the same).
            let at: Vec<usize> = (walked.iter())
                .flat_map(|w| w.rules.iter().map(move |rule| (w.side, *rule)))
                .map(|(side, rule)| {
                    let next = answers.len();
                    *index_of
                        .entry(std::ptr::from_ref(rule) as usize)
                        .or_insert_with(|| {
                            answers.push((side, memos[side].rule_answers(rule)));
                            accepts.push(bound(engines[side], rule).unwrap_or_else(ConnSet::all));
                            next
                        })
                })
                .collect();
            // Whether the outcomes differ, by which rules' peers match the node; node by node,
            // up to the first that differs.
            let mut decided: HashMap<Vec<bool>, bool> = HashMap::new();
            let mut matched: Vec<bool> = Vec::with_capacity(at.len());
            let differs = (0..nodes).any(|v| {
                matched.clear();
                for &i in &at {
                    let (side, rule_answers) = &mut answers[i];
                    matched.push(memos[*side].rule_matches(rule_answers, v));
                }
                if let Some(&differs) = decided.get(&matched) {
                    return differs;
                }
                let mut offset = 0;
                let outcomes: Vec<[ConnSet; 2]> = (walked.iter())
                    .map(|w| {
                        let mut node = TierAtNode {
                            firsts: &w.firsts,
                            matched: &matched[offset..offset + w.rules.len()],
                            at: &at[offset..offset + w.rules.len()],
                            accepts: &accepts,
                            allowed: ConnSet::empty(),
                        };
                        offset += w.rules.len();
                        let tiers = engines[w.side].tiers();
                        let allowed_or_on = walk(tiers, direction, &w.selecting, &mut node);
                        [node.allowed, ConnSet::all().subtract(&allowed_or_on)]
                    })
                    .collect();
                let (old, new) = outcomes.split_at(tiers.len());
                let differs = old != new;
                decided.insert(matched.clone(), differs);
                differs
            });
            if !differs {
                for c in subjects {
                    same[d][c] = true;
                }
            }
        }
    }
    same
}

/// One engine's changed tier at one subject: the policies of the tier selecting it (in
/// evaluation order), each with the place of its first rule in `rules`, the rules of those
/// policies one after the other.
struct TierWalked<'e> {
    side: usize,
    selecting: Vec<PolicyId>,
    firsts: Vec<(PolicyId, usize)>,
    rules: Vec<&'e Rule>,
}

/// One tier's outcome at one node, by the one walk (`walk.rs`) over that tier's selecting
/// policies alone: a rule matches where its peers' answers at the node say so (`matched`,
/// in the order of [`TierWalked::rules`]), at the connections it accepts. The walk returns
/// what the tier allows or passes on to the next tier (everything, when it selects
/// nothing); what it allows is gathered from the Allow rules' matches, and the rest is
/// denied.
struct TierAtNode<'a> {
    firsts: &'a [(PolicyId, usize)],
    matched: &'a [bool],
    /// Per rule walked, its number in `accepts`.
    at: &'a [usize],
    accepts: &'a [ConnSet],
    allowed: ConnSet,
}

impl Walker for TierAtNode<'_> {
    type Set = ConnSet;
    fn full(&self) -> ConnSet {
        ConnSet::all()
    }
    fn none(&self) -> ConnSet {
        ConnSet::empty()
    }
    fn matched(&mut self, at: RuleId, _rule: &Rule, undecided: &ConnSet) -> ConnSet {
        let first = (self.firsts.iter())
            .find(|(policy, _)| *policy == at.policy())
            .map_or(0, |&(_, first)| first);
        let i = first + at.rule();
        if !self.matched[i] {
            return ConnSet::empty();
        }
        self.accepts[self.at[i]].intersect(undecided)
    }
    fn on_match(&mut self, _at: RuleId, action: Action, matched: &ConnSet) {
        if action == Action::Allow {
            self.allowed = self.allowed.union(matched);
        }
    }
}

/// The changed slots of every tier, or `None` when the tiers differ in number, name or end,
/// a kept policy moved among the kept ones, or too many changed.
fn changed_slots(old: &[Tier], new: &[Tier]) -> Option<Vec<Slot>> {
    if old.len() != new.len() {
        return None;
    }
    let mut slots = Vec::new();
    for (t, (a, b)) in old.iter().zip(new).enumerate() {
        if a.name != b.name || a.end != b.end {
            return None;
        }
        let ptrs = |tier: &Tier| -> HashSet<*const Policy> {
            tier.policies.iter().map(Arc::as_ptr).collect()
        };
        let (in_a, in_b) = (ptrs(a), ptrs(b));
        let (mut i, mut j) = (0, 0);
        loop {
            let (mut olds, mut news) = (Vec::new(), Vec::new());
            while i < a.policies.len() && !in_b.contains(&Arc::as_ptr(&a.policies[i])) {
                olds.push(i);
                i += 1;
            }
            while j < b.policies.len() && !in_a.contains(&Arc::as_ptr(&b.policies[j])) {
                news.push(j);
                j += 1;
            }
            // Paired index by index when the segment's old and new sort keys are equal.
            let paired = olds.len() == news.len()
                && olds
                    .iter()
                    .zip(&news)
                    .all(|(&i, &j)| a.keys[i] == b.keys[j]);
            if paired {
                slots.extend((olds.iter().zip(&news)).map(|(&i, &j)| Slot {
                    tier: t,
                    old: Some(i),
                    new: Some(j),
                }));
            } else {
                slots.extend(olds.iter().map(|&i| Slot {
                    tier: t,
                    old: Some(i),
                    new: None,
                }));
                slots.extend(news.iter().map(|&j| Slot {
                    tier: t,
                    old: None,
                    new: Some(j),
                }));
            }
            if slots.len() > MOST_CHANGED {
                return None;
            }
            match (a.policies.get(i), b.policies.get(j)) {
                (None, None) => break,
                (Some(p), Some(q)) if Arc::ptr_eq(p, q) => (i, j) = (i + 1, j + 1),
                _ => return None,
            }
        }
    }
    Some(slots)
}

/// The region of one slot's rule lists (`old` of the engine before, `new` of the one after;
/// empty for a version that does not select the subject): see the module notes. Rules naming
/// one of the changed `services` are compared as differing.
fn rects<'e>(
    engines: [&'e Engine; 2],
    old: &'e [Rule],
    new: &'e [Rule],
    services: &HashSet<(String, String)>,
) -> Vec<Rect<'e>> {
    let mut rects = Vec::new();
    for r in 0..old.len().max(new.len()) {
        let (o, n) = (old.get(r), new.get(r));
        // A rule naming a changed Service is not alike its twin: both are compared whole.
        let twins = (o.zip(n)).filter(|(o, _)| !names_service(o, services));
        if let Some((o, n)) = twins {
            if o == n {
                continue;
            }
            let bounds = (bound(engines[0], o), bound(engines[1], n));
            if let (true, Some(a), Some(b)) = (same_but_ports(o, n), &bounds.0, &bounds.1) {
                let ports = a.subtract(b).union(&b.subtract(a));
                rects.push(Rect {
                    side: 0,
                    rule: o,
                    ports,
                });
                continue;
            }
        }
        for (side, rule) in [(0, o), (1, n)] {
            if let Some(rule) = rule {
                let ports = bound(engines[side], rule).unwrap_or_else(ConnSet::all);
                rects.push(Rect { side, rule, ports });
            }
        }
    }
    rects.retain(|rect| !rect.ports.is_empty());
    rects
}

/// Two rules alike but for their port, protocol and port-exclusion conditions.
fn same_but_ports(a: &Rule, b: &Rule) -> bool {
    a.action == b.action && a.peers == b.peers && a.local == b.local
}

/// The connections `rule` can accept at any destination, when that does not depend on the
/// destination (no named port, no address family); `None` otherwise.
fn bound(engine: &Engine, rule: &Rule) -> Option<ConnSet> {
    let named =
        (rule.ports.iter().chain(&rule.not_ports)).any(|p| matches!(p, PortMatch::Named(..)));
    if named || rule.ip_version.is_some() {
        return None;
    }
    let anywhere = Endpoint::Address(std::net::IpAddr::from([0, 0, 0, 0]));
    Some(rule_conns(rule, engine.inventory(), anywhere))
}

#[cfg(test)]
mod tests {
    use crate::connlist::NodeCells;
    use crate::connset::ConnSet;
    use crate::eval::Engine;
    use crate::line_cells::LineCells;
    use netfence_model::{Loader, Protocol, WorkloadRef};
    use std::collections::BTreeSet;

    const CLUSTER: &str = "apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: b, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.1.1}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Deny}
";

    /// A policy of tier `security` on db: Deny on `ports`, then `rest` (more rules).
    fn policy(ports: &str, rest: &str) -> String {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.db}}\nspec:\n  tier: security\n  order: 1\n  selector: app == 'db'\n  types: [Ingress]\n  ingress:\n  - {{action: Pass, source: {{selector: app == 'web'}}}}\n  - {{action: Deny, protocol: TCP, destination: {{ports: {ports}}}}}\n{rest}"
        )
    }

    fn names(set: &BTreeSet<WorkloadRef>) -> Vec<&str> {
        set.iter().map(|w| w.name.as_str()).collect()
    }

    /// Policies `old` then `new` (YAML documents) on `cluster`: the engine before (its
    /// workload classes made, as a kept cluster has them), the engine after from
    /// `Engine::rebuilt_sides`, the sides it gives, the whole diff of a fresh build, and the
    /// external ranges of both engines.
    struct Changed {
        before: Engine,
        after: Engine,
        sides: crate::delta::Sides,
        whole: Vec<crate::connlist::DiffLine>,
        ranges: Vec<(std::net::IpAddr, std::net::IpAddr)>,
    }

    fn changed(cluster: &str, old: &str, new: &str) -> Changed {
        let load = |policy: &str| {
            let mut loader = Loader::new();
            loader.load_str("cluster.yaml", cluster);
            loader.load_str("policy.yaml", policy);
            loader.finish().expect("the test cluster loads")
        };
        let before = Engine::new(load(old));
        let _ = before.workload_classes();
        let inventory = load(new);
        let (after, sides, _) = before.rebuilt_sides(inventory.clone());
        let sides = sides.expect("only policies (and Services) changed");
        let whole = crate::connlist::diff(&before, &Engine::new(inventory));
        let ranges = before.list_cuts().union(&after.list_cuts()).ranges();
        Changed {
            before,
            after,
            sides,
            whole,
            ranges,
        }
    }

    impl Changed {
        /// The delta through the sides equals the whole diff.
        fn assert_delta(&self, context: &str) {
            let delta = crate::delta::diff_sides(&self.before, &self.after, Some(&self.sides));
            assert_eq!(delta, self.whole, "{context}");
        }

        /// The region's subjects are exactly the ingress workloads `ingress` (by name) and
        /// no egress one, and the delta equals the whole diff.
        fn assert_subjects(&self, ingress: &[&str], context: &str) {
            let [marked, egress] = super::changed_subjects(&self.before, &self.after, &self.ranges)
                .expect("a change of one policy in place");
            assert_eq!(names(&marked), ingress, "{context}");
            assert!(egress.is_empty(), "{context}");
            self.assert_delta(context);
        }
    }

    /// A policy deleted whose rules an earlier policy of its tier, selecting the same pods,
    /// repeats: the tier decides alike at every peer and connection (db's tier outcomes are
    /// the same), so no subject is left to compare; when the deleted one ends in an Allow the
    /// earlier one lacks, db's outcomes differ. Either way the delta equals the whole diff.
    #[test]
    fn a_deleted_policy_repeated_earlier_in_its_tier_changes_no_subject() {
        let first = policy("[5432]", "");
        let copy = |rest: &str| {
            policy("[5432]", rest)
                .replace("name: security.db}", "name: security.db-copy}")
                .replace("order: 1\n", "order: 2\n")
        };
        for (second, changes) in [(copy(""), false), (copy("  - {action: Allow}\n"), true)] {
            let before = format!("{first}---\n{second}");
            check_tier_outcomes(CLUSTER, &before, &first, changes);
        }
    }

    /// Policies `old` then `new` on `cluster`: db's ingress tier outcomes are the same in both
    /// engines exactly when the whole diff is empty (`!changes`), no subject is left then,
    /// and the delta equals the whole diff.
    fn check_tier_outcomes(cluster: &str, old: &str, new: &str, changes: bool) {
        let change = changed(cluster, old, new);
        let Changed {
            before,
            after,
            whole,
            ranges,
            ..
        } = &change;
        assert_eq!(!whole.is_empty(), changes, "{new}: {whole:?}");
        let (classes, class_of) = before.pod_classes();
        let cells = [before, after].map(|engine| NodeCells {
            engine,
            classes,
            ranges,
        });
        let memos = [LineCells::new(&cells[0]), LineCells::new(&cells[1])];
        let slots = super::changed_slots(before.tiers(), after.tiers()).expect("in place");
        let n = classes.len();
        let touched = [vec![true; n], vec![true; n]];
        let [same_ingress, _] =
            super::same_tier_outcomes([before, after], &memos, &slots, &touched, n + ranges.len());
        let db = before.inventory().pod_by_key("a", "db").expect("db exists");
        assert_eq!(same_ingress[class_of[db]], !changes, "{new}");
        if changes {
            change.assert_delta(new);
        } else {
            change.assert_subjects(&[], new);
        }
    }

    /// A Calico rule's namespace selector replaced (its namespace condition is asked once
    /// per namespace and rule): by one naming the same namespaces, db's outcomes are the
    /// same; by one naming others, they differ — unless an earlier kept policy of the tier
    /// (its rule's answers shared by both engines) already decides every peer of the
    /// namespaces that differ.
    #[test]
    fn a_calico_namespace_selector_replaced_decides_by_its_namespaces() {
        let cluster = CLUSTER.replace(
            "metadata: {name: b}",
            "metadata: {name: b, labels: {env: dev}}",
        );
        let kept = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.first}\nspec:\n  tier: security\n  order: 0\n  selector: app == 'db'\n  types: [Ingress]\n  ingress:\n  - {action: Pass, source: {namespaceSelector: env == 'dev'}}\n";
        let changed = |namespaces: &str| {
            format!(
                "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.db}}\nspec:\n  tier: security\n  order: 1\n  selector: app == 'db'\n  types: [Ingress]\n  ingress:\n  - {{action: Allow, protocol: TCP, source: {{namespaceSelector: {namespaces}}}, destination: {{ports: [5432]}}}}\n"
            )
        };
        let old = changed("env == 'dev'");
        for (namespaces, changes) in [
            ("projectcalico.org/name == 'b'", false),
            ("env != 'dev'", true),
            ("has(env)", false),
        ] {
            check_tier_outcomes(&cluster, &old, &changed(namespaces), changes);
        }
        // With the kept policy first, b's peers are passed before the changed rule: only a's
        // answers count.
        let old = format!("{kept}---\n{old}");
        for (namespaces, changes) in [
            ("projectcalico.org/name == 'zzz'", false),
            ("projectcalico.org/name == 'a'", true),
        ] {
            let new = format!("{kept}---\n{}", changed(namespaces));
            check_tier_outcomes(&cluster, &old, &new, changes);
        }
    }

    /// An admin rule's port moved (as the bench's change (h)): db's admin tier outcomes
    /// differ at client (allowed there, passed on to db's isolating NetworkPolicy here), so
    /// client's cells into db are evaluated — unless client's own egress walk allows none of
    /// those ports to any peer in either engine (a NetworkPolicy of its namespace allows DNS
    /// only): then client is not asked, and no line changes. Either way the delta equals
    /// the whole diff.
    #[test]
    fn a_region_node_whose_own_walk_allows_nothing_there_is_not_asked() {
        let cluster = CLUSTER
            .replace(
                "metadata: {name: a}",
                "metadata: {name: a, labels: {team: a}}",
            )
            .replace(
                "metadata: {name: b}",
                "metadata: {name: b, labels: {team: b}}",
            );
        let isolate_db = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}\n";
        let dns_only = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: dns-only, namespace: b}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{protocol: UDP, port: 53}]}]\n";
        let admin = |port: u16| {
            format!(
                "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: team}}\nspec:\n  priority: 3\n  subject: {{namespaces: {{matchLabels: {{team: a}}}}}}\n  ingress:\n  - {{name: client, action: Allow, from: [{{namespaces: {{matchLabels: {{team: b}}}}}}], ports: [{{portNumber: {{protocol: TCP, port: {port}}}}}]}}\n"
            )
        };
        for (egress, changes) in [("", true), (dns_only, false)] {
            let [old, new] =
                [5432, 5433].map(|port| format!("{isolate_db}---\n{}{egress}", admin(port)));
            let change = changed(&cluster, &old, &new);
            let Changed {
                before,
                after,
                whole,
                ..
            } = &change;
            assert_eq!(!whole.is_empty(), changes, "{egress:?}: {whole:?}");
            let client = before
                .inventory()
                .pod_by_key("b", "client")
                .expect("client exists");
            let ports =
                ConnSet::single(Protocol::Tcp, 5432).union(&ConnSet::single(Protocol::Tcp, 5433));
            let open = super::OtherEnds::default().open([before, after], client, 0, &ports);
            assert_eq!(open, changes, "{egress:?}");
            let expected: &[&str] = if changes { &["db"] } else { &[] };
            change.assert_subjects(expected, &format!("{egress:?}"));
        }
    }

    /// A port added to a Deny rule: the region is every peer (the rule names none) at the
    /// added port only; when an Allow rule follows, the lines into db change at that port
    /// (found inside the region); when the tier's end denies it anyway, none changes and no
    /// subject is left to compare. Either way the delta equals the whole diff.
    #[test]
    fn a_port_added_to_a_deny_rule_is_compared_at_that_port() {
        for (rest, changes) in [("  - {action: Allow}\n", true), ("", false)] {
            let change = changed(
                CLUSTER,
                &policy("[5432]", rest),
                &policy("[5432, 5433]", rest),
            );
            let whole = &change.whole;
            assert_eq!(!whole.is_empty(), changes, "{rest:?}: {whole:?}");
            assert!(whole.iter().all(|l| l.dst.to_string().contains("db")));
            let expected: &[&str] = if changes { &["db"] } else { &[] };
            change.assert_subjects(expected, &format!("{rest:?}"));
        }
    }

    /// A Service that a Calico rule names created: the policy compiles to the same rules as
    /// before (the peer names the Service; its endpoints are read when the rule is
    /// evaluated), yet web now matches the rule: the rule is compared as changed, and the
    /// delta equals the whole diff (web → db allowed).
    #[test]
    fn a_service_named_by_a_rule_created_changes_its_peers() {
        let policy = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.db}\nspec:\n  tier: security\n  order: 1\n  selector: app == 'db'\n  types: [Ingress]\n  ingress:\n  - {action: Allow, source: {services: {name: web, namespace: a}}}\n";
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: a}\nspec: {selector: {app: web}, ports: [{port: 80, protocol: TCP}]}\n";
        let change = changed(CLUSTER, policy, &format!("{policy}---\n{service}"));
        let whole = &change.whole;
        assert!(
            whole
                .iter()
                .any(|l| l.src.to_string().contains("web") && l.dst.to_string().contains("db")),
            "{whole:?}"
        );
        change.assert_delta("a Service created");
    }
}
