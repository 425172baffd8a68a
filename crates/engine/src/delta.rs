//! The reachability delta of a change over the workloads it can affect: the lines of
//! [`crate::diff`] from or to those workloads, computed without building the whole
//! connection table of either engine.
//!
//! A line is the union of its sides' class-pair cells (as in [`crate::conn_table`]). A cell
//! (source pod, destination pod) is the source's egress walk intersected with the
//! destination's ingress walk, so it can differ between the engines only when the source's
//! egress inputs or the destination's ingress inputs changed ([`Sides`]). Only those rows and
//! columns are evaluated — `egress-changed classes × every node` and `every node ×
//! ingress-changed classes` — stored densely per such class instead of in a `nodes × nodes`
//! table, and only the lines they make are formed. The peers of both engines share one
//! numbering (the workloads grouped once per partition, [`WorkloadClasses`]), so lines are
//! compared by index, and only the lines that differ are named and sorted.

use crate::connlist::{in_parallel, index_u32, DiffKind, DiffLine, Interned, ListPeer, NodeCells};
use crate::connset::ConnSet;
use crate::eval::Engine;
use crate::line_cells::{Line, LineCells};
use crate::pod_classes::WorkloadClasses;
use netfence_model::net::FastMap;
use netfence_model::WorkloadRef;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The workloads a change can affect, by the direction whose inputs changed.
///
/// What is allowed from pod `p` to pod `q` is `p`'s egress walk (the tiers, the policies
/// selecting `p` for egress in order, their rules matched against `q`) intersected with `q`'s
/// ingress walk (the policies selecting `q` for ingress, their rules matched against `p`);
/// a rule reads of a pod its object, its namespace's labels and its service account's labels,
/// and beyond the pods only Services (Calico `services` peers), network sets and nodes.
/// [`Engine::rebuilt`] marks a workload's egress when one of its pods is new, gone or changed
/// (object, namespace labels or service-account labels) or is selected for egress by a
/// policy that changed (before or after; a policy following a changed Service counts as
/// changed), and its ingress likewise; a change of network sets, nodes or tiers gives no
/// `Sides` (every line is compared). So when the source's workload is not marked egress and
/// the destination's is not marked ingress, both pods are the same objects in the same
/// context and each walk reads the same policies in the same order: the cell, and every
/// line made only of such cells, is equal in both engines by construction. An external range
/// is the same addresses in both engines (the ranges are cut at both engines' boundaries);
/// it has no walk of its own.
///
/// When nothing compiled changed (the engine after took the tiers over: the same policies,
/// Services, nodes and CNI) and its pod classes were derived by placing the changed pods,
/// `carried` maps each old class to the new class continuing it. Such a new class holds a
/// kept, unchanged pod of the old class (the same object, namespace labels and service
/// account labels, the same selection lists), and every member of a class is walked alike:
/// so a cell between two carried classes (and between a carried class and an external
/// range) is the old engine's cell of their old classes, and is read rather than evaluated
/// again. Not a class against itself: that cell pairs two different pods of the class (none
/// when it has one), which depends on its members.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sides {
    /// Workloads whose pods' egress inputs may have changed.
    egress: BTreeSet<WorkloadRef>,
    /// Workloads whose pods' ingress inputs may have changed.
    ingress: BTreeSet<WorkloadRef>,
    /// Old class → new class (`usize::MAX`: not continued), when cells carry over.
    carried: Option<Arc<[usize]>>,
    /// Some pod (or its context) changed: the change is more than policies (no region,
    /// [`crate::region`]).
    pods_changed: bool,
}

impl Sides {
    /// Every line from or to `focus` may have changed.
    pub(crate) fn both(focus: &BTreeSet<WorkloadRef>) -> Sides {
        Sides {
            egress: focus.clone(),
            ingress: focus.clone(),
            carried: None,
            pods_changed: true,
        }
    }

    /// These sides, with the old → new class map of a change where cells carry over (see
    /// [`Sides`]; only when nothing compiled changed).
    pub(crate) fn with_carried(self, carried: Option<Arc<[usize]>>) -> Sides {
        Sides { carried, ..self }
    }

    /// Mark a pod's workload: both directions when the pod itself (or its context) changed,
    /// else the directions (`[ingress, egress]`) in which a changed policy selects it.
    pub(crate) fn mark(
        &mut self,
        workload: &WorkloadRef,
        changed: bool,
        [ingress, egress]: [bool; 2],
    ) {
        self.pods_changed |= changed;
        for (set, marked) in [(&mut self.ingress, ingress), (&mut self.egress, egress)] {
            if (changed || marked) && !set.contains(workload) {
                set.insert(workload.clone());
            }
        }
    }

