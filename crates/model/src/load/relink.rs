//! Incremental relinking: the inventory that [`Loader::finish`] would build after
//! [`Loader::apply`], made by patching the inventory built before the change instead of linking
//! every object again.
//!
//! Only changes whose effect on the linked inventory is local are patched: pods and
//! Kubernetes NetworkPolicies created, replaced or deleted in declared namespaces, and the
//! kinds that nothing links against, which [`Loader::finish`] only orders: Calico
//! NetworkPolicies and GlobalNetworkPolicies, admin policies (AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy, ClusterNetworkPolicy), Cilium (Clusterwide)NetworkPolicies,
//! Calico (Global)NetworkSets and Tiers. A pod is
//! linked to its workload exactly as [`Loader::finish`] does (owners, then selectors), with
//! only the workloads of its namespace. Everything that could reach beyond the changed
//! objects is refused, and the caller then applies and links the whole loader: the first
//! live pod of a workload that has template pods (they disappear), the last live pod of a
//! workload (template pods may appear), pods without an address or with one from the range
//! synthetic addresses are drawn from (synthetic addresses depend on every pod), pods named
//! like a template pod, undeclared namespaces (an implicit namespace comes and goes with the
//! objects naming it), `--lenient` loaders, changes that carry warnings, skipped kinds, or
//! several versions of one object. Of the ordered kinds, whatever would change the
//! inventory's warnings or errors, its CNI or its namespaces is refused too: a Calico policy
//! of a tier no Tier object declares coming, going or changing tier (or a Tier such a policy
//! names created or deleted), a
//! change that makes or ends a priority tie of admin policies, or puts two admin policies on
//! one sort key (their order is load order), a second BaselineAdminNetworkPolicy, the first
//! Cilium rule or the last one when the CNI is detected (Cilium rules detect it), a
//! namespaced policy of an undeclared namespace. A refused patch changes nothing.
//!
//! The order of the patched lists is the one [`Loader::finish`] gives after
//! [`Loader::apply`]: Calico policies, network sets and tiers in load order (the inventory's
//! list is the loader's, changed as `apply` changes it: a replaced object keeps its place, a
//! new one comes last); admin policies and Cilium rules sorted by the keys `finish` sorts by
//! (`link::admin_order`, `link::cilium_order`; no two on one key, so load order plays no part).

use super::change::{
    admin_policy_key, calico_policy_key, cilium_policy_key, network_set_key, remove, tier_key,
    upsert, upsert_grouped,
};
use super::link::{
    admin_order, admin_priority_ties, cilium_order, duplicate_addresses, live_pods, Owners,
};
use super::{Loader, PodIndex, WorkloadObject};
use crate::admin::{AdminKind, AdminPolicy};
use crate::calico::{CalicoPolicy, CalicoScope, NetworkSet, Tier};
use crate::cilium::CiliumPolicy;
use crate::inventory::{AddressEdit, Inventory, Pod};
use crate::load::change::{Change, ChangeKind, ObjectKey, ObjectKind};
use crate::policy::NetworkPolicy;
use crate::PodId;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

/// A change the inventory can be patched for ([`Loader::link_patch`]): apply it to an
/// inventory with [`LinkPatch::patch`], and to the loader with [`Loader::commit`].
pub struct LinkPatch {
    /// Pods created or replaced, as loaded (for the loader).
    pods: Vec<(Pod, Option<(String, String)>)>,
    /// The same pods linked to their workloads (for the inventory; shared by every inventory
    /// patched).
    linked: Vec<Arc<Pod>>,
    /// NetworkPolicies created or replaced (for the loader).
    policies: Vec<NetworkPolicy>,
    /// The same, shared by every inventory patched.
    shared_policies: Vec<Arc<NetworkPolicy>>,
    /// The objects of the kinds [`Loader::finish`] only orders, created or replaced (boxed:
    /// the patch is moved around in an enum beside a boxed loader).
    listed: Box<Listed>,
    /// Objects deleted.
    deletions: Vec<ObjectKey>,
    /// What changed, in the order [`Loader::apply`] reports it.
    changes: Vec<Change>,
}

/// Objects of the kinds nothing links against, created or replaced by a [`LinkPatch`], as
/// loaded (the inventory holds them by value: each inventory patched gets a copy).
#[derive(Default)]
struct Listed {
    calico: Vec<CalicoPolicy>,
    admin: Vec<AdminPolicy>,
    cilium: Vec<CiliumPolicy>,
    network_sets: Vec<NetworkSet>,
    tiers: Vec<Tier>,
}

impl Listed {
    /// Taken out of a loader of changes.
    fn take(changes: &mut Loader) -> Listed {
        Listed {
            calico: std::mem::take(&mut changes.calico_policies),
            admin: std::mem::take(&mut changes.admin_policies),
            cilium: std::mem::take(&mut changes.cilium_policies),
            network_sets: std::mem::take(&mut changes.network_sets),
            tiers: std::mem::take(&mut changes.tiers),
        }
    }
}

const CALICO_POLICY_KINDS: [ObjectKind; 2] = [
    ObjectKind::CalicoNetworkPolicy,
    ObjectKind::CalicoGlobalNetworkPolicy,
];
const ADMIN_KINDS: [ObjectKind; 3] = [
    ObjectKind::AdminNetworkPolicy,
    ObjectKind::BaselineAdminNetworkPolicy,
    ObjectKind::ClusterNetworkPolicy,
];
const CILIUM_KINDS: [ObjectKind; 2] = [
    ObjectKind::CiliumNetworkPolicy,
    ObjectKind::CiliumClusterwideNetworkPolicy,
];
const NETWORK_SET_KINDS: [ObjectKind; 2] = [ObjectKind::NetworkSet, ObjectKind::GlobalNetworkSet];

