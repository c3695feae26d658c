// FlowTime UI heatmap: the run's topology nodes (rows) by bins (columns) for the current metric, drawn on a
// canvas in the shared colour scale (FT.scale), so a node at a bin has the same colour as on the topology.
//
// Long runs are fitted to the width: when there are more bins than pixels, a column is a bucket of bins and
// shows the bucket's max (a peak is never dropped by a stride); the note above the plot says so. When the
// Engine downsampled the window (min/max per bucket, decision 0027), columns are whole multiples of its
// buckets, so a column's max is the exact max of its bins.
// Keyboard: the plot is one focusable element; arrows move a focus cell, Enter pins its node and moves the
// time to its bin; a live region announces node, time, bin and value (decision 0041).
(function () {
  "use strict";
  const FT = window.FT;
  const root = document.getElementById("heatmap");
  if (!FT || !root) return;

  const SORTS = [["topological", "Topological"], ["id", "Id"], ["max", "Max (desc)"], ["mean", "Mean (desc)"],
    ["variance", "Variance (desc)"]];
  const DEFAULT_METRICS = ["utilization", "queue", "arrivals", "served"];
  const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 43200, 131040, 525600];
  const TOP = 10; // room for the current-bin marker above the cells
  const AXIS = 30;
  const UNDEFINED_ROW = "#eef0f3";

  const hm = FT.heatmap = { paintMs: null, firstPaintAt: null, per: 1, columns: 0, rows: [] };
  let layout = null; // geometry and per-row column values of the last full paint
  let focus = null; // {row, col} of the keyboard focus cell
  let hover = null;
  let sortKey = "topological";

  root.innerHTML = `
    <details class="heatmap-box" open>
      <summary><h2 class="heatmap-title">Heatmap <span class="muted small">nodes × bins</span></h2></summary>
      <div class="heatmap-bar">
        <label>Rows <select class="heatmap-sort" aria-label="Order of the heatmap rows">
          ${SORTS.map(([k, t]) => `<option value="${k}">${t}</option>`).join("")}</select></label>
        <span class="heatmap-note muted small" aria-live="polite"></span>
      </div>
      <div class="heatmap-plot" tabindex="0" role="application" aria-roledescription="heatmap"
           aria-describedby="heatmap-help">
        <canvas class="heatmap-cells"></canvas><canvas class="heatmap-overlay" aria-hidden="true"></canvas>
        <div class="heatmap-tip" role="tooltip" hidden></div>
      </div>
      <p id="heatmap-help" class="muted small">Arrow keys move between cells (Home/End: first/last column,
        Page Up/Down: ten columns), Enter pins the node at that time, Escape clears the highlight.</p>
      <p class="heatmap-live small" role="status" aria-live="polite"></p>
    </details>`;
  const plot = root.querySelector(".heatmap-plot");
  const cells = root.querySelector(".heatmap-cells");
  const overlay = root.querySelector(".heatmap-overlay");
  const tip = root.querySelector(".heatmap-tip");
  const note = root.querySelector(".heatmap-note");
  const live = root.querySelector(".heatmap-live");
  const sortSelect = root.querySelector(".heatmap-sort");

  // ---- data -------------------------------------------------------------------------------------------

  function windowData() { return FT.view.data && FT.view.data.window; }
  function gridInfo() {
    const w = windowData();
    const g = (w && w.metadata && w.metadata.grid) || FT.view.grid || {};
    const start = g.startTimeUtc ? Date.parse(g.startTimeUtc) : NaN;
    return { bins: (w && w.window && w.window.binCount) || g.bins || 0, binMinutes: g.binMinutes || 0,
      start: Number.isFinite(start) ? start : null, startBin: (w && w.window && w.window.startBin) || 0 };
  }

  function metric() {
    if (FT.view.metric) return FT.view.metric;
    const nodes = (windowData() && windowData().nodes) || [];
    const keys = new Set();
    for (const n of nodes) for (const k of Object.keys(n.series || {})) keys.add(k);
    return DEFAULT_METRICS.find((k) => keys.has(k)) || keys.values().next().value || null;
  }

  // Kahn's order over the graph's edges, ties in declaration order (as the flow-latency walk, decision 0025).
  function topological(ids) {
    const graph = FT.view.data && FT.view.data.graph;
    const order = new Map(((graph && graph.nodes) || []).map((n, i) => [n.id, i]));
    const pos = (id) => (order.has(id) ? order.get(id) : order.size + ids.indexOf(id));
    const indeg = new Map(ids.map((id) => [id, 0]));
    const next = new Map(ids.map((id) => [id, []]));
    for (const e of (graph && graph.edges) || []) {
      if (indeg.has(e.from) && indeg.has(e.to) && e.from !== e.to) {
        next.get(e.from).push(e.to);
        indeg.set(e.to, indeg.get(e.to) + 1);
      }
    }
    const ready = ids.filter((id) => indeg.get(id) === 0).sort((a, b) => pos(a) - pos(b));
    const out = [];
    while (ready.length) {
      const id = ready.shift();
      out.push(id);
      for (const t of next.get(id)) {
        indeg.set(t, indeg.get(t) - 1);
        if (indeg.get(t) === 0) { ready.push(t); ready.sort((a, b) => pos(a) - pos(b)); }
      }
    }
    const rest = ids.filter((id) => !out.includes(id)).sort((a, b) => pos(a) - pos(b)); // a cycle's nodes
    return out.concat(rest);
  }

  function stats(values) {
    let n = 0, sum = 0, sq = 0, max = -Infinity;
    for (const v of values) {
      if (v === null || !Number.isFinite(v)) continue;
      n += 1; sum += v; sq += v * v; if (v > max) max = v;
    }
    const mean = n ? sum / n : -Infinity;
    return { max: n ? max : -Infinity, mean, variance: n ? sq / n - mean * mean : -Infinity };
  }

  function sortedRows(key) {
    const nodes = (windowData() && windowData().nodes) || [];
    const rows = nodes.map((n) => ({ id: n.id, values: (n.series || {})[key] || null }));
    const ids = rows.map((r) => r.id);
    if (sortKey === "id") rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    else if (sortKey === "topological") {
      const rank = new Map(topological(ids).map((id, i) => [id, i]));
      rows.sort((a, b) => rank.get(a.id) - rank.get(b.id));
    } else {
      const s = new Map(rows.map((r) => [r.id, r.values ? stats(r.values)[sortKey] : -Infinity]));
      rows.sort((a, b) => (s.get(b.id) - s.get(a.id)) || (ids.indexOf(a.id) - ids.indexOf(b.id)));
    }
    return rows;
  }

  // Each row's values folded into columns of `per` bins: the max, and the bin it is at when known.
  function columnsOf(values, per, ncol, g) {
    const w = windowData();
    const max = new Float64Array(ncol).fill(NaN);
    const at = new Int32Array(ncol).fill(-1);
    const binsOf = w.downsampled ? w.bins : null;
    for (let i = 0; i < values.length; i += 1) {
      const v = values[i];
      if (v === null || !Number.isFinite(v)) continue;
      const bin = binsOf ? binsOf[i] : g.startBin + i;
      const c = Math.min(ncol - 1, Math.floor((bin - g.startBin) / per));
      if (!(v <= max[c])) { max[c] = v; at[c] = binsOf ? -1 : bin; } // NaN compares false: first value wins
    }
    return { max, at };
  }

  // ---- time labels ----------------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function offset(minutes) {
    const d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    return "+" + ([d && `${d}d`, h && `${h}h`, m && `${m}m`].filter(Boolean).join(" ") || "0");
  }
  function clock(bin, g) { // full text for tooltips and announcements
    if (g.start === null) return `${offset(bin * g.binMinutes)} from the start`;
    const t = new Date(g.start + bin * g.binMinutes * 60000);
    return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
      `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())} UTC`;
  }
  function tickLabel(bin, stepMinutes, g, prevDay) {
    if (g.start === null) return { text: offset(bin * g.binMinutes), day: null };
    const t = new Date(g.start + bin * g.binMinutes * 60000);
    const day = `${MONTHS[t.getUTCMonth()]} ${t.getUTCDate()}`;
    if (stepMinutes >= 1440) return { text: day, day };
    const hm_ = `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}`;
    return { text: day === prevDay ? hm_ : `${day} ${hm_}`, day };
  }

  const fmt = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "undefined"
    : Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(+v.toPrecision(6)));

  // ---- drawing --------------------------------------------------------------------------------------

  function sizeCanvas(c, w, h) {
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    c.style.width = `${w}px`; c.style.height = `${h}px`;
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  function paint() {
    const t0 = performance.now();
    const w = windowData();
    const key = metric();
    if (!w || !key) { note.textContent = w ? "No series to show." : ""; return; }
    const g = gridInfo();
    const rows = sortedRows(key);
    const ctx0 = cells.getContext("2d");
    ctx0.font = "12px system-ui, sans-serif";
    const gutter = Math.min(200, 16 + Math.max(40, ...rows.map((r) => ctx0.measureText(r.id).width)));
    const width = Math.max(200, plot.clientWidth - gutter - 8);
    const bucket = (w.downsampled && w.downsampled.bucketBins) || 1;
    let per = Math.max(1, Math.ceil(g.bins / width));
    per = Math.ceil(per / bucket) * bucket; // never split one of the Engine's buckets over two columns
    const ncol = Math.ceil(g.bins / per);
    const colW = per === 1 ? Math.max(1, Math.min(64, Math.floor(width / ncol))) : 1;
    const rowH = rows.length > 30 ? 12 : 18;
    const plotW = gutter + ncol * colW + 8, plotH = TOP + rows.length * rowH + AXIS;
    const scale = FT.scale(key);
    const cols = rows.map((r) => (r.values ? columnsOf(r.values, per, ncol, g) : null));
    const ctx = sizeCanvas(cells, plotW, plotH);
    sizeCanvas(overlay, plotW, plotH);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    rows.forEach((r, i) => {
      const y = TOP + i * rowH;
      ctx.fillStyle = r.values ? "#1c2430" : "#98a2b3";
      ctx.fillText(r.id, 12, y + rowH / 2, gutter - 16);
      if (!cols[i]) { // the metric is not defined for this node: a muted row, not a row of "no data" cells
        ctx.fillStyle = UNDEFINED_ROW; ctx.fillRect(gutter, y, ncol * colW, rowH - 1);
        ctx.fillStyle = "#98a2b3"; ctx.fillText(`no ${key} for this node`, gutter + 6, y + rowH / 2);
        return;
      }
      let last = null;
      for (let c = 0; c < ncol; c += 1) {
        const colour = scale.color(cols[i].max[c]);
        if (colour !== last) { ctx.fillStyle = colour; last = colour; }
        ctx.fillRect(gutter + c * colW, y, colW, rowH - 1);
      }
    });
    drawAxis(ctx, g, per, colW, gutter, TOP + rows.length * rowH, ncol);
    layout = { rows, cols, per, ncol, colW, rowH, gutter, key, g, plotW, plotH };
    hm.geometry = { gutter, colW, rowH, top: TOP };
    hm.per = per; hm.columns = ncol; hm.rows = rows.map((r) => r.id); hm.metric = key;
    const defined = rows.filter((r) => r.values).length;
    note.textContent = (per === 1 ? "One column per bin" :
      `Each column = ${per} bins, showing the max${w.downsampled ? " (of the Engine's min/max per bucket)" : ""}`) +
      ` · ${defined} of ${rows.length} nodes report ${key}` + (g.start === null ? " · times from the run's start" :
      " · times in UTC");
    plot.setAttribute("aria-label", `Heatmap of ${key}: ${rows.length} nodes by ${g.bins} bins` +
      (per > 1 ? `, ${per} bins a column showing the max` : ""));
    if (focus) focus = { row: Math.min(focus.row, rows.length - 1), col: Math.min(focus.col, ncol - 1) };
    drawOverlay();
    hm.paintMs = performance.now() - t0;
    if (hm.firstPaintAt === null) hm.firstPaintAt = performance.now();
    root.dataset.painted = String((+root.dataset.painted || 0) + 1);
  }

  function drawAxis(ctx, g, per, colW, gutter, y, ncol) {
    const pxPerBin = colW / per;
    const minutes = g.binMinutes || 1;
    const step = TICK_MINUTES.map((m) => Math.max(1, Math.round(m / minutes)))
      .find((b) => b * pxPerBin >= 90) || Math.ceil(90 / pxPerBin);
    ctx.fillStyle = "#667085"; ctx.strokeStyle = "#98a2b3"; ctx.textBaseline = "top";
    let prevDay = null;
    for (let b = 0; b < g.bins; b += step) {
      const x = gutter + (b / per) * colW;
      ctx.beginPath(); ctx.moveTo(x + 0.5, y); ctx.lineTo(x + 0.5, y + 5); ctx.stroke();
      const label = tickLabel(g.startBin + b, step * minutes, g, prevDay);
      prevDay = label.day;
      if (x + ctx.measureText(label.text).width <= gutter + ncol * colW + 8) ctx.fillText(label.text, x + 2, y + 7);
    }
  }

  function cellRect(row, col) {
    const L = layout;
    return { x: L.gutter + col * L.colW, y: TOP + row * L.rowH, w: L.colW, h: L.rowH - 1 };
  }

  function drawOverlay() {
    if (!layout) return;
    const L = layout;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, L.plotW, L.plotH);
    const gridH = L.rows.length * L.rowH;
    L.rows.forEach((r, i) => { // pinned and selected rows, in the label gutter
      const y = TOP + i * L.rowH;
      if (FT.view.pinned.includes(r.id)) { ctx.fillStyle = "#2f5bd3"; ctx.fillRect(2, y + 3, 5, L.rowH - 7); }
      if (FT.view.selected === r.id) {
        ctx.strokeStyle = "#111827"; ctx.lineWidth = 1.5;
        ctx.strokeRect(L.gutter - 1, y - 1, L.ncol * L.colW + 2, L.rowH + 1);
      }
    });
    const col = Math.floor((FT.view.bin - L.g.startBin) / L.per);
    if (col >= 0 && col < L.ncol) { // the current bin: a marker above and a white-on-black outline down the grid
      const x = L.gutter + col * L.colW;
      ctx.fillStyle = "#111827";
      ctx.beginPath(); ctx.moveTo(x + L.colW / 2 - 5, 0); ctx.lineTo(x + L.colW / 2 + 5, 0);
      ctx.lineTo(x + L.colW / 2, TOP - 2); ctx.fill();
      ctx.lineWidth = 3; ctx.strokeStyle = "#111827"; ctx.strokeRect(x - 1.5, TOP - 1.5, L.colW + 3, gridH + 2);
      ctx.lineWidth = 1; ctx.strokeStyle = "#ffffff"; ctx.strokeRect(x - 0.5, TOP - 0.5, L.colW + 1, gridH);
    }
    for (const [cell, dash] of [[hover, [2, 2]], [focus && document.activeElement === plot ? focus : null, []]]) {
      if (!cell) continue;
      const r = cellRect(cell.row, cell.col);
      ctx.setLineDash(dash);
      ctx.lineWidth = 2; ctx.strokeStyle = "#111827"; ctx.strokeRect(r.x - 2, r.y - 2, r.w + 4, r.h + 4);
      ctx.lineWidth = 1; ctx.strokeStyle = "#ffffff"; ctx.strokeRect(r.x - 0.5, r.y - 0.5, r.w + 1, r.h + 1);
      ctx.setLineDash([]);
    }
  }

  // ---- cells: what they show, where they point ------------------------------------------------------

  function describe(row, col) {
    const L = layout;
    const r = L.rows[row];
    const first = L.g.startBin + col * L.per;
    const last = Math.min(first + L.per, L.g.startBin + L.g.bins) - 1;
    const c = L.cols[row];
    const value = c ? c.max[col] : NaN;
    const at = c ? c.at[col] : -1;
    const bin = L.per === 1 ? first : at >= 0 ? at : first;
    const when = L.per === 1 ? `${clock(first, L.g)}, bin ${first}`
      : `${clock(first, L.g)} to ${clock(last, L.g)}, bins ${first}–${last}`;
    const what = !c ? `no ${L.key} for this node` : L.per === 1 ? `${L.key} ${fmt(value)}`
      : `max ${L.key} ${fmt(value)}${at >= 0 ? ` at bin ${at}` : ""}`;
    return { node: r.id, bin, text: `${r.id}, ${when}, ${what}` };
  }

  function cellAt(ev) {
    if (!layout) return null;
    const box = overlay.getBoundingClientRect();
    const x = ev.clientX - box.left - layout.gutter, y = ev.clientY - box.top - TOP;
    const col = Math.floor(x / layout.colW), row = Math.floor(y / layout.rowH);
    if (row < 0 || row >= layout.rows.length) return null;
    if (x < 0) return { row, col: -1 }; // the label gutter
    return col < layout.ncol ? { row, col } : null;
  }

  function activate(cell) {
    if (cell.col < 0) { FT.pin(layout.rows[cell.row].id); return; }
    const d = describe(cell.row, cell.col);
    FT.setBin(d.bin);
    FT.pin(d.node);
  }

  overlay.addEventListener("mousemove", (ev) => {
    const cell = cellAt(ev);
    const same = cell && hover && cell.row === hover.row && cell.col === hover.col;
    if (same) { placeTip(ev); return; }
    hover = cell && cell.col >= 0 ? cell : null;
    if (!cell) { tip.hidden = true; drawOverlay(); return; }
    const id = layout.rows[cell.row].id;
    tip.textContent = cell.col < 0 ? `${id} (click to pin)` : describe(cell.row, cell.col).text;
    tip.hidden = false;
    placeTip(ev);
    if (FT.view.selected !== id) FT.select(id); else drawOverlay();
  });
  overlay.addEventListener("mouseleave", () => {
    hover = null; tip.hidden = true;
    if (FT.view.selected !== null) FT.select(null); else drawOverlay();
  });
  overlay.addEventListener("click", (ev) => {
    const cell = cellAt(ev);
    if (!cell) return;
    if (cell.col >= 0) { focus = cell; live.textContent = describe(cell.row, cell.col).text; }
    activate(cell);
  });
  function placeTip(ev) {
    const box = plot.getBoundingClientRect();
    const x = ev.clientX - box.left + 14, y = ev.clientY - box.top + 14;
    tip.style.left = `${Math.min(x, box.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${y}px`;
  }

  function announce() {
    if (!layout || !focus) return;
    const d = describe(focus.row, focus.col);
    live.textContent = d.text;
    if (FT.view.selected !== d.node) FT.select(d.node); else drawOverlay();
  }

  plot.addEventListener("focus", () => {
    if (!layout || !layout.rows.length) return;
    if (!focus) {
      const sel = layout.rows.findIndex((r) => r.id === FT.view.selected || FT.view.pinned.includes(r.id));
      focus = { row: Math.max(0, sel), col: Math.max(0, Math.min(layout.ncol - 1,
        Math.floor((FT.view.bin - layout.g.startBin) / layout.per))) };
    }
    announce();
  });
  plot.addEventListener("blur", drawOverlay);
  plot.addEventListener("keydown", (ev) => {
    if (!layout || !focus) return;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0],
      PageUp: [0, -10], PageDown: [0, 10] };
    if (ev.key in moves) {
      const [dr, dc] = moves[ev.key];
      focus = { row: Math.min(layout.rows.length - 1, Math.max(0, focus.row + dr)),
        col: Math.min(layout.ncol - 1, Math.max(0, focus.col + dc)) };
    } else if (ev.key === "Home" || ev.key === "End") {
      focus = { row: focus.row, col: ev.key === "Home" ? 0 : layout.ncol - 1 };
    } else if (ev.key === "Enter" || ev.key === " ") {
      activate(focus);
    } else if (ev.key === "Escape") {
      live.textContent = ""; FT.select(null); return;
    } else return;
    ev.preventDefault();
    announce();
  });

  sortSelect.addEventListener("change", () => {
    sortKey = sortSelect.value;
    focus = null;
    paint();
  });

  // ---- the bus --------------------------------------------------------------------------------------

  let queued = false;
  function repaint() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; paint(); });
  }
  document.addEventListener("ft:data", () => {
    layout = null; focus = null;
    const key = metric();
    if (!FT.view.metric && key) FT.setMetric(key); // the first view to load picks the default metric
    else paint();
  });
  document.addEventListener("ft:metric", () => { if (windowData()) paint(); });
  for (const name of ["ft:bin", "ft:pin", "ft:select"]) document.addEventListener(name, drawOverlay);
  if ("ResizeObserver" in window) {
    let lastWidth = 0;
    new ResizeObserver(() => {
      if (plot.clientWidth !== lastWidth) { lastWidth = plot.clientWidth; if (layout) repaint(); }
    }).observe(plot);
  }
  if (windowData()) paint(); // loaded before this script ran
})();
