// netfence view: the page's script. Hand-written, no dependencies, no network access except
// the served page's own /api endpoints. Reads the JSON block, lays out namespaces as boxes
// (collapsed to one node each, or expanded to their workloads), draws the allowed edges
// aggregated to what is visible, and fills the side panel on selection.
// URL hash (deterministic entry points for links and tests):
//   #select=ns/workload   select a workload (expands its namespace)
//   #edge=SRC>DST         select the edge between two node labels
//   #expand=all | #expand=ns1,ns2   expand namespaces
//   #q=text               search
//   #ask=FROM,TO,PORT     (serve) run the query box
//   #whatif=MANIFESTS&delete=KIND/ns/name,…   (serve) preview a change in the what-if box
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("netfence-data").textContent);
  const parsedMs = performance.now();
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("graph");
  const panel = document.getElementById("panel");
  const status = document.getElementById("status");
  const nodes = data.nodes, namespaces = data.namespaces;
  // Edges arrive columnar, grouped by source node (see the Rust side's `Edges`); they stay
  // in typed arrays (a 10k-pod cluster has ~800,000), with `edges[e]` built on demand.
  const E = data.edges.dst.length, N = nodes.length;
  const eSrc = new Int32Array(E), eDst = Int32Array.from(data.edges.dst);
  const outStart = new Int32Array(N + 1), inStart = new Int32Array(N + 1), inList = new Int32Array(E);
  {
    let e = 0;
    data.edges.out_count.forEach((count, src) => { outStart[src + 1] = outStart[src] + count; for (let k = 0; k < count; k++) eSrc[e++] = src; });
    for (let i = 0; i < E; i++) inStart[eDst[i] + 1]++;
    for (let n = 0; n < N; n++) inStart[n + 1] += inStart[n];
    const fill = inStart.slice(0, N);
    for (let i = 0; i < E; i++) inList[fill[eDst[i]]++] = i;
  }
  const edges = new Proxy({}, { get: (_, key) => ({ src: eSrc[key], dst: eDst[key], conns: data.conns[data.edges.conn[key]], probes: data.probe_sets[data.edges.probes[key]] }) });
  const outEdges = (n) => { const out = []; for (let e = outStart[n]; e < outStart[n + 1]; e++) out.push(e); return out; };
  const inEdges = (n) => Array.from(inList.subarray(inStart[n], inStart[n + 1]));
  const EXTERNAL = namespaces.length; // group index of the external ranges
  const groupCount = namespaces.length + 1;
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  // Per group: its node indices; per node: its group; edge lists per node.
  const members = Array.from({ length: groupCount }, () => []);
  const groupOf = new Int32Array(nodes.length);
  nodes.forEach((n, i) => { const g = n.ns === null ? EXTERNAL : n.ns; members[g].push(i); groupOf[i] = g; });
  const byId = new Map(), byLabel = new Map();
  nodes.forEach((n, i) => { if (!byId.has(n.id)) byId.set(n.id, i); byLabel.set(n.label, i); });

  function isolation(n) {
    if (n.kind === "External") return "external";
    const i = n.ingress.isolated, e = n.egress.isolated;
    return i && e ? "both" : i ? "ingress" : e ? "egress" : "open";
  }
  const isoClass = nodes.map(isolation);
  const isoWords = { both: "isolated (ingress and egress)", ingress: "ingress isolated, egress open", egress: "egress isolated, ingress open", open: "open (no policy selects it)", external: "external range" };
  function severityOf(list) {
    let s = "info";
    for (const f of list) { const v = data.findings[f].severity; if (v === "error") return "error"; if (v === "warning") s = "warning"; }
    return s;
  }
  const groupFindings = Array.from({ length: groupCount }, (_, g) => {
    const own = g < namespaces.length ? namespaces[g].findings.slice() : [];
    for (const n of members[g]) own.push(...nodes[n].findings);
    return own;
  });

  const expanded = new Uint8Array(groupCount);
  let selected = null; // {type: "node"|"edge"|"group", index}
  let matches = new Set();
  let layout = null;
  let showObserved = true;
  let whatIf = []; // the delta lines of the last what-if preview
  let readyText = "";
  let drawNote = "";

  // ---- layout: groups packed in rows; expanded groups hold their workloads in a grid ----
  const CELL_W = 170, CELL_H = 38, PAD = 10, HEAD = 34, COLLAPSED_W = 190, COLLAPSED_H = 58, GAP = 26;
  function computeLayout() {
    const boxes = [];
    let area = 0;
    for (let g = 0; g < groupCount; g++) {
      const count = members[g].length;
      if (count === 0) { boxes.push(null); continue; }
      let w = COLLAPSED_W, h = COLLAPSED_H, cols = 0;
      if (expanded[g]) {
        cols = Math.max(1, Math.ceil(Math.sqrt(count * 1.6)));
        const rows = Math.ceil(count / cols);
        w = Math.max(COLLAPSED_W, cols * CELL_W + 2 * PAD);
        h = HEAD + rows * CELL_H + PAD;
      }
      boxes.push({ g, w, h, cols, x: 0, y: 0 });
      area += (w + GAP) * (h + GAP);
    }
    const width = Math.max(1100, Math.sqrt(area) * 1.5);
    let x = 0, y = 0, rowH = 0, maxW = 0;
    for (const b of boxes) {
      if (!b) continue;
      if (x > 0 && x + b.w > width) { x = 0; y += rowH + GAP; rowH = 0; }
      b.x = x; b.y = y; x += b.w + GAP; rowH = Math.max(rowH, b.h); maxW = Math.max(maxW, x);
    }
    const pos = new Float64Array(nodes.length * 2);
    for (const b of boxes) {
      if (!b) continue;
      members[b.g].forEach((n, k) => {
        if (expanded[b.g]) {
          pos[2 * n] = b.x + PAD + (k % b.cols) * CELL_W + 12;
          pos[2 * n + 1] = b.y + HEAD + Math.floor(k / b.cols) * CELL_H + 14;
        } else {
          pos[2 * n] = b.x + b.w / 2; pos[2 * n + 1] = b.y + b.h / 2;
        }
      });
    }
    return { boxes, pos, width: maxW, height: y + rowH };
  }

  // ---- visible edges: workload edges where both ends are shown, else aggregated ----
  // A visible end is a node (its index) or a collapsed group (N + group index).
  const MAX_DRAWN = 40000;
  function visibleKey(n) { return expanded[groupOf[n]] ? n : N + groupOf[n]; }
  function visibleEdges() {
    const agg = new Map(), list = [], V = N + groupCount;
    const vis = new Int32Array(N);
    for (let n = 0; n < N; n++) vis[n] = visibleKey(n);
    for (let i = 0; i < E; i++) {
      const a = vis[eSrc[i]], b = vis[eDst[i]];
      if (a < N && b < N) { list.push({ a, b, edges: [i] }); continue; }
      if (a === b) continue; // inside one collapsed namespace
      const key = a * V + b;
      let v = agg.get(key);
      if (!v) { v = { a, b, edges: [] }; agg.set(key, v); list.push(v); }
      v.edges.push(i);
    }
    return list;
  }
  function anchor(key) {
    if (key < N) return [layout.pos[2 * key], layout.pos[2 * key + 1]];
    const b = layout.boxes[key - N];
    return [b.x + b.w / 2, b.y + b.h / 2];
  }
  function curve(a, b) {
    const [x1, y1] = anchor(a), [x2, y2] = anchor(b);
    const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
    // Bend to the right of the direction, so A->B and B->A stay apart.
    const bend = Math.min(60, len * 0.15);
    const cx = (x1 + x2) / 2 - (dy / len) * bend, cy = (y1 + y2) / 2 + (dx / len) * bend;
    const shorten = a < N && b < N ? 9 : 0;
    const ex = x2 - ((x2 - cx) / (Math.hypot(x2 - cx, y2 - cy) || 1)) * shorten;
    const ey = y2 - ((y2 - cy) / (Math.hypot(x2 - cx, y2 - cy) || 1)) * shorten;
    return `M${x1.toFixed(1)},${y1.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${ex.toFixed(1)},${ey.toFixed(1)}`;
  }
  function keyName(k) { return k < N ? nodes[k].label : (k - N === EXTERNAL ? "external" : namespaces[k - N].name); }

  function badge(x, y, list) {
    if (!list.length) return "";
    return `<g class="badge ${severityOf(list)}"><title>${list.length} audit finding(s)</title><circle cx="${x}" cy="${y}" r="8"/><text x="${x}" y="${y + 3}">${list.length}</text></g>`;
  }

  function render() {
    layout = computeLayout();
    const parts = [`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker><marker id="arrow-hi" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs><g id="viewport">`];
    for (const b of layout.boxes) {
      if (!b) continue;
      const g = b.g, name = g === EXTERNAL ? "external" : namespaces[g].name, count = members[g].length;
      const pods = members[g].reduce((s, n) => s + nodes[n].pods, 0);
      const cls = expanded[g] ? "ns-box" : "ns-box collapsed";
      const m = matchesGroup(g) ? " match" : "";
      parts.push(`<g class="ns" data-g="${g}" data-ns="${esc(name)}"><rect class="${cls}${m}" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="6"/>`);
      parts.push(`<text class="ns-title" x="${b.x + 10}" y="${b.y + 18}">${expanded[g] ? "▾" : "▸"} ${esc(name)}</text>`);
      parts.push(`<text class="ns-sub" x="${b.x + 10}" y="${b.y + (expanded[g] ? 30 : 34)}">${count} ${g === EXTERNAL ? "ranges" : "workloads"}${g === EXTERNAL ? "" : " · " + pods + " pods"}</text>`);
      if (!expanded[g] && g !== EXTERNAL) {
        // Isolation mix as a stacked bar.
        const counts = { both: 0, ingress: 0, egress: 0, open: 0 };
        for (const n of members[g]) counts[isoClass[n]]++;
        let x = b.x + 10; const w = b.w - 20;
        for (const k of ["both", "ingress", "egress", "open"]) {
          if (!counts[k]) continue;
          const cw = (w * counts[k]) / count;
          parts.push(`<rect class="bar ${k}" x="${x.toFixed(1)}" y="${b.y + 42}" width="${cw.toFixed(1)}" height="6"><title>${counts[k]} ${isoWords[k]}</title></rect>`);
          x += cw;
        }
      }
      parts.push(badge(b.x + b.w - 12, b.y + 12, groupFindings[g]));
      parts.push(`</g>`);
    }
    const vis = visibleEdges();
    parts.push(`<g id="edges">`);
    drawNote = vis.length > MAX_DRAWN ? `${vis.length} edges visible: drawing the first ${MAX_DRAWN}; collapse namespaces to see all` : "";
    if (drawNote) status.textContent = drawNote;
    vis.slice(0, MAX_DRAWN).forEach((v, i) => {
      const single = v.edges.length === 1 && v.a < N && v.b < N;
      const e = edges[v.edges[0]];
      const title = single
        ? `${nodes[e.src].label} → ${nodes[e.dst].label}: ${e.conns}`
        : `${keyName(v.a)} → ${keyName(v.b)}: ${v.edges.length} workload connection(s)\n` + v.edges.slice(0, 8).map((k) => `${nodes[edges[k].src].label} → ${nodes[edges[k].dst].label}: ${edges[k].conns}`).join("\n") + (v.edges.length > 8 ? "\n…" : "");
      const attrs = single ? ` data-e="${v.edges[0]}" data-src="${esc(nodes[e.src].label)}" data-dst="${esc(nodes[e.dst].label)}" data-conn="${esc(e.conns)}"` : ` data-v="${i}" data-count="${v.edges.length}"`;
      const width = single ? "" : ` style="stroke-width:${Math.min(6, 1 + Math.log2(v.edges.length)).toFixed(1)}"`;
      parts.push(`<path class="edge${single ? "" : " agg"}"${attrs}${width} d="${curve(v.a, v.b)}"><title>${esc(title)}</title></path>`);
    });
    parts.push(`</g>`);
    if (showObserved && data.observed.length) parts.push(observedLayer());
    if (whatIf.length) parts.push(whatIfLayer());
    parts.push(`<g id="nodes">`);
    for (const b of layout.boxes) {
      if (!b || !expanded[b.g]) continue;
      for (const n of members[b.g]) {
        const node = nodes[n], x = layout.pos[2 * n], y = layout.pos[2 * n + 1];
        const m = matches.has(n) ? " match" : "";
        const label = node.name.length > 22 ? node.name.slice(0, 21) + "…" : node.name;
        parts.push(`<g class="node ${isoClass[n]}${m}" data-n="${n}" data-id="${esc(node.id)}" data-label="${esc(node.label)}"><title>${esc(node.label)}: ${node.pods} pod(s), ${isoWords[isoClass[n]]}</title><circle class="dot" cx="${x}" cy="${y}" r="8"/><text x="${x + 13}" y="${y + 4}">${esc(label)}</text>${badge(x + CELL_W - 30, y, node.findings)}</g>`);
      }
    }
    parts.push(`</g></g>`);
    svg.innerHTML = parts.join("");
    viewportEl = svg.querySelector("#viewport");
    applyTransform();
    applySelection();
    svg.dataset.visibleEdges = String(vis.length);
  }

  function observedLayer() {
    const out = [`<g id="observed">`];
    data.observed.forEach((o, i) => {
      if (o.src === null || o.dst === null) return;
      const a = visibleKey(o.src), b = visibleKey(o.dst);
      if (a === b) return;
      const cls = o.mismatches > 0 ? "obs mismatch" : "obs";
      out.push(`<path class="${cls}" data-o="${i}" data-src="${esc(nodes[o.src].label)}" data-dst="${esc(nodes[o.dst].label)}" data-port="${esc(o.port)}" d="${curve(a, b)}"><title>observed ${esc(o.src_name)} → ${esc(o.dst_name)} ${esc(o.port)}: ${o.flows} flow(s), policy ${o.policy}${o.mismatches ? ", " + o.mismatches + " mismatch(es)" : ""}</title></path>`);
    });
    out.push(`</g>`);
    return out.join("");
  }

  // A what-if line's end as a node index (workloads and external ranges by label), or -1 for
  // an end the graph does not have (a new workload, a new address range).
  const nodeOf = (label) => (byLabel.has(label) ? byLabel.get(label) : -1);
  function whatIfLayer() {
    const out = [`<g id="what-if-layer">`];
    whatIf.forEach((l, i) => {
      const s = nodeOf(l.source), d = nodeOf(l.destination);
      if (s < 0 || d < 0) return;
      const a = visibleKey(s), b = visibleKey(d);
      if (a === b) return;
      out.push(`<path class="wi ${esc(l["diff-type"])}" data-w="${i}" data-src="${esc(l.source)}" data-dst="${esc(l.destination)}" d="${curve(a, b)}"><title>what-if ${esc(l["diff-type"])}: ${esc(l.source)} → ${esc(l.destination)}: ${esc(l.ref1)} ⇒ ${esc(l.ref2)}</title></path>`);
    });
    out.push(`</g>`);
    return out.join("");
  }

  // ---- pan and zoom ----
  let view = { x: 0, y: 0, k: 1 }, viewportEl = null;
  function applyTransform() { if (viewportEl) viewportEl.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`); }
  function fit() {
    const r = svg.getBoundingClientRect();
    const k = Math.min(1.2, Math.min((r.width - 20) / (layout.width || 1), (r.height - 20) / (layout.height || 1)));
    view = { k: Math.max(0.05, k), x: 10, y: 10 };
    applyTransform();
  }
  function centerOn(x, y) {
    const r = svg.getBoundingClientRect();
    view.k = Math.max(view.k, 0.8);
    view.x = r.width / 2 - x * view.k; view.y = r.height / 2 - y * view.k;
    applyTransform();
  }
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    const k = Math.min(8, Math.max(0.03, view.k * Math.exp(-ev.deltaY * 0.0015)));
    view.x = mx - ((mx - view.x) * k) / view.k; view.y = my - ((my - view.y) * k) / view.k; view.k = k;
    applyTransform();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.x = drag.vx + dx; view.y = drag.vy + dy; applyTransform();
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });

  // ---- selection and panel ----
  svg.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const t = ev.target;
    const node = t.closest("[data-n]"), edge = t.closest("[data-e]"), agg = t.closest("[data-v]"), group = t.closest("[data-g]");
    if (node) selectNode(+node.dataset.n);
    else if (edge) selectEdge(+edge.dataset.e);
    else if (agg) { const v = visibleEdges()[+agg.dataset.v]; if (v) showAggregate(v); }
    else if (group) toggleGroup(+group.dataset.g);
  });
  function toggleGroup(g) { expanded[g] = expanded[g] ? 0 : 1; render(); showGroup(g); }
  function selectNode(n, center) {
    if (!expanded[groupOf[n]]) { expanded[groupOf[n]] = 1; render(); }
    selected = { type: "node", index: n };
    applySelection(); showNode(n);
    if (center) centerOn(layout.pos[2 * n], layout.pos[2 * n + 1]);
  }
  function selectEdge(e) {
    const ed = edges[e];
    let changed = false;
    for (const n of [ed.src, ed.dst]) if (!expanded[groupOf[n]]) { expanded[groupOf[n]] = 1; changed = true; }
    if (changed) render();
    selected = { type: "edge", index: e };
    applySelection(); showEdge(e);
  }
  function applySelection() {
    svg.classList.toggle("dim", !!selected);
    svg.querySelectorAll(".selected,.peer,.hi").forEach((el) => el.classList.remove("selected", "peer", "hi"));
    if (!selected) return;
    if (selected.type === "node") {
      const n = selected.index;
      const el = svg.querySelector(`[data-n="${n}"]`); if (el) el.classList.add("selected");
      for (const e of outEdges(n).concat(inEdges(n))) {
        const p = svg.querySelector(`[data-e="${e}"]`); if (p) p.classList.add("hi");
        const other = edges[e].src === n ? edges[e].dst : edges[e].src;
        const o = svg.querySelector(`[data-n="${other}"]`); if (o) o.classList.add("peer");
      }
    } else if (selected.type === "edge") {
      const p = svg.querySelector(`[data-e="${selected.index}"]`); if (p) p.classList.add("hi");
      for (const n of [edges[selected.index].src, edges[selected.index].dst]) { const o = svg.querySelector(`[data-n="${n}"]`); if (o) o.classList.add("selected"); }
    }
  }

  function findingsHtml(list) {
    if (!list.length) return "";
    return list.map((f) => { const x = data.findings[f]; return `<div class="finding ${x.severity}"><b>${esc(x.id)}</b> ${esc(x.severity)}: ${esc(x.message)}<div class="kv">${esc(x.object)}${x.location ? " · " + esc(x.location) : ""}</div></div>`; }).join("");
  }
  function policiesHtml(side, dir) {
    if (!side.policies.length) return `<p class="kv">No policy selects it for ${dir}: ${dir === "ingress" ? "any source" : "any destination"} allowed.</p>`;
    const tiers = new Map();
    for (const p of side.policies) { const pol = data.policies[p]; if (!tiers.has(pol.tier)) tiers.set(pol.tier, []); tiers.get(pol.tier).push(pol); }
    let h = side.partly ? `<p class="kv">Only some of its pods are selected.</p>` : "";
    for (const [tier, list] of tiers) {
      h += `<div class="tier">tier ${esc(tier)}</div><ul class="plain">` + list.map((p) => `<li class="policy" data-dir="${dir}" data-policy="${esc(p.kind + " " + p.name)}">${esc(p.kind)} <b>${esc(p.name)}</b> <span class="kv">${esc(p.origin)}</span>${findingsHtml(p.findings)}</li>`).join("") + `</ul>`;
    }
    return h;
  }
  function edgeListHtml(list, dir) {
    if (!list.length) return `<p class="kv">none</p>`;
    const shown = list.slice(0, 200);
    return `<ul class="plain">` + shown.map((e) => { const ed = edges[e], other = dir === "in" ? ed.src : ed.dst; return `<li><span class="link" data-edge="${e}">${dir === "in" ? "from" : "to"} ${esc(nodes[other].label)}</span>: ${esc(ed.conns)}</li>`; }).join("") + (list.length > 200 ? `<li class="kv">… ${list.length - 200} more</li>` : "") + `</ul>`;
  }
  function showNode(n) {
    const node = nodes[n];
    let h = `<h3 data-selected="${esc(node.id)}">${esc(node.label)}</h3>`;
    h += `<p><span class="pill ${isoClass[n]}">${isoWords[isoClass[n]]}</span></p>`;
    if (node.kind !== "External") {
      h += `<p class="kv">${node.pods} pod(s): ${node.pod_names.map(esc).join(", ")}${node.pods > node.pod_names.length ? ", …" : ""}</p>`;
      h += `<h2>Ingress policies</h2><div id="ingress-policies">${policiesHtml(node.ingress, "ingress")}</div>`;
      h += `<h2>Egress policies</h2><div id="egress-policies">${policiesHtml(node.egress, "egress")}</div>`;
    }
    h += `<h2>Effective ingress</h2>`;
    if (node.ingress && !node.ingress.isolated && !node.ingress.partly) h += `<p class="kv">Not isolated: every source may connect (the workloads listed are those whose egress allows it).</p>`;
    h += edgeListHtml(inEdges(n), "in");
    h += `<h2>Effective egress</h2>`;
    if (node.egress && !node.egress.isolated && !node.egress.partly) h += `<p class="kv">Not isolated: it may connect anywhere the destination's ingress allows.</p>`;
    h += edgeListHtml(outEdges(n), "out");
    const seen = data.observed.filter((o) => o.src === n || o.dst === n);
    if (seen.length) {
      h += `<h2>Observed traffic</h2><ul class="plain">` + seen.slice(0, 200).map((o) => `<li class="${o.mismatches ? "finding error" : ""}" data-observed="${esc(o.src_name)}>${esc(o.dst_name)}">${esc(o.src_name)} → ${esc(o.dst_name)} ${esc(o.port)}: ${o.flows} flow(s), policy ${esc(o.policy)}${o.decided_by ? " (" + esc(o.decided_by) + ")" : ""}${o.mismatches ? `, <b>${o.mismatches} mismatch(es)</b>` : ""}</li>`).join("") + `</ul>`;
    }
    if (node.findings.length) h += `<h2>Findings</h2>` + findingsHtml(node.findings);
    panel.innerHTML = h;
  }
  const directionWords = { Ingress: "ingress", Egress: "egress" };
  function explainHtml(dv, name) {
    const dir = directionWords[dv.direction] || dv.direction, who = esc(dv.endpoint || name || "the address");
    const o = dv.outcome;
    let text;
    switch (o.reason) {
      case "not-applicable": text = `${dir}: ${who} is not a pod subject to policy (an address, or host network)`; break;
      case "not-isolated": text = `${dir} of ${who}: no policy selects it, allowed`; break;
      case "rule": text = `${dir} of ${who}: <b>${esc(o.rule.action)}</b> by ${esc(o.rule.kind)} <b>${esc(o.rule.policy)}</b> ${dir} rule ${o.rule.rule} (tier ${esc(o.rule.tier)}) <span class="kv">${esc(o.rule.origin)}</span>`; break;
      case "end-of-tier": text = `${dir} of ${who}: <b>denied</b>: selected in tier ${esc(o.tier)} and no rule matched`; break;
      case "default-allow": text = `${dir} of ${who}: every tier passed, the profile allows`; break;
      case "same-pod": text = `${dir}: same pod, always allowed`; break;
      default: text = `${dir}: ${esc(JSON.stringify(o))}`;
    }
    let extra = "";
    if (dv.passed_through && dv.passed_through.length) extra += `<div class="kv">passed through: ${dv.passed_through.map((r) => esc(`${r.action} ${r.policy} rule ${r.rule}`)).join(", ")}</div>`;
    if (dv.unknown_address_rules && dv.unknown_address_rules.length) extra += `<div class="kv">note: ${dv.unknown_address_rules.length} address rule(s) judged with a synthetic pod address</div>`;
    return `<div class="explain ${dv.allowed ? "allow" : "deny"}" data-dir="${esc(dir)}">${text}${extra}</div>`;
  }
  function showEdge(e) {
    const ed = edges[e];
    let h = `<h3 data-selected-edge="${esc(nodes[ed.src].label)}>${esc(nodes[ed.dst].label)}"><span class="link" data-node="${ed.src}">${esc(nodes[ed.src].label)}</span> → <span class="link" data-node="${ed.dst}">${esc(nodes[ed.dst].label)}</span></h3>`;
    h += `<p>Allowed: <b>${esc(ed.conns)}</b></p><h2>Deciding rules</h2>`;
    for (const p of ed.probes) {
      h += `<div class="probe" data-port="${esc(p.port)}"><b>${esc(p.port)}</b> <span class="pill ${p.verdict}">${p.verdict}</span>`;
      h += explainHtml(data.explanations[p.egress], nodes[ed.src].label) + explainHtml(data.explanations[p.ingress], nodes[ed.dst].label);
      if (data.live) h += `<span class="link ask" data-from="${esc(nodes[ed.src].id)}" data-to="${esc(nodes[ed.dst].id)}" data-port="${esc(p.port)}">ask the engine live</span>`;
      h += `</div>`;
    }
    panel.innerHTML = h;
  }
  function showAggregate(v) {
    let h = `<h3>${esc(keyName(v.a))} → ${esc(keyName(v.b))}</h3><p>${v.edges.length} workload connection(s); expand the namespaces to see each.</p><ul class="plain">`;
    h += v.edges.slice(0, 300).map((e) => `<li><span class="link" data-edge="${e}">${esc(nodes[edges[e].src].label)} → ${esc(nodes[edges[e].dst].label)}</span>: ${esc(edges[e].conns)}</li>`).join("");
    panel.innerHTML = h + `</ul>`;
  }
  function showGroup(g) {
    const name = g === EXTERNAL ? "external ranges" : namespaces[g].name;
    let h = `<h3>${esc(name)}</h3><p class="kv">${members[g].length} node(s); ${expanded[g] ? "expanded" : "collapsed"} (click the box to toggle).</p>`;
    if (g < namespaces.length && namespaces[g].findings.length) h += `<h2>Namespace findings</h2>` + findingsHtml(namespaces[g].findings);
    h += `<ul class="plain">` + members[g].slice(0, 300).map((n) => `<li><span class="link" data-node="${n}">${esc(nodes[n].label)}</span> <span class="pill ${isoClass[n]}">${isoClass[n]}</span></li>`).join("") + `</ul>`;
    panel.innerHTML = h;
  }
  panel.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-node],[data-edge],.ask");
    if (!t) return;
    if (t.dataset.node !== undefined) selectNode(+t.dataset.node, true);
    else if (t.dataset.edge !== undefined) selectEdge(+t.dataset.edge);
    else if (t.classList.contains("ask")) { qFrom.value = t.dataset.from; qTo.value = t.dataset.to; qPort.value = t.dataset.port; runQuery(); }
  });

  // ---- search ----
  const search = document.getElementById("search"), results = document.getElementById("results");
  function matchesGroup(g) { return members[g].some((n) => matches.has(n)); }
  function runSearch(text) {
    const q = text.trim().toLowerCase();
    matches = new Set();
    const hits = [];
    if (q) {
      nodes.forEach((n, i) => {
        const pol = n.kind === "External" ? [] : n.ingress.policies.concat(n.egress.policies).map((p) => data.policies[p].name.toLowerCase());
        if (n.label.toLowerCase().includes(q) || pol.some((p) => p.includes(q))) { matches.add(i); hits.push(i); }
      });
    }
    results.innerHTML = hits.slice(0, 50).map((n) => `<div data-node="${n}" role="option">${esc(nodes[n].label)} <span class="kv">${isoClass[n]}</span></div>`).join("") + (hits.length > 50 ? `<div class="kv">… ${hits.length - 50} more</div>` : "") + (q && !hits.length ? `<div class="kv">no match</div>` : "");
    results.classList.toggle("open", !!q);
    render();
    status.textContent = q ? `${hits.length} match(es)` : readyText;
    return hits;
  }
  let searchTimer = 0;
  search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => runSearch(search.value), 120); });
  search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { const hits = runSearch(search.value); if (hits.length) { selectNode(hits[0], true); results.classList.remove("open"); } } if (ev.key === "Escape") { search.value = ""; runSearch(""); } });
  results.addEventListener("click", (ev) => { const t = ev.target.closest("[data-node]"); if (t) { selectNode(+t.dataset.node, true); results.classList.remove("open"); } });

  document.getElementById("expand-all").addEventListener("click", () => { expanded.fill(1); render(); fit(); });
  document.getElementById("collapse-all").addEventListener("click", () => { expanded.fill(0); selected = null; render(); fit(); });
  const obsToggle = document.getElementById("show-observed");
  if (data.observed.length || data.observed_notes.length) {
    document.getElementById("observed-toggle").hidden = false;
    document.querySelectorAll(".observed-legend").forEach((el) => { el.hidden = false; });
  }
  obsToggle.addEventListener("change", () => { showObserved = obsToggle.checked; render(); });

  // ---- live (netfence serve): query box ----
  const qFrom = document.getElementById("q-from"), qTo = document.getElementById("q-to"), qPort = document.getElementById("q-port");
  const qResult = document.getElementById("query-result");
  async function runQuery() {
    const params = new URLSearchParams({ from: qFrom.value, to: qTo.value, port: qPort.value });
    qResult.textContent = "…";
    try {
      const r = await fetch("api/query?" + params.toString());
      const body = await r.json();
      if (!r.ok) { qResult.innerHTML = `<div class="finding error" id="query-error">${esc(body.error || r.statusText)}</div>`; return; }
      let h = `<p id="query-verdict" data-verdict="${esc(body.verdict)}"><span class="pill ${body.verdict}">${esc(body.verdict)}</span> ${esc(body.from)} → ${esc(body.to)} ${esc(body.port)}</p>`;
      if (body.egress) h += explainHtml(body.egress) + explainHtml(body.ingress);
      if (body.backends) h += `<p class="kv">through a Service: ${body.backends.length} backend(s)</p>`;
      (body.notes || []).forEach((n) => { h += `<p class="kv">note: ${esc(n)}</p>`; });
      qResult.innerHTML = h;
    } catch (err) { qResult.textContent = "query failed: " + err; }
  }

  // ---- live (netfence serve): what-if box ----
  const wiText = document.getElementById("what-if-text"), wiDelete = document.getElementById("what-if-delete");
  const wiResult = document.getElementById("what-if-result");
  const SIGN = { added: "+", removed: "−", changed: "~" };
  function whatIfHtml(lines) {
    const count = (t) => lines.filter((l) => l["diff-type"] === t).length;
    let h = `<p id="what-if-summary" data-count="${lines.length}">${lines.length ? `${lines.length} connection(s) would change: ${count("added")} added, ${count("removed")} removed, ${count("changed")} changed` : "no connection would change"}</p><div id="what-if-lines">`;
    lines.forEach((l, i) => {
      const t = l["diff-type"], drawn = nodeOf(l.source) >= 0 && nodeOf(l.destination) >= 0;
      const ports = t === "added" ? esc(l.ref2) : t === "removed" ? esc(l.ref1) : `${esc(l.ref1)} ⇒ ${esc(l.ref2)}`;
      h += `<div class="wi-line ${esc(t)}" data-w="${i}" data-type="${esc(t)}" data-src="${esc(l.source)}" data-dst="${esc(l.destination)}" data-ref1="${esc(l.ref1)}" data-ref2="${esc(l.ref2)}" data-drawn="${drawn ? 1 : 0}"><span class="sign">${SIGN[t] || "?"}</span>${esc(l.source)} → ${esc(l.destination)}: ${ports}${drawn ? "" : ' <span class="kv">(not in the graph)</span>'}</div>`;
    });
    return h + `</div>`;
  }
  async function runWhatIf() {
    const params = new URLSearchParams();
    const del = wiDelete.value.split(/[\s,]+/).filter(Boolean);
    if (del.length) params.set("delete", del.join(","));
    wiResult.textContent = "…";
    try {
      const r = await fetch("api/what-if" + (del.length ? "?" + params.toString() : ""), { method: "POST", headers: { "Content-Type": "text/plain; charset=utf-8" }, body: wiText.value });
      const body = await r.json();
      if (!r.ok) {
        whatIf = [];
        wiResult.innerHTML = `<div class="finding error" id="what-if-error" data-status="${r.status}">${esc(body.error || r.statusText)}</div>`;
      } else {
        whatIf = body;
        // Expand the namespaces of changed workloads so their edges are drawn one by one.
        for (const l of whatIf) for (const end of [l.source, l.destination]) { const n = nodeOf(end); if (n >= 0) expanded[groupOf[n]] = 1; }
        wiResult.innerHTML = whatIfHtml(whatIf);
      }
    } catch (err) { whatIf = []; wiResult.innerHTML = `<div class="finding error" id="what-if-error">what-if failed: ${esc(err)}</div>`; }
    document.querySelectorAll(".what-if-legend").forEach((el) => { el.hidden = !whatIf.length; });
    render();
  }
  wiResult.addEventListener("click", (ev) => {
    const line = ev.target.closest(".wi-line");
    if (!line) return;
    const s = nodeOf(line.dataset.src), d = nodeOf(line.dataset.dst);
    const e = s < 0 ? undefined : outEdges(s).find((k) => eDst[k] === d);
    if (e !== undefined) selectEdge(e); else if (s >= 0) selectNode(s, true);
  });
  if (data.live) {
    // The what-if controls work when the server can compute a delta (ViewData::what_if).
    for (const id of ["what-if-text", "what-if-delete", "what-if-run", "what-if-clear"]) document.getElementById(id).disabled = !data.what_if;
    document.getElementById("live").hidden = false;
    document.getElementById("query-form").addEventListener("submit", (ev) => { ev.preventDefault(); runQuery(); });
    document.getElementById("what-if-form").addEventListener("submit", (ev) => { ev.preventDefault(); runWhatIf(); });
    document.getElementById("what-if-clear").addEventListener("click", () => { whatIf = []; wiText.value = ""; wiDelete.value = ""; wiResult.innerHTML = ""; document.querySelectorAll(".what-if-legend").forEach((el) => { el.hidden = true; }); render(); });
  }

  // ---- start ----
  function applyHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const ex = params.get("expand");
    if (ex === "all") expanded.fill(1);
    else if (ex) for (const name of ex.split(",")) { const g = namespaces.findIndex((n) => n.name === name); if (g >= 0) expanded[g] = 1; }
    if (params.get("q")) { search.value = params.get("q"); runSearch(search.value); }
    const ask = params.get("ask");
    if (ask && data.live) { const [f, t, p] = ask.split(","); qFrom.value = f || ""; qTo.value = t || ""; qPort.value = p || ""; runQuery(); }
    if ((params.has("whatif") || params.has("delete")) && data.live && data.what_if) { wiText.value = params.get("whatif") || ""; wiDelete.value = params.get("delete") || ""; runWhatIf(); }

    const sel = params.get("select");
    if (sel) { const n = byId.has(sel) ? byId.get(sel) : byLabel.get(sel); if (n !== undefined) { selectNode(n); return true; } status.textContent = "no such workload: " + sel; }
    const edge = params.get("edge");
    if (edge) {
      const [a, b] = edge.split(">"), s = byLabel.has(a) ? byLabel.get(a) : byId.get(a), d = byLabel.has(b) ? byLabel.get(b) : byId.get(b);
      const e = s === undefined ? -1 : outEdges(s).find((k) => eDst[k] === d);
      if (e !== undefined && e >= 0) { selectEdge(e); return true; }
    }
    return false;
  }
  // Cluster-wide findings and notes (audit, flows) under the opening hint.
  {
    let h = "";
    if (data.cluster_findings.length) h += `<h2>Cluster findings</h2>` + findingsHtml(data.cluster_findings);
    if (data.audit_notes.length) h += `<h2>Audit notes</h2>` + data.audit_notes.map((n) => `<p class="kv">${esc(n)}</p>`).join("");
    if (data.observed_notes.length) h += `<h2>Observed traffic</h2>` + data.observed_notes.map((n) => `<p class="kv">${esc(n)}</p>`).join("");
    panel.insertAdjacentHTML("beforeend", h);
  }
  // Small clusters open expanded; large ones by namespace.
  if (nodes.length <= 80) expanded.fill(1);
  const fromHash = applyHash();
  render();
  fit();
  if (fromHash && selected && selected.type === "node") centerOn(layout.pos[2 * selected.index], layout.pos[2 * selected.index + 1]);
  window.addEventListener("hashchange", () => { applyHash(); render(); });
  window.addEventListener("resize", () => fit());
  const readyMs = performance.now();
  readyText = `${nodes.length - members[EXTERNAL].length} workloads · ${namespaces.length} namespaces · ${E} connections`;
  status.textContent = search.value.trim() ? `${matches.size} match(es)` : drawNote || readyText;
  document.body.dataset.readyMs = readyMs.toFixed(1);
  document.body.dataset.parsedMs = parsedMs.toFixed(1);
  document.body.dataset.ready = "1";
  document.getElementById("title").textContent = data.title;
})();
