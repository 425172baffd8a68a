//! A static SVG of the graph for reports (`netfence view -o view.svg`): the same boxes and
//! colours as the page, laid out in Rust so the same input gives the same bytes. Namespaces
//! are boxes packed in rows in name order (external ranges last); a small cluster shows every
//! workload with every allowed edge, a large one (more than [`EXPANDED_LIMIT`] workloads)
//! one box per namespace with the edges aggregated between namespaces.

use crate::data::ViewData;
use crate::html::text;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Above this many nodes the SVG shows namespaces only.
pub const EXPANDED_LIMIT: usize = 300;

const CELL_W: f64 = 170.0;
const CELL_H: f64 = 38.0;
const PAD: f64 = 10.0;
const HEAD: f64 = 34.0;
const COLLAPSED_W: f64 = 190.0;
const COLLAPSED_H: f64 = 58.0;
const GAP: f64 = 26.0;
const MARGIN: f64 = 20.0;

/// One namespace box (or the external ranges' box).
struct Group {
    name: String,
    members: Vec<usize>,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    cols: usize,
}

/// The computed layout.
struct Layout {
    groups: Vec<Group>,
    /// Centre of each node (its group's centre when collapsed).
    positions: Vec<(f64, f64)>,
    expanded: bool,
    width: f64,
    height: f64,
}

fn layout(data: &ViewData) -> Layout {
    let expanded = data.nodes.len() <= EXPANDED_LIMIT;
    let mut groups: Vec<Group> = data
        .namespaces
        .iter()
        .map(|ns| Group {
            name: ns.name.clone(),
            members: Vec::new(),
            x: 0.0,
            y: 0.0,
            w: COLLAPSED_W,
            h: COLLAPSED_H,
            cols: 1,
        })
        .collect();
    let external = groups.len();
    groups.push(Group {
        name: "external".to_string(),
        members: Vec::new(),
        x: 0.0,
        y: 0.0,
        w: COLLAPSED_W,
        h: COLLAPSED_H,
        cols: 1,
    });
    for (i, node) in data.nodes.iter().enumerate() {
        groups[node.ns.unwrap_or(external)].members.push(i);
    }
    groups.retain(|g| !g.members.is_empty());
    let mut area = 0.0;
    for group in &mut groups {
        if expanded {
            let count = group.members.len() as f64;
            group.cols = (count * 1.6).sqrt().ceil().max(1.0) as usize;
            let rows = group.members.len().div_ceil(group.cols) as f64;
            group.w = COLLAPSED_W.max(group.cols as f64 * CELL_W + 2.0 * PAD);
            group.h = HEAD + rows * CELL_H + PAD;
        }
        area += (group.w + GAP) * (group.h + GAP);
    }
    let row_width = (area.sqrt() * 1.5).max(1100.0);
    let (mut x, mut y, mut row_h, mut width) = (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
    for group in &mut groups {
        if x > 0.0 && x + group.w > row_width {
            x = 0.0;
            y += row_h + GAP;
            row_h = 0.0;
        }
        group.x = x + MARGIN;
        group.y = y + MARGIN;
        x += group.w + GAP;
        row_h = row_h.max(group.h);
        width = width.max(x);
    }
    let mut positions = vec![(0.0, 0.0); data.nodes.len()];
    for group in &groups {
        for (k, &n) in group.members.iter().enumerate() {
            positions[n] = if expanded {
                (
                    group.x + PAD + (k % group.cols) as f64 * CELL_W + 12.0,
                    group.y + HEAD + (k / group.cols) as f64 * CELL_H + 14.0,
                )
            } else {
                (group.x + group.w / 2.0, group.y + group.h / 2.0)
            };
        }
    }
    Layout {
        groups,
        positions,
        expanded,
        width: width + 2.0 * MARGIN,
        height: y + row_h + 2.0 * MARGIN,
    }
}

/// The isolation class of a node, as the page names it.
fn isolation(data: &ViewData, node: usize) -> &'static str {
    let node = &data.nodes[node];
    match (&node.ingress, &node.egress) {
        (Some(i), Some(e)) if i.isolated && e.isolated => "both",
        (Some(i), Some(_)) if i.isolated => "ingress",
        (Some(_), Some(e)) if e.isolated => "egress",
        (Some(_), Some(_)) => "open",
        _ => "external",
    }
}

