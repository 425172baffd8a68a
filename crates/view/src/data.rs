//! What the page shows, gathered from the engine's public API once: workloads and their
//! namespaces, the workload-level connection list (`netfence list`), the policies that select
//! each workload per direction and tier, one precomputed `query` explanation per edge and
//! representative port, and the audit's findings attached to the objects they name.
//!
//! These types are the page's data contract (serialized into the HTML); they are the view's
//! own, not the engine's.

use netfence_audit::Report;
use netfence_engine::{connlist, Connection, DirectionVerdict, Endpoint, Engine, ListPeer};
use netfence_model::{PodId, PolicyType, Protocol, WorkloadRef};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most probes (representative ports) explained per edge.
pub const PROBES_PER_EDGE: usize = 4;
/// Most pod pairs tried per edge to find one that the probe's port allows.
pub const PAIRS_PER_PROBE: usize = 64;
/// Most pod names listed per workload.
pub const POD_NAMES_PER_WORKLOAD: usize = 20;

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct ViewData {
    /// The page's title (the inputs, as the CLI names them).
    pub title: String,
    /// True when served by `netfence serve` (query box and live endpoints available).
    pub live: bool,
    /// Namespaces with at least one workload, sorted by name.
    pub namespaces: Vec<NamespaceView>,
    /// Graph nodes: workloads (sorted by namespace, name, kind), then external ranges.
    pub nodes: Vec<NodeView>,
    /// Compiled policies that select some workload, in the order first met.
    pub policies: Vec<PolicyView>,
    /// Allowed connections between nodes (`netfence list`'s lines).
    pub edges: Vec<EdgeView>,
    /// Distinct direction explanations (the engine's `DirectionVerdict` as `query -o json`
    /// prints it), referenced by index from [`ProbeView`].
    pub explanations: Vec<serde_json::Value>,
    /// The audit's findings.
    pub findings: Vec<FindingView>,
    /// Findings that name no namespace, workload or policy of the graph (indices).
    pub cluster_findings: Vec<usize>,
    /// Notes the audit made (checks that did not run).
    pub audit_notes: Vec<String>,
    /// Observed traffic (`serve` with flow inputs), empty otherwise.
    pub observed: Vec<ObservedEdge>,
    /// Why observed traffic is absent or partial, when flows were given.
    pub observed_notes: Vec<String>,
    /// Whether what-if editing is available (it needs the incremental engine).
    pub what_if: bool,
}

/// A namespace.
#[derive(Debug, Serialize)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// Findings about the namespace itself (indices into [`ViewData::findings`]).
    pub findings: Vec<usize>,
}

/// A graph node: a workload or an external address range.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// `ns/name` for a workload (the form `netfence query` accepts), the range for an
    /// external node.
    pub id: String,
    /// `ns/name[Kind]` or `first-last[External]`: the text `netfence list` prints.
    pub label: String,
    /// Index into [`ViewData::namespaces`]; `None` for external ranges.
    pub ns: Option<usize>,
    /// Workload name (or the range).
    pub name: String,
    /// `Deployment`, `StatefulSet`, …, `Pod`, or `External`.
    pub kind: String,
    /// Number of pods.
    pub pods: usize,
    /// The first pods' names.
    pub pod_names: Vec<String>,
    /// Ingress side; `None` for external ranges.
    pub ingress: Option<SideView>,
    /// Egress side; `None` for external ranges.
    pub egress: Option<SideView>,
    /// Findings about the workload or its pods (indices).
    pub findings: Vec<usize>,
}

/// One direction of a workload.
#[derive(Debug, Serialize)]
pub struct SideView {
    /// Every pod of the workload is selected by some policy for this direction.
    pub isolated: bool,
    /// Some but not all pods are selected.
    pub partly: bool,
    /// Selecting policies (indices into [`ViewData::policies`]), in evaluation order,
    /// union over the workload's pods.
    pub policies: Vec<usize>,
}

/// A compiled policy.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// Tier name.
    pub tier: String,
    /// Policy language (`NetworkPolicy`, `Calico GlobalNetworkPolicy`, …).
    pub kind: String,
    /// `namespace/name` or `name`.
    pub name: String,
    /// `file:line`.
    pub origin: String,
    /// Findings about the policy (indices).
    pub findings: Vec<usize>,
}

/// An allowed connection between two nodes.
#[derive(Debug, Serialize)]
pub struct EdgeView {
    /// Source node index.
    pub src: usize,
    /// Destination node index.
    pub dst: usize,
    /// Allowed connections as `netfence list` prints them (`TCP 80,UDP 53`).
    pub conns: String,
    /// The deciding rules for representative ports.
    pub probes: Vec<ProbeView>,
}

