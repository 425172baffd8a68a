//! Incremental updates: a changed inventory gives the engine that [`Engine::new`] would build
//! from it, reusing the old engine's selections wherever nothing they depend on changed, and
//! the reachability delta computed only for the workloads the change can affect.
//!
//! What a policy selects depends only on its subject (the policy object itself), the pod
//! (labels, namespace, service account, host networking) and the labels of the pod's
//! namespace and service account. So a pod whose own object and context are unchanged keeps
//! its selections of every unchanged policy, renumbered to the new tier layout, and only the
//! new or changed policies are matched against it; a changed pod is matched against every
//! policy. The delta: a connection between two pods can change only when a policy that
//! selects one of them changed (before or after the change), when one of them changed, or
//! when its namespace or service account changed; network sets, nodes and tiers change
//! address matching or evaluation order everywhere, and then every line is compared.

use crate::chunked::{Chunked, CHUNK};
use crate::connlist::DiffLine;
use crate::decide::PolicyId;
use crate::delta::Sides;
use crate::eval::{
    direction_index, subject_candidates, subject_selects, Engine, Selection, SelectionRemap,
};
use crate::ir::{
    cmp_keys, compile, compile_network_policy, network_policy_key, Peer, Policy, PolicyKind,
    PolicySource, SortKey, Tier,
};
use netfence_model::net::FastMap;
use netfence_model::{
    Change, Inventory, LinkPatch, LoadErrors, Loader, NetworkPolicy, ObjectKey, Pod, PolicyType,
    WorkloadRef,
};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which part of the reachability a change can affect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Focus {
    /// Every line (network sets, nodes or tiers changed).
    Everything,
    /// Only lines from or to these workloads.
    Workloads(BTreeSet<WorkloadRef>),
}

impl Focus {
    /// The workloads, or `None` for everything.
    pub fn workloads(&self) -> Option<&BTreeSet<WorkloadRef>> {
        match self {
            Focus::Everything => None,
            Focus::Workloads(set) => Some(set),
        }
    }
}

/// What [`Engine::rebuilt`] reused and recomputed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Compiled policies that are new or whose object changed.
    pub changed_policies: usize,
    /// Policies of the old engine that are gone or changed.
    pub removed_policies: usize,
    /// Pods matched against every policy (new or changed pods, or pods whose namespace or
    /// service account changed).
    pub rematched_pods: usize,
}

/// The old → new renumbering of compiled policies, and which ones changed.
struct PolicyMap {
    /// For each old (tier, policy): its new place when the policy is unchanged.
    old_to_new: Vec<Vec<Option<(usize, usize)>>>,
    /// Old policies whose meaning changed or that are gone.
    old_changed: Vec<Vec<bool>>,
    /// New policies that are new or whose meaning changed.
    new_changed: Vec<Vec<bool>>,
    /// New policies whose subject must be matched again (new, or their object changed).
    rematch: Vec<(usize, usize)>,
    /// Every policy kept its place and meaning (the tiers were taken over).
    identity: bool,
}

impl PolicyMap {
    /// The map of tiers taken over unchanged.
    fn identity(tiers: &[Tier]) -> PolicyMap {
        PolicyMap {
            old_to_new: tiers
                .iter()
                .enumerate()
                .map(|(t, tier)| (0..tier.policies.len()).map(|p| Some((t, p))).collect())
                .collect(),
            old_changed: tiers
                .iter()
                .map(|t| vec![false; t.policies.len()])
                .collect(),
            new_changed: tiers
                .iter()
                .map(|t| vec![false; t.policies.len()])
                .collect(),
            rematch: Vec::new(),
            identity: true,
        }
    }

    /// The map of tiers in which only tier `t` changed: its old policies' new places
    /// (`None`: gone or changed), which of its new policies are new or changed, and those
    /// whose subjects are matched again; every other tier's policies keep their places.
    fn patched(
        tiers: &[Tier],
        t: usize,
        old_to_new: Vec<Option<(usize, usize)>>,
        new_changed: Vec<bool>,
        rematch: Vec<(usize, usize)>,
    ) -> PolicyMap {
        let mut map = PolicyMap::identity(tiers);
        map.old_changed[t] = old_to_new.iter().map(Option::is_none).collect();
        map.old_to_new[t] = old_to_new;
        map.new_changed[t] = new_changed;
        map.rematch = rematch;
        PolicyMap {
            identity: false,
            ..map
        }
    }
}

