//! From observed connections to a plan: one policy per workload and direction, with the
//! workload's stable labels as its subject, peers by namespace and workload labels (or CIDRs
//! outside the cluster, and /32s for nodes and host-network pods), ports by number and
//! protocol. Which sides need a rule is asked of the engine: by default an engine of today's
//! cluster with the proposal's default denies added, so that only what the traffic needs
//! beyond what existing policies already allow is written.

use super::cidr;
use super::render;
use super::{AdviseError, AdviseOptions, Observations, ObservedTarget, Style};
use netfence_engine::{Cluster, Endpoint, Engine};
use netfence_model::{Inventory, Loader, ObjectKey, PodId, PolicyType, Protocol};
use netfence_model::{ObjectKind, WorkloadRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Labels that controllers add to the pods they create, on top of the template's: they change
/// with every rollout or pod, so no policy should select by them.
const CONTROLLER_LABELS: [&str; 10] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "job-name",
    "controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index",
];

/// The stable labels, in order of preference (Kubernetes "Recommended Labels": the
/// application's name; then the older `app` convention).
const STABLE_KEYS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// Labels as pods carry them (the same map as `netfence_selector::Labels`).
pub type Labels = BTreeMap<String, String>;

/// The namespace of the cluster's add-ons: its workloads get policies but no namespace-wide
/// default deny (a capture rarely sees all of the control plane's traffic).
const SYSTEM_NAMESPACE: &str = "kube-system";

/// A peer of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerPlan {
    /// Pods by namespace and labels (`namespace` is the policy's own when equal to it).
    Pods {
        /// The peer's namespace.
        namespace: String,
        /// The peer workload's stable labels.
        labels: Labels,
    },
    /// An address block outside the cluster.
    Block(ipnet::IpNet),
    /// A node or host-network pod's address (a /32 in Kubernetes and Calico; Cilium's
    /// `host`/`remote-node` entities, as its CIDR rules never match nodes).
    Host(ipnet::IpNet),
}

/// One rule: these peers on these ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulePlan {
    /// Peers, pods first, then blocks.
    pub peers: Vec<PeerPlan>,
    /// (protocol, port), sorted.
    pub ports: Vec<(Protocol, u16)>,
}

/// One proposed policy: a workload's traffic in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPlan {
    /// Namespace.
    pub namespace: String,
    /// Name (`<workload>-ingress` / `<workload>-egress`).
    pub name: String,
    /// The direction it allows.
    pub direction: PolicyType,
    /// The subject's labels (`podSelector.matchLabels`).
    pub subject: Labels,
    /// The workloads it covers (more than one when they share their stable labels).
    pub workloads: Vec<WorkloadRef>,
    /// The rules, ordered by ports.
    pub rules: Vec<RulePlan>,
}

/// A namespace-wide default deny (both directions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultDeny {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The plan: default denies, policies, and what could not be written as pod policy.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Default denies, by namespace.
    pub default_deny: Vec<DefaultDeny>,
    /// Policies, by (namespace, name).
    pub policies: Vec<PolicyPlan>,
    /// Objects the proposal replaces (`--replace`).
    pub replaced: Vec<ObjectKey>,
    /// Host-network pods and nodes seen in the traffic (`ns/pod` or the address, with the
    /// ports): not subject to pod policy, written only as /32 peers of the pods that talk
    /// to them.
    pub host_traffic: BTreeSet<String>,
    /// Connections between two endpoints that are neither a pod subject to policy (node to
    /// node, external to node, …): nothing to write.
    pub outside_pod_policy: u64,
    /// Service connections that reach no backend (no selector, no pods, port unknown).
    pub unresolved_services: u64,
    /// Connections added for DNS to the cluster's DNS pods (not observed).
    pub dns_added: u64,
}

/// A connection at pod level: a Service destination replaced by each backend on its target
/// port (kube-proxy rewrites before policy sees the packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Wire {
    pub(crate) src: Endpoint,
    pub(crate) dst: Endpoint,
    pub(crate) protocol: Protocol,
    pub(crate) port: u16,
}

