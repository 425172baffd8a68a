//! Policies that decide nothing, judged once over the compiled policies of every language
//! (Kubernetes, Calico, admin): a policy that selects no pod (NF-TC-006), and a policy whose
//! removal changes no connection (NF-TC-011). Each compiled policy names its inventory object
//! ([`PolicySource`]), which gives the finding its object, location and annotations.

use crate::{Audit, CheckId, Family, Object, ObjectRef};
use netfence_engine::connlist::Cuts;
use netfence_engine::ir::{Policy, PolicyKind, PolicySource};
use netfence_engine::{ConnSet, Engine, ListPeer};
use netfence_model::{Inventory, NetworkPolicy, PodId, PolicyType, WorkloadRef};
use std::collections::{BTreeMap, BTreeSet};

/// The shadowed and select-nothing policy family.
pub(crate) const FAMILY: Family = Family {
    name: "shadow",
    checks: &[CheckId::PolicySelectsNoPod, CheckId::ShadowedPolicy],
    run,
};

/// Above this many (policies x pods) the shadow check is skipped with a note: it recomputes the
/// affected workloads' connectivity once per policy (about 3.4 µs per unit on the 2-core CI
/// machine: 3k pods x 600 policies took 6.1 s, so this budget is a few seconds).
pub const SHADOW_CHECK_MAX_WORK: usize = 1_000_000;

fn run(audit: &mut Audit<'_>) {
    select_nothing(audit);
    shadowed(audit);
}

/// A compiled Calico or admin policy (`Calico NetworkPolicy ns/name`, `AdminNetworkPolicy
/// name`), in its namespace when it has one. (These objects carry no annotations.)
impl Object for Policy {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: self.name.split_once('/').map(|(ns, _)| ns),
            label: format!("{} {}", self.kind, self.name),
            origin: Some(&self.origin),
            annotations: None,
        }
    }
}

/// The object findings about a compiled policy name: a Kubernetes NetworkPolicy as read (with
/// its annotations), other policies as compiled.
fn source_object<'i>(
    inventory: &'i Inventory,
    policy: &'i Policy,
    source: PolicySource,
) -> ObjectRef<'i> {
    match source {
        PolicySource::NetworkPolicy(index) => inventory.network_policies[index].object_ref(),
        PolicySource::Calico(_) | PolicySource::Admin(_) | PolicySource::Cilium(_) => {
            policy.object_ref()
        }
    }
}

/// NF-TC-006: a NetworkPolicy whose podSelector matches no pod of its namespace; a namespaced
/// Calico policy or an admin policy that no pod's evaluation consults. (GlobalNetworkPolicies
/// are left out: they may be meant for host endpoints, which netfence does not model.)
fn select_nothing(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let inventory = engine.inventory();
    let consulted = pods_by_compiled_policy(engine);
    for (t, tier) in engine.tiers().iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            let (message, remediation) = match tier.sources[p] {
                PolicySource::NetworkPolicy(index) => {
                    let source = &inventory.network_policies[index];
                    if selects_any_pod(inventory, source) {
                        continue;
                    }
                    (
                        format!(
                            "spec.podSelector {} matches no pod in {}",
                            source.pod_selector, source.namespace
                        ),
                        "# fix spec.podSelector to match the intended pods' labels\n",
                    )
                }
                // A Cilium rule compiles to up to three policies (denies, isolating allows,
                // non-isolating allows): judging one part alone would mislead.
                PolicySource::Cilium(_) => continue,
                PolicySource::Calico(_) | PolicySource::Admin(_) => {
                    let judged = policy.kind != PolicyKind::CalicoGlobalNetworkPolicy;
                    let applies = policy.ingress.is_some() || policy.egress.is_some();
                    if !judged || !applies || consulted.contains_key(&(t, p)) {
                        continue;
                    }
                    (
                        "its selector matches no pod (host-network pods are not subject to pod policy)".to_string(),
                        "# fix the selector (Calico spec.selector, or the admin policy's spec.subject) to match the intended pods\n",
                    )
                }
            };
            audit
                .finding(
                    CheckId::PolicySelectsNoPod,
                    &source_object(inventory, policy, tier.sources[p]),
                )
                .message(message)
                .remediation(remediation);
        }
    }
}

/// Whether `policy` selects any pod of its namespace.
fn selects_any_pod(inventory: &Inventory, policy: &NetworkPolicy) -> bool {
    inventory.pods()[inventory.pods_in(&policy.namespace)]
        .iter()
        .any(|p| policy.pod_selector.matches(&p.labels))
}

/// Whether NF-TC-011 judges `policy`: not a default-deny policy (empty podSelector, no rules),
/// which exists for pods that are not there yet, and not one selecting no pod (NF-TC-006's).
pub fn shadow_check_applies(inventory: &Inventory, policy: &NetworkPolicy) -> bool {
    let default_deny = policy.pod_selector.is_everything()
        && policy.ingress.is_empty()
        && policy.egress.is_empty();
    !default_deny && selects_any_pod(inventory, policy)
}

/// The workloads whose pods a NetworkPolicy NF-TC-011 judges selects; `None` when it is not
/// judged ([`shadow_check_applies`]).
fn network_policy_focus(
    inventory: &Inventory,
    policy: &NetworkPolicy,
) -> Option<BTreeSet<WorkloadRef>> {
    shadow_check_applies(inventory, policy).then(|| {
        inventory.pods()[inventory.pods_in(&policy.namespace)]
            .iter()
            .filter(|p| policy.pod_selector.matches(&p.labels))
            .map(|p| p.workload.clone())
            .collect()
    })
}

