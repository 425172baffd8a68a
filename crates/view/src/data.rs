//! What the page shows, gathered from the engine's public API once: workloads and their
//! namespaces, the workload-level connection list (`netfence list`), the policies that select
//! each workload per direction and tier, one precomputed `query` explanation per edge and
//! representative port, and the audit's findings attached to the objects they name.
//!
//! These types are the page's data contract (serialized into the HTML); they are the view's
//! own, not the engine's.

use netfence_audit::Report;
use netfence_engine::{
    connlist, ConnSet, Connection, DirectionVerdict, Endpoint, Engine, ListPeer, Outcome,
};
use netfence_model::net::FastMap;
use netfence_model::{PodId, PolicyType, Protocol, WorkloadRef};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Most probes (representative ports) explained per edge.
pub const PROBES_PER_EDGE: usize = 4;
/// Most distinct pod classes per workload tried when looking for a pod pair a port is
/// allowed between.
pub const CLASSES_PER_WORKLOAD: usize = 64;
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
    /// Allowed connections between nodes (`netfence list`'s lines), by source node.
    pub edges: Edges,
    /// Distinct allowed-connection texts (`TCP 80,UDP 53`), referenced by [`Edges::conn`].
    pub conns: Vec<String>,
    /// Distinct lists of explained probes, referenced by [`Edges::probes`].
    pub probe_sets: Vec<Vec<ProbeView>>,
    /// Distinct direction explanations (the engine's `DirectionVerdict` as `query -o json`
    /// prints it, without the endpoint's pod name: the edge names its workloads), referenced
    /// by index from [`ProbeView`].
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
    /// Whether the what-if box works (`serve`: `POST /api/what-if` previews a change).
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

/// The allowed connections, columnar and grouped by source node (a 10k-pod cluster has
/// hundreds of thousands): edge `e` goes from the node whose range of `out_count` holds it to
/// `dst[e]`, allowing `conns[conn[e]]`, explained by `probe_sets[probes[e]]`.
#[derive(Debug, Default, Serialize)]
pub struct Edges {
    /// Edges leaving each node, in node order (edges are sorted by source node).
    pub out_count: Vec<usize>,
    /// Destination node of each edge.
    pub dst: Vec<usize>,
    /// Index into [`ViewData::conns`] of each edge.
    pub conn: Vec<usize>,
    /// Index into [`ViewData::probe_sets`] of each edge.
    pub probes: Vec<usize>,
}

impl Edges {
    /// (source, destination, conns index) of every edge, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.out_count
            .iter()
            .enumerate()
            .flat_map(|(src, &count)| std::iter::repeat_n(src, count))
            .zip(self.dst.iter().zip(&self.conn))
            .map(|(src, (&dst, &conn))| (src, dst, conn))
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.dst.len()
    }

    /// No edge.
    pub fn is_empty(&self) -> bool {
        self.dst.is_empty()
    }
}

/// The explanation of one representative connection of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ProbeView {
    /// `PROTO/PORT`.
    pub port: String,
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
    /// Built for `serve` (the query and what-if boxes work).
    pub live: bool,
}