/// A list the inventory keeps in load order (the loader's list): changed as
/// [`Loader::apply`] changes the loader's (a replaced object in its place, a new one last,
/// then the deletions).
fn in_load_order<T: Clone>(
    list: &mut Vec<T>,
    items: &[T],
    deletions: &[ObjectKey],
    kinds: &[ObjectKind],
    key: impl Fn(&T) -> ObjectKey,
) {
    if !items.is_empty() {
        upsert(list, items.to_vec(), &key, &mut Vec::new());
    }
    for target in deletions.iter().filter(|d| kinds.contains(&d.kind)) {
        remove(list, target, &key, true);
    }
}

/// A list the inventory keeps sorted (stable, from load order) by `order`, with no two
/// objects on one key ([`Loader::link_patch`] refuses otherwise): the changed and deleted
/// objects' items taken out, the new items put in their places.
fn in_sorted_order<T: Clone>(
    list: &mut Vec<T>,
    items: &[T],
    deletions: &[ObjectKey],
    kinds: &[ObjectKind],
    key: impl Fn(&T) -> ObjectKey,
    order: impl Fn(&T, &T) -> Ordering,
) {
    let gone = gone_keys(items, deletions, kinds, &key);
    if gone.is_empty() {
        return;
    }
    list.retain(|item| !gone.contains(&key(item)));
    for item in items {
        let at = list.partition_point(|x| order(x, item) != Ordering::Greater);
        list.insert(at, item.clone());
    }
}

impl LinkPatch {
    /// The object changes, as [`Loader::apply`] returns them.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether pods change (else the inventory's pods stay shared with the one patched).
    pub fn touches_pods(&self) -> bool {
        !self.pods.is_empty() || self.deletions.iter().any(|key| key.kind == ObjectKind::Pod)
    }

    /// Change `inventory` (the one [`Loader::link_patch`] was planned against, or a clone of
    /// it) into the one [`Loader::finish`] builds after the change.
    pub fn patch(&self, inventory: &mut Inventory) {
        if !self.policies.is_empty()
            || self
                .deletions
                .iter()
                .any(|key| key.kind == ObjectKind::NetworkPolicy)
        {
            self.patch_policies(Arc::make_mut(&mut inventory.network_policies));
        }
        if self.touches_pods() {
            self.patch_pods(inventory);
        }
        self.patch_listed(inventory);
    }

    /// The lists of the kinds [`Loader::finish`] only orders.
    fn patch_listed(&self, inventory: &mut Inventory) {
        let (listed, deletions) = (&self.listed, &self.deletions);
        in_load_order(
            &mut inventory.calico_policies,
            &listed.calico,
            deletions,
            &CALICO_POLICY_KINDS,
            calico_policy_key,
        );
        in_sorted_order(
            &mut inventory.admin_policies,
            &listed.admin,
            deletions,
            &ADMIN_KINDS,
            admin_policy_key,
            |a, b| admin_order(a).cmp(&admin_order(b)),
        );
        in_sorted_order(
            &mut inventory.cilium_policies,
            &listed.cilium,
            deletions,
            &CILIUM_KINDS,
            cilium_policy_key,
            |a, b| cilium_order(a).cmp(&cilium_order(b)),
        );
        in_load_order(
            &mut inventory.network_sets,
            &listed.network_sets,
            deletions,
            &NETWORK_SET_KINDS,
            network_set_key,
        );
        in_load_order(
            &mut inventory.tiers,
            &listed.tiers,
            deletions,
            &[ObjectKind::Tier],
            tier_key,
        );
    }

    fn patch_policies(&self, policies: &mut Vec<Arc<NetworkPolicy>>) {
        let find = |policies: &[Arc<NetworkPolicy>], ns: &str, name: &str| {
            policies.binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(ns, name)))
        };
        for policy in &self.shared_policies {
            match find(policies, &policy.namespace, &policy.name) {
                Ok(at) => policies[at] = Arc::clone(policy),
                Err(at) => policies.insert(at, Arc::clone(policy)),
            }
        }
        for key in &self.deletions {
            if key.kind != ObjectKind::NetworkPolicy {
                continue;
            }
            if let Ok(at) = find(policies, key.namespace.as_deref().unwrap_or(""), &key.name) {
                policies.remove(at);
            }
        }
    }

    fn patch_pods(&self, inventory: &mut Inventory) {
        let pods = Arc::make_mut(&mut inventory.pods);
        let find = |pods: &[Arc<Pod>], ns: &str, name: &str| {
            pods.binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(ns, name)))
        };
        // The address index (pod ids and addresses) and the warnings about shared addresses
        // (pod names) stay valid while only pods keeping their place and addresses change;
        // else the index follows these edits.
        let mut edits = Vec::new();
        // Whether a pod was inserted or removed (every later id moves).
        let mut ids_moved = false;
        for pod in &self.linked {
            match find(pods, &pod.namespace, &pod.name) {
                Ok(at) => {
                    let before = &pods[at];
                    if before.ips != pod.ips
                        || before.synthetic_ip != pod.synthetic_ip
                        || before.host_network != pod.host_network
                    {
                        edits.push(AddressEdit::Replaced(PodId::new(at), Arc::clone(pod)));
                    }
                    pods[at] = Arc::clone(pod);
                }
                Err(at) => {
                    ids_moved = true;
                    edits.push(AddressEdit::Inserted(PodId::new(at), Arc::clone(pod)));
                    pods.insert(at, Arc::clone(pod));
                }
            }
        }
        for key in &self.deletions {
            if key.kind != ObjectKind::Pod {
                continue;
            }
            if let Ok(at) = find(pods, key.namespace.as_deref().unwrap_or(""), &key.name) {
                ids_moved = true;
                edits.push(AddressEdit::Removed(PodId::new(at)));
                pods.remove(at);
            }
        }
        if ids_moved {
            inventory.index_namespaces();
        }
        if edits.is_empty() {
            return;
        }
        // One warning per address shared in the old index (counted there: its ids may name
        // other pods now).
        let old_duplicates = inventory
            .by_address
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| run.len() > 1)
            .count();
        inventory.edit_addresses(&edits);
        // Address warnings come last in the inventory's warnings.
        let kept = inventory.warnings.len().saturating_sub(old_duplicates);
        inventory.warnings.truncate(kept);
        let shared = duplicate_addresses(inventory);
        inventory.warnings.extend(shared);
    }
}