/// The explanation of one representative connection of an edge.
#[derive(Debug, Serialize)]
pub struct ProbeView {
    /// `PROTO/PORT`.
    pub port: String,
    /// Source endpoint the verdict was asked for (`ns/pod` or an address).
    pub from: String,
    /// Destination endpoint.
    pub to: String,
    /// `allow` or `deny` (deny only when no pod pair tried allows this port).
    pub verdict: &'static str,
    /// Egress explanation (index into [`ViewData::explanations`]).
    pub egress: usize,
    /// Ingress explanation (index).
    pub ingress: usize,
}

/// An audit finding.
#[derive(Debug, Serialize)]
pub struct FindingView {
    /// Check id.
    pub id: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// What was found.
    pub message: String,
    /// `Kind namespace/name`.
    pub object: String,
    /// `file:line`, when known.
    pub location: Option<String>,
}

/// Observed traffic between two nodes, aggregated (see [`crate::overlay`]).
#[derive(Debug, Clone, Serialize)]
pub struct ObservedEdge {
    /// Source node index, or `None` for an address outside the graph.
    pub src: Option<usize>,
    /// Destination node index, or `None`.
    pub dst: Option<usize>,
    /// Source as named (`ns/workload` or an address).
    pub src_name: String,
    /// Destination as named.
    pub dst_name: String,
    /// `PROTO/PORT` (or the protocol alone).
    pub port: String,
    /// Flows seen.
    pub flows: u64,
    /// Flows where the log and policy disagree.
    pub mismatches: u64,
    /// What policy says (`allow`, `deny`, or `none` when it cannot judge).
    pub policy: String,
    /// The deciding policy, as `flows check` names it.
    pub decided_by: Option<String>,
}

/// Options of [`build`].
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The page title.
    pub title: String,
    /// Built for `serve`.
    pub live: bool,
}

/// The node index of every workload, and each workload's pods.
struct Nodes {
    index: HashMap<WorkloadRef, usize>,
    pods: Vec<Vec<PodId>>,
}

/// Gather the view from the engine, its connection list and an audit report.
pub fn build(engine: &Engine, report: &Report, options: &BuildOptions) -> ViewData {
    build_from(engine, &connlist(engine), report, options)
}

/// [`build`] on a connection list already computed (the same engine's).
pub fn build_from(
    engine: &Engine,
    list: &[Connection],
    report: &Report,
    options: &BuildOptions,
) -> ViewData {
    let inventory = engine.inventory();
    let mut workloads: BTreeMap<&WorkloadRef, Vec<PodId>> = BTreeMap::new();
    for (id, pod) in inventory.pods().iter().enumerate() {
        workloads.entry(&pod.workload).or_default().push(id);
    }
    let mut namespaces: Vec<NamespaceView> = Vec::new();
    let mut namespace_index: HashMap<String, usize> = HashMap::new();
    let mut nodes = Vec::new();
    let mut index = Nodes {
        index: HashMap::new(),
        pods: Vec::new(),
    };
    let mut policies = PolicyTable::default();
    for (workload, pods) in &workloads {
        let ns = *namespace_index
            .entry(workload.namespace.clone())
            .or_insert_with(|| {
                namespaces.push(NamespaceView {
                    name: workload.namespace.clone(),
                    findings: Vec::new(),
                });
                namespaces.len() - 1
            });
        index.index.insert((*workload).clone(), nodes.len());
        index.pods.push(pods.clone());
        nodes.push(NodeView {
            id: format!("{}/{}", workload.namespace, workload.name),
            label: workload.to_string(),
            ns: Some(ns),
            name: workload.name.clone(),
            kind: workload.kind.clone(),
            pods: pods.len(),
            pod_names: pods
                .iter()
                .take(POD_NAMES_PER_WORKLOAD)
                .map(|&id| inventory.pods()[id].name.clone())
                .collect(),
            ingress: Some(side(engine, pods, PolicyType::Ingress, &mut policies)),
            egress: Some(side(engine, pods, PolicyType::Egress, &mut policies)),
            findings: Vec::new(),
        });
    }
    let mut externals: BTreeMap<(std::net::IpAddr, std::net::IpAddr), usize> = BTreeMap::new();
    for connection in list {
        for peer in [&connection.src, &connection.dst] {
            if let ListPeer::External(first, last) = peer {
                externals.entry((*first, *last)).or_insert(0);
            }
        }
    }
    for (range, slot) in externals.iter_mut() {
        *slot = nodes.len();
        let name = format!("{}-{}", range.0, range.1);
        nodes.push(NodeView {
            id: name.clone(),
            label: format!("{name}[External]"),
            ns: None,
            name,
            kind: "External".to_string(),
            pods: 0,
            pod_names: Vec::new(),
            ingress: None,
            egress: None,
            findings: Vec::new(),
        });
    }
    let node_of = |peer: &ListPeer| match peer {
        ListPeer::Workload(w) => index.index.get(w).copied(),
        ListPeer::External(first, last) => externals.get(&(*first, *last)).copied(),
    };
    let mut explanations = Interner::default();
    let mut edges = Vec::with_capacity(list.len());
    for connection in list {
        let (Some(src), Some(dst)) = (node_of(&connection.src), node_of(&connection.dst)) else {
            continue;
        };
        let probes = probes(engine, &index, connection, &mut explanations);
        edges.push(EdgeView {
            src,
            dst,
            conns: connection.conns.to_string(),
            probes,
        });
    }
    let mut view = ViewData {
        title: options.title.clone(),
        live: options.live,
        namespaces,
        nodes,
        policies: policies.views,
        edges,
        explanations: explanations.values,
        findings: Vec::new(),
        cluster_findings: Vec::new(),
        audit_notes: report.notes.clone(),
        observed: Vec::new(),
        observed_notes: Vec::new(),
        what_if: false,
    };
    attach_findings(&mut view, engine, report, &index);
    view
}

