//! Linking what was loaded into an [`Inventory`]: namespaces, owners and workloads, pods,
//! policies, and the checks that need every object at once.

use super::*;

impl Loader {
    /// Build the inventory, or return every error found.
    pub fn finish(self) -> Result<Inventory, LoadErrors> {
        let mut errors = self.errors;

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
        let mut inventory = Inventory {
            skipped_kinds: self.skipped,
            ..Inventory::default()
        };

        // Namespaces: declared ones, with the automatic name label.
        let mut seen_ns: HashMap<String, Origin> = HashMap::new();
        for (meta, origin) in self.namespaces {
            let name = meta.name.clone().unwrap_or_default();
            if let Some(first) = seen_ns.get(&name) {
                errors.push(duplicate("Namespace", &name, &origin, first));
                continue;
            }
            seen_ns.insert(name.clone(), origin.clone());
            let mut labels: Labels = meta.labels.unwrap_or_default().into_iter().collect();
            labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
            inventory.namespaces.insert(
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

        // Owner chains: (namespace, kind, name) -> owner of that workload object.
        let mut workload_owner: HashMap<(String, String, String), Option<(String, String)>> =
            HashMap::new();
        for w in &self.workloads {
            let ns = namespace_of(&w.meta);
            workload_owner.insert(
                (ns, w.kind.clone(), w.meta.name.clone().unwrap_or_default()),
                controller_owner(&w.meta),
            );
        }
        let top_level = |namespace: &str, mut kind: String, mut name: String| {
            let mut hops = 0;
            while let Some(Some((owner_kind, owner_name))) =
                workload_owner.get(&(namespace.to_string(), kind.clone(), name.clone()))
            {
                // Only climb to owners that are in the input (netpol-analyzer reports a
                // ReplicaSet when its Deployment is absent).
                if !workload_owner.contains_key(&(
                    namespace.to_string(),
                    owner_kind.clone(),
                    owner_name.clone(),
                )) || hops > 8
                {
                    break;
                }
                kind = owner_kind.clone();
                name = owner_name.clone();
                hops += 1;
            }
            WorkloadRef {
                kind,
                namespace: namespace.to_string(),
                name,
            }
        };

        let mut pods = Vec::new();
        for (mut pod, owner) in self.pods {
            if let Some((kind, name)) = owner {
                pod.workload = top_level(&pod.namespace, kind, name);
            }
            pods.push(pod);
        }
        adopt_by_selector(&self.workloads, &mut pods, |w| {
            let namespace = namespace_of(&w.meta);
            let name = w.meta.name.clone().unwrap_or_default();
            top_level(&namespace, w.kind.clone(), name)
        });

        // Workloads without live pods yield one pod from their template.
        let live: HashSet<WorkloadRef> = pods.iter().map(|p| p.workload.clone()).collect();
        for w in &self.workloads {
            let namespace = namespace_of(&w.meta);
            let name = w.meta.name.clone().unwrap_or_default();
            let me = WorkloadRef {
                kind: w.kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            };
            if top_level(&namespace, w.kind.clone(), name.clone()) != me || live.contains(&me) {
                continue;
            }
            let Some(template) = &w.template else {
                continue;
            };
            let Some(spec) = &template.spec else { continue };
            let labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let ctx = Ctx {
                origin: w.origin.clone(),
                object: Some(format!("{} {namespace}/{name}", w.kind)),
                default_namespace: None,
            };
            // A StatefulSet's pods have stable names, name-0 … name-(replicas-1); they are
            // made one by one (up to MAX_STATEFUL_REPLICAS). Other workloads yield one pod.
            let count = if w.kind == "StatefulSet" {
                w.replicas.unwrap_or(1).clamp(1, MAX_STATEFUL_REPLICAS)
            } else {
                1
            };
            for ordinal in 0..count {
                match pod_from_spec(
                    &namespace,
                    &format!("{name}-{ordinal}"),
                    labels.clone(),
                    spec,
                    None,
                    me.clone(),
                    true,
                    &ctx,
                ) {
                    Ok(mut pod) => {
                        pod.mesh_annotations = mesh_annotations(
                            template
                                .metadata
                                .as_ref()
                                .and_then(|m| m.annotations.as_ref()),
                        );
                        pods.push(pod);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }

        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
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
        inventory.warnings.extend(duplicate_addresses(&pods));
        assign_synthetic_ips(&mut pods);

        let mut policies = self.policies;
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

        inventory.service_accounts = self
            .service_accounts
            .into_iter()
            .map(|(meta, _)| ServiceAccount {
                namespace: namespace_of(&meta),
                name: meta.name.unwrap_or_default(),
                labels: meta.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect();

        // Namespaces referenced but not declared exist implicitly.
        let referenced: Vec<String> = pods
            .iter()
            .map(|p| p.namespace.clone())
            .chain(policies.iter().map(|p| p.namespace.clone()))
            .chain(self.services.iter().map(|s| s.namespace.clone()))
            .chain(
                self.security_group_policies
                    .iter()
                    .map(|s| s.namespace.clone()),
            )
            .chain(
                inventory
                    .service_accounts
                    .iter()
                    .map(|s| s.namespace.clone()),
            )
            .collect();
        for name in referenced {
            inventory
                .namespaces
                .entry(name.clone())
                .or_insert_with(|| Namespace {
                    labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.clone())]),
                    name,
                    annotations: BTreeMap::new(),
                    declared: false,
                    origin: None,
                });
        }

        for policy in &self.calico_policies {
            if let CalicoScope::Namespace(ns) = &policy.scope {
                inventory
                    .namespaces
                    .entry(ns.clone())
                    .or_insert_with(|| Namespace {
                        labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), ns.clone())]),
                        name: ns.clone(),
                        annotations: BTreeMap::new(),
                        declared: false,
                        origin: None,
                    });
            }
        }
        let mut admin_policies = self.admin_policies;
        admin_policies.sort_by(|a, b| {
            (a.kind.is_baseline(), a.priority, &a.name).cmp(&(
                b.kind.is_baseline(),
                b.priority,
                &b.name,
            ))
        });
        for pair in admin_policies.windows(2) {
            let same_tier = pair[0].kind.is_baseline() == pair[1].kind.is_baseline();
            if same_tier && pair[0].priority.is_some() && pair[0].priority == pair[1].priority {
                inventory.warnings.push(format!(
                    "admin policies {} and {} share priority {}: the API leaves their order undefined; netfence orders them by name",
                    pair[0].name,
                    pair[1].name,
                    pair[0].priority.unwrap_or_default()
                ));
            }
        }
        let banps: Vec<&AdminPolicy> = admin_policies
            .iter()
            .filter(|p| p.kind == AdminKind::BaselineAdminNetworkPolicy)
            .collect();
        for pair in banps.windows(2) {
            errors.push(duplicate(
                "BaselineAdminNetworkPolicy",
                &pair[1].name,
                &pair[1].origin,
                &pair[0].origin,
            ));
        }
        inventory.admin_policies = admin_policies;
        inventory
            .warnings
            .extend(undeclared_tiers(&self.calico_policies, &self.tiers));
        inventory.calico_policies = self.calico_policies;
        inventory.network_sets = self.network_sets;
        inventory.tiers = self.tiers;
        inventory.warnings.extend(self.warnings);
        inventory.pods = pods;
        inventory.network_policies = policies;
        inventory.services = self.services;
        inventory.ingresses = self.ingresses;
        inventory.peer_authentications = self.peer_authentications;
        inventory.istio_mesh_configs = self.istio_mesh_configs;
        inventory.vpc_cni = self.vpc_cni;
        inventory.cert_issuers = self.cert_issuers;
        inventory.certificates = self.certificates;
        inventory.rbac_roles = self.rbac_roles;
        inventory.rbac_bindings = self.rbac_bindings;
        inventory.security_group_policies = self.security_group_policies;
        inventory.nodes = self.nodes;
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

/// Live pods belong to a workload through its selector as well as through owner objects that
/// happen to be in the input: a `kubectl get deploy,pods -o yaml` dump has the Deployments and
/// their pods but no ReplicaSets, and a ReplicaSet adopts orphans matching its selector
/// (kube-controller-manager, `ReplicaSet` controller `claimPods`). A pod is claimed when its
/// owner is not in the input (or it has none), it lies in the workload's namespace and the
/// workload's non-empty selector matches its labels; the first top-level workload by (kind,
/// name) wins a pod two selectors match.
pub(super) fn adopt_by_selector(
    workloads: &[WorkloadObject],
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
pub(super) fn duplicate_addresses(pods: &[Pod]) -> Vec<String> {
    let mut by_address: HashMap<IpAddr, Vec<&Pod>> = HashMap::new();
    for pod in pods.iter().filter(|p| !p.host_network && !p.synthetic_ip) {
        for ip in &pod.ips {
            by_address.entry(*ip).or_default().push(pod);
        }
    }
    let mut warnings: Vec<String> = by_address
        .into_iter()
        .filter(|(_, pods)| pods.len() > 1)
        .map(|(ip, pods)| {
            let names: Vec<String> = pods.iter().map(|p| p.key()).collect();
            format!(
                "address {ip} belongs to {} live pods: {} (lookups by address pick {})",
                names.len(),
                names.join(", "),
                names[0]
            )
        })
        .collect();
    warnings.sort();
    warnings
}
