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
use crate::eval::{direction_index, subject_selects, Engine, Selection, SelectionRemap};
use crate::ir::{
    cmp_keys, compile, compile_source, Peer, Policy, PolicyKind, PolicySource, SortKey, Tier,
};
use crate::resolve::{Interner, Resolved};
use netfence_model::net::FastMap;
use netfence_model::{
    Change, Inventory, LinkPatch, LoadErrors, Loader, NetworkPolicy, ObjectKey, Pod, PodId,
    PolicyType, WorkloadRef,
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
    /// Every policy was compiled again (a change of what compiled policies read besides
    /// their own object, or a tier appearing or disappearing), rather than only new or
    /// changed objects.
    pub compiled_all: bool,
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

    /// The map of patched tiers (the same tiers, in the same order): each old policy's new
    /// place (`None`: gone or changed), which new policies are new or changed, and those
    /// whose subjects are matched again.
    fn patched(
        old_to_new: Vec<Vec<Option<(usize, usize)>>>,
        new_changed: Vec<Vec<bool>>,
        rematch: Vec<(usize, usize)>,
    ) -> PolicyMap {
        PolicyMap {
            old_changed: (old_to_new.iter())
                .map(|places| places.iter().map(Option::is_none).collect())
                .collect(),
            old_to_new,
            new_changed,
            rematch,
            identity: false,
        }
    }
}