/// Policies numbered in the order they are first met, keyed by (tier, policy) indices.
#[derive(Default)]
struct PolicyTable {
    index: HashMap<(usize, usize), usize>,
    views: Vec<PolicyView>,
}

impl PolicyTable {
    fn get(&mut self, engine: &Engine, key: (usize, usize)) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let tier = &engine.tiers()[key.0];
        let policy = &tier.policies[key.1];
        self.views.push(PolicyView {
            tier: tier.name.clone(),
            kind: policy.kind.to_string(),
            name: policy.name.clone(),
            origin: format!("{}:{}", policy.origin.file, policy.origin.line),
            findings: Vec::new(),
        });
        self.index.insert(key, self.views.len() - 1);
        self.views.len() - 1
    }
}

/// The selecting policies of a workload's pods for one direction.
fn side(
    engine: &Engine,
    pods: &[PodId],
    direction: PolicyType,
    table: &mut PolicyTable,
) -> SideView {
    let mut keys: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut selected = 0;
    let mut first: Option<&[(usize, usize)]> = None;
    for &pod in pods {
        let list = engine.selecting(pod, direction);
        if !list.is_empty() {
            selected += 1;
        }
        // Pods of one workload share their template: most lists are equal, and the set is
        // only rebuilt when one differs.
        if first == Some(list) {
            continue;
        }
        first.get_or_insert(list);
        keys.extend(list.iter().copied());
    }
    SideView {
        isolated: selected == pods.len() && !pods.is_empty(),
        partly: selected > 0 && selected < pods.len(),
        // (tier, policy) order is evaluation order.
        policies: keys.into_iter().map(|key| table.get(engine, key)).collect(),
    }
}

/// Distinct JSON values, numbered.
#[derive(Default)]
struct Interner {
    index: HashMap<String, usize>,
    values: Vec<serde_json::Value>,
}

impl Interner {
    fn add(&mut self, verdict: &DirectionVerdict) -> usize {
        let value = serde_json::to_value(verdict).unwrap_or(serde_json::Value::Null);
        let key = value.to_string();
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.values.push(value);
        self.index.insert(key, self.values.len() - 1);
        self.values.len() - 1
    }
}

/// Representative (protocol, port) probes of an allowed connection set: ports the destination
/// declares that the set contains, else the first port of each protocol's first range.
fn probe_ports(
    engine: &Engine,
    dst_pods: &[PodId],
    conns: &netfence_engine::ConnSet,
) -> Vec<(Protocol, u16)> {
    let mut probes = Vec::new();
    let declared: BTreeSet<(Protocol, u16)> = dst_pods
        .first()
        .map(|&id| {
            engine.inventory().pods()[id]
                .ports
                .iter()
                .map(|p| (p.protocol, p.port))
                .collect()
        })
        .unwrap_or_default();
    for &(protocol, port) in &declared {
        if probes.len() < PROBES_PER_EDGE && conns.contains(protocol, port) {
            probes.push((protocol, port));
        }
    }
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        if probes.len() >= PROBES_PER_EDGE || probes.iter().any(|(p, _)| *p == protocol) {
            continue;
        }
        let ports = conns.ports_of(protocol);
        // "All connections" is explained on TCP alone: the other protocols read the same.
        if ports.is_all() && protocol != Protocol::Tcp && conns.is_all() {
            continue;
        }
        if let Some(range) = ports.ranges().next() {
            probes.push((protocol, range.first()));
        }
    }
    probes
}