/// The pod-level connections of an observed one (none when a Service has no backend).
pub(crate) fn wires(
    engine: &Engine,
    src: Endpoint,
    dst: ObservedTarget,
    protocol: Protocol,
    port: u16,
) -> Vec<Wire> {
    match dst {
        ObservedTarget::Endpoint(dst) => vec![Wire {
            src,
            dst,
            protocol,
            port,
        }],
        ObservedTarget::Service(index) => {
            let service = &engine.inventory().services[index];
            engine
                .explain_via_service(src, service, protocol, port)
                .backends
                .into_iter()
                .map(|backend| Wire {
                    src,
                    dst: Endpoint::Pod(backend.pod),
                    protocol,
                    port: backend.target_port,
                })
                .filter(|wire| wire.src != wire.dst)
                .collect()
        }
    }
}

/// A pod subject to pod policy (not host-network).
fn policy_pod(inventory: &Inventory, endpoint: Endpoint) -> Option<PodId> {
    match endpoint {
        Endpoint::Pod(id) if !inventory.pods()[id].host_network => Some(id),
        _ => None,
    }
}

/// What a peer endpoint is, for a rule.
enum PeerKind {
    Pod(PodId),
    External(IpAddr),
    /// A node or host-network pod: its addresses as /32s (none known: synthetic address).
    Host(Vec<IpAddr>, String),
}

fn peer_kind(
    inventory: &Inventory,
    hosts: &BTreeMap<IpAddr, String>,
    endpoint: Endpoint,
) -> PeerKind {
    match endpoint {
        Endpoint::Pod(id) => {
            let pod = &*inventory.pods()[id];
            if !pod.host_network {
                PeerKind::Pod(id)
            } else if pod.synthetic_ip {
                PeerKind::Host(Vec::new(), pod.key())
            } else {
                PeerKind::Host(pod.ips.clone(), pod.key())
            }
        }
        Endpoint::Address(ip) if hosts.contains_key(&ip) => {
            PeerKind::Host(vec![ip], format!("host-network pod {}", hosts[&ip]))
        }
        Endpoint::Address(ip) => {
            match inventory
                .nodes
                .iter()
                .find(|node| node.addresses.contains(&ip))
            {
                Some(node) => PeerKind::Host(vec![ip], format!("node {}", node.name)),
                None => PeerKind::External(ip),
            }
        }
    }
}

