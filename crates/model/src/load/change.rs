//! Changes to loaded objects: create or replace objects by kind, namespace and name, and
//! delete them, as `kubectl apply` and `kubectl delete` would; what `netfence what-if` and a
//! watch of the API server feed to the engine.
//!
//! Changes apply to the loader's objects before linking, so the inventory built after them
//! is exactly the one a fresh load of the changed inputs gives (owners, template pods,
//! policy order and validation included).

use super::{namespace_of, Loader, Meta, WorkloadObject};
use crate::calico::{CalicoScope, NetworkSet, Tier};
use crate::{admin::AdminKind, admin::AdminPolicy, LoadError, LoadErrors, Origin};
use crate::{NetworkPolicy, Node, Pod, Service};
use std::fmt;
use std::str::FromStr;

/// The kinds of object a change can name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// v1 Pod.
    Pod,
    /// v1 Namespace.
    Namespace,
    /// v1 ServiceAccount.
    ServiceAccount,
    /// v1 Service.
    Service,
    /// v1 Node.
    Node,
    /// networking.k8s.io NetworkPolicy.
    NetworkPolicy,
    /// projectcalico.org NetworkPolicy.
    CalicoNetworkPolicy,
    /// projectcalico.org GlobalNetworkPolicy.
    CalicoGlobalNetworkPolicy,
    /// projectcalico.org NetworkSet.
    NetworkSet,
    /// projectcalico.org GlobalNetworkSet.
    GlobalNetworkSet,
    /// projectcalico.org Tier.
    Tier,
    /// policy.networking.k8s.io AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// policy.networking.k8s.io BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
    /// policy.networking.k8s.io ClusterNetworkPolicy.
    ClusterNetworkPolicy,
    /// cilium.io CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// cilium.io CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
    /// A workload controller: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or
    /// ReplicationController (its kind as written).
    Workload(String),
}

const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

impl ObjectKind {
    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(&self) -> bool {
        !matches!(
            self,
            ObjectKind::Namespace
                | ObjectKind::Node
                | ObjectKind::CalicoGlobalNetworkPolicy
                | ObjectKind::GlobalNetworkSet
                | ObjectKind::Tier
                | ObjectKind::AdminNetworkPolicy
                | ObjectKind::BaselineAdminNetworkPolicy
                | ObjectKind::ClusterNetworkPolicy
                | ObjectKind::CiliumClusterwideNetworkPolicy
        )
    }

    /// The kind as `--delete` spells it: the Kubernetes kind, with `.projectcalico.org` for
    /// the Calico kinds whose name Kubernetes also uses.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectKind::Pod => "Pod",
            ObjectKind::Namespace => "Namespace",
            ObjectKind::ServiceAccount => "ServiceAccount",
            ObjectKind::Service => "Service",
            ObjectKind::Node => "Node",
            ObjectKind::NetworkPolicy => "NetworkPolicy",
            ObjectKind::CalicoNetworkPolicy => "NetworkPolicy.projectcalico.org",
            ObjectKind::CalicoGlobalNetworkPolicy => "GlobalNetworkPolicy",
            ObjectKind::NetworkSet => "NetworkSet",
            ObjectKind::GlobalNetworkSet => "GlobalNetworkSet",
            ObjectKind::Tier => "Tier",
            ObjectKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ObjectKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ObjectKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            ObjectKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            ObjectKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            ObjectKind::Workload(kind) => kind,
        }
    }
}

impl FromStr for ObjectKind {
    type Err = String;
    /// Kind names as kubectl accepts them: case-insensitive, optionally with the API group
    /// (`networkpolicy.projectcalico.org`, `NetworkPolicy.networking.k8s.io`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, group) = match text.split_once('.') {
            Some((kind, group)) => (kind, Some(group.to_ascii_lowercase())),
            None => (text, None),
        };
        let calico = match group.as_deref() {
            None => false,
            Some("projectcalico.org" | "crd.projectcalico.org") => true,
            Some(
                "networking.k8s.io"
                | "policy.networking.k8s.io"
                | "cilium.io"
                | "apps"
                | "batch"
                | "core"
                | "",
            ) => false,
            Some(other) => return Err(format!("unknown API group {other:?} in {text:?}")),
        };
        let lower = kind.to_ascii_lowercase();
        let found = match (lower.as_str(), calico) {
            ("pod", false) => ObjectKind::Pod,
            ("namespace", false) => ObjectKind::Namespace,
            ("serviceaccount", false) => ObjectKind::ServiceAccount,
            ("service", false) => ObjectKind::Service,
            ("node", false) => ObjectKind::Node,
            ("networkpolicy", false) => ObjectKind::NetworkPolicy,
            ("networkpolicy", true) => ObjectKind::CalicoNetworkPolicy,
            ("globalnetworkpolicy", _) => ObjectKind::CalicoGlobalNetworkPolicy,
            ("networkset", _) => ObjectKind::NetworkSet,
            ("globalnetworkset", _) => ObjectKind::GlobalNetworkSet,
            ("tier", _) => ObjectKind::Tier,
            ("adminnetworkpolicy", false) => ObjectKind::AdminNetworkPolicy,
            ("baselineadminnetworkpolicy", false) => ObjectKind::BaselineAdminNetworkPolicy,
            ("clusternetworkpolicy", false) => ObjectKind::ClusterNetworkPolicy,
            ("ciliumnetworkpolicy" | "cnp", false) => ObjectKind::CiliumNetworkPolicy,
            ("ciliumclusterwidenetworkpolicy" | "ccnp", false) => {
                ObjectKind::CiliumClusterwideNetworkPolicy
            }
            (other, false) => match WORKLOAD_KINDS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(other))
            {
                Some(kind) => ObjectKind::Workload((*kind).to_string()),
                None => return Err(format!("unknown or unsupported kind {text:?}")),
            },
            _ => return Err(format!("unknown or unsupported kind {text:?}")),
        };
        Ok(found)
    }
}