/// Whether `ip` lies in [`crate::inventory::SYNTHETIC_IPV4_RANGE`] (100.64.0.0/10).
fn in_synthetic_range(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
            u32::from(*v4) & !((1u32 << 22) - 1) == base
        }
        IpAddr::V6(_) => false,
    }
}

fn is_empty_change(changes: &Loader) -> bool {
    changes.namespaces.is_empty()
        && changes.workloads.is_empty()
        && changes.service_accounts.is_empty()
        && changes.services.is_empty()
        && changes.ingresses.is_empty()
        && changes.peer_authentications.is_empty()
        && changes.istio_mesh_configs.is_empty()
        && changes.vpc_cni.is_none()
        && changes.cert_issuers.is_empty()
        && changes.certificates.is_empty()
        && changes.rbac_roles.is_empty()
        && changes.rbac_bindings.is_empty()
        && changes.security_group_policies.is_empty()
        && changes.nodes.is_empty()
        && changes.warnings.is_empty()
        && changes.skipped.is_empty()
        && changes.errors.is_empty()
}

impl Loader {
    /// Plan `changes` and `deletions` (as [`Loader::apply`] takes them) as a patch of
    /// `inventory`, which must be the inventory this loader's [`Loader::finish`] built.
    /// Gives the changes back, with nothing changed, when the change is not one that can be
    /// patched (see the module notes) or would be an error: [`Loader::apply`] and
    /// [`Loader::finish`] then do it, and report the errors.
    pub fn link_patch(
        &self,
        mut changes: Loader,
        deletions: &[ObjectKey],
        inventory: &Inventory,
    ) -> Result<LinkPatch, Loader> {
        match self.plan(&changes, deletions, inventory) {
            Some((linked, out)) => Ok(LinkPatch {
                listed: Box::new(Listed::take(&mut changes)),
                pods: changes.pods,
                linked: linked.into_iter().map(Arc::new).collect(),
                shared_policies: changes.policies.iter().cloned().map(Arc::new).collect(),
                policies: changes.policies,
                deletions: deletions.to_vec(),
                changes: out,
            }),
            None => Err(changes),
        }
    }

    /// The linked pods and the object changes of [`Loader::link_patch`], or `None`.
    fn plan(
        &self,
        changes: &Loader,
        deletions: &[ObjectKey],
        inventory: &Inventory,
    ) -> Option<(Vec<Pod>, Vec<Change>)> {
        if self.lenient
            || !is_empty_change(changes)
            || (changes.documents_read == 0 && deletions.is_empty())
        {
            return None;
        }
        let declared = |ns: &str| inventory.namespaces().get(ns).is_some_and(|n| n.declared);
        // One version of each object, every namespace declared, every deletion of a loaded
        // pod or NetworkPolicy.
        let mut keys: HashSet<(ObjectKind, &str, &str)> = HashSet::new();
        for (pod, _) in &changes.pods {
            if !declared(&pod.namespace)
                || !keys.insert((ObjectKind::Pod, &pod.namespace, &pod.name))
            {
                return None;
            }
        }
        for policy in &changes.policies {
            if !declared(&policy.namespace)
                || !keys.insert((ObjectKind::NetworkPolicy, &policy.namespace, &policy.name))
            {
                return None;
            }
        }
        let listed = self.listed_changes(changes, inventory, &mut keys)?;
        for key in deletions {
            let ns = key.namespace.as_deref().unwrap_or("");
            let loaded = match key.kind {
                ObjectKind::Pod => self.pod_index(ns, &key.name).is_some(),
                ObjectKind::NetworkPolicy => self
                    .policies
                    .iter()
                    .any(|p| p.namespace == ns && p.name == key.name),
                _ => self.listed_deletable(key, changes),
            };
            if !loaded
                || key.namespace.as_deref().is_some_and(|ns| !declared(ns))
                || !keys.insert((key.kind.clone(), ns, &key.name))
            {
                return None;
            }
        }
        if !self.listed_lists_kept(changes, deletions, inventory) {
            return None;
        }
        // Pods: linked to their workloads; template pods and synthetic addresses must stay
        // as they are.
        let touched: HashSet<(&str, &str)> = keys
            .iter()
            .filter(|(kind, _, _)| *kind == ObjectKind::Pod)
            .map(|(_, ns, name)| (*ns, *name))
            .collect();
        let mut linked = Vec::with_capacity(changes.pods.len());
        for (pod, owner) in &changes.pods {
            let mut one = self.linked_pod(pod, owner);
            let before = inventory
                .pod_by_key(&pod.namespace, &pod.name)
                .map(|id| &inventory.pods()[id]);
            if let Some(before) = before {
                if before.from_template {
                    // A live pod named like a template pod: a duplicate.
                    return None;
                }
            }
            if one.synthetic_ip {
                // The same synthetic address as before, when the pod had one: the same pods
                // without addresses, so the same assignment.
                match before {
                    Some(before) if before.synthetic_ip => one.ips.clone_from(&before.ips),
                    _ => return None,
                }
            }
            let has_template_pods = inventory.pods_in(&one.namespace).into_iter().any(|id| {
                let other = &inventory.pods()[id];
                other.from_template && other.workload == one.workload
            });
            if has_template_pods || (!one.synthetic_ip && one.ips.iter().any(in_synthetic_range)) {
                return None;
            }
            linked.push(one);
        }
        let removed = changes
            .pods
            .iter()
            .map(|(p, _)| (p.namespace.as_str(), p.name.as_str()))
            .chain(
                deletions
                    .iter()
                    .filter(|key| key.kind == ObjectKind::Pod)
                    .map(|key| (key.namespace.as_deref().unwrap_or(""), key.name.as_str())),
            );
        for (ns, name) in removed {
            let Some(id) = inventory.pod_by_key(ns, name) else {
                continue;
            };
            let old = &inventory.pods()[id];
            let synthetic_kept = old.synthetic_ip
                && linked
                    .iter()
                    .any(|p| p.namespace == ns && p.name == name && p.synthetic_ip);
            let workload_kept = self.keeps_workload(inventory, &old.workload, &touched)
                || linked.iter().any(|p| p.workload == old.workload);
            if (old.synthetic_ip && !synthetic_kept)
                || (!old.synthetic_ip && old.ips.iter().any(in_synthetic_range))
                || !workload_kept
            {
                return None;
            }
        }
        let mut out = Vec::new();
        for (pod, _) in &changes.pods {
            // A live pod of the inventory (not from a template: refused above) is a loaded
            // pod; only the others are looked for among the loaded pods (a finished pod is
            // loaded but not in the inventory).
            let loaded = inventory.pod_by_key(&pod.namespace, &pod.name).is_some()
                || self.pod_index(&pod.namespace, &pod.name).is_some();
            let kind = if loaded {
                ChangeKind::Replaced
            } else {
                ChangeKind::Created
            };
            out.push(Change {
                key: ObjectKey {
                    kind: ObjectKind::Pod,
                    namespace: Some(pod.namespace.clone()),
                    name: pod.name.clone(),
                },
                kind,
            });
        }
        for policy in &changes.policies {
            let exists = self
                .policies
                .iter()
                .any(|p| p.namespace == policy.namespace && p.name == policy.name);
            out.push(Change {
                key: ObjectKey {
                    kind: ObjectKind::NetworkPolicy,
                    namespace: Some(policy.namespace.clone()),
                    name: policy.name.clone(),
                },
                kind: if exists {
                    ChangeKind::Replaced
                } else {
                    ChangeKind::Created
                },
            });
        }
        out.extend(listed);
        out.extend(deletions.iter().map(|key| Change {
            key: key.clone(),
            kind: ChangeKind::Deleted,
        }));
        Some((linked, out))
    }