/// The labels that select a workload's pods: the first of `app.kubernetes.io/name`, `app`
/// and the template's labels (the pod's, less what controllers add; a workload's selector
/// is a subset of them) that no pod of another workload in the namespace also carries.
/// When none tells the workload apart, the template's labels (the workloads then share a
/// policy).
pub(crate) fn workload_labels(inventory: &Inventory, id: PodId) -> Labels {
    let pod = &*inventory.pods()[id];
    let template: Labels = pod
        .labels
        .iter()
        .filter(|(key, _)| !CONTROLLER_LABELS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let pods = inventory.pods();
    let first = pods.partition_point(|p| p.namespace < pod.namespace);
    let last = pods.partition_point(|p| p.namespace <= pod.namespace);
    let others = &pods[first..last];
    let distinct = |labels: &Labels| {
        !others.iter().any(|other| {
            other.workload != pod.workload
                && !other.host_network
                && labels.iter().all(|(k, v)| other.labels.get(k) == Some(v))
        })
    };
    STABLE_KEYS
        .iter()
        .filter_map(|key| {
            template
                .get(*key)
                .map(|value| Labels::from([(key.to_string(), value.clone())]))
        })
        .chain(std::iter::once(template.clone()))
        .find(|labels| !labels.is_empty() && distinct(labels))
        .unwrap_or(template)
}

/// One side's need: `subject` pod must allow `peer` on (protocol, port) in `direction`.
struct Need {
    subject: PodId,
    direction: PolicyType,
    peer: Endpoint,
    protocol: Protocol,
    port: u16,
}

/// Ports and peers gathered for one policy.
#[derive(Default)]
struct Gathered {
    workloads: BTreeSet<WorkloadRef>,
    pods: BTreeMap<(String, Labels), BTreeSet<(Protocol, u16)>>,
    external: BTreeMap<IpAddr, BTreeSet<(Protocol, u16)>>,
    hosts: BTreeMap<IpAddr, BTreeSet<(Protocol, u16)>>,
}

/// An engine of `loader`'s objects with `changes` applied and `deletions` made.
pub(crate) fn engine_with(
    loader: &Loader,
    changes: Option<Loader>,
    deletions: &[ObjectKey],
) -> Result<Engine, AdviseError> {
    let mut loader = loader.clone();
    if changes.is_some() || !deletions.is_empty() {
        loader
            .apply(changes.unwrap_or_default(), deletions)
            .map_err(AdviseError::Proposal)?;
    }
    let inventory = loader.finish().map_err(AdviseError::Proposal)?;
    Ok(Engine::new(inventory))
}

/// The pod-level connections of the observations, plus DNS to the cluster's DNS pods for
/// every observed source pod (when asked); the second count is how many DNS wires were added.
fn all_wires(
    engine: &Engine,
    observations: &Observations,
    dns: bool,
    unresolved: &mut u64,
) -> (BTreeSet<Wire>, u64) {
    let inventory = engine.inventory();
    let mut out = BTreeSet::new();
    for connection in observations.connections.keys() {
        let expanded = wires(
            engine,
            connection.src,
            connection.dst,
            connection.protocol,
            connection.port,
        );
        if expanded.is_empty() {
            *unresolved += 1;
        }
        out.extend(expanded);
    }
    let mut added = 0;
    if dns {
        let dns_pods: Vec<(PodId, Protocol)> = inventory
            .pods()
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.namespace == SYSTEM_NAMESPACE
                    && !p.host_network
                    && p.labels.get("k8s-app").map(String::as_str) == Some("kube-dns")
            })
            .flat_map(|(id, p)| {
                p.ports
                    .iter()
                    .filter(|port| port.port == 53)
                    .map(move |port| (PodId::new(id), port.protocol))
            })
            .collect();
        let sources: BTreeSet<PodId> = out
            .iter()
            .filter_map(|wire| policy_pod(inventory, wire.src))
            .collect();
        for src in sources {
            for &(dns_pod, protocol) in &dns_pods {
                if src != dns_pod
                    && out.insert(Wire {
                        src: Endpoint::Pod(src),
                        dst: Endpoint::Pod(dns_pod),
                        protocol,
                        port: 53,
                    })
                {
                    added += 1;
                }
            }
        }
    }
    (out, added)
}

/// The namespaces that get a default deny: those of the pods subject to policy in the
/// traffic, except `kube-system`.
fn deny_namespaces(inventory: &Inventory, wires: &BTreeSet<Wire>) -> BTreeSet<String> {
    wires
        .iter()
        .flat_map(|wire| [wire.src, wire.dst])
        .filter_map(|endpoint| policy_pod(inventory, endpoint))
        .map(|id| inventory.pods()[id].namespace.clone())
        .filter(|namespace| namespace != SYSTEM_NAMESPACE)
        .collect()
}

/// The existing objects of the proposal's language in `namespaces` (what `--replace` deletes).
fn replaced(inventory: &Inventory, namespaces: &BTreeSet<String>, style: Style) -> Vec<ObjectKey> {
    let key = |kind, namespace: &str, name: &str| ObjectKey {
        kind,
        namespace: Some(namespace.to_string()),
        name: name.to_string(),
    };
    let mut out: Vec<ObjectKey> = match style {
        Style::Kubernetes => inventory
            .network_policies
            .iter()
            .filter(|p| namespaces.contains(&p.namespace))
            .map(|p| key(ObjectKind::NetworkPolicy, &p.namespace, &p.name))
            .collect(),
        Style::Calico => inventory
            .calico_policies
            .iter()
            .filter(|p| p.tier == "default")
            .filter_map(|p| match &p.scope {
                netfence_model::calico::CalicoScope::Namespace(ns) if namespaces.contains(ns) => {
                    Some(key(ObjectKind::CalicoNetworkPolicy, ns, &p.name))
                }
                _ => None,
            })
            .collect(),
        // Cilium policies are not replaced yet: the proposal is added beside them.
        Style::Cilium => Vec::new(),
    };
    out.sort_by_key(ToString::to_string);
    out.dedup();
    out
}

