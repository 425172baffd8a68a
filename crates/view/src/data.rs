//! What the page shows, gathered from the engine's public API once: workloads and their
//! namespaces, the workload-level connection list (`netfence list`), the policies that select
//! each workload per direction and tier, one precomputed `query` explanation per edge and
//! representative port, and the audit's findings attached to the objects they name.
//!
//! These types are the page's data contract (serialized into the HTML); they are the view's
//! own, not the engine's.

use netfence_audit::Report;
use netfence_engine::connlist::cuts;
use netfence_engine::{
    conn_table, ConnSet, ConnTable, DirectionTrace, DirectionVerdict, Endpoint, Engine, ListPeer,
    Outcome, PolicyId,
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
    build_from(
        engine,
        &conn_table(engine, &cuts(engine), None),
        report,
        options,
    )
}

/// [`build`] on a connection list already computed (the same engine's whole
/// [`conn_table`]).
pub fn build_from(
    engine: &Engine,
    list: &ConnTable,
    report: &Report,
    options: &BuildOptions,
) -> ViewData {
    let inventory = engine.inventory();
    let mut workloads: FastMap<&WorkloadRef, Vec<PodId>> = FastMap::default();
    for (id, pod) in inventory.pods().iter().enumerate() {
        workloads
            .entry(&pod.workload)
            .or_default()
            .push(PodId::new(id));
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
    // External ranges that some line names, in range order, after the workloads.
    let mut externals: BTreeMap<(IpAddr, IpAddr), usize> = BTreeMap::new();
    let mut named = vec![false; list.peers.len()];
    for &(src, dst, _) in &list.lines {
        named[src as usize] = true;
        named[dst as usize] = true;
    }
    for (peer, _) in list.peers.iter().zip(&named).filter(|(_, &n)| n) {
        if let ListPeer::External(first, last) = peer {
            externals.entry((*first, *last)).or_insert(0);
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
    // Each peer of the table as a graph node.
    let node_of_peer: Vec<Option<usize>> = list
        .peers
        .iter()
        .map(|peer| match peer {
            ListPeer::Workload(w) => index.index.get(&**w).copied(),
            ListPeer::External(first, last) => externals.get(&(*first, *last)).copied(),
        })
        .collect();
    let mut table_node = vec![usize::MAX; nodes.len()];
    for (peer, node) in node_of_peer.iter().enumerate() {
        if let (Some(node), [only]) = (node, list.peer_nodes[peer].as_slice()) {
            if matches!(list.peers[peer], ListPeer::External(..)) {
                table_node[*node] = *only;
            }
        }
    }
    let mut explainer = Explainer::new(engine, list, &index, &externals, &table_node);
    let mut edges: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(list.lines.len());
    // Connection texts in the order first met, by the table's set id.
    let mut conn_of_set: Vec<Option<usize>> = vec![None; list.sets.len()];
    let mut conns: Vec<String> = Vec::new();
    for &(src, dst, set) in &list.lines {
        let (Some(src), Some(dst)) = (node_of_peer[src as usize], node_of_peer[dst as usize])
        else {
            continue;
        };
        let set = set as usize;
        let conn = *conn_of_set[set].get_or_insert_with(|| {
            conns.push(list.sets[set].to_string());
            conns.len() - 1
        });
        let probes = explainer.probes(src, dst, &list.sets[set], conn);
        edges.push((src, dst, conn, probes));
    }
    let (probe_sets, explanations) = explainer.finish(&mut edges);
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
    let mut view = ViewData {
        title: options.title.clone(),
        live: options.live,
        namespaces,
        nodes,
        policies: policies.views,
        edges: columns,
        conns,
        probe_sets,
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
    index: FastMap<PolicyId, usize>,
    views: Vec<PolicyView>,
}

impl PolicyTable {
    fn get(&mut self, engine: &Engine, key: PolicyId) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let tier = &engine.tiers()[key.tier()];
        let policy = &tier.policies[key.index()];
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
    let mut keys: BTreeSet<PolicyId> = BTreeSet::new();
    let mut selected = 0;
    let mut first: Option<&[PolicyId]> = None;
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

/// A probe to explain: (source class, destination class, protocol, port) and the endpoints
/// that represent the classes.
type ProbeKey = (Class, Class, Protocol, u16);

/// Explains edges. Pods of one class answer alike and are decided by the same rules (that is
/// what makes them one class), so the engine is asked once per (source class, destination
/// class, protocol, port) and the answer is shared by every edge between those classes. The
/// connection table's class-pair cells say which pair allows a port, so only the probe each
/// edge shows is explained, and those explanations run on every core at the end
/// ([`Explainer::finish`]).
struct Explainer<'a> {
    engine: &'a Engine,
    table: &'a ConnTable,
    /// Per node: its distinct classes with a representative endpoint (at most
    /// [`CLASSES_PER_WORKLOAD`]), and the ports its first pod declares.
    classes: Vec<Vec<(Class, Endpoint)>>,
    declared: Vec<Vec<(Protocol, u16)>>,
    /// Per node: a number shared by the nodes with the same classes and declared ports (their
    /// edges with the same connections get the same probes).
    signature: Vec<usize>,
    /// Per external node: its node in the connection table.
    table_node: &'a [usize],
    /// Probes to explain, numbered in the order first needed, with their endpoints.
    keys: Interner<ProbeKey, (Endpoint, Endpoint)>,
    /// (source signature, destination signature, conns index) → pending probe set.
    edge_cache: FastMap<(usize, usize, usize), usize>,
    /// Pending probe sets: (protocol, port, probe key number) per probe.
    pending: Vec<Vec<(Protocol, u16, usize)>>,
}

impl<'a> Explainer<'a> {
    fn new(
        engine: &'a Engine,
        table: &'a ConnTable,
        index: &'a Nodes,
        externals: &'a BTreeMap<(IpAddr, IpAddr), usize>,
        table_node: &'a [usize],
    ) -> Self {
        let node_count = table_node.len();
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
            table,
            classes,
            declared,
            signature,
            table_node,
            keys: Interner::default(),
            edge_cache: FastMap::default(),
            pending: Vec::new(),
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

    /// The connection table's node of a class.
    fn table_node(&self, class: Class) -> usize {
        match class {
            Class::Pods(class) => class,
            Class::External(node) => self.table_node[node],
        }
    }

    /// Whether the table allows `protocol`/`port` between two classes.
    fn allows(&self, src: Class, dst: Class, protocol: Protocol, port: u16) -> bool {
        self.table
            .cell(self.table_node(src), self.table_node(dst))
            .is_some_and(|conns| conns.contains(protocol, port))
    }

    /// The pending probe set of one edge (`conn`: the interned index of `conns`).
    fn probes(&mut self, src: usize, dst: usize, conns: &ConnSet, conn: usize) -> usize {
        let key = (self.signature[src], self.signature[dst], conn);
        if let Some(&known) = self.edge_cache.get(&key) {
            return known;
        }
        let mut out = Vec::new();
        for (protocol, port) in self.probe_ports(dst, conns) {
            // The list is a union over pods: find a pair of classes this port is allowed
            // between (a workload's pods are usually one class, so the first pair does), else
            // explain the first pair's denial.
            let mut chosen: Option<((Class, Endpoint), (Class, Endpoint))> = None;
            'pairs: for &a in &self.classes[src] {
                for &b in &self.classes[dst] {
                    if a.1 == b.1 {
                        continue;
                    }
                    let allowed = self.allows(a.0, b.0, protocol, port);
                    if allowed || chosen.is_none() {
                        chosen = Some((a, b));
                    }
                    if allowed {
                        break 'pairs;
                    }
                }
            }
            if let Some((a, b)) = chosen {
                let probe = self
                    .keys
                    .add_with(&(a.0, b.0, protocol, port), || (a.1, b.1));
                out.push((protocol, port, probe));
            }
        }
        self.pending.push(out);
        let set = self.pending.len() - 1;
        self.edge_cache.insert(key, set);
        set
    }

    /// Explain every probe (on every core), number the distinct explanations and probe sets,
    /// and point `edges`' probe sets at the final numbers.
    fn finish(
        self,
        edges: &mut [(usize, usize, usize, usize)],
    ) -> (Vec<Vec<ProbeView>>, Vec<DirectionVerdict>) {
        let engine = self.engine;
        let probes: Vec<(ProbeKey, (Endpoint, Endpoint))> = {
            let mut keys: Vec<Option<ProbeKey>> = vec![None; self.keys.values.len()];
            for (key, &i) in &self.keys.index {
                keys[i] = Some(*key);
            }
            keys.into_iter()
                .flatten()
                .zip(self.keys.values.iter().copied())
                .collect()
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, probes.len().max(1));
        // Each worker traces probes w, w + workers, … (rule places, no words) and numbers
        // its distinct direction traces (150k probes read alike in a few thousand ways); only
        // those are put into words.
        type Local<'e> = (Vec<DirectionTrace<'e>>, Vec<Explained>);
        let traced: Vec<Local<'_>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let probes = &probes;
                    scope.spawn(move || {
                        let mut local: Interner<DirectionTrace<'_>, ()> = Interner::default();
                        let mut traces = Vec::new();
                        let mut number = |side: DirectionTrace<'a>| {
                            // The edge names the workloads; the pod is only the class's
                            // representative.
                            let side = side.without_endpoint();
                            local.add_with(&side, || traces.push(side.clone()))
                        };
                        let explained = probes
                            .iter()
                            .skip(w)
                            .step_by(workers)
                            .map(|&((_, _, protocol, port), (src, dst))| {
                                let trace = engine.trace(src, dst, protocol, port);
                                let allowed = trace.allowed();
                                (allowed, number(trace.egress), number(trace.ingress))
                            })
                            .collect::<Vec<_>>();
                        (traces, explained)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        // One numbering, in probe order (whatever the number of workers).
        let mut explanations = Explanations::default();
        let mut remap: Vec<Vec<Option<usize>>> = Vec::with_capacity(workers);
        let mut locals = Vec::with_capacity(workers);
        let mut results = Vec::with_capacity(workers);
        for (traces, explained) in traced {
            remap.push(vec![None; traces.len()]);
            locals.push(traces);
            results.push(explained);
        }
        let mut global = |w: usize, local: usize| -> usize {
            *remap[w][local].get_or_insert_with(|| {
                explanations.intern(engine.describe_direction(&locals[w][local]))
            })
        };
        let explained: Vec<Explained> = (0..probes.len())
            .map(|k| {
                let (w, i) = (k % workers, k / workers);
                let (allowed, egress, ingress) = results[w][i];
                (allowed, global(w, egress), global(w, ingress))
            })
            .collect();
        let mut sets: Interner<Vec<(Protocol, u16, Explained)>, Vec<ProbeView>> =
            Interner::default();
        let final_set: Vec<usize> = self
            .pending
            .iter()
            .map(|pending| {
                let content: Vec<(Protocol, u16, Explained)> = pending
                    .iter()
                    .map(|&(protocol, port, probe)| (protocol, port, explained[probe]))
                    .collect();
                sets.add_with(&content, || {
                    content
                        .iter()
                        .map(|&(protocol, port, (allowed, egress, ingress))| ProbeView {
                            port: format!("{}/{port}", protocol_name(protocol)),
                            verdict: if allowed { "allow" } else { "deny" },
                            egress,
                            ingress,
                        })
                        .collect()
                })
            })
            .collect();
        for edge in edges.iter_mut() {
            edge.3 = final_set[edge.3];
        }
        (sets.values, explanations.values)
    }
}

/// Distinct explanations, found by fingerprint and confirmed by equality; serialized once
/// each, at the end (a 10k-pod cluster asks hundreds of thousands of directions that read
/// alike).
#[derive(Default)]
struct Explanations {
    values: Vec<DirectionVerdict>,
    by_fingerprint: FastMap<u64, Vec<usize>>,
}

impl Explanations {
    /// The index of an explanation equal to `side`, added when new.
    fn intern(&mut self, side: DirectionVerdict) -> usize {
        let candidates = self.by_fingerprint.entry(fingerprint(&side)).or_default();
        if let Some(&known) = candidates.iter().find(|&&i| self.values[i] == side) {
            return known;
        }
        candidates.push(self.values.len());
        self.values.push(side);
        self.values.len() - 1
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
            let pod = &*engine.inventory().pods()[pod];
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