/// The inventory object a compiled policy came from, for equality.
fn same_source(old: &Inventory, a: PolicySource, new: &Inventory, b: PolicySource) -> bool {
    match (a, b) {
        (PolicySource::NetworkPolicy(i), PolicySource::NetworkPolicy(j)) => {
            // The CNI decides what an ipBlock compiles to. An unchanged policy is shared.
            let (a, b) = (&old.network_policies[i], &new.network_policies[j]);
            (Arc::ptr_eq(a, b) || a == b) && old.cni.cni == new.cni.cni
        }
        (PolicySource::Cilium(i), PolicySource::Cilium(j)) => {
            // Nodes' addresses and Services go into compiled Cilium peers.
            old.cilium_policies[i] == new.cilium_policies[j]
                && old.nodes == new.nodes
                && old.services == new.services
        }
        (PolicySource::Calico(i), PolicySource::Calico(j)) => {
            old.calico_policies[i] == new.calico_policies[j]
        }
        (PolicySource::Admin(i), PolicySource::Admin(j)) => {
            old.admin_policies[i] == new.admin_policies[j]
        }
        _ => false,
    }
}

/// Whether a compiled policy has a Calico `services` peer naming one of `services`: its
/// compiled ports and its peers follow that Service.
fn uses_service(policy: &Policy, services: &HashSet<(String, String)>) -> bool {
    if services.is_empty() {
        return false;
    }
    [&policy.ingress, &policy.egress]
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|rule| rule.peers.iter().chain(rule.local.iter()))
        .any(|peer| match peer {
            Peer::Calico(entity) => entity
                .service
                .as_ref()
                .is_some_and(|s| services.contains(&(s.namespace.clone(), s.name.clone()))),
            _ => false,
        })
}

/// Services (namespace, name) that differ between the inventories, or exist in one only.
fn changed_services(old: &Inventory, new: &Inventory) -> HashSet<(String, String)> {
    if old.services == new.services {
        return HashSet::new();
    }
    let index = |inventory: &Inventory| -> HashMap<(String, String), usize> {
        inventory
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.namespace.clone(), s.name.clone()), i))
            .collect()
    };
    let (a, b) = (index(old), index(new));
    a.keys()
        .chain(b.keys())
        .filter(|key| match (a.get(*key), b.get(*key)) {
            (Some(&i), Some(&j)) => old.services[i] != new.services[j],
            _ => true,
        })
        .cloned()
        .collect()
}

fn policy_map(
    old: &Engine,
    tiers: &[Tier],
    inventory: &Inventory,
    services: &HashSet<(String, String)>,
) -> PolicyMap {
    // Keyed by tier too: one Cilium object compiles to policies of one kind and name in up to
    // three tiers.
    let mut old_place: FastMap<(PolicyKind, &str, &str), (usize, usize)> = FastMap::default();
    for (t, tier) in old.tiers.iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            old_place.insert(
                (policy.kind, tier.name.as_str(), policy.name.as_str()),
                (t, p),
            );
        }
    }
    let shape = |tiers: &[Tier], value: bool| -> Vec<Vec<bool>> {
        tiers
            .iter()
            .map(|t| vec![value; t.policies.len()])
            .collect()
    };
    let mut map = PolicyMap {
        old_to_new: old
            .tiers
            .iter()
            .map(|t| vec![None; t.policies.len()])
            .collect(),
        old_changed: shape(&old.tiers, true),
        new_changed: shape(tiers, false),
        rematch: Vec::new(),
        identity: false,
    };
    for (t, tier) in tiers.iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            let before = old_place
                .get(&(policy.kind, tier.name.as_str(), policy.name.as_str()))
                .copied();
            let same = before.is_some_and(|(ot, op)| {
                same_source(
                    old.inventory(),
                    old.tiers[ot].sources[op],
                    inventory,
                    tier.sources[p],
                )
            });
            match before {
                Some((ot, op)) if same => {
                    map.old_to_new[ot][op] = Some((t, p));
                    let moved = uses_service(policy, services);
                    map.old_changed[ot][op] = moved;
                    map.new_changed[t][p] = moved;
                }
                _ => {
                    map.new_changed[t][p] = true;
                    map.rematch.push((t, p));
                }
            }
        }
    }
    map
}

/// How the inputs of [`compile`] differ between two inventories.
enum Compiles {
    /// Every input equal: the tiers are taken over.
    Alike,
    /// Only NetworkPolicies differ, matched up by one merge ([`Engine::patched_tiers`]).
    NetworkPolicies(NetworkPolicyDiff),
    /// Something else differs: every policy is compiled again.
    Differently,
}

/// The NetworkPolicies of two inventories matched up: for each old one, the new index of the
/// same object when it is unchanged; the new indices of new or changed ones.
struct NetworkPolicyDiff {
    old_to_new: Vec<Option<usize>>,
    added: Vec<usize>,
}

