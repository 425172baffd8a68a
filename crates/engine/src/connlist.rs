//! Allowed connections aggregated by workload and external address range, in the style of
//! np-guard/netpol-analyzer's `list` (`src => dst : TCP 80,UDP 53`).
//!
//! External peers are the address space split at every CIDR boundary that a policy mentions
//! (an `ipBlock` CIDR or `except`): within one such range every address is treated alike by
//! every rule, so one representative address decides for the whole range. IPv6 ranges appear
//! only when some policy mentions an IPv6 CIDR.

use crate::connset::ConnSet;
use crate::eval::{Endpoint, Engine};
use crate::ir::Peer;
use netfence_model::net::FastMap;
use netfence_model::{AddressCuts, WorkloadRef};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A peer in a connection list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListPeer {
    /// A workload (or bare pod), shared: a line clones a pointer, not three names.
    Workload(Arc<WorkloadRef>),
    /// An inclusive range of addresses outside the cluster.
    External(IpAddr, IpAddr),
}

impl fmt::Display for ListPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListPeer::Workload(w) => write!(f, "{w}"),
            ListPeer::External(first, last) => write!(f, "{first}-{last}[External]"),
        }
    }
}

/// One line of a connection list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Source.
    pub src: ListPeer,
    /// Destination.
    pub dst: ListPeer,
    /// Allowed connections.
    pub conns: ConnSet,
}

/// Where the address space is cut: every CIDR boundary a rule or network set mentions.
pub type Cuts = AddressCuts;

/// The external address ranges: the IPv4 space (and IPv6, when a policy mentions it) split
/// at every CIDR boundary that a rule mentions.
pub fn external_ranges(engine: &Engine) -> Vec<(IpAddr, IpAddr)> {
    cuts(engine).ranges()
}

/// The cuts of one configuration.
pub fn cuts(engine: &Engine) -> Cuts {
    let mut nets = Vec::new();
    let mut nodes = false;
    for tier in engine.tiers() {
        for policy in &tier.policies {
            for rules in [&policy.ingress, &policy.egress].into_iter().flatten() {
                for rule in rules {
                    for peer in &rule.peers {
                        nodes |= peer_cut_nets(peer, &mut nets);
                    }
                }
            }
        }
    }
    cuts_of(nets, nodes, engine.inventory())
}

/// What one rule peer adds to the cuts: the CIDRs it names (exceptions included) go to
/// `nets`; the answer says whether the peer is the nodes, whose addresses then cut too.
/// `cuts` and the class basis's counts (`pod_classes`) both read peers through this.
pub(crate) fn peer_cut_nets(peer: &Peer, nets: &mut Vec<ipnet::IpNet>) -> bool {
    match peer {
        Peer::Net { net, except } => {
            nets.push(*net);
            nets.extend(except.iter().copied());
            false
        }
        Peer::Calico(entity) => {
            nets.extend(entity.nets.iter().chain(&entity.not_nets).copied());
            false
        }
        Peer::Nodes(_) => true,
        Peer::Pods { .. } => false,
    }
}

/// The cuts from the rule peers' CIDRs, the node addresses when some peer is the nodes, and
/// the network sets' CIDRs (Calico network sets give external addresses labels that
/// selectors can match).
pub(crate) fn cuts_of(
    mut nets: Vec<ipnet::IpNet>,
    nodes: bool,
    inventory: &netfence_model::Inventory,
) -> Cuts {
    if nodes {
        for node in &inventory.nodes {
            nets.extend(node.addresses.iter().map(|ip| ipnet::IpNet::from(*ip)));
        }
    }
    for set in &inventory.network_sets {
        nets.extend(set.nets.iter().copied());
    }
    AddressCuts::from_nets(&nets)
}

