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

use crate::connlist::{Interned, NodeCells};
use crate::connset::ConnSet;
use crate::decide::PolicyId;
use crate::eval::{rule_conns, Endpoint, Engine};
use crate::ir::{Action, Policy, PortMatch, Rule, Tier, TierEnd};
use crate::line_cells::{Line, LineCells, RuleAnswers};
use netfence_model::{PolicyType, WorkloadRef};
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
                    0 => rects(engines, old_rules, new_rules),
                    1 => rects(engines, old_rules, &[]),
                    _ => rects(engines, &[], new_rules),
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
    let mut evaluations = Vec::new();
    for (d, rects, subjects) in &groups {
        for rect in rects {
            let others = memos[rect.side].nodes_of(rect.rule);
            evaluations.push((*d, others, &rect.ports, subjects));
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
    // Per rule asked (numbered by address in `index_of`): the engine it was first read in,
    // its peer answers node by node, and the connections it accepts.
    let mut answers: Vec<(usize, RuleAnswers<'_>, ConnSet)> = Vec::new();
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
            // Per (engine, changed tier): the rules walked, in order (the tier's policies'
            // rules one after the other: a rule that matches decides for the whole tier).
            let rep = classes[subjects[0]][0];
            // A tier selects the subject when some policy of it does (with or without rules).
            let walked: Vec<(usize, usize, Vec<&Rule>)> = (0..2)
                .flat_map(|side| tiers.iter().map(move |&t| (side, t)))
                .map(|(side, t)| {
                    let engine = engines[side];
                    let rules = (engine.selecting(rep, direction).iter())
                        .filter(|id| id.tier() == t)
                        .flat_map(|id| {
                            (engine.tiers()[t].policies[id.index()].rules(direction)).unwrap_or(&[])
                        })
                        .collect();
                    (side, t, rules)
                })
                .collect();
            let selected: Vec<bool> = (0..2)
                .flat_map(|side| tiers.iter().map(move |&t| (side, t)))
                .map(|(side, t)| {
                    (engines[side].selecting(rep, direction).iter()).any(|id| id.tier() == t)
                })
                .collect();
            let reads_endpoints = (walked.iter().flat_map(|(_, _, rules)| rules)).any(|rule| {
                rule.local.is_some()
                    || rule.ip_version.is_some()
                    || (rule.ports.iter().chain(&rule.not_ports))
                        .any(|p| matches!(p, PortMatch::Named(..)))
            });
            let rules: usize = walked.iter().map(|(_, _, rules)| rules.len()).sum();
            work += nodes * rules;
            if reads_endpoints || work > MOST_OUTCOME_WORK {
                continue;
            }
            // Each rule's answers, by address: a kept policy's rules are the same objects in
            // both engines and answer alike there (the pods and their context are the same).
            let at: Vec<usize> = (walked.iter())
                .flat_map(|(side, _, list)| list.iter().map(move |rule| (*side, *rule)))
                .map(|(side, rule)| {
                    let next = answers.len();
                    *index_of
                        .entry(std::ptr::from_ref(rule) as usize)
                        .or_insert_with(|| {
                            let conns = bound(engines[side], rule).unwrap_or_else(ConnSet::all);
                            answers.push((side, memos[side].rule_answers(rule), conns));
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
                    let (side, rule_answers, _) = &mut answers[i];
                    matched.push(memos[*side].rule_matches(rule_answers, v));
                }
                if let Some(&differs) = decided.get(&matched) {
                    return differs;
                }
                let mut offset = 0;
                let outcomes: Vec<[ConnSet; 2]> = (walked.iter().zip(&selected))
                    .map(|((side, t, list), &selected)| {
                        let rules = (list.iter().enumerate()).map(|(r, rule)| {
                            let i = offset + r;
                            (rule.action, matched[i], &answers[at[i]].2)
                        });
                        let outcome = tier_outcome(rules, engines[*side].tiers()[*t].end, selected);
                        offset += list.len();
                        outcome
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

/// One tier's outcome at one peer: the connections it allows and those it denies (the rest
/// go on to the next tier), from its rules walked in order (action, whether the peer matches,
/// the connections accepted), as `walk.rs` walks them. A tier that selects nothing passes
/// everything on; one that selects the subject ends as its `end` says.
fn tier_outcome<'r>(
    rules: impl Iterator<Item = (Action, bool, &'r ConnSet)>,
    end: TierEnd,
    selected: bool,
) -> [ConnSet; 2] {
    let (mut allowed, mut denied) = (ConnSet::empty(), ConnSet::empty());
    if !selected {
        return [allowed, denied];
    }
    let mut undecided = ConnSet::all();
    for (action, matches, conns) in rules {
        if !matches {
            continue;
        }
        let part = conns.intersect(&undecided);
        if part.is_empty() {
            continue;
        }
        match action {
            Action::Allow => allowed = allowed.union(&part),
            Action::Deny => denied = denied.union(&part),
            Action::Pass => {}
            Action::Log => continue,
        }
        undecided = undecided.subtract(&part);
    }
    if end == TierEnd::Deny {
        denied = denied.union(&undecided);
    }
    [allowed, denied]
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
/// empty for a version that does not select the subject): see the module notes.
fn rects<'e>(engines: [&'e Engine; 2], old: &'e [Rule], new: &'e [Rule]) -> Vec<Rect<'e>> {
    let mut rects = Vec::new();
    for r in 0..old.len().max(new.len()) {
        let (o, n) = (old.get(r), new.get(r));
        if let (Some(o), Some(n)) = (o, n) {
            if same(o, n) {
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

/// Two compiled rules alike (their debug texts: a difference the text does not show would
/// need a field without it; a text that differs for equal rules only widens the region).
fn same(a: &Rule, b: &Rule) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Two rules alike but for their port, protocol and port-exclusion conditions.
fn same_but_ports(a: &Rule, b: &Rule) -> bool {
    a.action == b.action
        && format!("{:?}", a.peers) == format!("{:?}", b.peers)
        && format!("{:?}", a.local) == format!("{:?}", b.local)
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
    use crate::eval::Engine;
    use crate::line_cells::LineCells;
    use netfence_model::{Loader, WorkloadRef};
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

    fn engine(policy: &str) -> Engine {
        let mut loader = Loader::new();
        loader.load_str("cluster.yaml", CLUSTER);
        loader.load_str("policy.yaml", policy);
        Engine::new(loader.finish().expect("the test cluster loads"))
    }

    fn names(set: &BTreeSet<WorkloadRef>) -> Vec<&str> {
        set.iter().map(|w| w.name.as_str()).collect()
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
        let sides = sides.expect("only a policy changed");
        let whole = crate::connlist::diff(&before, &Engine::new(inventory));
        assert_eq!(!whole.is_empty(), changes, "{new}: {whole:?}");
        let ranges = before.list_cuts().union(&after.list_cuts()).ranges();
        let (classes, class_of) = before.pod_classes();
        let cells = [&before, &after].map(|engine| NodeCells {
            engine,
            classes,
            ranges: &ranges,
        });
        let memos = [LineCells::new(&cells[0]), LineCells::new(&cells[1])];
        let slots = super::changed_slots(before.tiers(), after.tiers()).expect("in place");
        let n = classes.len();
        let touched = [vec![true; n], vec![true; n]];
        let [same_ingress, _] = super::same_tier_outcomes(
            [&before, &after],
            &memos,
            &slots,
            &touched,
            n + ranges.len(),
        );
        let db = before.inventory().pod_by_key("a", "db").expect("db exists");
        assert_eq!(same_ingress[class_of[db]], !changes, "{new}");
        if !changes {
            let [ingress, egress] = super::changed_subjects(&before, &after, &ranges)
                .expect("a policy changed in place");
            assert!(ingress.is_empty() && egress.is_empty(), "{new}");
        }
        assert_eq!(
            crate::delta::diff_sides(&before, &after, Some(&sides)),
            whole,
            "{new}"
        );
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

    /// A port added to a Deny rule: the region is every peer (the rule names none) at the
    /// added port only; when an Allow rule follows, the lines into db change at that port
    /// (found inside the region); when the tier's end denies it anyway, none changes and no
    /// subject is left to compare. Either way the delta equals the whole diff.
    #[test]
    fn a_port_added_to_a_deny_rule_is_compared_at_that_port() {
        for (rest, changes) in [("  - {action: Allow}\n", true), ("", false)] {
            let before = engine(&policy("[5432]", rest));
            let _ = before.workload_classes();
            let mut loader = Loader::new();
            loader.load_str("cluster.yaml", CLUSTER);
            loader.load_str("policy.yaml", &policy("[5432, 5433]", rest));
            let inventory = loader.finish().expect("the test cluster loads");
            let (after, sides, _) = before.rebuilt_sides(inventory.clone());
            let sides = sides.expect("only a policy changed");
            let whole = crate::connlist::diff(&before, &Engine::new(inventory));
            assert_eq!(!whole.is_empty(), changes, "{rest:?}: {whole:?}");
            assert!(whole.iter().all(|l| l.dst.to_string().contains("db")));
            let ranges = before.list_cuts().union(&after.list_cuts()).ranges();
            let [ingress, egress] = super::changed_subjects(&before, &after, &ranges)
                .expect("a change of one policy in place");
            let expected: Vec<&str> = if changes { vec!["db"] } else { vec![] };
            assert_eq!(names(&ingress), expected, "{rest:?}");
            assert!(egress.is_empty());
            assert_eq!(
                crate::delta::diff_sides(&before, &after, Some(&sides)),
                whole,
                "{rest:?}"
            );
        }
    }
}