/// Both lists are sorted by (namespace, name) without duplicates (the inventory's order), so
/// one merge pairs them; an object shared with the old inventory is equal by pointer, only the
/// others are compared by name and value.
fn network_policy_diff(
    old: &[Arc<NetworkPolicy>],
    new: &[Arc<NetworkPolicy>],
) -> NetworkPolicyDiff {
    fn key(p: &NetworkPolicy) -> (&str, &str) {
        (p.namespace.as_str(), p.name.as_str())
    }
    let mut diff = NetworkPolicyDiff {
        old_to_new: vec![None; old.len()],
        added: Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while j < new.len() {
        let Some(before) = old.get(i) else {
            diff.added.push(j);
            j += 1;
            continue;
        };
        if Arc::ptr_eq(before, &new[j]) {
            diff.old_to_new[i] = Some(j);
            i += 1;
            j += 1;
            continue;
        }
        match key(before).cmp(&key(&new[j])) {
            Ordering::Less => i += 1, // deleted
            Ordering::Greater => {
                diff.added.push(j);
                j += 1;
            }
            Ordering::Equal => {
                if **before == *new[j] {
                    diff.old_to_new[i] = Some(j);
                } else {
                    diff.added.push(j);
                }
                i += 1;
                j += 1;
            }
        }
    }
    diff
}

/// How the new inventory's pods continue the old one's (from [`rematched_pods`]).
pub(crate) struct PodMatch {
    /// For each new pod: it must be matched against every policy (new or changed, or its
    /// namespace's or service account's labels changed).
    pub(crate) dirty: Vec<bool>,
    /// The ids of the dirty pods, in order (every new pod is dirty).
    pub(crate) changed: Vec<usize>,
    /// For each new pod, the id of the old pod of its name; `None` when no id moved (as many
    /// pods, each named as the old pod of its id): then a pod's old id is its id.
    previous: Option<Vec<Option<usize>>>,
    /// For each old pod, whether a clean new pod continues it; every other old pod is gone
    /// or changed, and its workload may have changed too (adoption by a new selector).
    pub(crate) kept: Vec<bool>,
}

impl PodMatch {
    /// The old id of the pod named as new pod `id`.
    pub(crate) fn previous(&self, id: usize) -> Option<usize> {
        match &self.previous {
            None => Some(id),
            Some(previous) => previous[id],
        }
    }

    /// Whether every pod kept its id (see [`PodMatch::previous`]).
    pub(crate) fn same_ids(&self) -> bool {
        self.previous.is_none()
    }

    /// The old ids of the pods no clean new pod continues, in order.
    pub(crate) fn gone(&self) -> Vec<usize> {
        match &self.previous {
            // A pod's old id is its id: the old pods not kept are the changed ones.
            None => self.changed.clone(),
            Some(_) => (0..self.kept.len()).filter(|&id| !self.kept[id]).collect(),
        }
    }

    fn new(dirty: Vec<bool>, previous: Option<Vec<Option<usize>>>, old_count: usize) -> Self {
        let changed: Vec<usize> = (0..dirty.len()).filter(|&id| dirty[id]).collect();
        let kept = match &previous {
            None => dirty.iter().map(|dirty| !dirty).collect(),
            Some(previous) => kept_pods(old_count, &dirty, previous),
        };
        PodMatch {
            dirty,
            changed,
            previous,
            kept,
        }
    }
}

/// Pods of the new inventory that must be matched against every policy: new or changed pods,
/// and pods whose namespace labels or service account labels changed.
fn rematched_pods(old: &Inventory, new: &Inventory) -> PodMatch {
    let namespaces: HashSet<&str> = if old.shares_namespaces(new) {
        HashSet::new()
    } else {
        old.namespaces()
            .keys()
            .chain(new.namespaces().keys())
            .filter(|ns| {
                old.namespaces().get(*ns).map(|n| &n.labels)
                    != new.namespaces().get(*ns).map(|n| &n.labels)
            })
            .map(String::as_str)
            .collect()
    };
    fn labels(inventory: &Inventory) -> HashMap<(&str, &str), &netfence_selector::Labels> {
        // The first of a name wins, as `Inventory::service_account_labels` finds it.
        let mut out = HashMap::new();
        for a in inventory.service_accounts.iter().rev() {
            out.insert((a.namespace.as_str(), a.name.as_str()), &a.labels);
        }
        out
    }
    let accounts: HashSet<(&str, &str)> = if old.service_accounts == new.service_accounts {
        HashSet::new()
    } else {
        let (before, after) = (labels(old), labels(new));
        before
            .keys()
            .chain(after.keys())
            .filter(|key| {
                let before = before.get(*key).copied().filter(|l| !l.is_empty());
                let after = after.get(*key).copied().filter(|l| !l.is_empty());
                before != after
            })
            .copied()
            .collect()
    };
    let count = new.pods().len();
    if old.shares_pods(new) && namespaces.is_empty() && accounts.is_empty() {
        return PodMatch::new(vec![false; count], None, count);
    }
    let context_changed = |pod: &Pod| {
        (!namespaces.is_empty() && namespaces.contains(pod.namespace.as_str()))
            || (!accounts.is_empty()
                && accounts.contains(&(pod.namespace.as_str(), pod.service_account.as_str())))
    };
    let old_pods = old.pods();
    if let Some(mut dirty) = same_ids(old_pods, new.pods()) {
        if !namespaces.is_empty() || !accounts.is_empty() {
            for (dirty, pod) in dirty.iter_mut().zip(new.pods()) {
                *dirty |= context_changed(pod);
            }
        }
        return PodMatch::new(dirty, None, count);
    }
    let mut dirty = Vec::with_capacity(count);
    let mut previous = Vec::with_capacity(count);
    // Both pod lists are sorted by (namespace, name): one merge finds each pod's old id. A
    // pod shared with the old inventory (the same `Arc`) is the old pod at the cursor; only
    // the others are looked up by name and compared.
    let mut cursor = 0;
    for pod in new.pods() {
        if old_pods
            .get(cursor)
            .is_some_and(|before| Arc::ptr_eq(before, pod))
        {
            previous.push(Some(cursor));
            dirty.push(context_changed(pod));
            cursor += 1;
            continue;
        }
        let key = (pod.namespace.as_str(), pod.name.as_str());
        while cursor < old_pods.len()
            && (
                old_pods[cursor].namespace.as_str(),
                old_pods[cursor].name.as_str(),
            ) < key
        {
            cursor += 1;
        }
        let before = old_pods
            .get(cursor)
            .and_then(|p| ((p.namespace.as_str(), p.name.as_str()) == key).then_some(cursor));
        previous.push(before);
        dirty.push(
            before.is_none_or(|id| !Arc::ptr_eq(&old_pods[id], pod) && *old_pods[id] != **pod)
                || context_changed(pod),
        );
        // Past the old pod found: the next shared pod is at the cursor again (else every
        // pod after a changed one would be looked up by name).
        if before.is_some() {
            cursor += 1;
        }
    }
    PodMatch::new(dirty, Some(previous), old_pods.len())
}

/// When no pod id moved (as many pods, and each pod not shared with the old list named as
/// the old pod of its id): which pods changed. A pointer comparison per pod; only the pods
/// not shared are read.
fn same_ids(old: &[Arc<Pod>], new: &[Arc<Pod>]) -> Option<Vec<bool>> {
    if old.len() != new.len() {
        return None;
    }
    let mut dirty = vec![false; new.len()];
    for (id, (before, pod)) in old.iter().zip(new).enumerate() {
        if Arc::ptr_eq(before, pod) {
            continue;
        }
        if (before.namespace.as_str(), before.name.as_str())
            != (pod.namespace.as_str(), pod.name.as_str())
        {
            return None;
        }
        dirty[id] = **before != **pod;
    }
    Some(dirty)
}

/// For each old pod, whether a clean new pod continues it (`rematched_pods` already looked
/// each new pod up among the old ones).
fn kept_pods(old_count: usize, dirty: &[bool], previous: &[Option<usize>]) -> Vec<bool> {
    let mut kept = vec![false; old_count];
    for (&dirty, &before) in dirty.iter().zip(previous) {
        if let (false, Some(before)) = (dirty, before) {
            kept[before] = true;
        }
    }
    kept
}

/// The policies that select `pod`, per direction, in evaluation order (every policy asked).
fn selections_of(tiers: &[Tier], inventory: &Inventory, id: usize) -> [Vec<PolicyId>; 2] {
    let pod = &*inventory.pods()[id];
    let mut out = [Vec::new(), Vec::new()];
    if pod.host_network {
        return out;
    }
    // A NetworkPolicy selects pods of its own namespace only (its subject is
    // `PodsInNamespace` of it): those of other namespaces are passed over by their place in
    // the inventory's list (sorted by namespace), without reading the compiled policy.
    let policies = &inventory.network_policies;
    let first = policies.partition_point(|p| p.namespace < pod.namespace);
    let own = first..first + policies[first..].partition_point(|p| p.namespace == pod.namespace);
    for (t, tier) in tiers.iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            if let PolicySource::NetworkPolicy(i) = tier.sources[p] {
                if !own.contains(&i) {
                    debug_assert!(!subject_selects(&policy.subject, inventory, pod));
                    continue;
                }
            }
            if !subject_selects(&policy.subject, inventory, pod) {
                continue;
            }
            for direction in [PolicyType::Ingress, PolicyType::Egress] {
                if policy.rules(direction).is_some() {
                    out[direction_index(direction)].push(PolicyId::new(t, p));
                }
            }
        }
    }
    out
}