/// An object named by kind, namespace (for namespaced kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

impl FromStr for ObjectKey {
    type Err = String;
    /// `KIND/namespace/name` for namespaced kinds, `KIND/name` for cluster-scoped ones.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let kind: ObjectKind = parts[0].parse()?;
        let (namespace, name) = match (kind.namespaced(), parts.as_slice()) {
            (true, [_, ns, name]) if !ns.is_empty() => (Some((*ns).to_string()), *name),
            (false, [_, name]) => (None, *name),
            (true, _) => {
                return Err(format!(
                    "{text:?}: a {} is namespaced; expected {}/NAMESPACE/NAME",
                    kind.as_str(),
                    parts[0]
                ))
            }
            (false, _) => {
                return Err(format!(
                    "{text:?}: a {} is cluster-scoped; expected {}/NAME",
                    kind.as_str(),
                    parts[0]
                ))
            }
        };
        if name.is_empty() {
            return Err(format!("{text:?}: the name is empty"));
        }
        Ok(ObjectKey {
            kind,
            namespace,
            name: name.to_string(),
        })
    }
}

/// What a change did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// The object did not exist.
    Created,
    /// An object of the same kind, namespace and name was replaced.
    Replaced,
    /// The object was removed.
    Deleted,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Created => "created",
            ChangeKind::Replaced => "replaced",
            ChangeKind::Deleted => "deleted",
        })
    }
}

/// One object change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The object.
    pub key: ObjectKey,
    /// What happened to it.
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.kind)
    }
}

fn key(kind: ObjectKind, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    }
}

fn meta_key(kind: ObjectKind, meta: &Meta) -> ObjectKey {
    let namespace = kind.namespaced().then(|| namespace_of(meta));
    key(
        kind,
        namespace.as_deref(),
        meta.name.as_deref().unwrap_or(""),
    )
}

fn pod_key(pod: &(Pod, Option<(String, String)>)) -> ObjectKey {
    key(ObjectKind::Pod, Some(&pod.0.namespace), &pod.0.name)
}

fn workload_key(workload: &WorkloadObject) -> ObjectKey {
    meta_key(ObjectKind::Workload(workload.kind.clone()), &workload.meta)
}

fn service_key(service: &Service) -> ObjectKey {
    key(ObjectKind::Service, Some(&service.namespace), &service.name)
}

fn node_key(node: &Node) -> ObjectKey {
    key(ObjectKind::Node, None, &node.name)
}

fn network_policy_key(policy: &NetworkPolicy) -> ObjectKey {
    key(
        ObjectKind::NetworkPolicy,
        Some(&policy.namespace),
        &policy.name,
    )
}

pub(super) fn calico_policy_key(policy: &crate::calico::CalicoPolicy) -> ObjectKey {
    match &policy.scope {
        CalicoScope::Namespace(ns) => key(ObjectKind::CalicoNetworkPolicy, Some(ns), &policy.name),
        CalicoScope::Global { .. } => {
            key(ObjectKind::CalicoGlobalNetworkPolicy, None, &policy.name)
        }
    }
}

pub(super) fn admin_policy_key(policy: &AdminPolicy) -> ObjectKey {
    let kind = match policy.kind {
        AdminKind::AdminNetworkPolicy => ObjectKind::AdminNetworkPolicy,
        AdminKind::BaselineAdminNetworkPolicy => ObjectKind::BaselineAdminNetworkPolicy,
        AdminKind::ClusterNetworkPolicyAdmin | AdminKind::ClusterNetworkPolicyBaseline => {
            ObjectKind::ClusterNetworkPolicy
        }
    };
    key(kind, None, &policy.name)
}

