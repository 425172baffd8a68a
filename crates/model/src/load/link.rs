//! Linking what was loaded into an [`Inventory`]: namespaces, owners and workloads, pods,
//! policies, and the checks that need every object at once.

use super::*;
use crate::cilium::{Cni, CniSetting};

impl Loader {
    /// Build the inventory, or return every error found. The linking steps, in order:
    /// declared namespaces; live pods with their top-level workloads (owners, then selectors);
    /// one template pod per workload without live pods; pods sorted, de-duplicated and given
    /// addresses; policies ordered; implicit namespaces for everything that names one.
    pub fn finish(mut self) -> Result<Inventory, LoadErrors> {
        let mut errors = std::mem::take(&mut self.errors);
        if errors.is_empty() && !self.inputs_given.is_empty() && self.documents_read == 0 {
            errors.push(LoadError {
                origin: Origin {
                    file: self.inputs_given.join(", "),
                    ..Origin::default()
                },
                object: None,
                field: None,
                message: "no manifests found (no YAML or JSON document with an object)".into(),
            });
        }
        let mut warnings = std::mem::take(&mut self.warnings);
        let owners = Owners::new(&self.workloads);
        let workload_refs: Vec<&WorkloadObject> = self.workloads.iter().collect();
        let live = live_pods(std::mem::take(&mut self.pods), &workload_refs, &owners);
        // The live pods' order is found on a second core while the template pods are made.
        let (templates, live_order) = std::thread::scope(|scope| {
            let order =
                (live.len() >= MIN_PARALLEL_PODS).then(|| scope.spawn(|| sorted_keys(&live, 0)));
            let templates = template_pods(&self.workloads, &owners, &live, &mut errors);
            let order = match order {
                Some(order) => order
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => sorted_keys(&live, 0),
            };
            (templates, order)
        });
        let pods = linked_pods(live, templates, live_order, &mut errors);
        let admin_policies = ordered_admin_policies(
            std::mem::take(&mut self.admin_policies),
            &mut errors,
            &mut warnings,
        );
        warnings.extend(undeclared_tiers(&self.calico_policies, &self.tiers));
        let cni = match self.cni {
            Some(cni) => CniSetting {
                cni,
                source: Some("--cni".into()),
            },
            None => detected_cni(&self.workloads, !self.cilium_policies.is_empty()),
        };
        let cilium_policies =
            sorted_cilium_policies(std::mem::take(&mut self.cilium_policies), &mut errors);
        let mut inventory = Inventory {
            skipped_kinds: self.skipped,
            namespaces: std::sync::Arc::new(declared_namespaces(self.namespaces, &mut errors)),
            service_accounts: self
                .service_accounts
                .into_iter()
                .map(|(meta, _)| ServiceAccount {
                    namespace: namespace_of(&meta),
                    name: meta.name.unwrap_or_default(),
                    labels: meta.labels.unwrap_or_default().into_iter().collect(),
                })
                .collect(),
            pods: std::sync::Arc::new(pods.into_iter().map(std::sync::Arc::new).collect()),
            network_policies: std::sync::Arc::new(
                sorted_network_policies(self.policies, &mut errors)
                    .into_iter()
                    .map(std::sync::Arc::new)
                    .collect(),
            ),
            admin_policies,
            calico_policies: self.calico_policies,
            cilium_policies,
            cni,
            network_sets: self.network_sets,
            tiers: self.tiers,
            services: std::sync::Arc::new(self.services),
            ingresses: self.ingresses,
            peer_authentications: self.peer_authentications,
            istio_mesh_configs: self.istio_mesh_configs,
            vpc_cni: self.vpc_cni,
            cert_issuers: self.cert_issuers,
            certificates: self.certificates,
            rbac_roles: self.rbac_roles,
            rbac_bindings: self.rbac_bindings,
            security_group_policies: self.security_group_policies,
            nodes: self.nodes,
            warnings,
            by_address: Default::default(),
            namespace_starts: Default::default(),
        };
        inventory.establish_invariants();
        let shared = duplicate_addresses(&inventory);
        inventory.warnings.extend(shared);
        if self.lenient {
            // Objects that failed validation were never added (a duplicate keeps its first
            // definition): go on without them. Unreadable files stay errors.
            let (file_level, object_level): (Vec<LoadError>, Vec<LoadError>) =
                errors.into_iter().partition(|e| e.origin.document == 0);
            errors = file_level;
            inventory.warnings.extend(
                object_level
                    .iter()
                    .map(|e| format!("left out (--lenient): {e}")),
            );
        }
        if errors.is_empty() {
            Ok(inventory)
        } else {
            Err(LoadErrors(errors))
        }
    }
}