impl Engine {
    /// The engine for `inventory`, equal to `Engine::new(inventory)`, built from this one:
    /// the tiers are taken over when nothing they are compiled from changed (else compiled
    /// again), selections are matched again only for new or changed policies and for pods
    /// whose object, namespace labels or service account labels changed, and kept pods share
    /// their selection lists with this engine while the policies keep their places. Also
    /// returns which workloads the change can affect.
    pub fn rebuilt(&self, inventory: Inventory) -> (Engine, Focus, RebuildStats) {
        let (engine, sides, stats) = self.rebuilt_sides(inventory);
        let focus = sides.map_or(Focus::Everything, |s| Focus::Workloads(s.workloads()));
        (engine, focus, stats)
    }

    /// [`Engine::rebuilt`] with the affected workloads by direction (`None`: every line).
    pub(crate) fn rebuilt_sides(
        &self,
        inventory: Inventory,
    ) -> (Engine, Option<Sides>, RebuildStats) {
        let services = changed_services(self.inventory(), &inventory);
        let pods = rematched_pods(self.inventory(), &inventory);
        let compiles = self.compiles(&inventory, &pods);
        let patched = match &compiles {
            Compiles::NetworkPolicies(diff) => self.patched_tiers(&inventory, diff),
            _ => None,
        };
        let (tiers, map) = match (compiles, patched) {
            (Compiles::Alike, _) => (Arc::clone(&self.tiers), PolicyMap::identity(&self.tiers)),
            (_, Some((tiers, map))) => (Arc::new(tiers), map),
            _ => {
                let tiers = compile(&inventory);
                let map = policy_map(self, &tiers, &inventory, &services);
                (Arc::new(tiers), map)
            }
        };
        let mut selecting = self.kept_selections(&tiers, &inventory, &map, &pods);
        self.add_rematched(&tiers, &inventory, &map, &pods.dirty, &mut selecting);
        let sides = self.sides(&inventory, &map, &pods, &selecting);
        let stats = RebuildStats {
            changed_policies: map.new_changed.iter().flatten().filter(|c| **c).count(),
            removed_policies: map.old_changed.iter().flatten().filter(|c| **c).count(),
            rematched_pods: pods.changed.len(),
        };
        let classes = services
            .is_empty()
            .then(|| self.derived_classes(&tiers, &inventory, &map, &pods))
            .flatten();
        // Nothing compiled changed and the classes were carried over by placing the changed
        // pods: a cell between carried classes is the same in both engines (see `Sides`).
        let sides = match (sides, &classes) {
            (Some(sides), Some(classes)) if Arc::ptr_eq(&tiers, &self.tiers) => {
                Some(sides.with_carried(classes.carried.clone()))
            }
            (sides, _) => sides,
        };
        let engine = Engine {
            inventory: Arc::new(inventory),
            tiers,
            selecting,
            cache: Default::default(),
            pod_classes: classes.map(std::sync::OnceLock::from).unwrap_or_default(),
        };
        (engine, sides, stats)
    }