    /// Every marked workload (the lines compared have one of them at an end).
    pub(crate) fn workloads(&self) -> BTreeSet<WorkloadRef> {
        self.egress.union(&self.ingress).cloned().collect()
    }
}

/// A workload's egress may have changed: its row is evaluated.
const EGRESS: u8 = 1;
/// A workload's ingress may have changed: its column is evaluated.
const INGRESS: u8 = 2;

/// The workloads of both engines under one numbering, then the external ranges.
struct Universe<'a> {
    workloads: Vec<&'a WorkloadRef>,
    /// Per engine (before, after): the classes of each workload's pods (empty when the
    /// workload has no pod in that engine).
    classes: [Vec<&'a [usize]>; 2],
    /// Which directions of each workload may have changed (`EGRESS`, `INGRESS`).
    marked: Vec<u8>,
}

impl<'a> Universe<'a> {
    fn new(engines: [&'a Engine; 2], sides: &Sides) -> Universe<'a> {
        let [before, after]: [&'a WorkloadClasses; 2] = engines.map(Engine::workload_classes);
        let mut universe = Universe {
            workloads: before.workloads.iter().collect(),
            classes: [before.classes.iter().collect(), Vec::new()],
            marked: Vec::new(),
        };
        if std::ptr::eq(before, after) {
            // One partition (the pods did not change): one grouping.
            universe.classes[1] = universe.classes[0].clone();
        } else if Arc::ptr_eq(&before.workloads, &after.workloads) {
            // The grouping after was derived from the one before: the same workloads, in
            // the same places.
            universe.classes[1] = after.classes.iter().collect();
        } else {
            let index: FastMap<&WorkloadRef, usize> = universe
                .workloads
                .iter()
                .enumerate()
                .map(|(w, &workload)| (workload, w))
                .collect();
            universe.classes[1] = vec![&[]; universe.workloads.len()];
            for (workload, classes) in after.workloads.iter().zip(&after.classes) {
                if let Some(&w) = index.get(workload) {
                    universe.classes[1][w] = classes;
                } else {
                    universe.workloads.push(workload);
                    universe.classes[0].push(&[]);
                    universe.classes[1].push(classes);
                }
            }
        }
        universe.marked = vec![0; universe.workloads.len()];
        let appended = before.workloads.len();
        for (set, bit) in [(&sides.egress, EGRESS), (&sides.ingress, INGRESS)] {
            for workload in set {
                // Before's places first, then the workloads only the engine after has.
                let w = before.position(workload).or_else(|| {
                    universe.workloads[appended..]
                        .iter()
                        .position(|w| *w == workload)
                        .map(|w| appended + w)
                });
                if let Some(w) = w {
                    universe.marked[w] |= bit;
                }
            }
        }
        universe
    }
}

/// One engine's evaluated cells: a row per egress-marked class (to every node), a column
/// per ingress-marked class (from every node without a row), as interned set ids.
struct Cells {
    /// The number of classes (nodes from here on are external ranges).
    n: usize,
    nodes: usize,
    row_index: Vec<u32>,
    column_index: Vec<u32>,
    rows: Vec<u32>,
    columns: Vec<u32>,
}

impl Cells {
    fn has_row(&self, x: usize) -> bool {
        x < self.n && self.row_index[x] != u32::MAX
    }

    /// The cell `(x, y)`, which is in a row or a column.
    fn get(&self, x: usize, y: usize) -> u32 {
        if self.has_row(x) {
            self.rows[self.row_index[x] as usize * self.nodes + y]
        } else {
            self.columns[self.column_index[y] as usize * self.nodes + x]
        }
    }

    /// Store the cell `(x, y)`, which is in a row or a column.
    fn set(&mut self, x: usize, y: usize, id: u32) {
        if self.has_row(x) {
            self.rows[self.row_index[x] as usize * self.nodes + y] = id;
        } else {
            self.columns[self.column_index[y] as usize * self.nodes + x] = id;
        }
    }

    /// Whether the cell `(x, y)` is in a row or a column.
    fn evaluated(&self, x: usize, y: usize) -> bool {
        self.has_row(x) || (y < self.n && self.column_index[y] != u32::MAX)
    }
}

/// Each node after's node before when its cells carry over (see [`Sides`]): carried
/// classes, and the external ranges.
struct Carried {
    node_before: Vec<u32>,
}

impl Carried {
    fn new(before: &Cells, carried: &[usize], after_classes: usize) -> Carried {
        let ranges = before.nodes - before.n;
        let mut node_before = vec![u32::MAX; after_classes + ranges];
        for (old, &new) in carried.iter().enumerate() {
            if new != usize::MAX {
                node_before[new] = index_u32(old);
            }
        }
        for r in 0..ranges {
            node_before[after_classes + r] = index_u32(before.n + r);
        }
        Carried { node_before }
    }

    /// The cell before that the cell `(x, y)` after reads, when it carries over and is
    /// evaluated there (in a row or column of `before`).
    fn place(&self, before: &Cells, x: usize, y: usize) -> Option<(u32, u32)> {
        let (bx, by) = (self.node_before[x], self.node_before[y]);
        (x != y && bx != u32::MAX && by != u32::MAX && before.evaluated(bx as usize, by as usize))
            .then_some((bx, by))
    }
}

/// One engine's cells to fill: the rows and columns of its marked workloads' classes, the
/// cells each line evaluates, and (after) the cells read from the engine before's.
struct Planned<'a> {
    cells_of: NodeCells<'a>,
    cells: Cells,
    /// Per line, the other nodes whose cells are evaluated.
    jobs: Vec<(Line, Vec<usize>)>,
    /// Cells `(x, y)` read from the engine before's cell `(bx, by)`.
    reads: Vec<[u32; 4]>,
}

/// The rows (egress-marked classes, to every node) and columns (ingress-marked classes,
/// from every node that has no row) of one engine (`side`); a cell that `carried` has
/// (with the engine before's layout) is read from there rather than evaluated.
fn planned<'a>(
    engine: &'a Engine,
    universe: &Universe<'_>,
    (side, ranges): (usize, &'a [(std::net::IpAddr, std::net::IpAddr)]),
    carried: Option<(&Carried, &Cells)>,
) -> Planned<'a> {
    let (classes, _) = engine.pod_classes();
    let cells_of = NodeCells {
        engine,
        classes,
        ranges,
    };
    let (n, nodes) = (classes.len(), cells_of.nodes());
    let peer_classes = &universe.classes[side];
    // The classes of marked workloads, numbered densely: rows (egress) and columns (ingress).
    let mut cells = Cells {
        n,
        nodes,
        row_index: vec![u32::MAX; n],
        column_index: vec![u32::MAX; n],
        rows: Vec::new(),
        columns: Vec::new(),
    };
    let (mut row_classes, mut column_classes) = (Vec::new(), Vec::new());
    for (w, cs) in peer_classes.iter().enumerate() {
        for (bit, index, list) in [
            (EGRESS, &mut cells.row_index, &mut row_classes),
            (INGRESS, &mut cells.column_index, &mut column_classes),
        ] {
            if universe.marked[w] & bit != 0 {
                for &c in cs.iter() {
                    if index[c] == u32::MAX {
                        index[c] = index_u32(list.len());
                        list.push(c);
                    }
                }
            }
        }
    }
    cells.rows = vec![u32::MAX; row_classes.len() * nodes];
    cells.columns = vec![u32::MAX; column_classes.len() * nodes];
    let mut jobs: Vec<(Line, Vec<usize>)> = Vec::new();
    let mut reads = Vec::new();
    let lines = (row_classes.iter().map(|&x| Line::Row(x)))
        .chain(column_classes.iter().map(|&y| Line::Column(y)));
    for line in lines {
        let mut todo = Vec::new();
        for other in 0..nodes {
            let (x, y) = match line {
                Line::Row(x) => (x, other),
                Line::Column(_) if cells.has_row(other) => continue,
                Line::Column(y) => (other, y),
            };
            match carried.and_then(|(carried, before)| carried.place(before, x, y)) {
                Some((bx, by)) => reads.push([index_u32(x), index_u32(y), bx, by]),
                None => todo.push(other),
            }
        }
        jobs.push((line, todo));
    }
    Planned {
        cells_of,
        cells,
        jobs,
        reads,
    }
}

/// Both engines' lines that can differ ([`formed_lines`] of each), their cells interned in
/// `sets`: the cells after that carry over (`carried`, see [`Sides`]) read from the engine
/// before's, every other cell of both engines evaluated in one pool on every core. The
/// engine before's line sets are in `sets`, the engine after's in the table returned.
fn both_focused_lines(
    [before, after]: [&Engine; 2],
    universe: &Universe<'_>,
    ranges: &[(std::net::IpAddr, std::net::IpAddr)],
    carried: Option<&[usize]>,
    sets: &mut Interned,
) -> ([Vec<(u64, u32)>; 2], Interned) {
    let mut old = planned(before, universe, (0, ranges), None);
    let carried = carried.map(|c| Carried::new(&old.cells, c, after.pod_classes().0.len()));
    let mut new = planned(
        after,
        universe,
        (1, ranges),
        carried.as_ref().map(|c| (c, &old.cells)),
    );
    // Each line's other cells at once, memoised on what the walks read of the other side
    // ([`LineCells`]); the longest lines first, so that the cores finish together.
    let mut jobs: Vec<(usize, usize)> = (0..old.jobs.len()).map(|k| (0, k)).collect();
    jobs.extend((0..new.jobs.len()).map(|k| (1, k)));
    let plans = [&old, &new];
    jobs.sort_by_key(|&(side, k)| std::cmp::Reverse(plans[side].jobs[k].1.len()));
    // Both engines' memos side by side (each reads every class's pod once).
    let memos = std::thread::scope(|scope| {
        let before = scope.spawn(|| LineCells::new(&old.cells_of));
        let after = LineCells::new(&new.cells_of);
        let before = before
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        [before, after]
    });
    let evaluated = in_parallel(&jobs, |&(side, k)| {
        let (line, todo) = &plans[side].jobs[k];
        memos[side].line(*line, todo)
    });
    drop(memos);
    for (&(side, k), evaluated) in jobs.iter().zip(evaluated) {
        let plan = if side == 0 { &mut old } else { &mut new };
        let ids: Vec<u32> = (evaluated.sets.into_iter())
            .map(|set| sets.intern(set))
            .collect();
        let (line, todo) = &plan.jobs[k];
        for (&other, &local) in todo.iter().zip(&evaluated.ids) {
            let (x, y) = match *line {
                Line::Row(x) => (x, other),
                Line::Column(y) => (other, y),
            };
            plan.cells.set(x, y, ids[local as usize]);
        }
    }
    for &[x, y, bx, by] in &new.reads {
        let id = old.cells.get(bx as usize, by as usize);
        debug_assert_eq!(
            sets.sets[id as usize],
            new.cells_of.compute(x as usize, y as usize),
            "a carried cell ({x}, {y}) differs from its evaluation"
        );
        #[cfg(test)]
        tests::CARRIED_READS.with(|n| n.set(n.get() + 1));
        new.cells.set(x as usize, y as usize, id);
    }
    // Each engine's lines on a core of its own, the engine after's unions in a copy of the
    // set table (lines are compared by their sets' contents).
    let mut new_sets = sets.clone();
    let lines = std::thread::scope(|scope| {
        let old_lines = scope.spawn(|| formed_lines(universe, 0, ranges.len(), sets, &old.cells));
        let new_lines = formed_lines(universe, 1, ranges.len(), &mut new_sets, &new.cells);
        let old_lines = old_lines
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        [old_lines, new_lines]
    });
    (lines, new_sets)
}

/// The lines of the marked workloads of one engine (`side`) that can differ, from its cells,
/// in the order they are formed, with their set ids: every cell a formed line reads is in a
/// row (its source class is egress-marked) or a column (its destination class is
/// ingress-marked, its source class has no row). A line is tagged `(i << 33) | (j << 1) | d`:
/// formed at marked workload `i` against peer `j` (workloads `0..workloads`, then external
/// ranges), from `i` to `j` (`d = 0`) or from `j` to `i` (`d = 1`); both engines form lines in
/// the same order (the marks are shared), so their lists merge by tag ([`line_ends`]). Only
/// lines with something allowed are kept.
fn formed_lines(
    universe: &Universe<'_>,
    side: usize,
    ranges: usize,
    sets: &mut Interned,
    cells: &Cells,
) -> Vec<(u64, u32)> {
    let peer_classes = &universe.classes[side];
    let workloads = universe.workloads.len();
    let range_nodes: Vec<usize> = (cells.n..cells.nodes).collect();
    let nodes_of = |peer: usize| -> &[usize] {
        if peer < workloads {
            peer_classes[peer]
        } else {
            std::slice::from_ref(&range_nodes[peer - workloads])
        }
    };
    let peers = workloads + ranges;
    let mut unions: FastMap<(u32, u32), u32> = FastMap::default();
    let mut lines: Vec<(u64, u32)> = Vec::new();
    for i in (0..workloads).filter(|&i| universe.marked[i] != 0 && !peer_classes[i].is_empty()) {
        for j in (0..peers).filter(|&j| j != i && !nodes_of(j).is_empty()) {
            // From `i` when its egress is marked; to `i` when its ingress is, unless the
            // source's egress is marked too (that source's row forms the line).
            let from_j_row = j < workloads && universe.marked[j] & EGRESS != 0;
            let outgoing = universe.marked[i] & EGRESS != 0;
            let incoming = universe.marked[i] & INGRESS != 0 && !from_j_row;
            for (d, src, dst) in [(outgoing, (0, i, j)), (incoming, (1, j, i))]
                .into_iter()
                .filter_map(|(form, line)| form.then_some(line))
            {
                let mut id = 0;
                for &x in nodes_of(src) {
                    for &y in nodes_of(dst) {
                        id = sets.union(id, cells.get(x, y), &mut unions);
                    }
                }
                if id != 0 {
                    let tag = (line_tag(i) << 33) | (line_tag(j) << 1) | d;
                    debug_assert!(lines.last().is_none_or(|&(last, _)| last < tag));
                    lines.push((tag, id));
                }
            }
        }
    }
    lines
}

/// A peer index as a part of a line's tag (below 2^31, as every index is a `u32` peer).
fn line_tag(i: usize) -> u64 {
    u64::from(index_u32(i)) & 0x7fff_ffff
}

/// The (source, destination) peer indices of a line tagged by [`formed_lines`].
fn line_ends(tag: u64) -> (u32, u32) {
    let (i, j) = ((tag >> 33) as u32, ((tag >> 1) & 0x7fff_ffff) as u32);
    if tag & 1 == 0 {
        (i, j)
    } else {
        (j, i)
    }
}

/// [`crate::diff`] when `sides` is `None`, else the lines that can differ by `sides`: the
/// same lines, as [`crate::diff`] returns them, when every other line is equal in both
/// engines (see [`Sides`]).
pub(crate) fn diff_sides(before: &Engine, after: &Engine, sides: Option<&Sides>) -> Vec<DiffLine> {
    match sides {
        Some(sides) => focused_diff(before, after, sides),
        None => crate::connlist::diff(before, after),
    }
}

/// The lines that `sides` says can differ and that differ between `before` and `after`,
/// sorted as [`crate::diff`] sorts them.
pub(crate) fn focused_diff(before: &Engine, after: &Engine, sides: &Sides) -> Vec<DiffLine> {
    // Both engines' classes first, side by side (each is computed once per engine, on first
    // use, unless the engine took them over from the one it was rebuilt from).
    std::thread::scope(|scope| {
        scope.spawn(|| before.workload_classes().workloads.len());
        let _ = after.workload_classes();
    });
    // The cuts from the counts kept with each engine's pod classes (equal to `cuts`).
    let ranges = before.list_cuts().union(&after.list_cuts()).ranges();
    // A change of policies only: the subjects whose cells differ inside the change's region
    // (see `region.rs`); their lines are compared whole, every other line is equal.
    let narrowed = (!sides.pods_changed && sides.carried.is_none())
        .then(|| crate::region::changed_subjects(before, after, &ranges))
        .flatten()
        .map(|[ingress, egress]| Sides {
            egress,
            ingress,
            carried: None,
            pods_changed: false,
        });
    let sides = narrowed.as_ref().unwrap_or(sides);
    let universe = Universe::new([before, after], sides);
    // One set table for both engines: cells carried over keep their ids.
    let mut sets = Interned::default();
    let ([old, new], new_sets) = both_focused_lines(
        [before, after],
        &universe,
        &ranges,
        sides.carried.as_deref(),
        &mut sets,
    );
    let changed = changed_lines([&old, &new], [&sets, &new_sets]);
    named_lines(&universe, &ranges, &changed, [&sets, &new_sets])
}

/// A line that differs: its kind, (source, destination) peer indices and set ids before and
/// after (`0`, the empty set, on a side without the line).
type Changed = (DiffKind, u32, u32, u32, u32);

/// The lines of both engines' [`formed_lines`] that differ.
fn changed_lines(
    [old, new]: [&[(u64, u32)]; 2],
    [old_sets, new_sets]: [&Interned; 2],
) -> Vec<Changed> {
    let mut changed: Vec<(DiffKind, u32, u32, u32, u32)> = Vec::new();
    let (mut a, mut b) = (0, 0);
    while a < old.len() || b < new.len() {
        // Merged by tag (both lists ascend; no tag is `u64::MAX`).
        let tag_a = old.get(a).map_or(u64::MAX, |line| line.0);
        let tag_b = new.get(b).map_or(u64::MAX, |line| line.0);
        let tag = tag_a.min(tag_b);
        let o = (tag_a == tag).then(|| old[a].1);
        let n = (tag_b == tag).then(|| new[b].1);
        a += usize::from(o.is_some());
        b += usize::from(n.is_some());
        let (o_id, n_id) = (o.unwrap_or(0), n.unwrap_or(0));
        if old_sets.sets[o_id as usize] == new_sets.sets[n_id as usize] {
            continue;
        }
        let kind = match (o, n) {
            (None, _) => DiffKind::Added,
            (_, None) => DiffKind::Removed,
            _ => DiffKind::Changed,
        };
        let (src, dst) = line_ends(tag);
        changed.push((kind, src, dst, o_id, n_id));
    }
    changed
}

/// The changed lines as [`DiffLine`]s, sorted as [`crate::diff`] sorts them.
fn named_lines(
    universe: &Universe<'_>,
    ranges: &[(std::net::IpAddr, std::net::IpAddr)],
    changed: &[Changed],
    sets: [&Interned; 2],
) -> Vec<DiffLine> {
    let workloads = universe.workloads.len();
    let present = |p: u32, side: usize| -> bool {
        (p as usize) >= workloads || !universe.classes[side][p as usize].is_empty()
    };
    let peers = workloads + ranges.len();
    let mut named = vec![false; peers];
    for &(_, src, dst, _, _) in changed {
        named[src as usize] = true;
        named[dst as usize] = true;
    }
    // Sorted as `diff` sorts (kind, source text, destination text): by each peer's rank in
    // text order, ranking every peer of a changed line once by its text (written once).
    let mut text: Vec<String> = vec![String::new(); peers];
    let mut by_text: Vec<u32> = Vec::new();
    for p in (0..peers).filter(|&p| named[p]) {
        use std::fmt::Write;
        let out = &mut text[p];
        let _ = if p < workloads {
            write!(out, "{}", universe.workloads[p])
        } else {
            let (first, last) = ranges[p - workloads];
            write!(out, "{}", ListPeer::External(first, last))
        };
        by_text.push(index_u32(p));
    }
    by_text.sort_unstable_by(|&a, &b| {
        (text[a as usize].as_str(), a).cmp(&(text[b as usize].as_str(), b))
    });
    let mut rank = vec![0u32; peers];
    for (r, &p) in by_text.iter().enumerate() {
        rank[p as usize] = index_u32(r);
    }
    // One u64 per line: (kind, source rank, destination rank), each rank below 2^31.
    let mut order: Vec<(u64, usize)> = changed
        .iter()
        .enumerate()
        .map(|(k, &(kind, src, dst, _, _))| {
            let key = ((kind as u64) << 62)
                | (u64::from(rank[src as usize]) << 31)
                | u64::from(rank[dst as usize]);
            (key, k)
        })
        .collect();
    order.sort_unstable();
    // Each named peer and each set a line names once, shared by the lines (a line is two
    // pointers to peers and two to sets).
    let shared_peers: Vec<ListPeer> = by_text
        .iter()
        .map(|&p| {
            let p = p as usize;
            if p < workloads {
                ListPeer::Workload(Arc::new(universe.workloads[p].clone()))
            } else {
                let (first, last) = ranges[p - workloads];
                ListPeer::External(first, last)
            }
        })
        .collect();
    let peer = |p: u32| shared_peers[rank[p as usize] as usize].clone();
    let mut shared_sets: [Vec<Option<Arc<ConnSet>>>; 2] = sets.map(|s| vec![None; s.sets.len()]);
    let mut set = |side: usize, id: u32| -> Arc<ConnSet> {
        shared_sets[side][id as usize]
            .get_or_insert_with(|| Arc::new(sets[side].sets[id as usize].clone()))
            .clone()
    };
    let mut lines = Vec::with_capacity(changed.len());
    for &(kind, src, dst, o_id, n_id) in order.iter().map(|&(_, k)| &changed[k]) {
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
        lines.push(DiffLine {
            kind,
            src: peer(src),
            dst: peer(dst),
            before: set(0, o_id),
            after: set(1, n_id),
            workloads_info: (!info.is_empty()).then(|| info.join(", ")),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    //! The direction rule of [`Sides`] on changes where it skips lines: the lines it leaves
    //! out must be equal in both engines, so the delta equals the whole `diff`.

    use super::*;
    use netfence_model::Loader;

    thread_local! {
        /// Cells read from the engine before rather than evaluated, on this thread.
        pub(super) static CARRIED_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    const NAMESPACES: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {team: red}}
";

    fn pod(namespace: &str, name: &str, app: &str, ip: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: {ip}}}\n"
        )
    }

    /// Web, db and a client in namespace b; web may reach db on 5432 (egress of web).
    fn cluster() -> Vec<(&'static str, String)> {
        vec![
            ("namespaces", NAMESPACES.to_string()),
            ("web", pod("a", "web", "web", "10.0.0.1")),
            ("db", pod("a", "db", "db", "10.0.0.2")),
            ("client", pod("b", "client", "client", "10.0.1.1")),
            (
                "web-egress",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-egress, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}, {to: [{ipBlock: {cidr: 192.168.0.0/16}}]}]}\n".to_string(),
            ),
        ]
    }

    fn inventory(docs: &[(&str, String)]) -> netfence_model::Inventory {
        let mut loader = Loader::new();
        for (name, doc) in docs {
            loader.load_str(&format!("{name}.yaml"), doc);
        }
        loader.finish().expect("the test cluster loads")
    }

    fn names(set: &BTreeSet<WorkloadRef>) -> Vec<String> {
        set.iter().map(|w| w.name.clone()).collect()
    }

    /// Replace (or add) the document `name`, rebuild incrementally and check the delta
    /// against the whole diff; returns the sides' (egress, ingress) workload names.
    fn change(name: &'static str, doc: &str) -> (Vec<String>, Vec<String>) {
        let mut docs = cluster();
        let before = Engine::new(inventory(&docs));
        let _ = before.workload_classes();
        docs.retain(|(n, _)| *n != name);
        docs.push((name, doc.to_string()));
        let (after, sides, _) = before.rebuilt_sides(inventory(&docs));
        let sides = sides.expect("only pods, namespaces and policies changed");
        let fresh = Engine::new(inventory(&docs));
        let whole = crate::connlist::diff(&before, &fresh);
        assert!(!whole.is_empty(), "{name}: the change changes some line");
        assert_eq!(diff_sides(&before, &after, Some(&sides)), whole, "{name}");
        (names(&sides.egress), names(&sides.ingress))
    }

    #[test]
    fn an_ingress_policy_compares_only_lines_into_its_pods() {
        let doc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-ingress, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}\n";
        let (egress, ingress) = change("db-ingress", doc);
        assert_eq!((egress, ingress), (vec![], vec!["db".to_string()]));
    }

    #[test]
    fn an_egress_policy_changed_compares_only_lines_out_of_its_pods() {
        let doc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-egress, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5433}]}, {to: [{ipBlock: {cidr: 192.168.0.0/17}}]}]}\n";
        let (egress, ingress) = change("web-egress", doc);
        assert_eq!((egress, ingress), (vec!["web".to_string()], vec![]));
    }

    #[test]
    fn a_relabelled_pod_compares_both_directions() {
        let (egress, ingress) = change("db", &pod("a", "db", "cache", "10.0.0.2"));
        assert_eq!(egress, vec!["db".to_string()]);
        assert_eq!(ingress, vec!["db".to_string()]);
    }

    /// A relabelled pod moves to another class: the engine after takes the pod classes over
    /// and derives their workload grouping from the one before (the same list of workloads),
    /// rather than grouping every pod again; the delta is the whole diff (checked by
    /// `change`, and the grouping against a fresh one by a debug assertion).
    #[test]
    fn a_relabel_derives_the_workload_grouping() {
        let mut docs = cluster();
        let before = Engine::new(inventory(&docs));
        let grouped = before.workload_classes();
        docs.retain(|(n, _)| *n != "db");
        docs.push(("db", pod("a", "db", "web", "10.0.0.2")));
        let (after, sides, _) = before.rebuilt_sides(inventory(&docs));
        let derived = after.workload_classes();
        assert!(Arc::ptr_eq(&grouped.workloads, &derived.workloads));
        let workload = |name: &str| {
            let id = after
                .inventory()
                .pod_by_key("a", name)
                .expect("the pod exists");
            derived.position(&after.inventory().pods()[id].workload)
        };
        let (db, web) = (workload("db"), workload("web"));
        // db now shares web's class.
        assert_eq!(
            derived.classes[db.expect("db is grouped")],
            derived.classes[web.expect("web is grouped")]
        );
        let whole = crate::connlist::diff(&before, &Engine::new(inventory(&docs)));
        assert!(!whole.is_empty());
        let sides = sides.expect("only a pod changed");
        assert_eq!(diff_sides(&before, &after, Some(&sides)), whole);
    }

    /// A pod of a ReplicaSet (`db-rs`, two pods) in namespace `a`.
    fn replica(name: &str, app: &str, ip: &str) -> String {
        pod("a", name, app, ip).replace(
            "namespace: a,",
            "namespace: a, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: db-rs, controller: true}],",
        )
    }

    /// [`cluster`] with db as two replicas of one ReplicaSet (db-1, db-2).
    fn cluster_with_db_replicas() -> Vec<(&'static str, String)> {
        let mut docs = cluster();
        docs.retain(|(n, _)| *n != "db");
        docs.push(("db-1", replica("db-1", "db", "10.0.0.2")));
        docs.push(("db-2", replica("db-2", "db", "10.0.0.3")));
        docs
    }

    /// A relabel of a class's first member: the engine after derives the class facts with
    /// its classes (not read again from every class's pod), and the class the pod left reads
    /// its new first member.
    #[test]
    fn a_relabel_carries_the_class_facts() {
        let mut docs = cluster_with_db_replicas();
        let before = Engine::new(inventory(&docs));
        let _ = before.class_facts();
        docs.retain(|(n, _)| *n != "db-1");
        docs.push(("db-1", replica("db-1", "cache", "10.0.0.2")));
        let (after, _, _) = before.rebuilt_sides(inventory(&docs));
        let facts = after.class_facts_kept().expect("derived with the classes");
        let (classes, class_of) = after.pod_classes();
        let pods = after.inventory().pods();
        assert_eq!(*facts, crate::pod_classes::ClassFacts::of(pods, classes));
        let id = |name: &str| {
            after
                .inventory()
                .pod_by_key("a", name)
                .expect("the pod exists")
        };
        let (db1, db2) = (id("db-1"), id("db-2"));
        assert_ne!(class_of[db1], class_of[db2]);
        assert_eq!(facts.reps[class_of[db2]], db2);
        assert_eq!(facts.reps[class_of[db1]], db1);
    }

    /// A relabel with no policy changed carries the classes of the kept pods over: the cells
    /// of the relabelled pod's workload's other class are read from the engine before
    /// (checked against an evaluation by a debug assertion in `both_focused_lines`); a policy
    /// change does not carry them.
    #[test]
    fn cells_carry_over_only_when_nothing_compiled_changed() {
        let mut docs = cluster_with_db_replicas();
        // web may also reach cache pods, on every port.
        docs.push((
            "web-cache",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-cache, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: cache}}}]}]}\n".to_string(),
        ));
        let before = Engine::new(inventory(&docs));
        let _ = before.workload_classes();
        let db2 = docs
            .iter()
            .position(|(n, _)| *n == "db-2")
            .expect("a document");
        docs[db2].1 = replica("db-2", "cache", "10.0.0.3");
        let (after, sides, _) = before.rebuilt_sides(inventory(&docs));
        let sides = sides.expect("only a pod changed");
        let carried = sides.carried.clone().expect("no policy changed");
        let id = |engine: &Engine, namespace: &str, name: &str| {
            let id = engine.inventory().pod_by_key(namespace, name);
            id.expect("the pod exists")
        };
        let class = |engine: &Engine, namespace: &str, name: &str| {
            engine.pod_classes().1[id(engine, namespace, name)]
        };
        let pods = after.inventory().pods();
        assert_eq!(
            pods[id(&after, "a", "db-1")].workload,
            pods[id(&after, "a", "db-2")].workload
        );
        // Every kept pod's class is continued; db-2 left db-1's.
        for (namespace, name) in [("a", "web"), ("a", "db-1"), ("b", "client")] {
            assert_eq!(
                carried[class(&before, namespace, name)],
                class(&after, namespace, name),
                "{name}"
            );
        }
        assert_ne!(class(&after, "a", "db-2"), class(&after, "a", "db-1"));
        let whole = crate::connlist::diff(&before, &Engine::new(inventory(&docs)));
        assert!(!whole.is_empty());
        CARRIED_READS.with(|n| n.set(0));
        assert_eq!(diff_sides(&before, &after, Some(&sides)), whole);
        assert!(
            CARRIED_READS.with(std::cell::Cell::get) > 0,
            "db-1's cells are read"
        );

        let mut docs = cluster();
        let before = Engine::new(inventory(&docs));
        let _ = before.workload_classes();
        docs[4].1 = docs[4].1.replace("5432", "5433");
        let (_, sides, _) = before.rebuilt_sides(inventory(&docs));
        assert!(sides.expect("only a policy changed").carried.is_none());
    }

    /// The client's selections are the same before and after, and no policy changed, but a
    /// rule reads its namespace's labels: its pods count as changed in both directions.
    #[test]
    fn a_relabelled_namespace_marks_its_pods_as_peers() {
        let mut docs = cluster();
        docs.push((
            "db-ingress",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-ingress, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}}]}]}\n".to_string(),
        ));
        let before = Engine::new(inventory(&docs));
        let _ = before.workload_classes();
        docs[0].1 = NAMESPACES.replace("team: red", "team: blue");
        let (after, sides, _) = before.rebuilt_sides(inventory(&docs));
        let sides = sides.expect("only a namespace changed");
        assert_eq!(names(&sides.egress), vec!["client".to_string()]);
        assert_eq!(names(&sides.ingress), vec!["client".to_string()]);
        let whole = crate::connlist::diff(&before, &Engine::new(inventory(&docs)));
        assert!(whole.iter().any(|l| l.src.to_string().contains("client")));
        assert_eq!(diff_sides(&before, &after, Some(&sides)), whole);
    }
}