    /// Apply a patch planned by [`Loader::link_patch`] on this loader: afterwards the loader
    /// holds what [`Loader::apply`] would have left. Returns the object changes.
    pub fn commit(&mut self, patch: LinkPatch) -> Vec<Change> {
        for item in patch.pods {
            match self.pod_index(&item.0.namespace, &item.0.name) {
                Some(at) => self.pods[at] = item,
                None => {
                    // The index follows when this loader holds it alone, else it goes.
                    let at = self.pods.len();
                    match Arc::get_mut(&mut self.pods_by_name).and_then(OnceLock::get_mut) {
                        Some(index) => {
                            let names = index.entry(item.0.namespace.clone()).or_default();
                            names.insert(item.0.name.clone(), at);
                        }
                        None => self.pods_changed(),
                    }
                    self.pods.push(item);
                }
            }
        }
        for policy in patch.policies {
            match self
                .policies
                .iter()
                .position(|p| p.namespace == policy.namespace && p.name == policy.name)
            {
                Some(at) => self.policies[at] = policy,
                None => self.policies.push(policy),
            }
        }
        // As `Loader::apply` changes them (`upsert_all`, `remove_object`).
        let (listed, mut out) = (*patch.listed, Vec::new());
        upsert(
            &mut self.calico_policies,
            listed.calico,
            calico_policy_key,
            &mut out,
        );
        upsert(
            &mut self.admin_policies,
            listed.admin,
            admin_policy_key,
            &mut out,
        );
        upsert_grouped(
            &mut self.cilium_policies,
            listed.cilium,
            cilium_policy_key,
            &mut out,
        );
        upsert(
            &mut self.network_sets,
            listed.network_sets,
            network_set_key,
            &mut out,
        );
        upsert(&mut self.tiers, listed.tiers, tier_key, &mut out);
        for key in &patch.deletions {
            let ns = key.namespace.as_deref().unwrap_or("");
            match key.kind {
                ObjectKind::Pod => {
                    if let Some(at) = self.pod_index(ns, &key.name) {
                        self.remove_pod_at(at);
                    }
                }
                ObjectKind::NetworkPolicy => self
                    .policies
                    .retain(|p| !(p.namespace == ns && p.name == key.name)),
                _ => {
                    self.remove_object(key, true);
                }
            }
        }
        patch.changes
    }

    /// Where the loaded pod `namespace/name` is, by the index of pods by name (built here on
    /// first use).
    fn pod_index(&self, namespace: &str, name: &str) -> Option<usize> {
        let index = self.pods_by_name.get_or_init(|| {
            let mut index = PodIndex::default();
            for (at, (pod, _)) in self.pods.iter().enumerate() {
                let names = index.entry(pod.namespace.clone()).or_default();
                names.entry(pod.name.clone()).or_insert(at);
            }
            index
        });
        let found = index
            .get(namespace)
            .and_then(|names| names.get(name))
            .copied();
        debug_assert_eq!(
            found,
            (self.pods.iter()).position(|(p, _)| p.namespace == namespace && p.name == name),
            "the index of loaded pods by name is out of date"
        );
        found
    }