    /// Which inputs of [`compile`] differ for `inventory`: NetworkPolicies (shared lists and
    /// policies compare by pointer), other policies, or what compiled peers read; a new,
    /// changed or gone host-network pod counts as a difference of everything (their addresses
    /// go into peers outside the cluster under Cilium).
    fn compiles(&self, inventory: &Inventory, pods: &PodMatch) -> Compiles {
        let old = self.inventory();
        let others_equal = old.cni.cni == inventory.cni.cni
            && old.services == inventory.services
            && old.nodes == inventory.nodes
            && old.tiers == inventory.tiers
            && old.admin_policies == inventory.admin_policies
            && old.calico_policies == inventory.calico_policies
            && old.cilium_policies == inventory.cilium_policies;
        if !others_equal {
            return Compiles::Differently;
        }
        // A new or changed host-network pod, or one gone.
        // Every new pod is dirty.
        let changed_host = (pods.changed.iter()).any(|&id| inventory.pods()[id].host_network)
            || (pods.gone().into_iter()).any(|id| old.pods()[id].host_network);
        if changed_host {
            return Compiles::Differently;
        }
        if Arc::ptr_eq(&old.network_policies, &inventory.network_policies) {
            return Compiles::Alike;
        }
        // The merge that matches the lists up for `patched_tiers` also says whether they
        // are equal: every old object kept, none added.
        let diff = network_policy_diff(&old.network_policies, &inventory.network_policies);
        if diff.added.is_empty() && diff.old_to_new.iter().all(Option::is_some) {
            Compiles::Alike
        } else {
            Compiles::NetworkPolicies(diff)
        }
    }