/// Whether two endpoints can talk at all: a pod-to-address pair needs the pod to have an
/// address of the same family (an IPv4-only pod cannot reach an IPv6 range).
fn same_family(engine: &Engine, a: Endpoint, b: Endpoint) -> bool {
    let families = |e: Endpoint| -> (bool, bool) {
        match e {
            Endpoint::Pod(id) => {
                let ips = &engine.inventory().pods()[id].ips;
                (
                    ips.iter().any(IpAddr::is_ipv4),
                    ips.iter().any(IpAddr::is_ipv6),
                )
            }
            Endpoint::Address(ip) => (ip.is_ipv4(), ip.is_ipv6()),
        }
    };
    let (a4, a6) = families(a);
    let (b4, b6) = families(b);
    (a4 && b4) || (a6 && b6)
}

/// Every allowed connection between workloads, and between workloads and external ranges,
/// sorted by (source, destination) text. A workload's connections are the union over its
/// pods; connections of a workload with itself are omitted.
pub fn connlist(engine: &Engine) -> Vec<Connection> {
    connlist_on(engine, &cuts(engine))
}

/// The connection list with external ranges cut at `cuts`.
pub fn connlist_on(engine: &Engine, cuts: &Cuts) -> Vec<Connection> {
    connlist_touching(engine, cuts, None)
}

/// The lines of [`connlist_on`] whose source or destination is one of `focus` (all lines with
/// `None`): what can change when only the policies of those workloads' pods change.
pub fn connlist_touching(
    engine: &Engine,
    cuts: &Cuts,
    focus: Option<&BTreeSet<WorkloadRef>>,
) -> Vec<Connection> {
    conn_table(engine, cuts, focus).connections()
}

/// The connection list in compact form: peers and connection sets once each, lines as indices.
/// What [`connlist`] returns is [`ConnTable::connections`]; consumers that handle hundreds of
/// thousands of lines (the viewer) read the indices and the class-pair cells instead.
#[derive(Clone, Debug)]
pub struct ConnTable {
    /// Workloads and external ranges, in the order of their text (lines are sorted by it).
    pub peers: Vec<ListPeer>,
    /// The nodes each peer covers: pod classes `0..classes` (indices into
    /// [`Engine::pod_classes`]), then external ranges.
    pub peer_nodes: Vec<Vec<usize>>,
    /// The number of pod classes (nodes below it are classes, the rest external ranges).
    pub classes: usize,
    /// Distinct connection sets; `sets[0]` is the empty set.
    pub sets: Vec<ConnSet>,
    /// One line per (source peer, destination peer, connection set) with something allowed,
    /// indices into `peers` and `sets`, sorted by source then destination.
    pub lines: Vec<(u32, u32, u32)>,
    /// Node × node set ids (`u32::MAX` for a pair no line needed).
    cells: Vec<u32>,
    nodes: usize,
}

impl ConnTable {
    /// The lines as [`Connection`]s (cloned peers and sets).
    pub fn connections(&self) -> Vec<Connection> {
        self.lines
            .iter()
            .map(|&(src, dst, set)| Connection {
                src: self.peers[src as usize].clone(),
                dst: self.peers[dst as usize].clone(),
                conns: self.sets[set as usize].clone(),
            })
            .collect()
    }

    /// What is allowed from node `x` to node `y` (see [`ConnTable::peer_nodes`]): between two
    /// different pods of those classes, or a pod and the range's first address. `None` when no
    /// line needed the pair.
    pub fn cell(&self, x: usize, y: usize) -> Option<&ConnSet> {
        match self.cells.get(x * self.nodes + y) {
            Some(&id) if id != UNKNOWN => Some(&self.sets[id as usize]),
            _ => None,
        }
    }
}

