//! Incremental relinking: the inventory that [`Loader::finish`] would build after
//! [`Loader::apply`], made by patching the inventory built before the change instead of linking
//! every object again.
//!
//! Only changes whose effect on the linked inventory is local are patched: pods and
//! Kubernetes NetworkPolicies created, replaced or deleted in declared namespaces. A pod is
//! linked to its workload exactly as [`Loader::finish`] does (owners, then selectors), with
//! only the workloads of its namespace. Everything that could reach beyond the changed
//! objects is refused, and the caller then applies and links the whole loader: the first
//! live pod of a workload that has template pods (they disappear), the last live pod of a
//! workload (template pods may appear), pods without an address or with one from the range
//! synthetic addresses are drawn from (synthetic addresses depend on every pod), pods named
//! like a template pod, undeclared namespaces (an implicit namespace comes and goes with the
//! objects naming it), `--lenient` loaders, changes that carry warnings, skipped kinds, or
//! several versions of one object. A refused patch changes nothing.

use super::link::{duplicate_addresses, live_pods, Owners};
use super::{Loader, WorkloadObject};
use crate::inventory::{Inventory, Pod};
use crate::load::change::{Change, ChangeKind, ObjectKey, ObjectKind};
use crate::policy::NetworkPolicy;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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
    /// Objects deleted.
    deletions: Vec<ObjectKey>,
    /// What changed, in the order [`Loader::apply`] reports it.
    changes: Vec<Change>,
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
        // (pod names) stay valid while only pods keeping their place and addresses change.
        let mut index_kept = true;
        for pod in &self.linked {
            match find(pods, &pod.namespace, &pod.name) {
                Ok(at) => {
                    let before = &pods[at];
                    index_kept &= before.ips == pod.ips
                        && before.synthetic_ip == pod.synthetic_ip
                        && before.host_network == pod.host_network;
                    pods[at] = Arc::clone(pod);
                }
                Err(at) => {
                    index_kept = false;
                    pods.insert(at, Arc::clone(pod));
                }
            }
        }
        for key in &self.deletions {
            if key.kind != ObjectKind::Pod {
                continue;
            }
            if let Ok(at) = find(pods, key.namespace.as_deref().unwrap_or(""), &key.name) {
                index_kept = false;
                pods.remove(at);
            }
        }
        if index_kept {
            return;
        }
        // One warning per address shared in the old index (counted there: its ids may name
        // other pods now).
        let old_duplicates = inventory
            .by_address
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| run.len() > 1)
            .count();
        inventory.index_addresses();
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
        && changes.calico_policies.is_empty()
        && changes.admin_policies.is_empty()
        && changes.cilium_policies.is_empty()
        && changes.network_sets.is_empty()
        && changes.tiers.is_empty()
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
        changes: Loader,
        deletions: &[ObjectKey],
        inventory: &Inventory,
    ) -> Result<LinkPatch, Loader> {
        match self.plan(&changes, deletions, inventory) {
            Some((linked, out)) => Ok(LinkPatch {
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
        for key in deletions {
            let ns = key.namespace.as_deref().unwrap_or("");
            let loaded = match key.kind {
                ObjectKind::Pod => self.pod_index(ns, &key.name).is_some(),
                ObjectKind::NetworkPolicy => self
                    .policies
                    .iter()
                    .any(|p| p.namespace == ns && p.name == key.name),
                _ => false,
            };
            if !loaded || !declared(ns) || !keys.insert((key.kind.clone(), ns, &key.name)) {
                return None;
            }
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
            let has_template_pods = inventory.pods_in(&one.namespace).any(|id| {
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
                None => self.pods.push(item),
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
        for key in &patch.deletions {
            let ns = key.namespace.as_deref().unwrap_or("");
            match key.kind {
                ObjectKind::Pod => self
                    .pods
                    .retain(|(p, _)| !(p.namespace == ns && p.name == key.name)),
                ObjectKind::NetworkPolicy => self
                    .policies
                    .retain(|p| !(p.namespace == ns && p.name == key.name)),
                _ => {}
            }
        }
        patch.changes
    }

    fn pod_index(&self, namespace: &str, name: &str) -> Option<usize> {
        self.pods
            .iter()
            .position(|(p, _)| p.namespace == namespace && p.name == name)
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

    /// Build the index of workload objects by namespace that [`Loader::link_patch`] reads
    /// (else built on its first use): a long-lived loader (a what-if or watch cluster) keeps
    /// it until its workloads change.
    pub fn index_workloads(&self) {
        let _ = self.workloads_in("");
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
            || inventory.pods_in(&workload.namespace).any(|id| {
                let other = &inventory.pods()[id];
                !other.from_template
                    && other.workload == *workload
                    && !touched.contains(&(other.namespace.as_str(), other.name.as_str()))
            })
    }
}