    /// Remove the loaded pod at `at` (and any other of its name, as deleting by name removes
    /// every one), keeping the order of the others; the index of pods by name follows when
    /// this loader holds it alone (the places after `at` move down by one).
    fn remove_pod_at(&mut self, at: usize) {
        let (namespace, name) = (
            self.pods[at].0.namespace.clone(),
            self.pods[at].0.name.clone(),
        );
        let before = self.pods.len();
        self.pods
            .retain(|(p, _)| !(p.namespace == namespace && p.name == name));
        let index = Arc::get_mut(&mut self.pods_by_name).and_then(OnceLock::get_mut);
        match index {
            Some(index) if before - self.pods.len() == 1 => {
                if let Some(names) = index.get_mut(&namespace) {
                    names.remove(&name);
                    if names.is_empty() {
                        index.remove(&namespace);
                    }
                }
                for place in index.values_mut().flat_map(|names| names.values_mut()) {
                    if *place > at {
                        *place -= 1;
                    }
                }
            }
            _ => self.pods_changed(),
        }
    }

    /// `pods` changed other than through [`Loader::commit`]: the index of pods by name is
    /// dropped (rebuilt on its next use), when it was built.
    pub(super) fn pods_changed(&mut self) {
        if self.pods_by_name.get().is_some() {
            self.pods_by_name = Arc::default();
        }
    }

    /// The workload objects that can own or adopt a pod of `namespace` (by either reading
    /// of a workload's namespace that linking uses).
    fn workloads_in(&self, namespace: &str) -> Vec<&WorkloadObject> {
        let index = self.workloads_by_namespace.get_or_init(|| {
            let mut index = super::WorkloadIndex::default();
            for (at, w) in self.workloads.iter().enumerate() {
                // `namespace_of` without its allocation: an empty namespace reads "default".
                let ns = w.meta.namespace.as_deref();
                let (given, read) = (
                    ns.unwrap_or("default"),
                    ns.filter(|n| !n.is_empty()).unwrap_or("default"),
                );
                index.entry(given.to_string()).or_default().push(at);
                if read != given {
                    index.entry(read.to_string()).or_default().push(at);
                }
            }
            index
        });
        let found: Vec<&WorkloadObject> = (index.get(namespace).into_iter().flatten())
            .map(|&at| &self.workloads[at])
            .collect();
        // The index is dropped wherever the workloads change: checked against a scan in the
        // tests' builds.
        debug_assert!(found.iter().copied().map(std::ptr::from_ref).eq(self
            .workloads
            .iter()
            .filter(|w| {
                let ns = w.meta.namespace.as_deref();
                ns.unwrap_or("default") == namespace
                    || ns.filter(|n| !n.is_empty()).unwrap_or("default") == namespace
            })
            .map(std::ptr::from_ref)));
        found
    }

    /// Build the indexes of workload objects by namespace and of loaded pods by name that
    /// [`Loader::link_patch`] and [`Loader::commit`] read (else built on their first use): a
    /// long-lived loader (a what-if or watch cluster) keeps them until its workloads change
    /// and, for the pods, across its own commits.
    pub fn index_workloads(&self) {
        let _ = self.workloads_in("");
        let _ = self.pod_index("", "");
    }

    /// `pod` linked to its top-level workload as [`Loader::finish`] links it.
    fn linked_pod(&self, pod: &Pod, owner: &Option<(String, String)>) -> Pod {
        let local = self.workloads_in(&pod.namespace);
        let owners = Owners::new(local.iter().copied());
        let mut linked = live_pods(vec![(pod.clone(), owner.clone())], &local, &owners);
        linked.swap_remove(0)
    }

    /// Whether `workload` keeps a live pod other than the `touched` ones, or is a bare pod
    /// (template pods are made for workload objects only): then removing the touched pods
    /// makes no template pods appear.
    fn keeps_workload(
        &self,
        inventory: &Inventory,
        workload: &crate::WorkloadRef,
        touched: &HashSet<(&str, &str)>,
    ) -> bool {
        workload.kind == "Pod"
            || (inventory.pods_in(&workload.namespace).into_iter()).any(|id| {
                let other = &inventory.pods()[id];
                !other.from_template
                    && other.workload == *workload
                    && !touched.contains(&(other.namespace.as_str(), other.name.as_str()))
            })
    }
}

/// Note the change of an object of an ordered kind (`loaded`: replaced, else created);
/// false when the change holds another version of it.
fn noted<'a>(
    keys: &mut HashSet<(ObjectKind, &'a str, &'a str)>,
    out: &mut Vec<Change>,
    key: ObjectKey,
    (namespace, name): (Option<&'a str>, &'a str),
    loaded: bool,
) -> bool {
    if !keys.insert((key.kind.clone(), namespace.unwrap_or(""), name)) {
        return false;
    }
    let kind = if loaded {
        ChangeKind::Replaced
    } else {
        ChangeKind::Created
    };
    out.push(Change { key, kind });
    true
}

/// The keys of the changed objects of one list and of its kinds' deletions: the items a
/// patch takes out of that list.
fn gone_keys<T>(
    changed: &[T],
    deletions: &[ObjectKey],
    kinds: &[ObjectKind],
    key: impl Fn(&T) -> ObjectKey,
) -> HashSet<ObjectKey> {
    (changed.iter().map(key))
        .chain(
            deletions
                .iter()
                .filter(|d| kinds.contains(&d.kind))
                .cloned(),
        )
        .collect()
}

/// The objects of one list that `changes` and `deletions` leave in place.
fn kept<'a, T>(
    list: &'a [T],
    changed: &[T],
    deletions: &[ObjectKey],
    kinds: &[ObjectKind],
    key: impl Fn(&T) -> ObjectKey,
) -> Vec<&'a T> {
    let gone = gone_keys(changed, deletions, kinds, &key);
    list.iter()
        .filter(|item| !gone.contains(&key(item)))
        .collect()
}

impl Loader {
    /// Whether `tier` is `default` or declared by a Tier object (else `finish` warns about
    /// the policies in it: `projectcalico::undeclared_tiers`).
    fn tier_declared(&self, tier: &str) -> bool {
        tier == "default" || self.tiers.iter().any(|t| t.name == tier)
    }