/// The endpoints a node stands for: its pods, or the first address of its range.
fn endpoints(index: &Nodes, peer: &ListPeer) -> Vec<Endpoint> {
    match peer {
        ListPeer::Workload(w) => index
            .index
            .get(w)
            .map(|&n| index.pods[n].iter().map(|&id| Endpoint::Pod(id)).collect())
            .unwrap_or_default(),
        ListPeer::External(first, _) => vec![Endpoint::Address(*first)],
    }
}

fn probes(
    engine: &Engine,
    index: &Nodes,
    connection: &Connection,
    explanations: &mut Interner,
) -> Vec<ProbeView> {
    let sources = endpoints(index, &connection.src);
    let destinations = endpoints(index, &connection.dst);
    let dst_pods: Vec<PodId> = destinations
        .iter()
        .filter_map(|e| match e {
            Endpoint::Pod(id) => Some(*id),
            Endpoint::Address(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for (protocol, port) in probe_ports(engine, &dst_pods, &connection.conns) {
        // The list is a union over pods: find a pair of pods this port is allowed between
        // (a workload's pods usually answer alike, so the first pair nearly always does).
        let pairs = sources
            .iter()
            .flat_map(|&s| destinations.iter().map(move |&d| (s, d)))
            .filter(|(s, d)| s != d)
            .take(PAIRS_PER_PROBE);
        let mut chosen = None;
        for (s, d) in pairs {
            chosen.get_or_insert((s, d));
            if engine.allowed(s, d, protocol, port) {
                chosen = Some((s, d));
                break;
            }
        }
        let Some((s, d)) = chosen else { continue };
        let verdict = engine.explain(s, d, protocol, port);
        out.push(ProbeView {
            port: format!("{}/{port}", protocol_name(protocol)),
            from: engine.endpoint_name(s),
            to: engine.endpoint_name(d),
            verdict: if verdict.allowed { "allow" } else { "deny" },
            egress: explanations.add(&verdict.egress),
            ingress: explanations.add(&verdict.ingress),
        });
    }
    out
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// Each finding goes to the policy, workload (or pod's workload) or namespace its object
/// names; the rest are cluster-wide.
fn attach_findings(view: &mut ViewData, engine: &Engine, report: &Report, index: &Nodes) {
    let mut policy_by_object: HashMap<String, usize> = HashMap::new();
    for (i, policy) in view.policies.iter().enumerate() {
        // Findings name objects `Kind namespace/name` with the API kind; the engine's kind
        // names Calico policies `Calico NetworkPolicy`, so both spellings are keyed.
        policy_by_object.insert(format!("{} {}", policy.kind, policy.name), i);
        if let Some(bare) = policy.kind.strip_prefix("Calico ") {
            policy_by_object.insert(format!("{bare} {}", policy.name), i);
        }
    }
    let mut workload_by_object: HashMap<String, usize> = HashMap::new();
    for (workload, &node) in &index.index {
        workload_by_object.insert(
            format!("{} {}/{}", workload.kind, workload.namespace, workload.name),
            node,
        );
        for &pod in &index.pods[node] {
            let pod = &engine.inventory().pods()[pod];
            workload_by_object.insert(format!("Pod {}/{}", pod.namespace, pod.name), node);
        }
    }
    let namespace_by_name: HashMap<String, usize> = view
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| (ns.name.clone(), i))
        .collect();
    for finding in &report.findings {
        let i = view.findings.len();
        view.findings.push(FindingView {
            id: finding.id.to_string(),
            severity: finding.severity.to_string(),
            message: finding.message.clone(),
            object: finding.object.clone(),
            location: finding.file.as_ref().map(|file| match finding.line {
                Some(line) => format!("{file}:{line}"),
                None => file.clone(),
            }),
        });
        if let Some(&p) = policy_by_object.get(&finding.object) {
            view.policies[p].findings.push(i);
        } else if let Some(&n) = workload_by_object.get(&finding.object) {
            view.nodes[n].findings.push(i);
        } else if let Some(&ns) = finding
            .object
            .strip_prefix("Namespace ")
            .or(finding.namespace.as_deref())
            .and_then(|name| namespace_by_name.get(name))
        {
            view.namespaces[ns].findings.push(i);
        } else {
            view.cluster_findings.push(i);
        }
    }
}