    /// The tiers of `inventory` when only its NetworkPolicies differ among the inputs of
    /// [`compile`]: this engine's tiers with the compiled policies of unchanged objects shared
    /// (their sources renumbered), those of deleted or changed objects left out, and only new
    /// or changed objects compiled, each placed in tier `default` by its sort key as
    /// [`compile`] sorts. `None` when tier `default` would appear or disappear (every later
    /// tier moves).
    fn patched_tiers(
        &self,
        inventory: &Inventory,
        diff: &NetworkPolicyDiff,
    ) -> Option<(Vec<Tier>, PolicyMap)> {
        let t = self.tiers.iter().position(|tier| tier.name == "default")?;
        let before = &self.tiers[t];
        let mut added: Vec<(SortKey, usize)> = diff
            .added
            .iter()
            .map(|&j| {
                let (order, name) = network_policy_key(&inventory.network_policies[j]);
                ((order, Arc::from(name)), j)
            })
            .collect();
        added.sort_by(|a, b| cmp_keys(&a.0, &b.0));
        let mut added = added.into_iter().peekable();
        let capacity = before.policies.len() + added.len();
        let mut tier = Tier {
            name: before.name.clone(),
            end: before.end,
            policies: Vec::with_capacity(capacity),
            sources: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
        };
        let mut old_to_new = vec![None; before.policies.len()];
        let mut new_changed = Vec::with_capacity(capacity);
        let mut rematch = Vec::new();
        let add = |tier: &mut Tier, key: SortKey, j: usize| {
            let policy = compile_network_policy(&inventory.network_policies[j], inventory);
            tier.policies.push(Arc::new(policy));
            tier.sources.push(PolicySource::NetworkPolicy(j));
            tier.keys.push(key);
        };
        for (p, &source) in before.sources.iter().enumerate() {
            let source = match source {
                PolicySource::NetworkPolicy(i) => match diff.old_to_new[i] {
                    Some(j) => PolicySource::NetworkPolicy(j),
                    None => continue, // deleted or changed
                },
                other => other,
            };
            // A NetworkPolicy sorts before any other policy of an equal key (compile's
            // stable sort adds them first).
            while let Some((key, j)) =
                added.next_if(|(key, _)| cmp_keys(key, &before.keys[p]) != Ordering::Greater)
            {
                rematch.push((t, tier.policies.len()));
                new_changed.push(true);
                add(&mut tier, key, j);
            }
            old_to_new[p] = Some((t, tier.policies.len()));
            new_changed.push(false);
            tier.policies.push(Arc::clone(&before.policies[p]));
            tier.sources.push(source);
            tier.keys.push(before.keys[p].clone());
        }
        for (key, j) in added {
            rematch.push((t, tier.policies.len()));
            new_changed.push(true);
            add(&mut tier, key, j);
        }
        if tier.policies.is_empty() {
            return None;
        }
        let map = PolicyMap::patched(&self.tiers, t, old_to_new, new_changed, rematch);
        let mut tier = Some(tier);
        let tiers = (self.tiers.iter().enumerate())
            .map(|(u, old)| match tier.take_if(|_| u == t) {
                Some(tier) => tier,
                None => old.clone(),
            })
            .collect();
        Some((tiers, map))
    }

    /// Every pod's selections from this engine (renumbered when policies moved) for pods kept
    /// clean, matched against every policy for the others. When no pod id moved, a chunk
    /// without a changed pod whose lists all stay as they are is shared with this engine.
    fn kept_selections(
        &self,
        tiers: &[Tier],
        inventory: &Inventory,
        map: &PolicyMap,
        pods: &PodMatch,
    ) -> Chunked<[Selection; 2]> {
        // Each distinct old list renumbered once (pods of a workload share theirs).
        let mut renumbered = SelectionRemap::new(|list: &[PolicyId], out: &mut Vec<_>| {
            out.extend(list.iter().filter_map(|id| {
                let (t, p) = map.old_to_new[id.tier()][id.index()]?;
                Some(PolicyId::new(t, p))
            }));
            // Tiers keep their relative order unless a Tier object changed.
            if !out.is_sorted() {
                out.sort_unstable();
            }
        });
        // Per tier, the first old policy that moved or changed: a list naming only policies
        // before it is its own image and keeps its allocation, without a lookup (a change
        // in one namespace leaves the lists of the namespaces sorted before it so).
        let moved_from: Vec<usize> = if map.identity {
            Vec::new()
        } else {
            (map.old_to_new.iter().enumerate())
                .map(|(t, places)| {
                    (places.iter().enumerate())
                        .position(|(p, &place)| place != Some((t, p)))
                        .unwrap_or(places.len())
                })
                .collect()
        };
        let own = |list: &Selection| -> bool {
            map.identity || list.iter().all(|id| id.index() < moved_from[id.tier()])
        };
        let mut renumber = |list: &Selection| -> Selection {
            if own(list) {
                Arc::clone(list)
            } else {
                renumbered.remap(list)
            }
        };
        if pods.same_ids() {
            let mut changed = pods.changed.iter().peekable();
            let chunks = (self.selecting.chunks().iter().enumerate())
                .map(|(k, chunk)| {
                    let (start, end) = (k * CHUNK, k * CHUNK + chunk.len());
                    let touched = changed.next_if(|&&id| id < end).is_some();
                    while changed.next_if(|&&id| id < end).is_some() {}
                    if !touched && chunk.iter().flatten().all(own) {
                        return Arc::clone(chunk);
                    }
                    (chunk.iter().enumerate())
                        .map(|(i, [ingress, egress])| match pods.dirty[start + i] {
                            false => [renumber(ingress), renumber(egress)],
                            true => selections_of(tiers, inventory, start + i).map(Arc::from),
                        })
                        .collect()
                })
                .collect();
            return Chunked::from_chunks(chunks);
        }
        (0..pods.dirty.len())
            .map(|id| match pods.previous(id) {
                Some(old) if !pods.dirty[id] => {
                    let [ingress, egress] = &self.selecting[old];
                    [renumber(ingress), renumber(egress)]
                }
                _ => selections_of(tiers, inventory, id).map(Arc::from),
            })
            .collect()
    }