    /// The changes of objects of the ordered kinds, in the order [`Loader::apply`] reports
    /// them, their keys noted in `keys`; `None` when one cannot be patched (see the module
    /// notes).
    fn listed_changes<'a>(
        &self,
        changes: &'a Loader,
        inventory: &Inventory,
        keys: &mut HashSet<(ObjectKind, &'a str, &'a str)>,
    ) -> Option<Vec<Change>> {
        let undeclared = |ns: Option<&str>| {
            ns.is_some_and(|ns| !inventory.namespaces().get(ns).is_some_and(|n| n.declared))
        };
        let mut out = Vec::new();
        for policy in &changes.calico_policies {
            let key = calico_policy_key(policy);
            let namespace = match &policy.scope {
                CalicoScope::Namespace(ns) => Some(ns.as_str()),
                CalicoScope::Global { .. } => None,
            };
            let before = (self.calico_policies.iter()).find(|p| calico_policy_key(p) == key);
            // Replaced in its place in the same tier, a policy keeps its place in the
            // warning about an undeclared tier; else the tiers must be declared.
            let tiers_declared = match before {
                Some(before) if before.tier == policy.tier => true,
                _ => {
                    self.tier_declared(&policy.tier)
                        && before.is_none_or(|p| self.tier_declared(&p.tier))
                }
            };
            if undeclared(namespace)
                || !tiers_declared
                || !noted(
                    keys,
                    &mut out,
                    key,
                    (namespace, &policy.name),
                    before.is_some(),
                )
            {
                return None;
            }
        }
        for policy in &changes.admin_policies {
            let key = admin_policy_key(policy);
            let loaded = (self.admin_policies.iter()).any(|p| admin_policy_key(p) == key);
            if !noted(keys, &mut out, key, (None, &policy.name), loaded) {
                return None;
            }
        }
        // A Cilium object loads as one rule per `specs` item, all from one document (rules
        // of one object from two documents are a duplicate: an error).
        let mut objects: Vec<(ObjectKey, &crate::Origin)> = Vec::new();
        for policy in &changes.cilium_policies {
            let key = cilium_policy_key(policy);
            if let Some((_, origin)) = objects.iter().find(|(k, _)| *k == key) {
                if **origin != policy.origin {
                    return None;
                }
                continue;
            }
            objects.push((key.clone(), &policy.origin));
            let namespace = policy.namespace.as_deref();
            let loaded = (self.cilium_policies.iter()).any(|p| cilium_policy_key(p) == key);
            if undeclared(namespace)
                || !noted(keys, &mut out, key, (namespace, &policy.name), loaded)
            {
                return None;
            }
        }
        for set in &changes.network_sets {
            let key = network_set_key(set);
            let loaded = (self.network_sets.iter()).any(|s| network_set_key(s) == key);
            if !noted(
                keys,
                &mut out,
                key,
                (set.namespace.as_deref(), &set.name),
                loaded,
            ) {
                return None;
            }
        }
        for tier in &changes.tiers {
            let loaded = self.tiers.iter().any(|t| t.name == tier.name);
            // A Tier created that a policy names ends the warning about it.
            let named = (self.calico_policies.iter())
                .chain(&changes.calico_policies)
                .any(|p| p.tier == tier.name);
            if (!loaded && named)
                || !noted(keys, &mut out, tier_key(tier), (None, &tier.name), loaded)
            {
                return None;
            }
        }
        Some(out)
    }

    /// Whether the object of an ordered kind that `key` names is loaded and can be deleted
    /// by a patch: not a Calico policy of an undeclared tier, not a Tier a policy names.
    fn listed_deletable(&self, key: &ObjectKey, changes: &Loader) -> bool {
        match key.kind {
            ObjectKind::CalicoNetworkPolicy | ObjectKind::CalicoGlobalNetworkPolicy => {
                (self.calico_policies.iter())
                    .find(|p| calico_policy_key(p) == *key)
                    .is_some_and(|p| self.tier_declared(&p.tier))
            }
            ObjectKind::AdminNetworkPolicy
            | ObjectKind::BaselineAdminNetworkPolicy
            | ObjectKind::ClusterNetworkPolicy => {
                (self.admin_policies.iter()).any(|p| admin_policy_key(p) == *key)
            }
            ObjectKind::CiliumNetworkPolicy | ObjectKind::CiliumClusterwideNetworkPolicy => {
                (self.cilium_policies.iter()).any(|p| cilium_policy_key(p) == *key)
            }
            ObjectKind::NetworkSet | ObjectKind::GlobalNetworkSet => {
                (self.network_sets.iter()).any(|s| network_set_key(s) == *key)
            }
            ObjectKind::Tier => {
                self.tiers.iter().any(|t| t.name == key.name)
                    && !(self.calico_policies.iter())
                        .chain(&changes.calico_policies)
                        .any(|p| p.tier == key.name)
            }
            _ => false,
        }
    }

    /// Whether the sorted lists stay as `finish` checks them: no two admin policies on one
    /// sort key (load order would decide), the same warnings about priority ties, at most one
    /// BaselineAdminNetworkPolicy; Cilium rules neither appearing nor all gone while the CNI
    /// is detected (Cilium rules detect Cilium when no CNI DaemonSet is in the input).
    fn listed_lists_kept(
        &self,
        changes: &Loader,
        deletions: &[ObjectKey],
        inventory: &Inventory,
    ) -> bool {
        let touched = |kinds: &[ObjectKind]| deletions.iter().any(|d| kinds.contains(&d.kind));
        if !changes.admin_policies.is_empty() || touched(&ADMIN_KINDS) {
            let before: Vec<&AdminPolicy> = inventory.admin_policies.iter().collect();
            let mut after = kept(
                &inventory.admin_policies,
                &changes.admin_policies,
                deletions,
                &ADMIN_KINDS,
                admin_policy_key,
            );
            for policy in &changes.admin_policies {
                let at = after.partition_point(|p| admin_order(p) < admin_order(policy));
                if after
                    .get(at)
                    .is_some_and(|p| admin_order(p) == admin_order(policy))
                {
                    return false;
                }
                after.insert(at, policy);
            }
            let baselines = (after.iter())
                .filter(|p| p.kind == AdminKind::BaselineAdminNetworkPolicy)
                .count();
            if baselines > 1 || admin_priority_ties(&after) != admin_priority_ties(&before) {
                return false;
            }
        }
        if self.cni.is_none() && (!changes.cilium_policies.is_empty() || touched(&CILIUM_KINDS)) {
            let after = kept(
                &inventory.cilium_policies,
                &changes.cilium_policies,
                deletions,
                &CILIUM_KINDS,
                cilium_policy_key,
            )
            .len()
                + changes.cilium_policies.len();
            if (after == 0) != inventory.cilium_policies.is_empty() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: a, labels: {app: web}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.1}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p1, namespace: a}