/// The workloads of the pods that consult a Calico or admin policy NF-TC-011 judges; `None`
/// when it is not judged: policies without rules only isolate (a Calico default deny, an admin
/// policy that only passes) and are exempt, as Kubernetes default-deny policies are, and so are
/// policies no pod consults (NF-TC-006's).
fn compiled_focus(
    inventory: &Inventory,
    policy: &Policy,
    consulting: Option<&BTreeSet<PodId>>,
) -> Option<BTreeSet<WorkloadRef>> {
    let has_rules = [PolicyType::Ingress, PolicyType::Egress]
        .into_iter()
        .any(|d| policy.rules(d).is_some_and(|r| !r.is_empty()));
    let pods = consulting.filter(|_| has_rules && policy.kind != PolicyKind::NetworkPolicy)?;
    Some(
        pods.iter()
            .map(|&id| inventory.pods()[id].workload.clone())
            .collect(),
    )
}

/// NF-TC-011: a policy whose removal leaves the connection lines (the netpol-analyzer style
/// connection list, external ranges included) of the workloads it selects unchanged. Kubernetes
/// NetworkPolicies and the other languages have separate work budgets, each with its note.
fn shadowed(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let inventory = engine.inventory();
    let pods = inventory.pods().len();
    let kubernetes = inventory.network_policies.len();
    let judge_kubernetes = kubernetes * pods <= SHADOW_CHECK_MAX_WORK;
    if !judge_kubernetes {
        audit.note(format!(
            "NF-TC-011 skipped: {kubernetes} policies x {pods} pods is above {SHADOW_CHECK_MAX_WORK}"
        ));
    }
    let others = inventory.calico_policies.len() + inventory.admin_policies.len();
    let judge_others = others > 0 && others * pods <= SHADOW_CHECK_MAX_WORK;
    if others > 0 && !judge_others {
        audit.note(format!(
            "NF-TC-011 skipped for Calico and admin policies: {others} policies x {pods} pods is above {SHADOW_CHECK_MAX_WORK}"
        ));
    }
    let judge_kubernetes = judge_kubernetes && kubernetes > 0;
    if !judge_kubernetes && !judge_others {
        return;
    }
    let cuts = netfence_engine::connlist::cuts(engine);
    let consulted = if judge_others {
        pods_by_compiled_policy(engine)
    } else {
        BTreeMap::new()
    };
    for (t, tier) in engine.tiers().iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            let (focus, message, remediation) = match tier.sources[p] {
                PolicySource::NetworkPolicy(index) if judge_kubernetes => (
                    network_policy_focus(inventory, &inventory.network_policies[index]),
                    "every connection it allows is allowed by other policies, and it isolates no pod that others do not",
                    "# delete it, or fix the rule that was meant to allow something new\n",
                ),
                PolicySource::Calico(_) | PolicySource::Admin(_) if judge_others => (
                    compiled_focus(inventory, policy, consulted.get(&(t, p))),
                    "every connection it allows or denies is decided the same way without it",
                    "# delete it, or fix the rule that was meant to change something\n",
                ),
                _ => continue,
            };
            let Some(focus) = focus else {
                continue;
            };
            let Some(without) = engine
                .policy_id(t, p)
                .and_then(|id| engine.without_policy(id))
            else {
                continue;
            };
            if focus_lines(&without, &cuts, &focus) == focus_lines(engine, &cuts, &focus) {
                audit
                    .finding(
                        CheckId::ShadowedPolicy,
                        &source_object(inventory, policy, tier.sources[p]),
                    )
                    .message(message)
                    .remediation(remediation);
            }
        }
    }
}

/// NF-TC-011's comparison: the connection-list lines (source, destination → connections) that
/// touch `focus`. Removing a policy only changes connections of the workloads whose pods it
/// selects, and only removes address-space cuts, so the full cluster's `cuts` serve both sides.
fn focus_lines(
    engine: &Engine,
    cuts: &Cuts,
    focus: &BTreeSet<WorkloadRef>,
) -> BTreeMap<(ListPeer, ListPeer), ConnSet> {
    netfence_engine::connlist::connlist_touching(engine, cuts, Some(focus))
        .into_iter()
        .filter(|c| !c.conns.is_empty())
        .map(|c| ((c.src, c.dst), c.conns))
        .collect()
}

/// For each compiled policy `(tier, policy)`, the pods whose evaluation consults it (in
/// either direction); policies no pod consults are absent.
fn pods_by_compiled_policy(engine: &Engine) -> BTreeMap<(usize, usize), BTreeSet<PodId>> {
    let mut pods: BTreeMap<(usize, usize), BTreeSet<PodId>> = BTreeMap::new();
    for id in (0..engine.inventory().pods().len()).map(PodId::new) {
        for d in [PolicyType::Ingress, PolicyType::Egress] {
            for &key in engine.selecting(id, d) {
                pods.entry((key.tier(), key.index()))
                    .or_default()
                    .insert(id);
            }
        }
    }
    pods
}

/// The Calico and admin policies NF-TC-011 judges, as `(tier, policy, workloads it selects)`:
/// those with rules that some pod's evaluation consults. (Kubernetes NetworkPolicies are judged
/// by [`shadow_check_applies`].)
pub fn shadow_candidates(engine: &Engine) -> Vec<(usize, usize, BTreeSet<WorkloadRef>)> {
    let inventory = engine.inventory();
    pods_by_compiled_policy(engine)
        .into_iter()
        .filter_map(|((t, p), pods)| {
            let policy = &engine.tiers()[t].policies[p];
            compiled_focus(inventory, policy, Some(&pods)).map(|focus| (t, p, focus))
        })
        .collect()
}