    /// New or changed policies matched against the pods kept from before.
    fn add_rematched(
        &self,
        tiers: &[Tier],
        inventory: &Inventory,
        map: &PolicyMap,
        dirty: &[bool],
        selecting: &mut Chunked<[Selection; 2]>,
    ) {
        let mut added: FastMap<usize, [Vec<PolicyId>; 2]> = FastMap::default();
        for &(t, p) in &map.rematch {
            let policy = &tiers[t].policies[p];
            for id in subject_candidates(&policy.subject, inventory) {
                let pod = &*inventory.pods()[id];
                if dirty[id]
                    || pod.host_network
                    || !subject_selects(&policy.subject, inventory, pod)
                {
                    continue;
                }
                for direction in [PolicyType::Ingress, PolicyType::Egress] {
                    if policy.rules(direction).is_some() {
                        added.entry(id).or_default()[direction_index(direction)]
                            .push(PolicyId::new(t, p));
                    }
                }
            }
        }
        for (id, lists) in added {
            for (direction, extra) in lists.into_iter().enumerate() {
                if extra.is_empty() {
                    continue;
                }
                let mut lists = selecting[id].clone();
                let mut list: Vec<PolicyId> = lists[direction].to_vec();
                list.extend(extra);
                list.sort_unstable();
                lists[direction] = Arc::from(list);
                selecting.set(id, lists);
            }
        }
    }

    /// The new engine's pod classes from this one's, when they were computed and the policies
    /// still look at the same labels and addresses (Services unchanged: Calico `services`
    /// peers make every Service's selector keys relevant).
    fn derived_classes(
        &self,
        tiers: &[Tier],
        inventory: &Inventory,
        map: &PolicyMap,
        pods: &PodMatch,
    ) -> Option<crate::pod_classes::PodClasses> {
        let old = self.pod_classes.get()?;
        let mut basis = old.basis().clone();
        for (t, tier) in self.tiers.iter().enumerate() {
            for (p, policy) in tier.policies.iter().enumerate() {
                if map.old_changed[t][p] {
                    basis.count(policy, self.inventory(), -1);
                }
            }
        }
        for (t, tier) in tiers.iter().enumerate() {
            for (p, policy) in tier.policies.iter().enumerate() {
                if map.new_changed[t][p] {
                    basis.count(policy, inventory, 1);
                }
            }
        }
        let shared = self.inventory().shares_pods(inventory);
        old.derived(self.inventory().pods(), inventory, basis, pods, shared)
    }

    /// The workloads whose connections the change can affect (see the module notes), by the
    /// direction of their pods' inputs that changed; `None` when every line can change.
    fn sides(
        &self,
        inventory: &Inventory,
        map: &PolicyMap,
        pods: &PodMatch,
        selecting: &Chunked<[Selection; 2]>,
    ) -> Option<Sides> {
        let old = self.inventory();
        if old.network_sets != inventory.network_sets
            || old.nodes != inventory.nodes
            || old.tiers != inventory.tiers
        {
            return None;
        }
        let mut sides = Sides::default();
        if map.identity {
            // With every policy kept no selection names a changed policy: only the changed
            // pods' workloads are marked.
            for id in pods.gone() {
                sides.mark(&old.pods()[id].workload, true, [false; 2]);
            }
            for &id in &pods.changed {
                sides.mark(&inventory.pods()[id].workload, true, [false; 2]);
            }
            return Some(sides);
        }
        for (id, pod) in old.pods().iter().enumerate() {
            let changed = (self.selecting[id].each_ref())
                .map(|list| list.iter().any(|id| map.old_changed[id.tier()][id.index()]));
            sides.mark(&pod.workload, !pods.kept[id], changed);
        }
        for (id, pod) in inventory.pods().iter().enumerate() {
            let changed = (selecting[id].each_ref())
                .map(|list| list.iter().any(|id| map.new_changed[id.tier()][id.index()]));
            sides.mark(&pod.workload, pods.dirty[id], changed);
        }
        Some(sides)
    }
}

/// How long each step of [`Cluster::apply`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Applying the objects and linking the inventory again: patched in place for pods and
    /// NetworkPolicies ([`Timings::patched`]), else every object linked again.
    pub link: Duration,
    /// The engine's incremental rebuild ([`Engine::rebuilt`]).
    pub engine: Duration,
    /// The reachability delta over the affected workloads.
    pub delta: Duration,
    /// Whether the inventory was patched ([`netfence_model::LinkPatch`]) rather than linked
    /// again from every object.
    pub patched: bool,
}

/// What one [`Cluster::apply`] did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The object changes, in the order applied.
    pub changes: Vec<Change>,
    /// The reachability delta, equal to [`crate::diff`] of the engines before and after.
    pub delta: Vec<DiffLine>,
    /// Which workloads were compared.
    pub focus: Focus,
    /// What the engine reused.
    pub stats: RebuildStats,
    /// Time per step.
    pub timings: Timings,
}