spec: {order: 10, selector: all(), types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p2, namespace: a}
spec: {order: 20, selector: all(), types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.g1}
spec: {tier: security, order: 1, selector: all(), types: [Egress]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: ghost.g}
spec: {tier: ghost, order: 1, selector: all(), types: [Egress]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: x}
spec: {priority: 10, subject: {namespaces: {}}, ingress: [{name: r, action: Allow, from: [{namespaces: {}}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: y}
spec: {priority: 20, subject: {namespaces: {}}, ingress: [{name: r, action: Deny, from: [{namespaces: {}}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec: {subject: {namespaces: {}}, ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: a}
spec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: cc}
spec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: s, namespace: a, labels: {role: db}}
spec: {nets: [192.0.2.0/24]}
"#;

    fn loader(file: &str, text: &str) -> Loader {
        let mut loader = Loader::new();
        loader.load_str(file, text);
        loader
    }

    fn key(kind: ObjectKind, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    /// Patch the base cluster's inventory for one change; when the patch takes it, the
    /// inventory, the changes reported and the committed loader equal those of
    /// `Loader::apply` and a whole `Loader::finish`. Returns whether it was patched.
    fn patched(change: &str, deletions: &[ObjectKey]) -> bool {
        let base = loader("base.yaml", BASE);
        let inventory = base.clone().finish().expect("the base cluster loads");
        let changes = if change.is_empty() {
            Loader::new()
        } else {
            loader("change.yaml", change)
        };
        let Ok(patch) = base.link_patch(changes.clone(), deletions, &inventory) else {
            return false;
        };
        let mut whole = base.clone();
        let expected_changes = whole.apply(changes, deletions).expect("applies");
        let expected = whole.clone().finish().expect("links");
        let mut got = inventory.clone();
        patch.patch(&mut got);
        let mut committed = base.clone();
        assert_eq!(committed.commit(patch), expected_changes, "{change}");
        let relinked = committed.finish().expect("the committed loader links");
        for linked in [&got, &relinked] {
            assert!(
                linked.calico_policies == expected.calico_policies,
                "{change}"
            );
            assert!(linked.admin_policies == expected.admin_policies, "{change}");
            assert!(
                linked.cilium_policies == expected.cilium_policies,
                "{change}"
            );
            assert!(linked.network_sets == expected.network_sets, "{change}");
            assert!(linked.tiers == expected.tiers, "{change}");
            assert_eq!(linked.warnings, expected.warnings, "{change}");
            assert_eq!(linked.cni, expected.cni, "{change}");
            assert!(linked.namespaces() == expected.namespaces(), "{change}");
            assert_eq!(
                linked.namespace_starts(),
                expected.namespace_starts(),
                "{change}"
            );
        }
        true
    }

    /// `namespace_starts` marks where each namespace's pods begin, for runs of every length
    /// around the galloping search's steps (a patch's runs equal a fresh link's: `patched`
    /// and the engine's incremental property test).
    #[test]
    fn namespace_starts_mark_each_namespaces_pods() {
        let sizes = [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33];
        let pod = |k: usize, i: usize| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i:03}, namespace: n{k:02}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: 10.1.{k}.{i}}}\n")
        };
        let docs: Vec<String> = (sizes.iter().enumerate())
            .flat_map(|(k, &size)| (0..size).map(move |i| (k, i)))
            .map(|(k, i)| pod(k, i))
            .collect();
        let base = loader("pods.yaml", &docs.join("---\n"));
        let inventory = base.finish().expect("the pods load");
        let runs = |inventory: &Inventory| -> Vec<crate::PodId> {
            let pods = inventory.pods();
            (0..pods.len())
                .filter(|&id| id == 0 || pods[id].namespace != pods[id - 1].namespace)
                .map(crate::PodId::new)
                .collect()
        };
        assert_eq!(inventory.namespace_starts(), runs(&inventory));
        assert_eq!(inventory.namespace_starts().len(), sizes.len());
    }

    #[test]
    fn ordered_kinds_are_patched_in_the_order_finish_gives() {
        let calico = |meta: &str, spec: &str| {
            format!("apiVersion: projectcalico.org/v3\nkind: {meta}\nspec: {spec}\n")
        };
        let admin = |name: &str, priority: u32| {
            format!("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{priority: {priority}, subject: {{namespaces: {{}}}}, egress: [{{name: e, action: Pass, to: [{{namespaces: {{}}}}]}}]}}\n")
        };
        // Calico policies in load order: replaced in place, created last, deleted.
        let p1 = calico(
            "NetworkPolicy\nmetadata: {name: p1, namespace: a}",
            "{order: 30, selector: all(), types: [Egress]}",
        );
        assert!(patched(&p1, &[]));
        let p3 = calico(
            "NetworkPolicy\nmetadata: {name: p3, namespace: b}",
            "{order: 5, selector: all(), types: [Ingress]}",
        );
        assert!(patched(&p3, &[]));
        let g1 = key(ObjectKind::CalicoGlobalNetworkPolicy, None, "security.g1");
        assert!(patched("", std::slice::from_ref(&g1)));
        // A policy of an undeclared tier replaced in that tier keeps the warning as it is;
        // moved to a declared tier, created in an undeclared one, or its Tier created: the
        // warning changes, refused.
        let ghost = |tier: &str| {
            calico(
                "GlobalNetworkPolicy\nmetadata: {name: ghost.g}",
                &format!("{{tier: {tier}, order: 2, selector: all(), types: [Egress]}}"),
            )
        };
        assert!(patched(&ghost("ghost"), &[]));
        assert!(!patched(&ghost("security"), &[]));
        let other_ghost = calico(
            "GlobalNetworkPolicy\nmetadata: {name: ghost2.g}",
            "{tier: ghost2, selector: all(), types: [Egress]}",
        );
        assert!(!patched(&other_ghost, &[]));
        let tier = |name: &str| {
            format!("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {name}}}\nspec: {{order: 50}}\n")
        };
        assert!(!patched(&tier("ghost"), &[]));
        assert!(patched(&tier("other"), &[]));
        assert!(patched(&tier("security"), &[]));
        assert!(!patched("", &[key(ObjectKind::Tier, None, "security")]));
        // Namespaced policies of an undeclared namespace make it appear: refused.
        let undeclared = calico(
            "NetworkPolicy\nmetadata: {name: p, namespace: zz}",
            "{selector: all(), types: [Ingress]}",
        );
        assert!(!patched(&undeclared, &[]));
        // Admin policies by (baseline, priority, name): moved, created, deleted; a priority
        // tie (a warning) or a second baseline (an error) refused.
        assert!(patched(&admin("x", 30), &[]));
        assert!(patched(&admin("z", 5), &[]));
        assert!(patched(
            "",
            &[key(ObjectKind::BaselineAdminNetworkPolicy, None, "default")]
        ));
        assert!(!patched(&admin("z", 20), &[]));
        let second_baseline = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec: {subject: {namespaces: {}}, ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]}\n";
        assert!(!patched(second_baseline, &[]));
        // Cilium rules sorted; an object of two `specs` replaces one of `spec`.
        let cnp = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: a}\nspecs: [{endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}, {endpointSelector: {}, egress: [{toEndpoints: [{}]}]}]\n";
        assert!(patched(cnp, &[]));
        let ccnp = key(ObjectKind::CiliumClusterwideNetworkPolicy, None, "cc");
        assert!(patched("", std::slice::from_ref(&ccnp)));
        // The last Cilium rules gone: the detected CNI would change, refused.
        assert!(!patched(
            "",
            &[ccnp, key(ObjectKind::CiliumNetworkPolicy, Some("a"), "c")]
        ));
        // Network sets in load order.
        let set = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: g, labels: {role: ext}}\nspec: {nets: [198.51.100.0/24]}\n";
        assert!(patched(set, &[]));
        assert!(patched("", &[key(ObjectKind::NetworkSet, Some("a"), "s")]));
        // A namespaced network set replaced (new labels and nets).
        let set_a = "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: s, namespace: a, labels: {role: cache}}\nspec: {nets: [192.0.2.0/25]}\n";
        assert!(patched(set_a, &[]));
        // Several kinds at once, reported in `apply`'s order.
        assert!(patched(
            &format!("{p3}---\n{}---\n{set}", admin("z", 5)),
            &[g1]
        ));
    }

    /// A long-lived loader's commits keep its index of pods by name (not rebuilt per change):
    /// pods created are found at their places, pods deleted are gone and the places after
    /// them move down, and every lookup agrees with a search of the loaded pods (the debug
    /// assertion in `pod_index`).
    #[test]
    fn commits_keep_the_index_of_pods_by_name() {
        let pod = |ns: &str, name: &str, ip: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: {ip}}}\n")
        };
        let docs = [
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".to_string(),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n".to_string(),
            pod("a", "p1", "10.0.0.1"),
            pod("a", "p2", "10.0.0.2"),
            pod("b", "p1", "10.0.0.3"),
        ];
        let mut base = loader("pods.yaml", &docs.join("---\n"));
        base.index_workloads();
        let mut inventory = base.clone().finish().expect("the pods load");
        let steps: [(&str, Vec<ObjectKey>); 4] = [
            (&pod("b", "p2", "10.0.0.4"), vec![]),
            ("", vec![key(ObjectKind::Pod, Some("a"), "p1")]),
            (
                &pod("a", "p1", "10.0.0.5"),
                vec![key(ObjectKind::Pod, Some("a"), "p2")],
            ),
            (&pod("a", "p2", "10.0.0.6"), vec![]),
        ];
        for (change, deletions) in steps {
            let changes = if change.is_empty() {
                Loader::new()
            } else {
                loader("change.yaml", change)
            };
            let patch = (base.link_patch(changes, &deletions, &inventory))
                .unwrap_or_else(|_| panic!("pod changes are patched: {change}"));
            patch.patch(&mut inventory);
            base.commit(patch);
            assert!(
                base.pods_by_name.get().is_some(),
                "the index is kept: {change}"
            );
            for (at, (p, _)) in base.pods.iter().enumerate() {
                assert_eq!(base.pod_index(&p.namespace, &p.name), Some(at));
            }
            for gone in &deletions {
                assert_eq!(
                    base.pod_index("a", &gone.name).is_some(),
                    change.contains(&gone.name)
                );
            }
        }
        let names: Vec<String> = (base.pods.iter())
            .map(|(p, _)| format!("{}/{}", p.namespace, p.name))
            .collect();
        assert_eq!(names, ["b/p1", "b/p2", "a/p1", "a/p2"]);
    }
}