/// The connection list of [`connlist_touching`] in compact form. The node-pair cells (one
/// engine evaluation each) are computed on every available core.
pub fn conn_table(
    engine: &Engine,
    cuts: &Cuts,
    focus: Option<&BTreeSet<WorkloadRef>>,
) -> ConnTable {
    let inventory = engine.inventory();
    // Pods every policy treats alike answer alike: evaluate one pair of pods per pair of
    // classes, not every pair of pods.
    let (classes, class_of) = engine.pod_classes();
    let mut workloads: BTreeMap<WorkloadRef, BTreeSet<usize>> = BTreeMap::new();
    for (id, pod) in inventory.pods().iter().enumerate() {
        workloads
            .entry(pod.workload.clone())
            .or_default()
            .insert(class_of[id]);
    }
    // Nodes: the pod classes (0..n), then the external ranges (n..). Each side of a line is a
    // set of nodes; a line's connections are the union over node pairs, each pair computed
    // once and interned (most pairs share a handful of distinct connection sets).
    let n = classes.len();
    let ranges = cuts.ranges();
    let mut peers: Vec<(ListPeer, Vec<usize>)> = workloads
        .into_iter()
        .map(|(w, cs)| (ListPeer::Workload(Arc::new(w)), cs.into_iter().collect()))
        .collect();
    for (r, &(first, last)) in ranges.iter().enumerate() {
        peers.push((ListPeer::External(first, last), vec![n + r]));
    }
    // Peers in the order of their text: lines then come out sorted by (source, destination)
    // text without sorting them (a 10k-pod cluster has ~800k lines).
    peers.sort_by_cached_key(|(peer, _)| peer.to_string());
    let cells_of = NodeCells {
        engine,
        classes,
        ranges: &ranges,
    };
    let nodes = n + ranges.len();
    let focused: Vec<bool> = peers
        .iter()
        .map(|(peer, _)| match peer {
            ListPeer::Workload(w) => focus.is_none_or(|f| f.contains(&**w)),
            ListPeer::External(..) => false,
        })
        .collect();
    let focused_ids: Vec<usize> = (0..peers.len()).filter(|&i| focused[i]).collect();
    let all_ids: Vec<usize> = (0..peers.len()).collect();
    // The (source, destination) peer pairs that can make a line.
    let (peer_list, focused, focused_ids, all_ids) = (&peers, &focused, &focused_ids, &all_ids);
    let pairs = move || {
        peer_list.iter().enumerate().flat_map(move |(i, (src, _))| {
            // A line needs a focused end: from an unfocused source, only focused destinations.
            let destinations = if focused[i] { all_ids } else { focused_ids };
            destinations.iter().filter_map(move |&j| {
                let dst = &peer_list[j].0;
                let both_external =
                    matches!((src, dst), (ListPeer::External(..), ListPeer::External(..)));
                (i != j && !both_external).then_some((i, j))
            })
        })
    };
    // The cells those pairs need, then their connection sets on every core (each cell is one
    // engine evaluation; the engine is read-only and shared).
    let mut needed = vec![false; nodes * nodes];
    for (i, j) in pairs() {
        for &x in &peers[i].1 {
            for &y in &peers[j].1 {
                needed[x * nodes + y] = true;
            }
        }
    }
    let wanted: Vec<usize> = (0..nodes * nodes).filter(|&c| needed[c]).collect();
    drop(needed);
    let computed = in_parallel(&wanted, |&c| cells_of.compute(c / nodes, c % nodes));
    let mut sets = Interned::default();
    let mut cells: Vec<u32> = vec![UNKNOWN; nodes * nodes];
    for (&c, set) in wanted.iter().zip(computed) {
        cells[c] = sets.intern(set);
    }
    drop(wanted);
    let mut unions: FastMap<(u32, u32), u32> = FastMap::default();
    let mut lines = Vec::new();
    for (i, j) in pairs() {
        let mut id = EMPTY;
        for &x in &peers[i].1 {
            for &y in &peers[j].1 {
                id = sets.union(id, cells[x * nodes + y], &mut unions);
            }
        }
        if id != EMPTY {
            lines.push((index_u32(i), index_u32(j), id));
        }
    }
    let (peers, peer_nodes) = peers.into_iter().unzip();
    ConnTable {
        peers,
        peer_nodes,
        classes: n,
        sets: sets.sets,
        lines,
        cells,
        nodes,
    }
}