/// The inventory object a compiled policy came from, for equality. `hosts_alike`: the
/// host-network pods' addresses are equal in both inventories (they go into compiled Cilium
/// peers).
fn same_source(
    (old, a): (&Inventory, PolicySource),
    (new, b): (&Inventory, PolicySource),
    hosts_alike: bool,
) -> bool {
    match (a, b) {
        (PolicySource::NetworkPolicy(i), PolicySource::NetworkPolicy(j)) => {
            // The CNI decides what an ipBlock compiles to; under Cilium it leaves out node
            // and host-network pod addresses ([`crate::cilium::outside_cluster`]). An
            // unchanged policy is shared.
            let (a, b) = (&old.network_policies[i], &new.network_policies[j]);
            (Arc::ptr_eq(a, b) || a == b)
                && old.cni.cni == new.cni.cni
                && (new.cni.cni.ip_block_matches_pods() || (hosts_alike && old.nodes == new.nodes))
        }
        (PolicySource::Cilium(i), PolicySource::Cilium(j)) => {
            // Nodes' addresses, host-network pods' addresses and Services go into compiled
            // Cilium peers.
            old.cilium_policies[i] == new.cilium_policies[j]
                && hosts_alike
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
    [&policy.ingress, &policy.egress]
        .into_iter()
        .flatten()
        .flatten()
        .any(|rule| names_service(rule, services))
}

/// Whether a compiled rule has a Calico `services` peer (or own-endpoint condition) naming
/// one of `services`: what it matches is read from that Service when it is evaluated, so two
/// compiled rules alike as data differ when the Service does.
pub(crate) fn names_service(rule: &crate::ir::Rule, services: &HashSet<(String, String)>) -> bool {
    !services.is_empty()
        && (rule.peers.iter().chain(rule.local.iter())).any(|peer| match peer.peer() {
            Peer::Calico(entity) => entity
                .service
                .as_ref()
                .is_some_and(|s| services.contains(&(s.namespace.clone(), s.name.clone()))),
            _ => false,
        })
}

/// Services (namespace, name) that differ between the inventories, or exist in one only.
pub(crate) fn changed_services(old: &Inventory, new: &Inventory) -> HashSet<(String, String)> {
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
    let hosts_alike = crate::cilium::host_pod_addresses(old.inventory())
        .eq(crate::cilium::host_pod_addresses(inventory));
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
                    (old.inventory(), old.tiers[ot].sources[op]),
                    (inventory, tier.sources[p]),
                    hosts_alike,
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
    /// Only policy objects differ, matched up kind by kind ([`Engine::patched_tiers`]).
    Policies(PolicyDiffs),
    /// Something else differs: every policy is compiled again.
    Differently,
}

/// The objects of one of the inventory's policy lists matched up: for each old one, the new
/// index of an equal object (its compiled policies are shared); the new indices of new or
/// changed ones (compiled).
struct ListDiff {
    old_to_new: Vec<Option<usize>>,
    added: Vec<usize>,
}

impl ListDiff {
    fn identity(len: usize) -> ListDiff {
        ListDiff {
            old_to_new: (0..len).map(Some).collect(),
            added: Vec::new(),
        }
    }

    /// Every object kept at its index, none added.
    fn is_identity(&self) -> bool {
        self.added.is_empty()
            && (self.old_to_new.iter().enumerate()).all(|(i, &place)| place == Some(i))
    }
}

/// The policy lists of two inventories matched up, one [`ListDiff`] per kind of object.
struct PolicyDiffs {
    network: ListDiff,
    calico: ListDiff,
    admin: ListDiff,
    cilium: ListDiff,
}

impl PolicyDiffs {
    /// The source of the same, unchanged object in the new inventory (`None`: gone or changed).
    fn renumbered(&self, source: PolicySource) -> Option<PolicySource> {
        Some(match source {
            PolicySource::NetworkPolicy(i) => {
                PolicySource::NetworkPolicy(self.network.old_to_new[i]?)
            }
            PolicySource::Calico(i) => PolicySource::Calico(self.calico.old_to_new[i]?),
            PolicySource::Admin(i) => PolicySource::Admin(self.admin.old_to_new[i]?),
            PolicySource::Cilium(i) => PolicySource::Cilium(self.cilium.old_to_new[i]?),
        })
    }

    /// The new or changed objects.
    fn added(&self) -> impl Iterator<Item = PolicySource> + '_ {
        (self
            .network
            .added
            .iter()
            .map(|&j| PolicySource::NetworkPolicy(j)))
        .chain(self.admin.added.iter().map(|&j| PolicySource::Admin(j)))
        .chain(self.calico.added.iter().map(|&j| PolicySource::Calico(j)))
        .chain(self.cilium.added.iter().map(|&j| PolicySource::Cilium(j)))
    }

    fn is_identity(&self) -> bool {
        [&self.network, &self.calico, &self.admin, &self.cilium]
            .iter()
            .all(|diff| diff.is_identity())
    }
}

/// Where [`compile`] puts a policy among others of its tier: by sort key; on equal keys in the
/// order it adds them (its sort is stable): NetworkPolicies, admin, Calico, then Cilium
/// policies, each kind in inventory order.
fn placement(a: (&SortKey, PolicySource), b: (&SortKey, PolicySource)) -> Ordering {
    cmp_keys(a.0, b.0).then_with(|| added_order(a.1).cmp(&added_order(b.1)))
}

/// The order in which [`compile`] adds policies to their tiers.
fn added_order(source: PolicySource) -> (u8, usize) {
    match source {
        PolicySource::NetworkPolicy(i) => (0, i),
        PolicySource::Admin(i) => (1, i),
        PolicySource::Calico(i) => (2, i),
        PolicySource::Cilium(i) => (3, i),
    }
}

/// Both lists are sorted by (namespace, name) without duplicates (the inventory's order), so
/// one merge pairs them; an object shared with the old inventory is equal by pointer, only the
/// others are compared by name and value.
fn network_policy_diff(old: &[Arc<NetworkPolicy>], new: &[Arc<NetworkPolicy>]) -> ListDiff {
    fn key(p: &NetworkPolicy) -> (&str, &str) {
        (p.namespace.as_str(), p.name.as_str())
    }
    if std::ptr::eq(old, new) {
        return ListDiff::identity(old.len());
    }
    let mut diff = ListDiff {
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
    pub(crate) changed: Vec<PodId>,
    /// For each new pod, the id of the old pod of its name; `None` when no id moved (as many
    /// pods, each named as the old pod of its id): then a pod's old id is its id.
    previous: Option<Vec<Option<usize>>>,
    /// For each old pod, whether a clean new pod continues it; every other old pod is gone
    /// or changed, and its workload may have changed too (adoption by a new selector).
    pub(crate) kept: Vec<bool>,
}

impl PodMatch {
    /// The old id of the pod named as new pod `id`.
    pub(crate) fn previous(&self, id: PodId) -> Option<PodId> {
        match &self.previous {
            None => Some(id),
            Some(previous) => previous[id].map(PodId::new),
        }
    }

    /// Whether every pod kept its id (see [`PodMatch::previous`]).
    pub(crate) fn same_ids(&self) -> bool {
        self.previous.is_none()
    }

    /// The old ids of the pods no clean new pod continues, in order.
    pub(crate) fn gone(&self) -> Vec<PodId> {
        match &self.previous {
            // A pod's old id is its id: the old pods not kept are the changed ones.
            None => self.changed.clone(),
            Some(_) => (0..self.kept.len())
                .filter(|&id| !self.kept[id])
                .map(PodId::new)
                .collect(),
        }
    }

    fn new(dirty: Vec<bool>, previous: Option<Vec<Option<usize>>>, old_count: usize) -> Self {
        let changed: Vec<PodId> = (0..dirty.len())
            .filter(|&id| dirty[id])
            .map(PodId::new)
            .collect();
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

/// Calico, admin and Cilium policies follow load order (a change appends new objects), so
/// they are matched by their object key (kind, namespace, name; a Cilium rule's spec index);
/// `None` when a key repeats (a list the loader would refuse: compiled in full).
fn keyed_diff<'a, T: PartialEq, K: std::hash::Hash + Eq>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Option<ListDiff> {
    if old == new {
        return Some(ListDiff::identity(old.len()));
    }
    let mut place: HashMap<K, usize> = HashMap::with_capacity(old.len());
    for (i, object) in old.iter().enumerate() {
        if place.insert(key(object), i).is_some() {
            return None;
        }
    }
    let mut diff = ListDiff {
        old_to_new: vec![None; old.len()],
        added: Vec::new(),
    };
    for (j, object) in new.iter().enumerate() {
        match place.get(&key(object)) {
            Some(&i) if diff.old_to_new[i].is_some() => return None,
            Some(&i) if old[i] == *object => diff.old_to_new[i] = Some(j),
            _ => diff.added.push(j),
        }
    }
    Some(diff)
}

/// The policy lists of two inventories matched up (`None`: a list with a repeated key).
fn policy_diffs(old: &Inventory, new: &Inventory) -> Option<PolicyDiffs> {
    use std::mem::discriminant;
    Some(PolicyDiffs {
        network: network_policy_diff(&old.network_policies, &new.network_policies),
        calico: keyed_diff(&old.calico_policies, &new.calico_policies, |p| {
            let namespace = match &p.scope {
                netfence_model::calico::CalicoScope::Namespace(ns) => Some(ns.as_str()),
                netfence_model::calico::CalicoScope::Global { .. } => None,
            };
            (namespace, p.name.as_str())
        })?,
        admin: keyed_diff(&old.admin_policies, &new.admin_policies, |p| {
            (discriminant(&p.kind), p.name.as_str())
        })?,
        cilium: keyed_diff(&old.cilium_policies, &new.cilium_policies, |p| {
            (
                discriminant(&p.kind),
                p.namespace.as_deref(),
                p.name.as_str(),
                p.spec_index,
            )
        })?,
    })
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
fn selections_of(tiers: &[Tier], inventory: &Inventory, id: PodId) -> [Vec<PolicyId>; 2] {
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

/// One patched tier: the policies, each old policy's new place, which are new or changed,
/// the places of those.
struct MergedTier {
    tier: Tier,
    old_to_new: Vec<Option<(usize, usize)>>,
    new_changed: Vec<bool>,
    rematch: Vec<(usize, usize)>,
}

/// Tier `t` (`before`) with the policies of unchanged objects kept in order (sources
/// renumbered), the others left out, and `added` (sorted by [`placement`]) merged in. `None`
/// when the tier ends up empty, or when renumbering reversed two kept policies of equal keys
/// (a tie [`compile`] breaks by inventory order, which the change reordered).
fn merged_tier(
    t: usize,
    before: &Tier,
    added: Vec<(SortKey, PolicySource, Policy)>,
    diffs: &PolicyDiffs,
) -> Option<MergedTier> {
    let capacity = before.policies.len() + added.len();
    let mut out = MergedTier {
        tier: Tier {
            name: before.name.clone(),
            end: before.end,
            policies: Vec::with_capacity(capacity),
            sources: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
        },
        old_to_new: vec![None; before.policies.len()],
        new_changed: Vec::with_capacity(capacity),
        rematch: Vec::new(),
    };
    let mut added = added.into_iter().peekable();
    let push = |out: &mut MergedTier, policy, source, key, changed: bool| {
        if changed {
            out.rematch.push((t, out.tier.policies.len()));
        }
        out.new_changed.push(changed);
        out.tier.policies.push(policy);
        out.tier.sources.push(source);
        out.tier.keys.push(key);
    };
    let mut last_kept: Option<(usize, PolicySource)> = None;
    for (p, &source) in before.sources.iter().enumerate() {
        let Some(source) = diffs.renumbered(source) else {
            continue; // deleted or changed
        };
        let key = &before.keys[p];
        if let Some((q, last)) = last_kept {
            if added_order(last) > added_order(source) && cmp_keys(&before.keys[q], key).is_eq() {
                return None;
            }
        }
        last_kept = Some((p, source));
        while let Some((key, source, policy)) =
            added.next_if(|(k, s, _)| placement((k, *s), (key, source)).is_lt())
        {
            push(&mut out, Arc::new(policy), source, key, true);
        }
        out.old_to_new[p] = Some((t, out.tier.policies.len()));
        push(
            &mut out,
            Arc::clone(&before.policies[p]),
            source,
            key.clone(),
            false,
        );
    }
    for (key, source, policy) in added {
        push(&mut out, Arc::new(policy), source, key, true);
    }
    (!out.tier.policies.is_empty()).then_some(out)
}

/// Whether every endpoint a peer can resolve to is the same in `old` and `new`: no pod
/// changed, came or went, and namespaces, service accounts, Services, nodes, network sets and
/// the CNI are equal. Then a peer or subject resolves alike in both ([`Resolved::carried`]).
fn same_endpoints(old: &Inventory, new: &Inventory, pods: &PodMatch) -> bool {
    // Every pod keeps its id (as many pods) and none is dirty.
    pods.changed.is_empty()
        && pods.same_ids()
        && (old.shares_namespaces(new) || old.namespaces() == new.namespaces())
        && old.service_accounts == new.service_accounts
        && old.services == new.services
        && old.nodes == new.nodes
        && old.network_sets == new.network_sets
        && old.cni == new.cni
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
            Compiles::Policies(diffs) => self.patched_tiers(&inventory, diffs),
            _ => None,
        };
        let compiled_all = !matches!(compiles, Compiles::Alike) && patched.is_none();
        // Kept compiled policies keep their peers' and subject's ids: the interner is shared. A
        // full compile starts a new one.
        let (tiers, map, interner) = match (compiles, patched) {
            (Compiles::Alike, _) => (
                Arc::clone(&self.tiers),
                PolicyMap::identity(&self.tiers),
                Arc::clone(&self.interner),
            ),
            (_, Some((tiers, map))) => (Arc::new(tiers), map, Arc::clone(&self.interner)),
            _ => {
                let interner = Interner::default();
                let tiers = compile(&inventory, &interner);
                let map = policy_map(self, &tiers, &inventory, &services);
                (Arc::new(tiers), map, Arc::new(interner))
            }
        };
        let carried = Arc::ptr_eq(&interner, &self.interner)
            && same_endpoints(self.inventory(), &inventory, &pods);
        let cache = if carried {
            self.cache.carried()
        } else {
            Resolved::new()
        };
        let mut selecting = self.kept_selections(&tiers, &inventory, &map, &pods);
        self.add_rematched(
            &tiers,
            &inventory,
            &cache,
            &map,
            &pods.dirty,
            &mut selecting,
        );
        let sides = self.sides(&inventory, &map, &pods, &selecting);
        let stats = RebuildStats {
            changed_policies: map.new_changed.iter().flatten().filter(|c| **c).count(),
            removed_policies: map.old_changed.iter().flatten().filter(|c| **c).count(),
            rematched_pods: pods.changed.len(),
            compiled_all,
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
            interner,
            cache,
            pod_classes: classes.map(std::sync::OnceLock::from).unwrap_or_default(),
        };
        if carried {
            engine.check_carried();
        }
        (engine, sides, stats)
    }

    /// Which inputs of [`compile`] differ for `inventory`: policy objects only (shared lists
    /// and policies compare by pointer), or what compiled policies read besides their own
    /// object; a new, changed or gone host-network pod counts as a difference of everything
    /// (their addresses go into peers outside the cluster under Cilium).
    fn compiles(&self, inventory: &Inventory, pods: &PodMatch) -> Compiles {
        let old = self.inventory();
        // Each of these moves more than the policies of changed objects, so every policy is
        // compiled again: a Tier created, deleted or changed moves or ends every tier after
        // it; the CNI decides what every ipBlock compiles to; nodes and Services go into
        // compiled Cilium peers and Calico `services` ports. Network sets do not: compiled
        // peers name them by selector, matched when evaluated.
        let others_equal = old.cni.cni == inventory.cni.cni
            && old.services == inventory.services
            && old.nodes == inventory.nodes
            && old.tiers == inventory.tiers;
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
        // The matching that `patched_tiers` takes also says whether the lists are equal.
        match policy_diffs(old, inventory) {
            Some(diffs) if diffs.is_identity() => Compiles::Alike,
            Some(diffs) => Compiles::Policies(diffs),
            None => Compiles::Differently,
        }
    }

    /// The tiers of `inventory` when only policy objects differ among the inputs of
    /// [`compile`]: this engine's tiers with the compiled policies of unchanged objects shared
    /// (their sources renumbered), those of deleted or changed objects left out, and only new
    /// or changed objects compiled ([`crate::ir::compile_source`]), each placed in its tier
    /// as [`compile`] sorts ([`placement`]). `None` when a tier would appear or disappear
    /// (every later tier moves: compiled in full).
    fn patched_tiers(
        &self,
        inventory: &Inventory,
        diffs: &PolicyDiffs,
    ) -> Option<(Vec<Tier>, PolicyMap)> {
        let mut added: Vec<Vec<(SortKey, PolicySource, Policy)>> =
            self.tiers.iter().map(|_| Vec::new()).collect();
        for source in diffs.added() {
            for placed in compile_source(inventory, source, &self.interner) {
                let t = self
                    .tiers
                    .iter()
                    .position(|tier| tier.name == placed.tier)?;
                let key = (placed.order, Arc::from(placed.sort_name));
                added[t].push((key, placed.source, placed.policy));
            }
        }
        let count = self.tiers.len();
        let (mut tiers, mut old_to_new, mut new_changed, mut rematch) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::new(),
        );
        for (t, (before, mut added)) in self.tiers.iter().zip(added).enumerate() {
            let unchanged =
                || (before.sources.iter()).all(|&source| diffs.renumbered(source) == Some(source));
            if added.is_empty() && unchanged() {
                tiers.push(before.clone());
                old_to_new.push((0..before.policies.len()).map(|p| Some((t, p))).collect());
                new_changed.push(vec![false; before.policies.len()]);
                continue;
            }
            added.sort_by(|a, b| placement((&a.0, a.1), (&b.0, b.1)));
            let merged = merged_tier(t, before, added, diffs)?;
            rematch.extend(merged.rematch);
            tiers.push(merged.tier);
            old_to_new.push(merged.old_to_new);
            new_changed.push(merged.new_changed);
        }
        Some((tiers, PolicyMap::patched(old_to_new, new_changed, rematch)))
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
                    let touched = changed.next_if(|&&id| id.index() < end).is_some();
                    while changed.next_if(|&&id| id.index() < end).is_some() {}
                    if !touched && chunk.iter().flatten().all(own) {
                        return Arc::clone(chunk);
                    }
                    (chunk.iter().enumerate())
                        .map(|(i, [ingress, egress])| match pods.dirty[start + i] {
                            false => [renumber(ingress), renumber(egress)],
                            true => selections_of(tiers, inventory, PodId::new(start + i))
                                .map(Arc::from),
                        })
                        .collect()
                })
                .collect();
            return Chunked::from_chunks(chunks);
        }
        (0..pods.dirty.len())
            .map(PodId::new)
            .map(|id| match pods.previous(id) {
                Some(old) if !pods.dirty[id] => {
                    let [ingress, egress] = &self.selecting[old];
                    [renumber(ingress), renumber(egress)]
                }
                _ => selections_of(tiers, inventory, id).map(Arc::from),
            })
            .collect()
    }

    /// New or changed policies matched against the pods kept from before, through the new
    /// engine's resolved subjects (`resolved`: a subject equal to one resolved before is
    /// not matched again when no endpoint changed).
    fn add_rematched(
        &self,
        tiers: &[Tier],
        inventory: &Inventory,
        resolved: &Resolved,
        map: &PolicyMap,
        dirty: &[bool],
        selecting: &mut Chunked<[Selection; 2]>,
    ) {
        let mut added: FastMap<PodId, [Vec<PolicyId>; 2]> = FastMap::default();
        for &(t, p) in &map.rematch {
            let policy = &tiers[t].policies[p];
            for &id in resolved.subject_pods(&policy.subject, inventory) {
                if dirty[id] {
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
        // Pods that shared a list and gain the same policies share the new list: one
        // allocation per distinct (list, policies added), not per pod.
        // (The old list is kept in the memo, so its address names it throughout.)
        let mut extended: FastMap<(usize, Vec<PolicyId>), (Selection, Selection)> =
            FastMap::default();
        for (id, lists) in added {
            for (direction, extra) in lists.into_iter().enumerate() {
                if extra.is_empty() {
                    continue;
                }
                let mut lists = selecting[id].clone();
                let old = &lists[direction];
                let list = extended
                    .entry((old.as_ptr() as usize, extra))
                    .or_insert_with_key(|(_, extra)| {
                        let mut list: Vec<PolicyId> = old.to_vec();
                        list.extend_from_slice(extra);
                        list.sort_unstable();
                        (old.clone(), Arc::from(list))
                    })
                    .1
                    .clone();
                lists[direction] = list;
                selecting.set(id.index(), lists);
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
            || network_set_namespace_relabelled(old, inventory)
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
        // With no old (new) policy changed, no old (new) list names one: only the pods gone
        // (changed) are marked on that side, not every pod's lists read (a policy created or
        // deleted).
        // Each distinct list (pods of a workload mostly share one allocation) is read once.
        let names_changed =
            |memo: &mut FastMap<usize, bool>, list: &Selection, changed: &[Vec<bool>]| {
                *memo
                    .entry(list.as_ptr() as usize)
                    .or_insert_with(|| list.iter().any(|id| changed[id.tier()][id.index()]))
            };
        if (map.old_changed.iter().flatten()).any(|&c| c) {
            let mut memo = FastMap::default();
            let marks = old.pods().iter().enumerate().map(|(id, pod)| {
                let changed = (self.selecting[id].each_ref())
                    .map(|list| names_changed(&mut memo, list, &map.old_changed[..]));
                (&pod.workload, !pods.kept[id], changed)
            });
            mark_pods(&mut sides, marks);
        } else {
            for id in pods.gone() {
                sides.mark(&old.pods()[id].workload, true, [false; 2]);
            }
        }
        if (map.new_changed.iter().flatten()).any(|&c| c) {
            let mut memo = FastMap::default();
            let marks = inventory.pods().iter().enumerate().map(|(id, pod)| {
                let changed = (selecting[id].each_ref())
                    .map(|list| names_changed(&mut memo, list, &map.new_changed[..]));
                (&pod.workload, pods.dirty[id], changed)
            });
            mark_pods(&mut sides, marks);
        } else {
            for &id in &pods.changed {
                sides.mark(&inventory.pods()[id].workload, true, [false; 2]);
            }
        }
        Some(sides)
    }
}

/// [`Sides::mark`] for each (workload, changed, [ingress, egress]) in pod order, skipping a
/// pod that marks nothing and one whose mark is the previous marking pod's (a workload's pods
/// are mostly adjacent, pods being sorted by namespace and name; marking is idempotent): one
/// comparison with the previous workload instead of a lookup by name in the marked set.
fn mark_pods<'p>(
    sides: &mut Sides,
    marks: impl Iterator<Item = (&'p WorkloadRef, bool, [bool; 2])>,
) {
    let mut previous = None;
    for mark @ (workload, changed, [ingress, egress]) in marks {
        if (changed || ingress || egress) && previous != Some(mark) {
            sides.mark(workload, changed, [ingress, egress]);
            previous = Some(mark);
        }
    }
}

/// Whether the labels of a namespace holding a namespaced network set changed: a rule's
/// `namespaceSelector` matches the set by them (Calico NetworkSet: "namespaceSelector ...
/// selects network sets in the matching namespaces"), so any rule may now match its
/// addresses, for any pod.
fn network_set_namespace_relabelled(old: &Inventory, new: &Inventory) -> bool {
    if old.shares_namespaces(new) {
        return false;
    }
    let labels =
        |inventory: &Inventory, ns: &str| inventory.namespaces().get(ns).map(|n| n.labels.clone());
    new.network_sets
        .iter()
        .filter_map(|set| set.namespace.as_deref())
        .any(|ns| labels(old, ns) != labels(new, ns))
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
        // And what the delta's line memo reads of each class's pod, which each change's
        // engine carries over for the classes no changed pod left or joined.
        let _ = engine.class_facts();
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