const STYLE: &str = "<style>\
text{font:11px system-ui,sans-serif;fill:#1d2127}\
.t{font-weight:600;font-size:13px}.s{fill:#5d6670}\
.g{fill:#f0f2f4;stroke:#d5d9de}\
.e{fill:none;stroke:#6b7683;stroke-opacity:.55;stroke-width:1.2;marker-end:url(#a)}\
.both{fill:#2e8b57}.ingress{fill:#3b7dd8}.egress{fill:#b88a00}.open{fill:#c8412f}.external{fill:#7d6aa8}\
</style>";

/// Render the graph as SVG.
pub fn render(data: &ViewData) -> String {
    let layout = layout(data);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">\n\
         <title>netfence view: {title}</title>\n{STYLE}\n\
         <defs><marker id=\"a\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" markerHeight=\"9\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7683\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fbfbfa\"/>\n",
        w = layout.width,
        h = layout.height,
        title = text(&data.title),
    );
    for group in &layout.groups {
        let pods: usize = group.members.iter().map(|&n| data.nodes[n].pods).sum();
        let _ = writeln!(
            out,
            "<g class=\"ns\" data-ns=\"{name}\"><rect class=\"g\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\"/>\
             <text class=\"t\" x=\"{tx:.1}\" y=\"{ty:.1}\">{name}</text>\
             <text class=\"s\" x=\"{tx:.1}\" y=\"{sy:.1}\">{count} nodes · {pods} pods</text></g>",
            name = text(&group.name),
            x = group.x,
            y = group.y,
            w = group.w,
            h = group.h,
            tx = group.x + 10.0,
            ty = group.y + 18.0,
            sy = group.y + 30.0,
            count = group.members.len(),
        );
    }
    edges(&mut out, data, &layout);
    if layout.expanded {
        for (n, node) in data.nodes.iter().enumerate() {
            let (x, y) = layout.positions[n];
            let _ = writeln!(
                out,
                "<g class=\"node\" data-label=\"{label}\"><title>{label}</title><circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{name}</text></g>",
                label = text(&node.label),
                class = isolation(data, n),
                tx = x + 13.0,
                ty = y + 4.0,
                name = text(&node.name),
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Edges: one path per workload edge, or per pair of namespaces with a count.
fn edges(out: &mut String, data: &ViewData, layout: &Layout) {
    // (source point, destination point) as bits → (count, first labels).
    type Point = (u64, u64);
    let mut aggregated: BTreeMap<(Point, Point), (usize, Vec<String>)> = BTreeMap::new();
    for (src, dst, conn) in data.edges.iter() {
        let (a, b) = (layout.positions[src], layout.positions[dst]);
        let label = format!(
            "{} → {}: {}",
            data.nodes[src].label, data.nodes[dst].label, data.conns[conn]
        );
        if layout.expanded {
            let _ = writeln!(
                out,
                "<path class=\"e\" d=\"{}\"><title>{}</title></path>",
                curve(a, b, 9.0),
                text(&label)
            );
        } else if a != b {
            let key = (
                (a.0.to_bits(), a.1.to_bits()),
                (b.0.to_bits(), b.1.to_bits()),
            );
            let entry = aggregated.entry(key).or_default();
            entry.0 += 1;
            if entry.1.len() < 5 {
                entry.1.push(label);
            }
        }
    }
    for (((ax, ay), (bx, by)), (count, labels)) in aggregated {
        let a = (f64::from_bits(ax), f64::from_bits(ay));
        let b = (f64::from_bits(bx), f64::from_bits(by));
        let width = (1.0 + (count as f64).log2()).min(6.0);
        let _ = writeln!(
            out,
            "<path class=\"e\" style=\"stroke-width:{width:.1}\" d=\"{}\"><title>{count} connection(s)&#10;{}</title></path>",
            curve(a, b, 0.0),
            text(&labels.join("\n"))
        );
    }
}

/// A quadratic curve bent to the right of its direction (so A→B and B→A stay apart),
/// shortened by `shorten` at the end so the arrow stops at the node's edge.
fn curve(a: (f64, f64), b: (f64, f64), shorten: f64) -> String {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = dx.hypot(dy).max(1.0);
    let bend = (len * 0.15).min(60.0);
    let (cx, cy) = (
        (a.0 + b.0) / 2.0 - dy / len * bend,
        (a.1 + b.1) / 2.0 + dx / len * bend,
    );
    let tail = (b.0 - cx).hypot(b.1 - cy).max(1.0);
    let (ex, ey) = (
        b.0 - (b.0 - cx) / tail * shorten,
        b.1 - (b.1 - cy) / tail * shorten,
    );
    format!("M{:.1},{:.1} Q{cx:.1},{cy:.1} {ex:.1},{ey:.1}", a.0, a.1)
}