pub(super) fn cilium_policy_key(policy: &crate::cilium::CiliumPolicy) -> ObjectKey {
    let kind = match policy.kind {
        crate::cilium::CiliumKind::NetworkPolicy => ObjectKind::CiliumNetworkPolicy,
        crate::cilium::CiliumKind::ClusterwideNetworkPolicy => {
            ObjectKind::CiliumClusterwideNetworkPolicy
        }
    };
    key(kind, policy.namespace.as_deref(), &policy.name)
}

/// [`upsert`] for kinds whose one object loads as several items (a Cilium policy's `specs`):
/// the items of an object replace all of its old ones, in the place of the first.
pub(super) fn upsert_grouped<T>(
    list: &mut Vec<T>,
    items: Vec<T>,
    key: impl Fn(&T) -> ObjectKey,
    out: &mut Vec<Change>,
) {
    let mut groups: Vec<(ObjectKey, Vec<T>)> = Vec::new();
    for item in items {
        let k = key(&item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, group)) => group.push(item),
            None => groups.push((k, vec![item])),
        }
    }
    for (k, group) in groups {
        let at = list.iter().position(|existing| key(existing) == k);
        list.retain(|existing| key(existing) != k);
        let kind = match at {
            Some(at) => {
                let at = at.min(list.len());
                list.splice(at..at, group);
                ChangeKind::Replaced
            }
            None => {
                list.extend(group);
                ChangeKind::Created
            }
        };
        out.push(Change { key: k, kind });
    }
}

pub(super) fn network_set_key(set: &NetworkSet) -> ObjectKey {
    match &set.namespace {
        Some(ns) => key(ObjectKind::NetworkSet, Some(ns), &set.name),
        None => key(ObjectKind::GlobalNetworkSet, None, &set.name),
    }
}

pub(super) fn tier_key(tier: &Tier) -> ObjectKey {
    key(ObjectKind::Tier, None, &tier.name)
}

/// Create or replace each of `items` in `list` (a replaced object keeps its place), noting
/// every change.
pub(super) fn upsert<T>(
    list: &mut Vec<T>,
    items: Vec<T>,
    key: impl Fn(&T) -> ObjectKey,
    out: &mut Vec<Change>,
) {
    for item in items {
        let k = key(&item);
        match list.iter().position(|existing| key(existing) == k) {
            Some(at) => {
                list[at] = item;
                out.push(Change {
                    key: k,
                    kind: ChangeKind::Replaced,
                });
            }
            None => {
                list.push(item);
                out.push(Change {
                    key: k,
                    kind: ChangeKind::Created,
                });
            }
        }
    }
}

/// Whether `list` holds the object named `target`; with `delete`, remove it too.
pub(super) fn remove<T>(
    list: &mut Vec<T>,
    target: &ObjectKey,
    key: impl Fn(&T) -> ObjectKey,
    delete: bool,
) -> bool {
    if !delete {
        return list.iter().any(|item| key(item) == *target);
    }
    let before = list.len();
    list.retain(|item| key(item) != *target);
    list.len() != before
}