/// The loaded objects and the engine built from them, changed together: the state behind
/// `netfence what-if` (and a watch of a live cluster).
pub struct Cluster {
    loader: Loader,
    engine: Engine,
}

/// The loaded objects after a change: a patch still to commit to the cluster's loader, or a
/// changed copy of it.
enum NextLoader {
    Patch(LinkPatch),
    Whole(Box<Loader>),
}

/// A change linked: the object changes, the new inventory, the loader to keep.
struct Linked {
    changes: Vec<Change>,
    inventory: Inventory,
    loader: NextLoader,
}

impl Cluster {
    /// Build the engine from everything `loader` read, keeping the objects for later changes.
    pub fn new(loader: Loader) -> Result<Cluster, LoadErrors> {
        let engine = Engine::new(loader.clone().finish()?);
        // The pod classes are part of the kept state: each change's engine takes them over
        // (placing only changed pods), and the delta reads them grouped by workload.
        let _ = engine.workload_classes();
        // Likewise the loader's index of workload objects by namespace, which relinking a
        // changed pod reads.
        loader.index_workloads();
        Ok(Cluster { loader, engine })
    }

    /// The current engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Apply object changes (create or replace each object `changes` holds, then delete
    /// `deletions`), update the engine incrementally and return the reachability delta. On
    /// an error nothing changes.
    pub fn apply(
        &mut self,
        changes: Loader,
        deletions: &[ObjectKey],
    ) -> Result<Applied, LoadErrors> {
        let (applied, loader, engine) = self.changed(changes, deletions)?;
        self.keep(loader);
        self.engine = engine;
        Ok(applied)
    }

    /// [`Cluster::apply`] without the reachability delta: the new state only, for a consumer
    /// that renders the state rather than reports its change (the enforcement agent, for
    /// which the delta of a change touching every workload is a third of the update's time).
    /// On an error nothing changes.
    pub fn update(
        &mut self,
        changes: Loader,
        deletions: &[ObjectKey],
    ) -> Result<Vec<Change>, LoadErrors> {
        let linked = self.link(changes, deletions)?;
        let (engine, _, _) = self.engine.rebuilt(linked.inventory);
        self.keep(linked.loader);
        self.engine = engine;
        Ok(linked.changes)
    }

    /// What [`Cluster::apply`] would return, without keeping the change: the state stays
    /// as it was (a preview, as `netfence serve` shows it).
    pub fn preview(&self, changes: Loader, deletions: &[ObjectKey]) -> Result<Applied, LoadErrors> {
        self.changed(changes, deletions)
            .map(|(applied, _, _)| applied)
    }

    /// Keep the loaded objects after a change.
    fn keep(&mut self, loader: NextLoader) {
        match loader {
            NextLoader::Patch(patch) => {
                self.loader.commit(patch);
            }
            NextLoader::Whole(loader) => self.loader = *loader,
        }
    }

    /// The inventory after the change: the current one patched when the change allows it
    /// ([`Loader::link_patch`]), else every object applied and linked again. `self` is only
    /// read.
    fn link(&self, changes: Loader, deletions: &[ObjectKey]) -> Result<Linked, LoadErrors> {
        let current = self.engine.inventory();
        match self.loader.link_patch(changes, deletions, current) {
            Ok(patch) => {
                let mut inventory = current.clone();
                patch.patch(&mut inventory);
                Ok(Linked {
                    changes: patch.changes().to_vec(),
                    inventory,
                    loader: NextLoader::Patch(patch),
                })
            }
            Err(changes) => {
                let mut loader = self.loader.clone();
                let changes = loader.apply(changes, deletions)?;
                let inventory = loader.clone().finish()?;
                Ok(Linked {
                    changes,
                    inventory,
                    loader: NextLoader::Whole(Box::new(loader)),
                })
            }
        }
    }

    /// The changed objects, the engine rebuilt from them and the delta; `self` is only read.
    fn changed(
        &self,
        changes: Loader,
        deletions: &[ObjectKey],
    ) -> Result<(Applied, NextLoader, Engine), LoadErrors> {
        let start = Instant::now();
        let linked = self.link(changes, deletions)?;
        let patched = matches!(linked.loader, NextLoader::Patch(_));
        let linked_at = Instant::now();
        let (engine, sides, stats) = self.engine.rebuilt_sides(linked.inventory);
        let rebuilt = Instant::now();
        let delta = crate::delta::diff_sides(&self.engine, &engine, sides.as_ref());
        let focus = sides.map_or(Focus::Everything, |s| Focus::Workloads(s.workloads()));
        let done = Instant::now();
        let applied = Applied {
            changes: linked.changes,
            delta,
            focus,
            stats,
            timings: Timings {
                link: linked_at - start,
                engine: rebuilt - linked_at,
                delta: done - rebuilt,
                patched,
            },
        };
        Ok((applied, linked.loader, engine))
    }
}