/// The cells of a connection table: pod classes `0..classes.len()` (one representative pod
/// each), then external ranges (their first address).
pub(crate) struct NodeCells<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) classes: &'a [Vec<netfence_model::PodId>],
    pub(crate) ranges: &'a [(IpAddr, IpAddr)],
}

impl NodeCells<'_> {
    /// The number of nodes.
    pub(crate) fn nodes(&self) -> usize {
        self.classes.len() + self.ranges.len()
    }

    /// The endpoint standing for `node` in a pair with `other`: two different pods when both
    /// sides are one class (`None` for a class of one pod against itself: a pod and itself).
    fn endpoint(&self, node: usize, other: usize) -> Option<Endpoint> {
        let n = self.classes.len();
        if node >= n {
            return Some(Endpoint::Address(self.ranges[node - n].0));
        }
        if node == other {
            return self.classes[node].get(1).map(|&id| Endpoint::Pod(id));
        }
        Some(Endpoint::Pod(self.classes[node][0]))
    }

    /// What node `x` may open to node `y` (nothing between two external ranges).
    pub(crate) fn compute(&self, x: usize, y: usize) -> ConnSet {
        let n = self.classes.len();
        if x >= n && y >= n {
            return ConnSet::empty();
        }
        let src = if x < n {
            Some(Endpoint::Pod(self.classes[x][0]))
        } else {
            self.endpoint(x, y)
        };
        match (src, self.endpoint(y, x)) {
            (Some(s), Some(d)) if same_family(self.engine, s, d) => self.engine.allowed_conns(s, d),
            _ => ConnSet::empty(),
        }
    }
}

/// `f` of every item, in order, computed on every available core. Each worker claims the
/// next item not yet claimed: the cost of an item varies (a cell by row, a line by its
/// length and walks), so items dealt out in fixed shares would not balance.
pub(crate) fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let (f, next) = (&f, &AtomicUsize::new(0));
    let computed: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(k) else {
                            return done;
                        };
                        done.push((k, f(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (k, r) in computed.into_iter().flatten() {
        out[k] = Some(r);
    }
    out.into_iter().flatten().collect()
}

/// An index stored as `u32` (a peer in [`ConnTable::lines`], a class or node of a delta's
/// cells, a line's key): each is backed by objects in memory, so there are far fewer than 2^32.
pub(crate) fn index_u32(i: usize) -> u32 {
    debug_assert!(u32::try_from(i).is_ok());
    i as u32
}

/// Not computed yet (a cell of the node-pair table).
const UNKNOWN: u32 = u32::MAX;
/// The empty connection set's id.
const EMPTY: u32 = 0;

/// Connection sets interned: equal sets share one id (`EMPTY` is the empty set).
#[derive(Clone)]
pub(crate) struct Interned {
    pub(crate) sets: Vec<ConnSet>,
    ids: FastMap<ConnSet, u32>,
}

impl Default for Interned {
    fn default() -> Self {
        let mut interned = Interned {
            sets: Vec::new(),
            ids: FastMap::default(),
        };
        interned.intern(ConnSet::empty());
        interned
    }
}

impl Interned {
    pub(crate) fn intern(&mut self, set: ConnSet) -> u32 {
        if let Some(&id) = self.ids.get(&set) {
            return id;
        }
        let id = u32::try_from(self.sets.len()).unwrap_or(UNKNOWN - 1);
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        id
    }

    fn get(&self, id: u32) -> &ConnSet {
        &self.sets[id as usize]
    }

    /// The id of the intersection of two interned sets (remembered per pair).
    pub(crate) fn intersection(
        &mut self,
        a: u32,
        b: u32,
        cache: &mut FastMap<(u32, u32), u32>,
    ) -> u32 {
        let key = (a.min(b), a.max(b));
        if let Some(&id) = cache.get(&key) {
            return id;
        }
        let intersection = self.get(a).intersect(self.get(b));
        let id = self.intern(intersection);
        cache.insert(key, id);
        id
    }

    /// The id of the union of two interned sets (remembered per pair).
    pub(crate) fn union(&mut self, a: u32, b: u32, cache: &mut FastMap<(u32, u32), u32>) -> u32 {
        if a == b || b == EMPTY {
            return a;
        }
        if a == EMPTY {
            return b;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&id) = cache.get(&key) {
            return id;
        }
        let union = self.get(a).union(self.get(b));
        let id = self.intern(union);
        cache.insert(key, id);
        id
    }
}

/// How a connection differs between two configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiffKind {
    /// Allowed before and after, but not the same connections.
    Changed,
    /// Allowed only after.
    Added,
    /// Allowed only before.
    Removed,
}

impl fmt::Display for DiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiffKind::Changed => "changed",
            DiffKind::Added => "added",
            DiffKind::Removed => "removed",
        })
    }
}