impl Loader {
    /// Apply `changes` (objects loaded into a loader of their own: each creates or replaces
    /// the object of the same kind, namespace and name) and then `deletions`. The inventory
    /// that [`Loader::finish`] builds afterwards is the one a fresh load of the changed
    /// inputs gives.
    ///
    /// Errors (nothing is changed then): the changes hold load errors, hold kinds that cannot
    /// be applied yet (Ingress, Istio, cert-manager, RBAC, SecurityGroupPolicy, the VPC CNI
    /// ConfigMap), are empty, or a deletion names an object that is not loaded.
    pub fn apply(
        &mut self,
        mut changes: Loader,
        deletions: &[ObjectKey],
    ) -> Result<Vec<Change>, LoadErrors> {
        let mut errors = std::mem::take(&mut changes.errors);
        let unsupported = [
            ("Ingress", changes.ingresses.len()),
            ("PeerAuthentication", changes.peer_authentications.len()),
            ("Istio mesh ConfigMap", changes.istio_mesh_configs.len()),
            ("aws-node ConfigMap", usize::from(changes.vpc_cni.is_some())),
            ("cert-manager issuer", changes.cert_issuers.len()),
            ("Certificate", changes.certificates.len()),
            ("Role/ClusterRole", changes.rbac_roles.len()),
            (
                "RoleBinding/ClusterRoleBinding",
                changes.rbac_bindings.len(),
            ),
            ("SecurityGroupPolicy", changes.security_group_policies.len()),
        ];
        for (kind, count) in unsupported {
            if count > 0 {
                errors.push(apply_error(
                    &changes,
                    format!("{count} {kind} object(s): this kind cannot be applied as a change yet (only pods, namespaces, service accounts, services, nodes, workloads and policy kinds)"),
                ));
            }
        }
        if changes.documents_read == 0 && deletions.is_empty() {
            errors.push(apply_error(&changes, "no manifests to apply".into()));
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        // Every deletion must name a loaded object: checked before anything changes.
        for target in deletions {
            if !self.remove_object(target, false) {
                errors.push(LoadError {
                    origin: Origin {
                        file: "--delete".into(),
                        ..Origin::default()
                    },
                    object: Some(target.to_string()),
                    field: None,
                    message: "cannot delete: no such object in the inputs".into(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut out = Vec::new();
        self.upsert_all(changes, &mut out);
        for target in deletions {
            if self.remove_object(target, true) {
                out.push(Change {
                    key: target.clone(),
                    kind: ChangeKind::Deleted,
                });
            }
        }
        Ok(out)
    }

    fn upsert_all(&mut self, changes: Loader, out: &mut Vec<Change>) {
        upsert(
            &mut self.namespaces,
            changes.namespaces,
            |(meta, _)| meta_key(ObjectKind::Namespace, meta),
            out,
        );
        upsert(
            &mut self.service_accounts,
            changes.service_accounts,
            |(meta, _)| meta_key(ObjectKind::ServiceAccount, meta),
            out,
        );
        upsert(&mut self.pods, changes.pods, pod_key, out);
        self.pods_changed();
        upsert(&mut self.workloads, changes.workloads, workload_key, out);
        self.workloads_by_namespace = Default::default();
        upsert(&mut self.services, changes.services, service_key, out);
        upsert(&mut self.nodes, changes.nodes, node_key, out);
        upsert(
            &mut self.policies,
            changes.policies,
            network_policy_key,
            out,
        );
        upsert(
            &mut self.calico_policies,
            changes.calico_policies,
            calico_policy_key,
            out,
        );
        upsert(
            &mut self.admin_policies,
            changes.admin_policies,
            admin_policy_key,
            out,
        );
        upsert_grouped(
            &mut self.cilium_policies,
            changes.cilium_policies,
            cilium_policy_key,
            out,
        );
        upsert(
            &mut self.network_sets,
            changes.network_sets,
            network_set_key,
            out,
        );
        upsert(&mut self.tiers, changes.tiers, tier_key, out);
        for (kind, count) in changes.skipped {
            *self.skipped.entry(kind).or_default() += count;
        }
        self.warnings.extend(changes.warnings);
    }

    /// Whether the object named `target` is loaded; with `delete`, remove it too.
    pub(super) fn remove_object(&mut self, target: &ObjectKey, delete: bool) -> bool {
        match &target.kind {
            ObjectKind::Pod => {
                if delete {
                    self.pods_changed();
                }
                remove(&mut self.pods, target, pod_key, delete)
            }
            ObjectKind::Namespace => remove(
                &mut self.namespaces,
                target,
                |(meta, _)| meta_key(ObjectKind::Namespace, meta),
                delete,
            ),
            ObjectKind::ServiceAccount => remove(
                &mut self.service_accounts,
                target,
                |(m, _)| meta_key(ObjectKind::ServiceAccount, m),
                delete,
            ),
            ObjectKind::Service => remove(&mut self.services, target, service_key, delete),
            ObjectKind::Node => remove(&mut self.nodes, target, node_key, delete),
            ObjectKind::NetworkPolicy => {
                remove(&mut self.policies, target, network_policy_key, delete)
            }
            ObjectKind::CalicoNetworkPolicy | ObjectKind::CalicoGlobalNetworkPolicy => {
                remove(&mut self.calico_policies, target, calico_policy_key, delete)
            }
            ObjectKind::NetworkSet | ObjectKind::GlobalNetworkSet => {
                remove(&mut self.network_sets, target, network_set_key, delete)
            }
            ObjectKind::Tier => remove(&mut self.tiers, target, tier_key, delete),
            ObjectKind::AdminNetworkPolicy
            | ObjectKind::BaselineAdminNetworkPolicy
            | ObjectKind::ClusterNetworkPolicy => {
                remove(&mut self.admin_policies, target, admin_policy_key, delete)
            }
            ObjectKind::CiliumNetworkPolicy | ObjectKind::CiliumClusterwideNetworkPolicy => {
                remove(&mut self.cilium_policies, target, cilium_policy_key, delete)
            }
            ObjectKind::Workload(_) => {
                self.workloads_by_namespace = Default::default();
                remove(&mut self.workloads, target, workload_key, delete)
            }
        }
    }
}

fn apply_error(changes: &Loader, message: String) -> LoadError {
    LoadError {
        origin: Origin {
            file: changes.inputs_given.join(", "),
            ..Origin::default()
        },
        object: None,
        field: None,
        message,
    }
}
