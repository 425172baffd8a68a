//! The reachability delta of a change over the workloads it can affect: the lines of
//! [`crate::diff`] from or to those workloads, computed without building the whole
//! connection table of either engine.
//!
//! A line is the union of its sides' class-pair cells (as in [`crate::conn_table`]). Only
//! the rows and columns of the focused workloads' classes are evaluated — `focus × every
//! node` and `every node × focus` — stored densely per focused class instead of in a
//! `nodes × nodes` table, and only the lines with a focused end are formed. The peers of
//! both engines share one numbering, so lines are compared by index, and only the lines
//! that differ are named and sorted.

use crate::connlist::{cuts, in_parallel, DiffKind, DiffLine, Interned, ListPeer, NodeCells};
use crate::connset::ConnSet;
use crate::eval::Engine;
use netfence_model::net::FastMap;
use netfence_model::WorkloadRef;
use std::collections::{BTreeSet, HashMap};

/// The workloads of both engines under one numbering, then the external ranges.
struct Universe<'a> {
    workloads: Vec<&'a WorkloadRef>,
    /// Per engine (before, after): the classes of each workload's pods (empty when the
    /// workload has no pod in that engine).
    classes: [Vec<Vec<usize>>; 2],
    /// Whether each workload is focused.
    focused: Vec<bool>,
}