/// The node index of every workload, and each workload's pods.
struct Nodes {
    index: FastMap<WorkloadRef, usize>,
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
    let mut workloads: FastMap<&WorkloadRef, Vec<PodId>> = FastMap::default();
    for (id, pod) in inventory.pods().iter().enumerate() {
        workloads.entry(&pod.workload).or_default().push(id);
    }
    // Grouped on the page by namespace: (namespace, name, kind) order.
    let mut workloads: Vec<(&WorkloadRef, Vec<PodId>)> = workloads.into_iter().collect();
    workloads.sort_by(|(a, _), (b, _)| {
        (&a.namespace, &a.name, &a.kind).cmp(&(&b.namespace, &b.name, &b.kind))
    });
    let mut namespaces: Vec<NamespaceView> = Vec::new();
    let mut nodes = Vec::new();
    let mut index = Nodes {
        index: FastMap::default(),
        pods: Vec::new(),
    };
    let mut policies = PolicyTable::default();
    for (workload, pods) in &workloads {
        if namespaces.last().map(|ns| &ns.name) != Some(&workload.namespace) {
            namespaces.push(NamespaceView {
                name: workload.namespace.clone(),
                findings: Vec::new(),
            });
        }
        index.index.insert((*workload).clone(), nodes.len());
        index.pods.push(pods.clone());
        nodes.push(NodeView {
            id: format!("{}/{}", workload.namespace, workload.name),
            label: workload.to_string(),
            ns: Some(namespaces.len() - 1),
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
    let mut externals: BTreeMap<(IpAddr, IpAddr), usize> = BTreeMap::new();
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
    let mut explainer = Explainer::new(engine, &index, &externals, nodes.len());
    let mut edges: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(list.len());
    // The list is sorted by source: most lines repeat the previous line's source.
    let mut last_src: Option<(&ListPeer, Option<usize>)> = None;
    for connection in list {
        let src = match last_src {
            Some((peer, node)) if *peer == connection.src => node,
            _ => explainer.node_of(&connection.src),
        };
        last_src = Some((&connection.src, src));
        let (Some(src), Some(dst)) = (src, explainer.node_of(&connection.dst)) else {
            continue;
        };
        let conn = explainer.conns.add(&connection.conns);
        let probes = explainer.probes(src, dst, &connection.conns, conn);
        edges.push((src, dst, conn, probes));
    }
    edges.sort_unstable();
    let mut columns = Edges {
        out_count: vec![0; nodes.len()],
        ..Edges::default()
    };
    for (src, dst, conn, probes) in edges {
        columns.out_count[src] += 1;
        columns.dst.push(dst);
        columns.conn.push(conn);
        columns.probes.push(probes);
    }
    let Explainer {
        conns,
        probe_sets,
        explanations,
        ..
    } = explainer;
    let mut view = ViewData {
        title: options.title.clone(),
        live: options.live,
        namespaces,
        nodes,
        policies: policies.views,
        edges: columns,
        conns: conns.values,
        probe_sets: probe_sets.values,
        explanations: explanations
            .iter()
            .map(|side| serde_json::to_value(side).unwrap_or(serde_json::Value::Null))
            .collect(),
        findings: Vec::new(),
        cluster_findings: Vec::new(),
        audit_notes: report.notes.clone(),
        observed: Vec::new(),
        observed_notes: Vec::new(),
        what_if: options.live,
    };
    attach_findings(&mut view, engine, report, &index);
    view
}

#[derive(Default)]
struct PolicyTable {
    index: FastMap<(usize, usize), usize>,
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

/// Distinct values, numbered in the order first added.
struct Interner<K, V> {
    index: FastMap<K, usize>,
    values: Vec<V>,
}

impl<K, V> Default for Interner<K, V> {
    fn default() -> Self {
        Interner {
            index: FastMap::default(),
            values: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V> Interner<K, V> {
    fn add_with(&mut self, key: &K, value: impl FnOnce() -> V) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        self.values.push(value());
        self.index.insert(key.clone(), self.values.len() - 1);
        self.values.len() - 1
    }
}

impl Interner<ConnSet, String> {
    fn add(&mut self, conns: &ConnSet) -> usize {
        self.add_with(conns, || conns.to_string())
    }
}

/// An equivalence class of endpoints for explanations: a pod class (pods every policy treats
/// alike, `Engine::pod_classes`) or one external node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Class {
    Pods(usize),
    External(usize),
}

/// What explaining a node's edges depends on: its classes and the ports it declares.
type Signature = (Vec<Class>, Vec<(Protocol, u16)>);

/// What one explained probe gave: allowed, egress and ingress explanation indices.
type Explained = (bool, usize, usize);

/// Explains edges. Pods of one class answer alike and are decided by the same rules (that is
/// what makes them one class), so the engine is asked once per (source class, destination
/// class, protocol, port) and the answer is shared by every edge between those classes.
struct Explainer<'a> {
    engine: &'a Engine,
    index: &'a Nodes,
    externals: &'a BTreeMap<(IpAddr, IpAddr), usize>,
    /// Per node: its distinct classes with a representative endpoint (at most
    /// [`CLASSES_PER_WORKLOAD`]), and the ports its first pod declares.
    classes: Vec<Vec<(Class, Endpoint)>>,
    declared: Vec<Vec<(Protocol, u16)>>,
    /// Per node: a number shared by the nodes with the same classes and declared ports (their
    /// edges with the same connections get the same probes).
    signature: Vec<usize>,
    cache: FastMap<(Class, Class, Protocol, u16), Explained>,
    /// (source signature, destination signature, conns index) → probe set.
    edge_cache: FastMap<(usize, usize, usize), usize>,
    conns: Interner<ConnSet, String>,
    probe_sets: Interner<Vec<(Protocol, u16, Explained)>, Vec<ProbeView>>,
    /// Distinct explanations, found by fingerprint and confirmed by equality; serialized
    /// once each, at the end (a 10k-pod cluster asks hundreds of thousands of directions
    /// that read alike).
    explanations: Vec<DirectionVerdict>,
    by_fingerprint: FastMap<u64, Vec<usize>>,
}

impl<'a> Explainer<'a> {
    fn new(
        engine: &'a Engine,
        index: &'a Nodes,
        externals: &'a BTreeMap<(IpAddr, IpAddr), usize>,
        node_count: usize,
    ) -> Self {
        let (_, class_of) = engine.pod_classes();
        let mut classes = vec![Vec::new(); node_count];
        let mut declared = vec![Vec::new(); node_count];
        for (node, pods) in index.pods.iter().enumerate() {
            for &pod in pods {
                let class = Class::Pods(class_of[pod]);
                if classes[node].len() < CLASSES_PER_WORKLOAD
                    && !classes[node].iter().any(|(c, _)| *c == class)
                {
                    classes[node].push((class, Endpoint::Pod(pod)));
                }
            }
            if let Some(&first) = pods.first() {
                let ports: BTreeSet<(Protocol, u16)> = engine.inventory().pods()[first]
                    .ports
                    .iter()
                    .map(|p| (p.protocol, p.port))
                    .collect();
                declared[node] = ports.into_iter().collect();
            }
        }
        for (&(first, _), &node) in externals {
            classes[node].push((Class::External(node), Endpoint::Address(first)));
        }
        let mut signatures: Interner<Signature, ()> = Interner::default();
        let signature = (0..node_count)
            .map(|node| {
                let key = (
                    classes[node].iter().map(|(class, _)| *class).collect(),
                    declared[node].clone(),
                );
                signatures.add_with(&key, || ())
            })
            .collect();
        Explainer {
            engine,
            index,
            externals,
            classes,
            declared,
            signature,
            cache: FastMap::default(),
            edge_cache: FastMap::default(),
            conns: Interner::default(),
            probe_sets: Interner::default(),
            explanations: Vec::new(),
            by_fingerprint: FastMap::default(),
        }
    }

    fn node_of(&self, peer: &ListPeer) -> Option<usize> {
        match peer {
            ListPeer::Workload(w) => self.index.index.get(w).copied(),
            ListPeer::External(first, last) => self.externals.get(&(*first, *last)).copied(),
        }
    }

    /// Representative (protocol, port) probes of an allowed connection set: ports the
    /// destination declares that the set contains, else the first port of each protocol's
    /// first range.
    fn probe_ports(&self, dst: usize, conns: &ConnSet) -> Vec<(Protocol, u16)> {
        let mut probes: Vec<(Protocol, u16)> = self.declared[dst]
            .iter()
            .copied()
            .filter(|&(protocol, port)| conns.contains(protocol, port))
            .take(PROBES_PER_EDGE)
            .collect();
        for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            if probes.len() >= PROBES_PER_EDGE || probes.iter().any(|(p, _)| *p == protocol) {
                continue;
            }
            // "All connections" is explained on TCP alone: the other protocols read the same.
            if conns.is_all() && protocol != Protocol::Tcp {
                continue;
            }
            if let Some(range) = conns.ports_of(protocol).ranges().next() {
                probes.push((protocol, range.first()));
            }
        }
        probes
    }

    fn explain(
        &mut self,
        src: (Class, Endpoint),
        dst: (Class, Endpoint),
        protocol: Protocol,
        port: u16,
    ) -> Explained {
        if let Some(&known) = self.cache.get(&(src.0, dst.0, protocol, port)) {
            return known;
        }
        let mut verdict = self.engine.explain(src.1, dst.1, protocol, port);
        // The edge names the workloads; the pod is only the class's representative.
        verdict.egress.endpoint = None;
        verdict.ingress.endpoint = None;
        let explained = (
            verdict.allowed,
            self.intern(verdict.egress),
            self.intern(verdict.ingress),
        );
        self.cache.insert((src.0, dst.0, protocol, port), explained);
        explained
    }

    /// The index of an explanation equal to `side`, added when new.
    fn intern(&mut self, side: DirectionVerdict) -> usize {
        let candidates = self.by_fingerprint.entry(fingerprint(&side)).or_default();
        if let Some(&known) = candidates.iter().find(|&&i| self.explanations[i] == side) {
            return known;
        }
        candidates.push(self.explanations.len());
        self.explanations.push(side);
        self.explanations.len() - 1
    }

    /// The probe set of one edge (`conn`: the interned index of `conns`).
    fn probes(&mut self, src: usize, dst: usize, conns: &ConnSet, conn: usize) -> usize {
        let key = (self.signature[src], self.signature[dst], conn);
        if let Some(&known) = self.edge_cache.get(&key) {
            return known;
        }
        let mut out = Vec::new();
        for (protocol, port) in self.probe_ports(dst, conns) {
            // The list is a union over pods: find a pair of classes this port is allowed
            // between (a workload's pods are usually one class, so the first pair does).
            let mut chosen: Option<Explained> = None;
            'pairs: for s in 0..self.classes[src].len() {
                for d in 0..self.classes[dst].len() {
                    let (a, b) = (self.classes[src][s], self.classes[dst][d]);
                    if a.1 == b.1 {
                        continue;
                    }
                    let explained = self.explain(a, b, protocol, port);
                    if explained.0 || chosen.is_none() {
                        chosen = Some(explained);
                    }
                    if explained.0 {
                        break 'pairs;
                    }
                }
            }
            if let Some(explained) = chosen {
                out.push((protocol, port, explained));
            }
        }
        let set = self.probe_sets.add_with(&out, || {
            out.iter()
                .map(|&(protocol, port, (allowed, egress, ingress))| ProbeView {
                    port: format!("{}/{port}", protocol_name(protocol)),
                    verdict: if allowed { "allow" } else { "deny" },
                    egress,
                    ingress,
                })
                .collect()
        });
        self.edge_cache.insert(key, set);
        set
    }
}

/// A hash of what an explanation says, without copying it (equal explanations, equal
/// fingerprints; the caller confirms with `==`).
fn fingerprint(side: &DirectionVerdict) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = netfence_model::net::FxHasher::default();
    side.direction.hash(&mut hasher);
    side.allowed.hash(&mut hasher);
    side.endpoint.hash(&mut hasher);
    for policy in &side.selected_by {
        (&policy.tier, policy.kind, &policy.policy).hash(&mut hasher);
    }
    for rule in side
        .passed_through
        .iter()
        .chain(&side.unknown_address_rules)
    {
        (&rule.tier, rule.kind, &rule.policy, rule.rule, rule.action).hash(&mut hasher);
    }
    match &side.outcome {
        Outcome::Rule { rule } => {
            (&rule.tier, &rule.policy, rule.rule, rule.action).hash(&mut hasher)
        }
        Outcome::EndOfTier { tier } => tier.hash(&mut hasher),
        other => std::mem::discriminant(other).hash(&mut hasher),
    }
    hasher.finish()
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
    let mut policy_by_object: FastMap<String, usize> = FastMap::default();
    for (i, policy) in view.policies.iter().enumerate() {
        // Findings name objects `Kind namespace/name` with the API kind; the engine's kind
        // names Calico policies `Calico NetworkPolicy`, so both spellings are keyed.
        policy_by_object.insert(format!("{} {}", policy.kind, policy.name), i);
        if let Some(bare) = policy.kind.strip_prefix("Calico ") {
            policy_by_object.insert(format!("{bare} {}", policy.name), i);
        }
    }
    let mut workload_by_object: FastMap<String, usize> = FastMap::default();
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
    let namespace_by_name: FastMap<String, usize> = view
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