/// Declared namespaces, with the automatic `kubernetes.io/metadata.name` label.
fn declared_namespaces(
    declared: Vec<(Meta, Origin)>,
    errors: &mut Vec<LoadError>,
) -> BTreeMap<String, Namespace> {
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    for (meta, origin) in declared {
        let name = meta.name.clone().unwrap_or_default();
        if let Some(first) = namespaces.get(&name).and_then(|n| n.origin.as_ref()) {
            errors.push(duplicate("Namespace", &name, &origin, first));
            continue;
        }
        let mut labels: Labels = meta.labels.unwrap_or_default().into_iter().collect();
        labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
        namespaces.insert(
            name.clone(),
            Namespace {
                name,
                labels,
                annotations: meta.annotations.clone().unwrap_or_default(),
                declared: true,
                origin: Some(origin),
            },
        );
    }
    namespaces
}

/// Owner chains of the workload objects in the input: (namespace, kind, name) → the owner.
/// Keys borrow from the workloads, so that looking up 100k pods' owners allocates nothing.
pub(super) struct Owners<'a>(HashMap<OwnerKey<'a>, Option<(String, String)>>);

/// (namespace, kind, name) of a workload object.
type OwnerKey<'a> = (&'a str, &'a str, &'a str);

/// The namespace of a workload object as [`namespace_of`] gives it, borrowed.
fn namespace_str(meta: &Meta) -> &str {
    meta.namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

impl<'a> Owners<'a> {
    pub(super) fn new(workloads: impl IntoIterator<Item = &'a WorkloadObject>) -> Self {
        Owners(
            workloads
                .into_iter()
                .map(|w| {
                    let key = (
                        namespace_str(&w.meta),
                        w.kind.as_str(),
                        w.meta.name.as_deref().unwrap_or_default(),
                    );
                    (key, controller_owner(&w.meta))
                })
                .collect(),
        )
    }

    /// The top-level workload of `kind/name`, climbing only to owners that are in the input
    /// (netpol-analyzer reports a ReplicaSet when its Deployment is absent).
    fn top_level(&self, namespace: &str, kind: String, name: String) -> WorkloadRef {
        let mut hops = 0;
        let mut at: (&str, &str) = (&kind, &name);
        while let Some(Some((owner_kind, owner_name))) = self.0.get(&(namespace, at.0, at.1)) {
            let present =
                self.0
                    .contains_key(&(namespace, owner_kind.as_str(), owner_name.as_str()));
            if !present || hops > 8 {
                break;
            }
            at = (owner_kind, owner_name);
            hops += 1;
        }
        if hops == 0 {
            return WorkloadRef {
                kind,
                namespace: namespace.to_string(),
                name,
            };
        }
        WorkloadRef {
            kind: at.0.to_string(),
            namespace: namespace.to_string(),
            name: at.1.to_string(),
        }
    }

    /// The top-level workload of a workload object.
    fn of(&self, workload: &WorkloadObject) -> WorkloadRef {
        self.top_level(
            namespace_str(&workload.meta),
            workload.kind.clone(),
            workload.meta.name.clone().unwrap_or_default(),
        )
    }
}

/// The pods read from the input, each under its top-level workload: through its owners, else
/// through a workload's selector ([`adopt_by_selector`]).
pub(super) fn live_pods(
    loaded: Vec<(Pod, Option<(String, String)>)>,
    workloads: &[&WorkloadObject],
    owners: &Owners<'_>,
) -> Vec<Pod> {
    let mut pods: Vec<Pod> = loaded
        .into_iter()
        .map(|(mut pod, owner)| {
            if let Some((kind, name)) = owner {
                pod.workload = owners.top_level(&pod.namespace, kind, name);
            }
            pod
        })
        .collect();
    adopt_by_selector(workloads, &mut pods, |w| owners.of(w));
    pods
}

/// Workloads without live pods yield pods from their template: a StatefulSet its stable
/// names `name-0` … `name-(replicas-1)` (up to [`MAX_STATEFUL_REPLICAS`]), others one pod.
fn template_pods(
    workloads: &[WorkloadObject],
    owners: &Owners<'_>,
    live: &[Pod],
    errors: &mut Vec<LoadError>,
) -> Vec<Pod> {
    let live: HashSet<&WorkloadRef> = live.iter().map(|p| &p.workload).collect();
    let mut pods = Vec::new();
    for w in workloads {
        let namespace = namespace_of(&w.meta);
        let name = w.meta.name.clone().unwrap_or_default();
        let me = WorkloadRef {
            kind: w.kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        if owners.of(w) != me || live.contains(&me) {
            continue;
        }
        let Some(template) = &w.template else {
            continue;
        };
        let Some(spec) = &template.spec else { continue };
        let metadata = template.metadata.as_ref();
        let labels = metadata.and_then(|m| m.labels.clone()).unwrap_or_default();
        let ctx = Ctx {
            origin: w.origin.clone(),
            object: Some(format!("{} {namespace}/{name}", w.kind)),
            default_namespace: None,
        };
        let count = if w.kind == "StatefulSet" {
            w.replicas.unwrap_or(1).clamp(1, MAX_STATEFUL_REPLICAS)
        } else {
            1
        };
        for ordinal in 0..count {
            let pod_name = format!("{name}-{ordinal}");
            let made = pod_from_spec(
                &namespace,
                &pod_name,
                labels.clone(),
                spec,
                None,
                me.clone(),
                true,
                &ctx,
            );
            match made {
                Ok(mut pod) => {
                    pod.mesh_annotations =
                        mesh_annotations(metadata.and_then(|m| m.annotations.as_ref()));
                    pods.push(pod);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    pods
}

/// Below this many live pods, their order is found on the thread that links them.
const MIN_PARALLEL_PODS: usize = 10_000;

/// The live pods then the template pods, sorted by (namespace, name), duplicates reported and
/// dropped, and synthetic addresses given to pods without one. `live_order` is
/// [`sorted_keys`] of `live`.
fn linked_pods(
    live: Vec<Pod>,
    templates: Vec<Pod>,
    live_order: Vec<usize>,
    errors: &mut Vec<LoadError>,
) -> Vec<Pod> {
    let mut pods = sorted_by_key(live, templates, live_order);
    for pair in pods.windows(2) {
        if pair[0].namespace == pair[1].namespace && pair[0].name == pair[1].name {
            errors.push(duplicate(
                "Pod",
                &pair[1].key(),
                &pair[1].origin,
                &pair[0].origin,
            ));
        }
    }
    pods.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    assign_synthetic_ips(&mut pods);
    pods
}

/// The indices of `pods` in stable (namespace, name) order, each plus `first`.
fn sorted_keys(pods: &[Pod], first: usize) -> Vec<usize> {
    if pods.is_sorted_by(|a, b| pod_key(a) <= pod_key(b)) {
        return (first..first + pods.len()).collect();
    }
    let mut order: Vec<(&str, &str, usize)> = pods
        .iter()
        .enumerate()
        .map(|(index, pod)| (pod.namespace.as_str(), pod.name.as_str(), first + index))
        .collect();
    // The index keeps equal names in input order; a stable sort finds the runs of pods
    // already in order (a dump lists them namespace by namespace).
    order.sort();
    order.into_iter().map(|(_, _, index)| index).collect()
}

fn pod_key(p: &Pod) -> (&str, &str) {
    (p.namespace.as_str(), p.name.as_str())
}

/// `live` then `templates`, stably sorted by (namespace, name), given `live_order`
/// ([`sorted_keys`] of `live`). The keys are sorted rather than the pods: a pod is a few
/// hundred bytes, and at 100k pods moving them through the merge passes cost more than
/// comparing their names.
fn sorted_by_key(live: Vec<Pod>, templates: Vec<Pod>, live_order: Vec<usize>) -> Vec<Pod> {
    let template_order = sorted_keys(&templates, live.len());
    let key = |index: usize| match index.checked_sub(live.len()) {
        None => pod_key(&live[index]),
        Some(at) => pod_key(&templates[at]),
    };
    // Merge the two orders; on equal names the live pod (the lower index) comes first.
    let mut order = Vec::with_capacity(live.len() + templates.len());
    let (mut a, mut b) = (
        live_order.into_iter().peekable(),
        template_order.into_iter().peekable(),
    );
    while let (Some(&i), Some(&j)) = (a.peek(), b.peek()) {
        if key(j) < key(i) {
            order.push(j);
            b.next();
        } else {
            order.push(i);
            a.next();
        }
    }
    order.extend(a);
    order.extend(b);
    let mut pods = live;
    if order.iter().enumerate().all(|(at, &index)| at == index) {
        pods.extend(templates);
        return pods;
    }
    let mut slots: Vec<Option<Pod>> = pods.into_iter().chain(templates).map(Some).collect();
    order
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect()
}

/// NetworkPolicies sorted by (namespace, name), duplicates reported.
fn sorted_network_policies(
    mut policies: Vec<NetworkPolicy>,
    errors: &mut Vec<LoadError>,
) -> Vec<NetworkPolicy> {
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for pair in policies.windows(2) {
        if pair[0].namespace == pair[1].namespace && pair[0].name == pair[1].name {
            errors.push(duplicate(
                "NetworkPolicy",
                &format!("{}/{}", pair[1].namespace, pair[1].name),
                &pair[1].origin,
                &pair[0].origin,
            ));
        }
    }
    policies
}

/// The inventory's order of Cilium rules: (kind, namespace, name, spec index).
pub(super) fn cilium_order(
    policy: &crate::cilium::CiliumPolicy,
) -> (&str, Option<&str>, &str, Option<usize>) {
    (
        policy.kind.as_str(),
        policy.namespace.as_deref(),
        &policy.name,
        policy.spec_index,
    )
}

/// The inventory's order of admin policies (evaluation order): admin before baseline, by
/// priority, then name; equal keys keep load order.
pub(super) fn admin_order(policy: &AdminPolicy) -> (bool, Option<u32>, &str) {
    (policy.kind.is_baseline(), policy.priority, &policy.name)
}

/// Cilium rules sorted by (kind, namespace, name, spec index); two objects of one kind,
/// namespace and name (rules from different documents) are a duplicate, as for NetworkPolicy.
fn sorted_cilium_policies(
    mut policies: Vec<crate::cilium::CiliumPolicy>,
    errors: &mut Vec<LoadError>,
) -> Vec<crate::cilium::CiliumPolicy> {
    let key =
        |p: &crate::cilium::CiliumPolicy| (p.kind.as_str(), p.namespace.clone(), p.name.clone());
    policies.sort_by(|a, b| cilium_order(a).cmp(&cilium_order(b)));
    let mut reported = std::collections::BTreeSet::new();
    for (i, policy) in policies.iter().enumerate() {
        let first = policies[..i]
            .iter()
            .rev()
            .take_while(|p| key(p) == key(policy))
            .find(|p| p.origin != policy.origin);
        if let Some(first) = first {
            if reported.insert(key(policy)) {
                let name = match &policy.namespace {
                    Some(ns) => format!("{ns}/{}", policy.name),
                    None => policy.name.clone(),
                };
                errors.push(duplicate(
                    policy.kind.as_str(),
                    &name,
                    &policy.origin,
                    &first.origin,
                ));
            }
        }
    }
    policies
}

/// The warnings about admin policies of one tier that share a priority, for `policies` in
/// evaluation order.
pub(super) fn admin_priority_ties(policies: &[&AdminPolicy]) -> Vec<String> {
    let mut warnings = Vec::new();
    for pair in policies.windows(2) {
        let same_tier = pair[0].kind.is_baseline() == pair[1].kind.is_baseline();
        if same_tier && pair[0].priority.is_some() && pair[0].priority == pair[1].priority {
            warnings.push(format!(
                "admin policies {} and {} share priority {}: the API leaves their order undefined; netfence orders them by name",
                pair[0].name,
                pair[1].name,
                pair[0].priority.unwrap_or_default()
            ));
        }
    }
    warnings
}

/// Admin policies in evaluation order (admin before baseline, by priority, then name); a
/// priority tie is a warning (the API leaves the order undefined), a second baseline policy
/// an error (there is one, named `default`).
fn ordered_admin_policies(
    mut policies: Vec<AdminPolicy>,
    errors: &mut Vec<LoadError>,
    warnings: &mut Vec<String>,
) -> Vec<AdminPolicy> {
    policies.sort_by(|a, b| admin_order(a).cmp(&admin_order(b)));
    warnings.extend(admin_priority_ties(&policies.iter().collect::<Vec<_>>()));
    let baselines: Vec<&AdminPolicy> = policies
        .iter()
        .filter(|p| p.kind == AdminKind::BaselineAdminNetworkPolicy)
        .collect();
    for pair in baselines.windows(2) {
        errors.push(duplicate(
            "BaselineAdminNetworkPolicy",
            &pair[1].name,
            &pair[1].origin,
            &pair[0].origin,
        ));
    }
    policies
}

/// Live pods belong to a workload through its selector as well as through owner objects that
/// happen to be in the input: a `kubectl get deploy,pods -o yaml` dump has the Deployments and
/// their pods but no ReplicaSets, and a ReplicaSet adopts orphans matching its selector
/// (kube-controller-manager, `ReplicaSet` controller `claimPods`). A pod is claimed when its
/// owner is not in the input (or it has none), it lies in the workload's namespace and the
/// workload's non-empty selector matches its labels; the first top-level workload by (kind,
/// name) wins a pod two selectors match.
pub(super) fn adopt_by_selector(
    workloads: &[&WorkloadObject],
    pods: &mut [Pod],
    top_level: impl Fn(&WorkloadObject) -> WorkloadRef,
) {
    let present: HashSet<(&str, &str, &str)> = workloads
        .iter()
        .map(|w| {
            (
                w.meta.namespace.as_deref().unwrap_or("default"),
                w.kind.as_str(),
                w.meta.name.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let mut orphans: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, pod) in pods.iter().enumerate() {
        let key = (
            pod.namespace.as_str(),
            pod.workload.kind.as_str(),
            pod.workload.name.as_str(),
        );
        if !present.contains(&key) {
            orphans
                .entry(pod.namespace.clone())
                .or_default()
                .push(index);
        }
    }
    if orphans.is_empty() {
        return;
    }
    let mut claimants: Vec<(WorkloadRef, &LabelSelector)> = workloads
        .iter()
        .filter_map(|w| {
            let selector = w.selector.as_ref().filter(|s| !s.is_everything())?;
            let me = top_level(w);
            let own = me.kind == w.kind && Some(me.name.as_str()) == w.meta.name.as_deref();
            own.then_some((me, selector))
        })
        .collect();
    claimants.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    for (workload, selector) in claimants {
        let Some(candidates) = orphans.get_mut(&workload.namespace) else {
            continue;
        };
        candidates.retain(|&index| {
            let claimed = selector.matches(&pods[index].labels);
            if claimed {
                pods[index].workload = workload.clone();
            }
            !claimed
        });
    }
}

/// A warning for every address two live pods claim: the API server never hands one address
/// to two running pods, so the input mixes snapshots or is hand-written wrongly, and lookups
/// by address pick the first pod by namespace and name.
pub(super) fn duplicate_addresses(inventory: &Inventory) -> Vec<String> {
    // The address index holds live pods' real addresses sorted by (address, pod id): a shared
    // address is a run of equal addresses, its pods in (namespace, name) order.
    let mut warnings: Vec<String> = inventory
        .by_address
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
        .map(|run| {
            let names: Vec<String> = run
                .iter()
                .map(|&(_, id)| inventory.pods[id].key())
                .collect();
            format!(
                "address {} belongs to {} live pods: {} (lookups by address pick {})",
                run[0].0,
                names.len(),
                names.join(", "),
                names[0]
            )
        })
        .collect();
    warnings.sort();
    warnings
}

/// The CNI, from the DaemonSets in the input (Cilium's `cilium`, Calico's `calico-node`, the
/// Amazon VPC CNI's `aws-node`; Cilium first, since on EKS it often runs chained with
/// `aws-node` and then enforces policy), else Cilium when the input holds Cilium policies
/// (they are enforced by nothing else), else the generic reading.
fn detected_cni(workloads: &[WorkloadObject], has_cilium_policies: bool) -> CniSetting {
    let daemon_set = |name: &str| {
        workloads
            .iter()
            .find(|w| w.kind == "DaemonSet" && w.meta.name.as_deref() == Some(name))
            .map(|w| format!("DaemonSet {}/{name}", namespace_of(&w.meta)))
    };
    for (name, cni) in [
        ("cilium", Cni::Cilium),
        ("calico-node", Cni::Calico),
        ("aws-node", Cni::VpcCni),
    ] {
        if let Some(source) = daemon_set(name) {
            return CniSetting {
                cni,
                source: Some(source),
            };
        }
    }
    if has_cilium_policies {
        return CniSetting {
            cni: Cni::Cilium,
            source: Some("Cilium policies in the input".into()),
        };
    }
    CniSetting::default()
}
