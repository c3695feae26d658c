// FlowTime run topology: the flow network drawn as SVG from the dagre layout (topology-layout.js), nodes and
// edges coloured by FT.scale(metric) at FT.view.bin, warning badges from the analyser, keyboard navigation.
//
// Values at a bin: painted at once from the whole-run window FT.view.data.window (exact unless the window was
// downsampled), then from /state?bin=N&mode=full (always exact; the chips' computed values and the findings
// active at the bin come from there). The last answer wins: a late answer for an older bin is dropped.
// Every node carries data-value (the full-precision number, "" for none), data-band ("0".."9" or "none") and
// class band-N / band-none; a node without a value is grey and says "no value", never zero.
// Another source of values (the live what-if) sets FT.view.live = true - the stored run is then not asked for
// the bin - and publishes "ft:state" (detail: a /state-shaped body, optionally with "findings" for the badges).
(function () {
  "use strict";
  const FT = window.FT;
  const SVG = "http://www.w3.org/2000/svg";
  // The metric selector's choices, each the state window's series name (decision 0027) and how it reads.
  const METRICS = [
    { key: "utilization", label: "Utilization", unit: "%", ratio: true },
    { key: "queue", label: "Queue depth", unit: "items" },
    { key: "latencyMinutes", label: "Latency (queue wait)", unit: "min" },
    { key: "flowLatencyMs", label: "Flow latency", unit: "ms" },
    { key: "arrivals", label: "Arrivals", unit: "/bin" },
    { key: "served", label: "Served", unit: "/bin" },
    { key: "errors", label: "Errors", unit: "/bin" },
    { key: "throughputRatio", label: "SLA completion (served ÷ arrivals)", unit: "%", ratio: true },
  ];
  const SEVERITY = { error: 3, warning: 2, info: 1 };
  const GLYPH = { error: "!", warning: "▲", info: "i" };  // shape as well as colour tells severity apart
  const metricInfo = (key) => METRICS.find((m) => m.key === key) || { key, label: key, unit: "" };
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  // Ids longer than their box are cut with an ellipsis (the full id is the node's tooltip and ARIA label).
  const clip = (text, chars) => (text.length > chars ? text.slice(0, Math.max(1, Math.floor(chars) - 1)) + "…" : text);

  function formatValue(key, v) {
    if (!isNum(v)) return "no value";
    const m = metricInfo(key);
    if (m.ratio) return `${+(v * 100).toPrecision(3)} %`;
    return `${+v.toPrecision(4)}${m.unit ? " " + m.unit : ""}`;
  }
  Object.assign(FT, { METRICS, metricInfo, formatValue });

  const el = (name, attrs, parent) => {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  };

  // `focus`: the one node in the tab order (roving tabindex: the graph is one tab stop, arrows move inside it).
  const state = { graph: null, layout: null, expanded: new Set(), exact: null, seq: 0, nodeEls: new Map(),
    edgeEls: new Map(), painted: false, focus: null };
  const host = () => document.getElementById("topology");

  // ---- values at a bin ---------------------------------------------------------------------------------
  function windowIndex(bin) {
    const w = FT.view.data.window;
    if (!w.bins) return bin - w.window.startBin;
    let lo = 0, hi = w.bins.length - 1;  // the last point placed at or before the bin
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (w.bins[mid] <= bin) lo = mid; else hi = mid - 1; }
    return lo;
  }
  function fromWindow(bin) {
    const w = FT.view.data.window, i = windowIndex(bin), nodes = new Map(), edges = new Map();
    for (const n of w.nodes) {
      const vals = {};
      for (const [k, s] of Object.entries(n.series || {})) vals[k] = s[i];
      nodes.set(n.id, vals);
    }
    for (const e of w.edges || []) edges.set(e.id, edgeFlow(Object.fromEntries(
      Object.entries(e.series || {}).map(([k, s]) => [k, s[i]]))));
    return { bin, exact: !w.downsampled, nodes, edges, active: null };
  }
  function fromState(body) {
    const nodes = new Map(), edges = new Map(), active = new Map();
    for (const n of body.nodes) {
      nodes.set(n.id, Object.assign({}, n.metrics || {}, n.derived || {}));
      active.set(n.id, n.warnings || []);
    }
    for (const e of body.edges || []) edges.set(e.id, edgeFlow(e.series || {}));
    return { bin: body.bin.index, exact: true, nodes, edges, active };
  }
  const edgeFlow = (s) => [s.flowVolume, s.failuresVolume, s.attemptsVolume, s.retryVolume].find(isNum) ?? null;

  function flowTotals() {
    const totals = new Map();
    for (const e of (FT.view.data && FT.view.data.window.edges) || []) {
      const s = e.series.flowVolume || e.series.failuresVolume || Object.values(e.series)[0] || [];
      totals.set(e.id, s.reduce((a, v) => a + (isNum(v) ? v : 0), 0));
    }
    return totals;
  }

  // ---- drawing -------------------------------------------------------------------------------------------
  function draw() {
    const box = host();
    const lay = state.layout = FT.topologyLayout(state.graph, { expanded: state.expanded, flowTotals: flowTotals() });
    box.innerHTML = "";
    if (!lay.nodes.some((n) => n.topo)) {
      box.innerHTML = '<p class="muted">This run has no topology: nothing to draw. Its series are on the run page.</p>';
      return;
    }
    const svg = el("svg", { class: "topology-svg", viewBox: `0 0 ${lay.width} ${lay.height}`, role: "group",
      "aria-roledescription": "flow network", width: lay.width, height: lay.height });
    el("title", {}, svg).textContent = "Flow network";
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "ft-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9,
      markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#667085" }, marker);
    const gEdges = el("g", { class: "edges", "aria-hidden": "true" }, svg);
    const gNodes = el("g", { class: "nodes" }, svg);
    state.edgeEls.clear();
    for (const e of lay.edges) {
      const d = "M" + e.points.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" L");
      const path = el("path", { d, class: `edge edge-${e.kind}`, "data-edge": e.id, "marker-end": "url(#ft-arrow)" },
        gEdges);
      state.edgeEls.set(e.id, { el: path, edge: e });
    }
    state.nodeEls.clear();
    const findings = findingsByNode();
    for (const n of lay.nodes) gNodes.appendChild(drawNode(n, findings.get(n.id) || []));
    if (!state.nodeEls.has(state.focus)) state.focus = lay.order.find((id) => state.nodeEls.has(id)) || null;
    rove(state.focus);
    box.appendChild(svg);
    fit();
    highlight();
    paint();
  }

  function drawNode(n, findings) {
    const g = el("g", { class: n.topo ? "tnode" : "tnode tnode-free", "data-node": n.id, "data-kind": n.kind,
      tabindex: -1, role: "button", transform: `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})` });
    el("rect", { class: "tnode-box", width: n.width, height: n.height, rx: 8 }, g);
    const title = el("text", { class: "tnode-id", x: 10, y: 18 }, g);
    title.textContent = clip(n.id, (n.width - 34) / 7.6);
    el("title", {}, g).textContent = n.id;
    const kind = el("text", { class: "tnode-kind", x: 10, y: n.topo ? 33 : 31 }, g);
    kind.textContent = n.topo ? n.kind : `${n.kind} · computed`;
    const value = el("text", { class: "tnode-value", x: 10, y: n.topo ? 54 : 0 }, g);
    const rec = { el: g, node: n, value, chipVals: new Map(), findings };
    if (n.topo && n.chips.length) {
      const open = state.expanded.has(n.id);
      const toggle = el("text", { class: "tnode-chips-toggle", x: n.width - 10, y: 54, "text-anchor": "end",
        "data-toggle": n.id }, g);
      toggle.textContent = `${open ? "▾" : "▸"} ${n.chips.length} input${n.chips.length === 1 ? "" : "s"}`;
      if (open) {
        n.chips.forEach((id, i) => {
          const y = 64 + i * FT.topologyLayout.sizes.CHIP_H;
          const chip = el("g", { class: "chip", "data-chip": id, transform: `translate(8,${y})` }, g);
          el("rect", { width: n.width - 16, height: 17, rx: 8 }, chip);
          const t = el("text", { x: 8, y: 12.5 }, chip);
          t.textContent = clip(id, (n.width - 80) / 6.8);
          const v = el("text", { x: n.width - 24, y: 12.5, "text-anchor": "end", class: "chip-value" }, chip);
          rec.chipVals.set(id, v);
        });
      }
    }
    if (findings.length) drawBadge(g, n, findings);
    state.nodeEls.set(n.id, rec);
    return g;
  }

  function drawBadge(g, n, findings) {
    const worst = findings.reduce((a, f) => (SEVERITY[f.severity] > SEVERITY[a] ? f.severity : a), "info");
    const badge = el("g", { class: `tbadge sev-${worst}`, transform: `translate(${n.width - 12},-6)` }, g);
    el("circle", { r: 11 }, badge);
    const t = el("text", { y: 4, "text-anchor": "middle" }, badge);
    t.textContent = `${GLYPH[worst]}${findings.length > 1 ? findings.length : ""}`;
    el("title", {}, badge).textContent = findings.map((f) => `${f.severity}: ${f.code} (${f.binCount} bin` +
      `${f.binCount === 1 ? "" : "s"}) — ${f.message}`).join("\n");
  }

  function rebadge(findings) {
    const by = findingsByNode(findings);
    for (const [id, rec] of state.nodeEls) {
      const old = rec.el.querySelector(".tbadge");
      if (old) old.remove();
      rec.findings = by.get(id) || [];
      if (rec.findings.length) drawBadge(rec.el, rec.node, rec.findings);
    }
  }

  function findingsByNode(list) {
    const out = new Map();
    for (const f of list || (FT.view.data && FT.view.data.window.warnings) || []) {
      if (!f.nodeId) continue;
      if (!out.has(f.nodeId)) out.set(f.nodeId, []);
      out.get(f.nodeId).push(f);
    }
    return out;
  }

  // Fit the whole network to the container's width, but never below 60 %: past that it scrolls.
  function fit() {
    const svg = host().querySelector("svg");
    if (!svg) return;
    const lay = state.layout, avail = Math.max(200, host().clientWidth - 2);
    const scale = Math.max(0.6, Math.min(1, avail / Math.max(1, lay.width)));
    svg.setAttribute("width", String(Math.round(lay.width * scale)));
    svg.setAttribute("height", String(Math.round(lay.height * scale)));
  }

  // ---- painting a bin ------------------------------------------------------------------------------------
  function paint() {
    if (!state.layout || !FT.view.data || !FT.view.metric) return;
    const bin = FT.view.bin, metric = FT.view.metric;
    const vals = state.exact && state.exact.bin === bin ? state.exact : fromWindow(bin);
    const scale = FT.scale(metric);
    const bandOf = (v) => (isNum(v) ? scale.legend.findIndex(([, c]) => c === scale.color(v)) : -1);
    const info = metricInfo(metric);
    for (const [id, rec] of state.nodeEls) {
      const n = rec.node, g = rec.el;
      const nv = vals.nodes.get(id);
      if (n.topo) {
        const v = nv ? nv[metric] : undefined;
        const band = bandOf(v);
        g.setAttribute("class", `tnode band-${band < 0 ? "none" : band}` + flags(id));
        g.dataset.value = isNum(v) ? String(v) : "";
        g.dataset.band = band < 0 ? "none" : String(band);
        g.querySelector(".tnode-box").style.fill = scale.color(isNum(v) ? v : null);
        rec.value.textContent = formatValue(metric, v);
        const active = vals.active ? (vals.active.get(id) || []).length : null;
        g.setAttribute("aria-label", `${id}, ${n.kind}: ${info.label} ${formatValue(metric, v)}` +
          (band < 0 ? "" : `, band ${band + 1} of ${scale.legend.length}`) + findingText(rec, active) +
          (FT.view.pinned.includes(id) ? ", pinned" : ""));
        g.setAttribute("aria-pressed", FT.view.pinned.includes(id) ? "true" : "false");
      } else {
        const v = nv ? nv.values : undefined;
        g.setAttribute("class", "tnode tnode-free" + flags(id));
        g.setAttribute("aria-label", `${id}, computed ${n.kind}` + (vals.exact && nv ? `: ${formatValue("", v)}` : ""));
      }
      for (const [cid, t] of rec.chipVals) {
        const cv = vals.nodes.get(cid);
        t.textContent = cv && isNum(cv.values) ? String(+cv.values.toPrecision(4)) : vals.active ? "—" : "…";
      }
      const badge = g.querySelector(".tbadge");
      if (badge && vals.active) badge.classList.toggle("active", (vals.active.get(id) || []).length > 0);
    }
    const flows = [...vals.edges.values()].filter(isNum);
    const maxFlow = Math.max(1e-12, ...flows);
    for (const [id, { el: path, edge }] of state.edgeEls) {
      const src = vals.nodes.get(edge.from);
      const v = src ? src[metric] : undefined;
      path.style.stroke = edge.kind === "input" ? "" : scale.color(isNum(v) ? v : null);
      const f = vals.edges.get(id);
      // Width from the edge's flow at the bin, against the largest edge flow at that bin.
      path.style.strokeWidth = edge.kind === "input" ? "" : String(isNum(f) ? 1.5 + 7 * Math.sqrt(f / maxFlow) : 1.5);
      path.dataset.flow = isNum(f) ? String(f) : "";
    }
    const svg = host().querySelector("svg");
    if (svg) {
      svg.setAttribute("aria-label", `Flow network, ${state.layout.nodes.filter((n) => n.topo).length} nodes, ` +
        `coloured by ${info.label} at bin ${bin}`);
      svg.dataset.bin = String(bin);
      svg.dataset.exact = vals.exact && vals.active ? "true" : "false";
      if (vals.exact && vals.active) svg.dataset.exactBin = String(bin);
    }
    const app = document.getElementById("topology-app");
    if (!state.painted) {
      state.painted = true;
      app.dataset.firstPaintMs = String(Math.round(performance.now()));
      host().dataset.ready = "true";
    }
  }

  function findingText(rec, active) {
    if (!rec.findings.length) return "";
    const codes = [...new Set(rec.findings.map((f) => `${f.code} (${f.severity})`))].join(", ");
    return `; ${rec.findings.length} finding${rec.findings.length === 1 ? "" : "s"}: ${codes}` +
      (active === null ? "" : `, ${active} active at this bin`);
  }
  const flags = (id) => (FT.view.pinned.includes(id) ? " pinned" : "") + (FT.view.selected === id ? " selected" : "");

  async function exactAt(bin) {
    const seq = ++state.seq;
    try {
      const body = await FT.getJson(FT.stateUrl("state", { bin, mode: "full" }));
      if (seq !== state.seq) return;  // the user has moved on
      state.exact = fromState(body);
      paint();
    } catch (err) {
      if (seq === state.seq) setStatus(`Could not read bin ${bin}: ${err.message}`);
    }
  }
  function setStatus(text) {
    const s = document.getElementById("topology-status");
    s.textContent = text;
    s.classList.toggle("error", !!text);
  }

  function highlight() {
    for (const [id, rec] of state.nodeEls) {
      rec.el.classList.toggle("pinned", FT.view.pinned.includes(id));
      rec.el.classList.toggle("selected", FT.view.selected === id);
      rec.el.setAttribute("aria-pressed", FT.view.pinned.includes(id) ? "true" : "false");
    }
  }

  // ---- metric selector and legend --------------------------------------------------------------------------
  function fillMetrics() {
    const select = document.getElementById("metric-select");
    const have = new Set();
    for (const n of FT.view.data.window.nodes) for (const [k, s] of Object.entries(n.series || {})) {
      if (s.some(isNum)) have.add(k);
    }
    const offered = METRICS.filter((m) => have.has(m.key));
    select.innerHTML = "";
    for (const m of offered) select.add(new Option(m.label, m.key));
    select.disabled = !offered.length;
    select.addEventListener("change", () => FT.setMetric(select.value));
    const wanted = FT.view.metric && have.has(FT.view.metric) ? FT.view.metric : offered.length ? offered[0].key : null;
    if (wanted) { select.value = wanted; FT.setMetric(wanted); }
  }

  function legend() {
    const box = document.getElementById("legend");
    const metric = FT.view.metric;
    if (!box || !metric) return;
    const s = FT.scale(metric), info = metricInfo(metric);
    box.innerHTML = "";
    const cap = document.createElement("span");
    cap.className = "legend-caption";
    cap.textContent = `${info.label}:`;
    box.appendChild(cap);
    s.legend.forEach(([v, c], i) => {
      const sw = document.createElement("span");
      sw.className = `legend-swatch band-${i}`;
      sw.style.background = c;
      const hi = i + 1 < s.legend.length ? s.legend[i + 1][0] : s.hi;
      sw.title = `band ${i + 1}: ${formatValue(metric, v)} – ${formatValue(metric, hi)}${i + 1 === s.legend.length ?
        " and above (99th percentile of the run)" : ""}`;
      box.appendChild(sw);
    });
    const ends = document.createElement("span");
    ends.className = "legend-range small";
    ends.textContent = `${formatValue(metric, s.lo)} … ${formatValue(metric, s.hi)}+`;
    box.appendChild(ends);
    const none = document.createElement("span");
    none.className = "legend-swatch band-none";
    none.style.background = s.color(null);
    none.title = "no value at this bin";
    box.appendChild(none);
    const noneLabel = document.createElement("span");
    noneLabel.className = "small muted";
    noneLabel.textContent = "no value";
    box.appendChild(noneLabel);
    box.setAttribute("aria-label", `Colour scale for ${info.label}: ${formatValue(metric, s.lo)} to ` +
      `${formatValue(metric, s.hi)} (99th percentile of the whole run; higher values share the top colour), ` +
      `${s.legend.length} bands, grey for no value`);
  }

  // ---- interaction -----------------------------------------------------------------------------------------
  function nodeOf(target) {
    const g = target.closest && target.closest(".tnode");
    return g ? g.dataset.node : null;
  }
  function toggleChips(id) {
    if (state.expanded.has(id)) state.expanded.delete(id); else state.expanded.add(id);
    draw();
    focusNode(id);
  }
  function rove(id) {
    for (const [nid, rec] of state.nodeEls) rec.el.setAttribute("tabindex", nid === id ? "0" : "-1");
  }
  function focusNode(id) {
    const rec = state.nodeEls.get(id);
    if (!rec) return;
    state.focus = id;
    rove(id);
    rec.el.focus();
  }
  // One tab stop for the whole graph; arrow keys: right/left follow the flow (nearest downstream/upstream neighbour), up/down move within the
  // rank; Home/End the first/last node; Enter or Space pins; "+" opens or closes the node's chips.
  function neighbour(id, key) {
    const lay = state.layout, here = lay.nodes.find((n) => n.id === id);
    const idx = lay.order.indexOf(id);
    const cy = (n) => n.y + n.height / 2;
    const nearest = (ids) => ids.map((i) => lay.nodes.find((n) => n.id === i)).filter(Boolean)
      .sort((a, b) => Math.abs(cy(a) - cy(here)) - Math.abs(cy(b) - cy(here)))[0];
    if (key === "ArrowRight" || key === "ArrowLeft") {
      const fwd = key === "ArrowRight";
      const next = nearest(lay.edges.filter((e) => (fwd ? e.from : e.to) === id).map((e) => (fwd ? e.to : e.from)));
      return next ? next.id : lay.order[Math.max(0, Math.min(lay.order.length - 1, idx + (fwd ? 1 : -1)))];
    }
    if (key === "ArrowDown" || key === "ArrowUp") {
      const down = key === "ArrowDown";
      const same = lay.nodes.filter((n) => Math.abs(n.x - here.x) < 1 && (down ? cy(n) > cy(here) : cy(n) < cy(here)));
      const next = same.sort((a, b) => Math.abs(cy(a) - cy(here)) - Math.abs(cy(b) - cy(here)))[0];
      return next ? next.id : lay.order[Math.max(0, Math.min(lay.order.length - 1, idx + (down ? 1 : -1)))];
    }
    if (key === "Home") return lay.order[0];
    if (key === "End") return lay.order[lay.order.length - 1];
    return null;
  }
  const togglePin = (id) => (FT.view.pinned.includes(id) ? FT.unpin(id) : FT.pin(id));

  function wire() {
    const box = host();
    box.addEventListener("click", (ev) => {
      const t = ev.target.closest && ev.target.closest("[data-toggle]");
      if (t) { toggleChips(t.dataset.toggle); return; }
      const id = nodeOf(ev.target);
      if (id) togglePin(id);
    });
    box.addEventListener("keydown", (ev) => {
      const id = nodeOf(ev.target);
      if (!id) return;
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); togglePin(id); return; }
      if (ev.key === "+" && state.nodeEls.get(id).node.chips.length) { ev.preventDefault(); toggleChips(id); return; }
      if (ev.key === "Escape") { FT.select(null); return; }
      const next = neighbour(id, ev.key);
      if (next) { ev.preventDefault(); focusNode(next); }
    });
    const sel = (ev) => { const id = nodeOf(ev.target); if (id && FT.view.selected !== id) FT.select(id); };
    box.addEventListener("mouseover", sel);
    box.addEventListener("focusin", (ev) => {
      const id = nodeOf(ev.target);
      if (id && state.focus !== id) { state.focus = id; rove(id); }
      sel(ev);
    });
    box.addEventListener("mouseleave", () => { if (FT.view.selected) FT.select(null); });
    window.addEventListener("resize", fit);
  }

  document.addEventListener("ft:metric", () => { legend(); paint(); });
  document.addEventListener("ft:bin", (ev) => { paint(); if (!FT.view.live) exactAt(ev.detail); });
  document.addEventListener("ft:state", (ev) => {
    state.seq++;  // an answer of the stored run still on its way is now stale
    state.exact = fromState(ev.detail);
    if (ev.detail.findings && state.layout) rebadge(ev.detail.findings);
    paint();
  });
  document.addEventListener("ft:pin", () => { highlight(); paint(); });
  document.addEventListener("ft:select", highlight);

  let graphReady = null;
  async function start() {
    wire();
    graphReady = FT.getJson(FT.stateUrl("graph", { mode: "full" }));
    try {
      state.graph = await graphReady;
    } catch (err) {
      setStatus(`Could not load the run's graph: ${err.message}`);
      return;
    }
    if (FT.view.data) ready();
  }
  function ready() {
    if (!state.graph || !FT.view.data || state.layout) return;
    fillMetrics();
    legend();
    draw();
    if (!FT.view.live) exactAt(FT.view.bin);
  }
  document.addEventListener("ft:data", () => { if (graphReady) graphReady.then(ready, () => {}); });
  document.addEventListener("DOMContentLoaded", start);
})();