/// The needs of every wire: each side that is a pod subject to policy. With an `oracle`
/// engine (the respecting mode), a side it already allows needs nothing.
fn needs(
    inventory: &Inventory,
    hosts: &BTreeMap<IpAddr, String>,
    wires: &BTreeSet<Wire>,
    oracle: Option<&Engine>,
    plan: &mut Plan,
) -> Vec<Need> {
    let mut out = Vec::new();
    for wire in wires {
        let src = policy_pod(inventory, wire.src);
        let dst = policy_pod(inventory, wire.dst);
        if src.is_none() && dst.is_none() {
            plan.outside_pod_policy += 1;
            continue;
        }
        for endpoint in [wire.src, wire.dst] {
            if let PeerKind::Host(_, name) = peer_kind(inventory, hosts, endpoint) {
                plan.host_traffic
                    .insert(format!("{name} {}/{}", wire.protocol, wire.port));
            }
        }
        let verdict =
            oracle.map(|engine| engine.explain(wire.src, wire.dst, wire.protocol, wire.port));
        if let Some(subject) = src {
            if !verdict.as_ref().is_some_and(|v| v.egress.allowed) {
                out.push(Need {
                    subject,
                    direction: PolicyType::Egress,
                    peer: wire.dst,
                    protocol: wire.protocol,
                    port: wire.port,
                });
            }
        }
        if let Some(subject) = dst {
            if !verdict.as_ref().is_some_and(|v| v.ingress.allowed) {
                out.push(Need {
                    subject,
                    direction: PolicyType::Ingress,
                    peer: wire.src,
                    protocol: wire.protocol,
                    port: wire.port,
                });
            }
        }
    }
    out
}

/// The plan for `observations` on `cluster` (see the module notes).
pub(crate) fn plan(
    loader: &Loader,
    cluster: &Cluster,
    observations: &Observations,
    options: &AdviseOptions,
) -> Result<Plan, AdviseError> {
    let engine = cluster.engine();
    let inventory = engine.inventory();
    let mut plan = Plan::default();
    let (wires, dns_added) = all_wires(
        engine,
        observations,
        options.dns,
        &mut plan.unresolved_services,
    );
    plan.dns_added = dns_added;
    let namespaces = deny_namespaces(inventory, &wires);
    if options.replace {
        plan.replaced = replaced(inventory, &namespaces, options.style);
    }
    plan.default_deny = namespaces
        .iter()
        .map(|namespace| DefaultDeny {
            namespace: namespace.clone(),
            name: free_name(inventory, namespace, "default-deny", &plan.replaced),
        })
        .collect();
    // Respecting today's policies: ask an engine of today's cluster with the default denies
    // in place which sides already allow each connection.
    let oracle = if options.replace {
        None
    } else {
        let denies = render::documents(&plan, options.style, false);
        let changes = (!denies.is_empty()).then(|| render::loader(&denies));
        Some(engine_with(loader, changes, &[])?)
    };
    let mut gathered: BTreeMap<(String, PolicyType, Labels), Gathered> = BTreeMap::new();
    // Once per workload (its first pod seen speaks for it: pods of one template differ only
    // in the labels controllers add, which are left out).
    let mut labels_of: HashMap<&WorkloadRef, Labels> = HashMap::new();
    let mut labels = |id: PodId| {
        labels_of
            .entry(&inventory.pods()[id].workload)
            .or_insert_with(|| workload_labels(inventory, id))
            .clone()
    };
    let hosts = &observations.host_addresses;
    for need in needs(inventory, hosts, &wires, oracle.as_ref(), &mut plan) {
        let pod = &*inventory.pods()[need.subject];
        let entry = gathered
            .entry((pod.namespace.clone(), need.direction, labels(need.subject)))
            .or_default();
        entry.workloads.insert(pod.workload.clone());
        let port = (need.protocol, need.port);
        match peer_kind(inventory, hosts, need.peer) {
            PeerKind::Pod(id) => {
                let key = (inventory.pods()[id].namespace.clone(), labels(id));
                entry.pods.entry(key).or_default().insert(port);
            }
            PeerKind::External(ip) => {
                entry.external.entry(ip).or_default().insert(port);
            }
            PeerKind::Host(ips, _) => {
                for ip in ips {
                    entry.hosts.entry(ip).or_default().insert(port);
                }
            }
        }
    }
    let forbidden = cidr::pod_and_node_addresses(inventory);
    for ((namespace, direction, subject), gathered) in gathered {
        let Some(first) = gathered.workloads.iter().next() else {
            continue;
        };
        let suffix = match direction {
            PolicyType::Ingress => "ingress",
            PolicyType::Egress => "egress",
        };
        let name = free_name(
            inventory,
            &namespace,
            &format!("{}-{suffix}", first.name),
            &plan.replaced,
        );
        plan.policies.push(PolicyPlan {
            rules: rules(&gathered, &forbidden),
            namespace,
            name,
            direction,
            subject,
            workloads: gathered.workloads.into_iter().collect(),
        });
    }
    plan.policies
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(plan)
}

