// FlowTime UI inspector: one card per pinned node (FT.pin / FT.unpin). A card says what the node is (kind,
// which series are its arrivals, served, queue...), how it is computed (its expression, inputs as links that
// pin them), its series as sparklines with the current bin marked, its findings with their bins, and how each
// derived metric came out at the current bin: formula, the inputs' values there, the Engine's result.
// Values at a bin come from the state API (/state?bin=N&mode=full), never from the downsampled window.
(function () {
  "use strict";
  const FT = window.FT;
  const root = document.getElementById("inspector");
  if (!FT || !root) return;

  const cards = new Map(); // node id -> {el, node}
  const windows = new Map(); // computed (non-topology) node id -> promise of its full-mode window
  const snapshots = new Map(); // bin -> promise of the full-mode state at that bin
  let fullGraph = null;
  let shownBin = null;

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "undefined"
    : Math.abs(v) >= 1e7 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(4) : String(+v.toPrecision(6)));

  // ---- how each derived metric is computed (decision 0025, analysis/metrics.py) ----------------------
  // terms(m) gives the formula as [name, value] terms and operators; `when` says why a result is undefined.
  const binMs = (s) => ((s.metadata && s.metadata.grid && s.metadata.grid.binMinutes) || 0) * 60000;
  const FORMULAS = {
    effectiveCapacity: { when: "no capacity", terms: (m) => [["capacity", m.capacity], " × ", ["parallelism", m.parallelism]] },
    utilization: { when: "effective capacity ≤ 0", terms: (m, d) => ("effectiveCapacity" in d
      ? [["served", m.served], " / ", ["effectiveCapacity", d.effectiveCapacity]]
      : [["served", m.served], " / ", ["capacity", m.capacity]]) },
    queueTimeMs: { when: "served ≤ 0", terms: (m, d, s) => [["queue", m.queue], " / ", ["served", m.served], " × ",
      ["binMs", binMs(s)]] },
    latencyMinutes: { when: "served ≤ 0", terms: (m, d) => [["queueTimeMs", d.queueTimeMs], " / ", ["", 60000]] },
    serviceTimeMs: { when: "servedCount ≤ 0", terms: (m) => [["processingTimeMsSum", m.processingTimeMsSum], " / ",
      ["servedCount", m.servedCount]] },
    cycleTimeMs: { when: "neither part defined", terms: (m, d) => ("queueTimeMs" in d && "serviceTimeMs" in d
      ? [["queueTimeMs", d.queueTimeMs ?? 0], " + ", ["serviceTimeMs", d.serviceTimeMs ?? 0]] // a missing part as 0
      : [["queueTimeMs" in d ? "queueTimeMs" : "serviceTimeMs", d.queueTimeMs ?? d.serviceTimeMs]]) },
    flowEfficiency: { when: "cycle time ≤ 0", terms: (m, d) => [["serviceTimeMs", d.serviceTimeMs], " / ",
      ["cycleTimeMs", d.cycleTimeMs]] },
    throughputRatio: { when: "no arrivals", suffix: ", clamped to [0, 1]", terms: (m) => [["served", m.served], " / ",
      ["arrivals", m.arrivals]] },
    flowLatencyMs: { when: "nothing served (a sink: nothing arrived)", terms: flowTerms },
    kingmanWqMs: { when: "utilization not strictly between 0 and 1", terms: kingmanTerms },
  };

  function flowTerms(m, d, s, id) {
    // own cycle time + Σ(flow × upstream flow latency) / Σ flow over incoming edges (finite latency, flow > 0)
    const byId = new Map(s.nodes.map((n) => [n.id, n]));
    const parts = [];
    for (const e of s.edges || []) {
      const up = byId.get(e.from);
      const lat = up && up.derived ? up.derived.flowLatencyMs : null;
      const flow = e.series ? e.series.flowVolume : e.flowVolume;
      if (e.to === id && Number.isFinite(lat) && Number.isFinite(flow) && flow > 0) parts.push([e.from, flow, lat]);
    }
    const terms = [["cycleTimeMs", d.cycleTimeMs ?? 0]];
    if (!parts.length) return terms;
    terms.push(" + (");
    parts.forEach(([from, flow, lat], i) => terms.push(i ? " + " : "", [`flow ${from}`, flow], " × ",
      [`flowLatencyMs ${from}`, lat]));
    terms.push(") / (");
    parts.forEach(([from, flow], i) => terms.push(i ? " + " : "", [`flow ${from}`, flow]));
    terms.push(")");
    return terms;
  }

  function kingmanTerms(m, d, s) {
    // Ca and Cs are not in the state: show the factor they give, implied by the Engine's result
    const rho = d.utilization;
    const es = Number.isFinite(d.serviceTimeMs) ? ["serviceTimeMs", d.serviceTimeMs]
      : "effectiveCapacity" in d ? ["binMs / effectiveCapacity", binMs(s) / d.effectiveCapacity]
        : ["binMs / capacity", binMs(s) / m.capacity];
    const implied = Number.isFinite(d.kingmanWqMs) && rho > 0 && rho < 1 && es[1] > 0
      ? d.kingmanWqMs / ((rho / (1 - rho)) * es[1]) : null;
    return [["ρ", rho], " / (1 − ", ["ρ", rho], ") × ", ["(Ca² + Cs²)/2", implied], " × ", es];
  }

  function explain(key, node, snap) {
    const f = FORMULAS[key];
    if (!f) return null;
    const m = node.metrics || {}, d = node.derived || {};
    const terms = f.terms(m, d, snap, node.id);
    const names = terms.map((t) => (Array.isArray(t) ? t[0] || String(t[1]) : t)).join("");
    const values = terms.map((t) => (Array.isArray(t) ? fmt(t[1]) : t)).join("");
    const result = d[key];
    const steps = [key, names + (f.suffix || ""), values,
      Number.isFinite(result) ? fmt(result) : `undefined (${f.when})`];
    return steps.filter((s, i) => i < 2 || s !== steps[i - 1]).join(" = "); // "a = b = 5 = 5" reads "a = b = 5"
  }

  // ---- data -----------------------------------------------------------------------------------------

  function graphNode(id) {
    const ops = (FT.view.data && FT.view.data.graph && FT.view.data.graph.nodes) || [];
    return ops.find((n) => n.id === id) || (fullGraph && fullGraph.get(id)) || null;
  }
  async function loadFullGraph() {
    if (!fullGraph) {
      const g = await FT.getJson(FT.stateUrl("graph", { mode: "full" }));
      fullGraph = new Map(g.nodes.map((n) => [n.id, n]));
    }
    return fullGraph;
  }
  function snapshot(bin) {
    if (!snapshots.has(bin)) {
      if (snapshots.size > 8) snapshots.delete(snapshots.keys().next().value);
      const p = FT.getJson(FT.stateUrl("state", { bin, mode: "full" }));
      p.catch(() => snapshots.delete(bin));
      snapshots.set(bin, p);
    }
    return snapshots.get(bin);
  }
  function windowOf(id) { // a topology node's series are in the page's window; a computed node's are fetched
    const w = FT.view.data && FT.view.data.window;
    const own = w && w.nodes.find((n) => n.id === id);
    if (own) return Promise.resolve({ node: own, window: w });
    if (!windows.has(id)) {
      windows.set(id, FT.getJson(FT.stateUrl("state_window", { mode: "full", nodes: id }))
        .then((win) => ({ node: win.nodes.find((n) => n.id === id), window: win })));
    }
    return windows.get(id);
  }

  // ---- cards ----------------------------------------------------------------------------------------

  const link = (id, label) => `<button type="button" class="link" data-node="${esc(id)}"
    title="Pin ${esc(id)}">${esc(label || id)}</button>`;

  function expressionHtml(g) {
    if (!g.expression) return "";
    const inputs = new Set(g.inputs || []);
    // identifiers that are inputs become links; everything else stays text
    const html = g.expression.split(/([A-Za-z_][A-Za-z0-9_.]*)/).map((part) =>
      (inputs.has(part) ? link(part) : esc(part))).join("");
    return `<h4>Expression</h4><div class="expr">${esc(g.id)} = ${html}</div>`;
  }

  function warningsHtml(id) {
    const w = FT.view.data && FT.view.data.window;
    const mine = ((w && w.warnings) || []).filter((x) => x.nodeId === id);
    if (!mine.length) return "";
    const items = mine.map((x) => {
      const bins = (x.bins || []).map((b) => `<button type="button" class="link bin-link" data-bin="${b}"
        aria-label="Go to bin ${b}">${b}</button>`).join(", ");
      const more = (x.binCount || 0) > (x.bins || []).length ? ` (+${x.binCount - x.bins.length} more)` : "";
      const where = x.bins && x.bins.length ? ` · bins ${bins}${more}` : x.binCount ? "" : " · the whole run";
      return `<li><span class="sev-${esc(x.severity)}">${esc(x.severity)}</span> <code>${esc(x.code)}</code>
        ${esc(x.message)}${where}</li>`;
    }).join("");
    return `<h4>Findings</h4><ul class="warnings">${items}</ul>`;
  }

  function sparkSvg(values, bins, n) {
    const defined = values.filter((v) => v !== null && Number.isFinite(v));
    if (!defined.length || n < 1) return `<span class="muted small">no values</span>`;
    const lo = Math.min(...defined), hi = Math.max(...defined);
    const span = hi > lo ? hi - lo : 1;
    const pts = [];
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      pts.push(`${bins ? bins[i] : i},${(20 - ((v - lo) / span) * 18).toFixed(2)}`);
    });
    return `<svg class="spark" viewBox="0 0 ${Math.max(1, n - 1)} 22" preserveAspectRatio="none" role="img"
      aria-label="from ${fmt(lo)} to ${fmt(hi)}"><polyline points="${pts.join(" ")}"/><line class="now"
      x1="0" x2="0" y1="0" y2="22"/></svg>`;
  }

  function seriesHtml(found) {
    if (!found || !found.node) return "";
    const w = found.window;
    const n = (w.window && w.window.binCount) || 0;
    const bins = w.downsampled ? w.bins : null;
    const rows = Object.entries(found.node.series || {}).map(([key, values]) => `<tr data-key="${esc(key)}">
      <th scope="row">${esc(key)}</th><td>${sparkSvg(values, bins, n)}</td><td class="num now-value"></td></tr>`);
    return `<h4>Series</h4><table class="series">${rows.join("")}</table>`;
  }

  function semanticsHtml(g) {
    const sem = g.semantics || {};
    const rows = Object.entries(sem).filter(([, v]) => typeof v === "string").map(([role, series]) =>
      `<tr><th scope="row">${esc(role)}</th><td>${link(series)}</td></tr>`);
    return rows.length ? `<h4>Semantics</h4><table class="semantics">${rows.join("")}</table>` : "";
  }

  async function build(id) {
    const el = document.createElement("article");
    el.className = "inspector-card";
    el.dataset.node = id;
    el.setAttribute("aria-label", `Node ${id}`);
    el.innerHTML = `<header><h3>${esc(id)}</h3><button type="button" class="close"
      aria-label="Close ${esc(id)}" title="Unpin">×</button></header><p class="muted small kind">…</p>`;
    cards.set(id, { el });
    root.appendChild(el);
    let g = graphNode(id);
    if (!g || !("semantics" in g)) g = (await loadFullGraph()).get(id) || g;
    const found = await windowOf(id).catch(() => null);
    if (!cards.has(id)) return; // closed while loading
    const kind = g ? `${g.kind} · ${g.category}` : "not a node of this run's state";
    el.querySelector(".kind").textContent = kind;
    el.insertAdjacentHTML("beforeend", (g ? semanticsHtml(g) + expressionHtml(g) : "") +
      (g && !g.expression && g.inputs && g.inputs.length ? `<h4>Inputs</h4><p>${g.inputs.map((i) => link(i)).join(", ")}</p>` : "") +
      seriesHtml(found) + `<h4>At bin <span class="at-bin"></span></h4><div class="now"></div>` + warningsHtml(id));
    cards.get(id).found = found;
    moveMarker(cards.get(id));
    refresh();
  }

  function moveMarker(card) {
    const f = card.found;
    if (!f || !f.window) return;
    for (const line of card.el.querySelectorAll("svg.spark line.now")) {
      line.setAttribute("x1", FT.view.bin); line.setAttribute("x2", FT.view.bin);
    }
  }

  async function refresh() {
    const bin = FT.view.bin;
    if (!cards.size) return;
    let snap;
    try { snap = await snapshot(bin); } catch (err) {
      for (const c of cards.values()) { const now = c.el.querySelector(".now"); if (now) now.textContent = err.message; }
      return;
    }
    if (bin !== FT.view.bin) return; // a newer bin is on its way
    shownBin = bin;
    const byId = new Map(snap.nodes.map((n) => [n.id, n]));
    for (const [id, card] of cards) {
      const now = card.el.querySelector("div.now");
      if (!now) continue; // still building
      const node = byId.get(id);
      card.el.querySelector(".at-bin").textContent = `${bin}` + (snap.bin && snap.bin.startUtc ? ` · ${snap.bin.startUtc}` : "");
      if (!node) { now.textContent = "The run stored no series for this node."; continue; }
      const values = { ...(node.metrics || {}), ...(node.derived || {}) };
      for (const tr of card.el.querySelectorAll("table.series tr")) {
        const v = values[tr.dataset.key];
        tr.querySelector(".now-value").textContent = fmt(v);
      }
      const lines = Object.keys(node.derived || {}).map((k) => explain(k, node, snap)).filter(Boolean);
      const metrics = Object.entries(node.metrics || {}).map(([k, v]) =>
        `<tr><th scope="row">${esc(k)}</th><td class="num" data-metric="${esc(k)}">${fmt(v)}</td></tr>`).join("");
      now.innerHTML = `<table class="values">${metrics}</table>` +
        (lines.length ? `<ul class="calcs">${lines.map((l) => `<li class="calc">${esc(l)}</li>`).join("")}</ul>` : "");
    }
    root.dataset.bin = String(shownBin);
  }

  function sync(pinned) {
    for (const id of [...cards.keys()]) if (!pinned.includes(id)) { cards.get(id).el.remove(); cards.delete(id); }
    for (const id of pinned) if (!cards.has(id)) build(id);
    highlight(FT.view.selected);
  }
  function highlight(id) {
    for (const [cid, c] of cards) c.el.classList.toggle("selected", cid === id);
  }

  root.addEventListener("click", (ev) => {
    const t = ev.target.closest("button");
    if (!t) return;
    const card = t.closest(".inspector-card");
    if (t.classList.contains("close")) FT.unpin(card.dataset.node);
    else if (t.dataset.bin !== undefined) FT.setBin(Number(t.dataset.bin));
    else if (t.dataset.node) FT.pin(t.dataset.node);
  });
  root.addEventListener("mouseover", (ev) => {
    const t = ev.target.closest("[data-node]");
    if (t && t.dataset.node !== FT.view.selected) FT.select(t.dataset.node);
  });
  root.addEventListener("mouseleave", () => FT.select(null));
  root.addEventListener("focusin", (ev) => {
    const t = ev.target.closest("[data-node]");
    if (t && t.dataset.node !== FT.view.selected) FT.select(t.dataset.node);
  });

  document.addEventListener("ft:pin", (ev) => sync(ev.detail));
  document.addEventListener("ft:select", (ev) => highlight(ev.detail));
  document.addEventListener("ft:bin", () => { for (const c of cards.values()) moveMarker(c); refresh(); });
  document.addEventListener("ft:data", () => { windows.clear(); snapshots.clear(); fullGraph = null; });
})();