impl<'a> Universe<'a> {
    fn new(engines: [&'a Engine; 2], focus: &BTreeSet<WorkloadRef>) -> Universe<'a> {
        let mut index: HashMap<&'a WorkloadRef, usize> = HashMap::new();
        let mut universe = Universe {
            workloads: Vec::new(),
            classes: [Vec::new(), Vec::new()],
            focused: Vec::new(),
        };
        for (side, engine) in engines.into_iter().enumerate() {
            let (_, class_of) = engine.pod_classes();
            // Pods are sorted by (namespace, name), so a workload's pods mostly follow each
            // other: compare with the previous pod's workload before hashing.
            let mut last: Option<(&WorkloadRef, usize)> = None;
            for (id, pod) in engine.inventory().pods().iter().enumerate() {
                let w = match last {
                    Some((workload, w)) if *workload == pod.workload => w,
                    _ => {
                        let w = *index.entry(&pod.workload).or_insert_with(|| {
                            universe.workloads.push(&pod.workload);
                            universe.focused.push(focus.contains(&pod.workload));
                            universe.classes[0].push(Vec::new());
                            universe.classes[1].push(Vec::new());
                            universe.workloads.len() - 1
                        });
                        last = Some((&pod.workload, w));
                        w
                    }
                };
                let classes = &mut universe.classes[side][w];
                if !classes.contains(&class_of[id]) {
                    classes.push(class_of[id]);
                }
            }
        }
        universe
    }
}

/// One engine's lines with a focused end, by (source, destination) peer index: workloads
/// `0..workloads`, then external ranges. Only lines with something allowed are kept.
fn focused_lines(
    engine: &Engine,
    universe: &Universe<'_>,
    side: usize,
    ranges: &[(std::net::IpAddr, std::net::IpAddr)],
) -> (FastMap<(u32, u32), u32>, Interned) {
    let (classes, _) = engine.pod_classes();
    let cells_of = NodeCells {
        engine,
        classes,
        ranges,
    };
    let (n, nodes) = (classes.len(), cells_of.nodes());
    let peer_classes = &universe.classes[side];
    let workloads = universe.workloads.len();
    // The focused classes, numbered densely.
    let mut focus_index = vec![u32::MAX; n];
    let mut focused_classes = Vec::new();
    for (w, cs) in peer_classes.iter().enumerate() {
        if universe.focused[w] {
            for &c in cs {
                if focus_index[c] == u32::MAX {
                    focus_index[c] = index_u32(focused_classes.len());
                    focused_classes.push(c);
                }
            }
        }
    }
    // Row k: focused class → every node; column k: every node → focused class (a focused
    // source reads its row).
    let wanted: Vec<(usize, usize)> = focused_classes
        .iter()
        .flat_map(|&x| (0..nodes).map(move |y| (x, y)))
        .chain(focused_classes.iter().flat_map(|&y| {
            let focus_index = &focus_index;
            (0..nodes)
                .filter(move |&x| x >= n || focus_index[x] == u32::MAX)
                .map(move |x| (x, y))
        }))
        .collect();
    let computed = in_parallel(&wanted, |&(x, y)| cells_of.compute(x, y));
    let mut sets = Interned::default();
    let mut rows = vec![u32::MAX; focused_classes.len() * nodes];
    let mut columns = vec![u32::MAX; focused_classes.len() * nodes];
    for (&(x, y), set) in wanted.iter().zip(computed) {
        let id = sets.intern(set);
        if x < n && focus_index[x] != u32::MAX {
            rows[focus_index[x] as usize * nodes + y] = id;
        } else {
            columns[focus_index[y] as usize * nodes + x] = id;
        }
    }
    let cell = |x: usize, y: usize| -> u32 {
        if x < n && focus_index[x] != u32::MAX {
            rows[focus_index[x] as usize * nodes + y]
        } else {
            columns[focus_index[y] as usize * nodes + x]
        }
    };
    let range_nodes: Vec<usize> = (n..nodes).collect();
    let nodes_of = |peer: usize| -> &[usize] {
        if peer < workloads {
            &peer_classes[peer]
        } else {
            std::slice::from_ref(&range_nodes[peer - workloads])
        }
    };
    let peers = workloads + ranges.len();
    let mut unions: FastMap<(u32, u32), u32> = FastMap::default();
    let mut lines: FastMap<(u32, u32), u32> = FastMap::default();
    for i in (0..workloads).filter(|&i| universe.focused[i] && !peer_classes[i].is_empty()) {
        for j in (0..peers).filter(|&j| j != i && !nodes_of(j).is_empty()) {
            // From the focused side, and to it when the other side is not focused (a focused
            // other side forms that line from its own row).
            let directions: &[bool] = if j < workloads && universe.focused[j] {
                &[true]
            } else {
                &[true, false]
            };
            for &outgoing in directions {
                let (src, dst) = if outgoing { (i, j) } else { (j, i) };
                let mut id = 0;
                for &x in nodes_of(src) {
                    for &y in nodes_of(dst) {
                        id = sets.union(id, cell(x, y), &mut unions);
                    }
                }
                if id != 0 {
                    lines.insert((index_u32(src), index_u32(dst)), id);
                }
            }
        }
    }
    (lines, sets)
}

fn index_u32(i: usize) -> u32 {
    debug_assert!(u32::try_from(i).is_ok());
    i as u32
}

/// [`crate::diff_touching`] with a focus: the lines from or to `focus` that differ between
/// `before` and `after`, sorted as [`crate::diff`] sorts them.
pub(crate) fn focused_diff(
    before: &Engine,
    after: &Engine,
    focus: &BTreeSet<WorkloadRef>,
) -> Vec<DiffLine> {
    let ranges = cuts(before).union(&cuts(after)).ranges();
    // Both engines' classes first, side by side (each is computed once per engine, on first
    // use, unless the engine took them over from the one it was rebuilt from).
    std::thread::scope(|scope| {
        scope.spawn(|| before.pod_classes().0.len());
        let _ = after.pod_classes();
    });
    let universe = Universe::new([before, after], focus);
    let (old, old_sets) = focused_lines(before, &universe, 0, &ranges);
    let (new, new_sets) = focused_lines(after, &universe, 1, &ranges);
    let workloads = universe.workloads.len();
    let peer = |p: u32| -> ListPeer {
        let p = p as usize;
        if p < workloads {
            ListPeer::Workload(universe.workloads[p].clone())
        } else {
            let (first, last) = ranges[p - workloads];
            ListPeer::External(first, last)
        }
    };
    let present = |p: u32, side: usize| -> bool {
        (p as usize) >= workloads || !universe.classes[side][p as usize].is_empty()
    };
    let empty = ConnSet::empty();
    let mut changed = Vec::new();
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(k)));
    for &(src, dst) in keys {
        let o = old.get(&(src, dst)).map(|&id| &old_sets.sets[id as usize]);
        let n = new.get(&(src, dst)).map(|&id| &new_sets.sets[id as usize]);
        if o.unwrap_or(&empty) == n.unwrap_or(&empty) {
            continue;
        }
        let kind = match (o, n) {
            (None, _) => DiffKind::Added,
            (_, None) => DiffKind::Removed,
            _ => DiffKind::Changed,
        };
        changed.push((kind, src, dst, o, n));
    }
    // Sorted as `diff` sorts (kind, source text, destination text): by each peer's rank in
    // text order, naming every peer once rather than every line twice.
    let mut by_text: Vec<(String, u32)> = (0..workloads + ranges.len())
        .map(|p| (peer(index_u32(p)).to_string(), index_u32(p)))
        .collect();
    by_text.sort_unstable();
    let mut rank = vec![0u32; by_text.len()];
    for (r, (_, p)) in by_text.iter().enumerate() {
        rank[*p as usize] = index_u32(r);
    }
    drop(by_text);
    changed.sort_unstable_by_key(|&(kind, src, dst, _, _)| {
        (kind, rank[src as usize], rank[dst as usize])
    });
    changed
        .into_iter()
        .map(|(kind, src, dst, o, n)| {
            let mut info = Vec::new();
            for p in [src, dst] {
                if (p as usize) < workloads {
                    let w = universe.workloads[p as usize];
                    if !present(p, 0) {
                        info.push(format!("workload {w} added"));
                    } else if !present(p, 1) {
                        info.push(format!("workload {w} removed"));
                    }
                }
            }
            DiffLine {
                kind,
                src: peer(src),
                dst: peer(dst),
                before: o.unwrap_or(&empty).clone(),
                after: n.unwrap_or(&empty).clone(),
                workloads_info: (!info.is_empty()).then(|| info.join(", ")),
            }
        })
        .collect()
}