/// One line of a connectivity diff (netpol-analyzer's `diff` format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// Changed, added or removed.
    pub kind: DiffKind,
    /// Source.
    pub src: ListPeer,
    /// Destination.
    pub dst: ListPeer,
    /// Connections before (`ref1`), shared: most lines of a diff repeat a few sets.
    pub before: Arc<ConnSet>,
    /// Connections after (`ref2`).
    pub after: Arc<ConnSet>,
    /// `workload X added|removed` when an endpoint exists on one side only.
    pub workloads_info: Option<String>,
}

/// The semantic connectivity difference from `before` to `after`, at workload granularity and
/// on external ranges cut at the boundaries of both: changed lines, then added, then removed,
/// each sorted by source and destination.
pub fn diff(before: &Engine, after: &Engine) -> Vec<DiffLine> {
    diff_touching(before, after, None)
}

/// The lines of [`diff`] whose source or destination is one of `focus` (all with `None`):
/// the whole diff when every other line is known to be equal on both sides.
pub fn diff_touching(
    before: &Engine,
    after: &Engine,
    focus: Option<&BTreeSet<WorkloadRef>>,
) -> Vec<DiffLine> {
    if let Some(focus) = focus {
        return crate::delta::focused_diff(before, after, &crate::delta::Sides::both(focus));
    }
    let cuts = cuts(before).union(&cuts(after));
    let index = |list: Vec<Connection>| -> BTreeMap<(String, String), Connection> {
        list.into_iter()
            .map(|c| ((c.src.to_string(), c.dst.to_string()), c))
            .collect()
    };
    let old = index(connlist_touching(before, &cuts, focus));
    let new = index(connlist_touching(after, &cuts, focus));
    let workloads = |engine: &Engine| -> BTreeSet<WorkloadRef> {
        engine
            .inventory()
            .pods()
            .iter()
            .map(|p| p.workload.clone())
            .collect()
    };
    let (old_workloads, new_workloads) = (workloads(before), workloads(after));
    let keys: BTreeSet<&(String, String)> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (o, n) = (old.get(key), new.get(key));
        let before_conns = o.map(|c| c.conns.clone()).unwrap_or_default();
        let after_conns = n.map(|c| c.conns.clone()).unwrap_or_default();
        if before_conns == after_conns {
            continue;
        }
        let kind = match (o, n) {
            (None, _) => DiffKind::Added,
            (_, None) => DiffKind::Removed,
            _ => DiffKind::Changed,
        };
        let line = n.or(o).expect("a key comes from one side");
        let mut info = Vec::new();
        for peer in [&line.src, &line.dst] {
            if let ListPeer::Workload(w) = peer {
                if !old_workloads.contains(&**w) {
                    info.push(format!("workload {w} added"));
                } else if !new_workloads.contains(&**w) {
                    info.push(format!("workload {w} removed"));
                }
            }
        }
        out.push(DiffLine {
            kind,
            src: line.src.clone(),
            dst: line.dst.clone(),
            before: Arc::new(before_conns),
            after: Arc::new(after_conns),
            workloads_info: (!info.is_empty()).then(|| info.join(", ")),
        });
    }
    out.sort_by_cached_key(|d| (d.kind, d.src.to_string(), d.dst.to_string()));
    out
}