/// `name`, or `name-advised` (then `-advised-2`, …) when a policy of that name exists in the
/// namespace and is not being replaced.
fn free_name(inventory: &Inventory, namespace: &str, name: &str, replaced: &[ObjectKey]) -> String {
    let taken = |candidate: &str| {
        let kubernetes = inventory
            .network_policies
            .iter()
            .any(|p| p.namespace == namespace && p.name == candidate);
        let calico = inventory.calico_policies.iter().any(|p| {
            p.name == candidate
                && matches!(&p.scope, netfence_model::calico::CalicoScope::Namespace(ns) if ns == namespace)
        });
        (kubernetes || calico)
            && !replaced
                .iter()
                .any(|key| key.namespace.as_deref() == Some(namespace) && key.name == candidate)
    };
    if !taken(name) {
        return name.to_string();
    }
    let mut candidate = format!("{name}-advised");
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{name}-advised-{n}");
        n += 1;
    }
    candidate
}

/// Peers grouped by their port sets: one rule per distinct set of ports, pods first; external
/// addresses with the same ports aggregated into blocks that hold no pod or node address.
fn rules(gathered: &Gathered, forbidden: &[IpAddr]) -> Vec<RulePlan> {
    let mut by_ports: BTreeMap<Vec<(Protocol, u16)>, BTreeSet<PeerPlan>> = BTreeMap::new();
    for ((namespace, labels), ports) in &gathered.pods {
        by_ports
            .entry(ports.iter().copied().collect())
            .or_default()
            .insert(PeerPlan::Pods {
                namespace: namespace.clone(),
                labels: labels.clone(),
            });
    }
    let mut external: BTreeMap<Vec<(Protocol, u16)>, Vec<IpAddr>> = BTreeMap::new();
    for (ip, ports) in &gathered.external {
        external
            .entry(ports.iter().copied().collect())
            .or_default()
            .push(*ip);
    }
    for (ports, ips) in external {
        let blocks = cidr::cover(&ips, forbidden);
        by_ports
            .entry(ports)
            .or_default()
            .extend(blocks.into_iter().map(PeerPlan::Block));
    }
    for (ip, ports) in &gathered.hosts {
        by_ports
            .entry(ports.iter().copied().collect())
            .or_default()
            .insert(PeerPlan::Host(ipnet::IpNet::from(*ip)));
    }
    by_ports
        .into_iter()
        .map(|(ports, peers)| RulePlan {
            peers: peers.into_iter().collect(),
            ports,
        })
        .collect()
}
