// FlowTime UI view state for the run topology page: one place that holds what the user looks at
// (metric, bin, pinned and selected nodes) and the run's state data, so the topology, scrubber,
// heatmap and inspector stay in step without knowing each other.
//
// window.FT.view: { runId, grid, metric, bin, pinned: string[], selected: string|null, data: {graph, window} }
// Setters dispatch DOM events on document (detail = the new value):
//   ft:data    the run's graph and whole-run state window are loaded (detail: FT.view.data)
//   ft:metric  FT.setMetric(name)        ft:bin    FT.setBin(i)   (clamped to the grid)
//   ft:pin     FT.pin(id) / FT.unpin(id) (detail: the pinned list)
//   ft:select  FT.select(id|null)        (hover/focus highlight shared by all views)
// FT.scale(metric) is the one colour scale of a metric over the full run (99th-percentile clip), shared by
// every view: { lo, hi, color(v) -> css colour, legend: [[value, colour], ...] }. The palette is viridis
// (perceptually uniform and readable with the common colour-vision deficiencies).
(function () {
  "use strict";
  const boot = JSON.parse(document.getElementById("topology-data").textContent);
  const view = { runId: boot.runId, grid: boot.grid, metric: null, bin: 0, pinned: [], selected: null, data: null };
  const emit = (name, detail) => document.dispatchEvent(new CustomEvent(name, { detail }));

  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
    "#b5de2b", "#fde725"];
  const scales = new Map();

  function values(metric) {
    const out = [];
    const nodes = (view.data && view.data.window && view.data.window.nodes) || [];
    for (const n of nodes) {
      const s = n.series && n.series[metric];
      if (!s) continue;
      for (const v of s) if (v !== null && Number.isFinite(v)) out.push(v);
    }
    return out.sort((a, b) => a - b);
  }

  function scale(metric) {
    if (scales.has(metric)) return scales.get(metric);
    const vs = values(metric);
    const lo = vs.length ? vs[0] : 0;
    const hi = vs.length ? vs[Math.min(vs.length - 1, Math.floor(0.99 * (vs.length - 1)))] : 1;
    const span = hi > lo ? hi - lo : 1;
    const color = (v) => {
      if (v === null || v === undefined || !Number.isFinite(v)) return "#d0d5dd";
      const t = Math.min(1, Math.max(0, (v - lo) / span));
      return VIRIDIS[Math.min(VIRIDIS.length - 1, Math.floor(t * VIRIDIS.length))];
    };
    const legend = VIRIDIS.map((c, i) => [lo + (span * i) / VIRIDIS.length, c]);
    const s = { lo, hi, color, legend };
    scales.set(metric, s);
    return s;
  }

  async function getJson(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) throw new Error((body && (body.detail || body.title)) || `HTTP ${resp.status}`);
    return body;
  }

  const FT = window.FT = window.FT || {};
  Object.assign(FT, {
    view,
    scale,
    getJson,
    setMetric(name) { view.metric = name; emit("ft:metric", name); },
    setBin(i) {
      const bins = (view.grid && view.grid.bins) || 1;
      view.bin = Math.min(bins - 1, Math.max(0, Math.round(i)));
      emit("ft:bin", view.bin);
    },
    pin(id) { if (!view.pinned.includes(id)) { view.pinned.push(id); emit("ft:pin", view.pinned.slice()); } },
    unpin(id) { view.pinned = view.pinned.filter((p) => p !== id); emit("ft:pin", view.pinned.slice()); },
    select(id) { view.selected = id; emit("ft:select", id); },
    stateUrl(what, params) {
      const q = new URLSearchParams(params || {}).toString();
      return `/runs/${encodeURIComponent(view.runId)}/state/${what}.json${q ? "?" + q : ""}`;
    },
  });

  async function load() {
    const status = document.getElementById("topology-status");
    try {
      const [graph, window_] = await Promise.all([getJson(FT.stateUrl("graph")), getJson(FT.stateUrl("state_window"))]);
      view.data = { graph, window: window_ };
      scales.clear();
      status.textContent = "";
      emit("ft:data", view.data);
    } catch (err) {
      status.textContent = `Could not load the run's state: ${err.message}`;
      status.classList.add("error");
    }
  }
  document.addEventListener("DOMContentLoaded", load);
})();
