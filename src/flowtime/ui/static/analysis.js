// FlowTime UI analysis pages: the experiment form's variant fields, the progress poll, the result charts (plotly.js).
// Each chart's container gets data-chart="<name>" and data-ready="true" once drawn; its traces are plotly's own
// (el.data), drawn from the Engine's numbers as they are (no rounding), so tests compare them with the result JSON.
(function () {
  "use strict";
  const BLUE = "#2f5bd3", ORANGE = "#e0701b", GREEN = "#16a34a", RED = "#c2312b", GREY = "#98a2b3";
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1c2430" };
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d", "toggleSpikelines"] };
  const AXIS = { gridcolor: "#eef0f3", zerolinecolor: "#d0d5dd", linecolor: "#d0d5dd" };
  const UNIT_MINUTES = { minutes: 1, hours: 60, days: 1440, weeks: 10080 };
  const LIVE = ["queued", "running", "cancelling"];

  // ---- the form -----------------------------------------------------------------------------------
  const form = document.getElementById("analysis-form");
  if (form) {
    // A variant's fields (a distribution's mean and sd, say) show only while its kind is chosen.
    const sync = () => {
      form.querySelectorAll("[data-selector]").forEach((el) => {
        const sel = form.querySelector(`[name="${CSS.escape(el.dataset.selector)}"]`);
        el.classList.toggle("hidden", !sel || !el.dataset.variants.split(" ").includes(sel.value));
      });
    };
    form.addEventListener("change", (e) => { if (e.target.matches("[data-variant-select]")) sync(); });
    sync();
    // "+ another row" links keep what has been typed (the GET form takes any field by its spec path).
    document.querySelectorAll("#more-parameters, #more-metrics, #more-constraints").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      const url = new URL(a.href, location.href);
      for (const [k, v] of new FormData(form)) {
        if (v !== "" && !["csrf_token", "kind", "prows", "mrows", "crows", "run", "template", "hash"].includes(k)) url.searchParams.append(k, v);
      }
      location.href = url.toString();
    }));
  }

  // ---- progress -------------------------------------------------------------------------------------
  // One place reads the experiment's state: a poll of the UI's status.json. An EventSource on the Engine's
  // event stream (relayed by the UI) can replace it; the page only needs onUpdate(status) calls.
  function watch(id, onUpdate, every) {
    let stopped = false;
    async function tick() {
      if (stopped) return;
      try {
        const resp = await fetch(`/experiments/${encodeURIComponent(id)}/status.json`, { headers: { Accept: "application/json" } });
        if (resp.ok && onUpdate(await resp.json()) === false) return;
      } catch (err) { /* a missed poll is retried */ }
      setTimeout(tick, every);
    }
    tick();
    return () => { stopped = true; };
  }

  const progress = document.getElementById("progress");
  if (progress) {
    const first = JSON.parse(document.getElementById("experiment-status").textContent);
    let last = { t: performance.now(), done: (first.progress || {}).done || 0 };
    const started = last.t;
    watch(progress.dataset.experiment, (s) => {
      const p = s.progress || {};
      const done = p.done || 0, now = performance.now();
      document.getElementById("progress-done").textContent = String(done);
      document.getElementById("exp-status").textContent = s.status;
      if (p.total) document.getElementById("progress-fill").style.width = `${Math.min(100, (100 * done) / p.total)}%`;
      progress.querySelector("[role=progressbar]").setAttribute("aria-valuenow", String(done));
      const secs = (now - started) / 1000;
      if (secs > 0 && done > 0) {
        const rate = done / secs;
        const eta = p.total && rate > 0 ? ` · about ${Math.ceil((p.total - done) / rate)} s left` : "";
        document.getElementById("progress-rate").textContent = `${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} points/s${eta}`;
      }
      last = { t: now, done };
      if (!LIVE.includes(s.status)) { location.reload(); return false; }
      return true;
    }, 400);
  }

  // ---- charts ---------------------------------------------------------------------------------------
  const dataEl = document.getElementById("experiment-data");
  if (!dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const charts = document.getElementById("charts");

  function card(name, title, note) {
    const c = document.createElement("div");
    c.className = "card";
    c.innerHTML = `<div class="card-head"><h3></h3></div><div class="card-body" style="padding:8px"><div class="chart-sm"></div><p class="muted small" style="margin:4px 8px 0"></p></div>`;
    c.querySelector("h3").textContent = title;
    c.querySelector("p").textContent = note || "";
    const el = c.querySelector(".chart-sm");
    el.dataset.chart = name;
    charts.appendChild(c);
    return el;
  }

  function draw(el, traces, layout) {
    Plotly.newPlot(el, traces, {
      font: FONT, margin: { l: 64, r: 20, t: 36, b: 52 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff", showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, ...layout,
      xaxis: { ...AXIS, ...(layout.xaxis || {}) }, yaxis: { ...AXIS, ...(layout.yaxis || {}) },
    }, CONFIG);
    el.dataset.ready = "true";
  }

  const columns = data.table.columns, rows = data.table.rows;
  const col = (name) => rows.map((r) => r[columns.indexOf(name)]);

  // Clock time from the grid's start (hours, or minutes for a grid under three hours); bin index without a grid.
  function clock(n) {
    const g = data.grid;
    if (!g || !UNIT_MINUTES[g.binUnit]) return { x: [...Array(n).keys()], title: "bin" };
    const step = g.binSize * UNIT_MINUTES[g.binUnit];
    const hours = n * step >= 180;
    return { x: [...Array(n).keys()].map((i) => (hours ? (i * step) / 60 : i * step)), title: `time (${hours ? "hours" : "minutes"} from the start, ${g.binSize} ${g.binUnit} per bin)` };
  }

  function sweep() {
    const [p0, p1] = data.parameters;
    for (const m of data.metrics) {
      if (data.parameters.length === 2) {
        const xs = [...new Set(col(p0))].sort((a, b) => a - b), ys = [...new Set(col(p1))].sort((a, b) => a - b);
        if (xs.length * ys.length === rows.length) {
          const z = ys.map(() => xs.map(() => null));
          rows.forEach((r) => { z[ys.indexOf(r[columns.indexOf(p1)])][xs.indexOf(r[columns.indexOf(p0)])] = r[columns.indexOf(m)]; });
          draw(card(`heat:${m}`, `${m} over ${p0} × ${p1}`), [{ type: "heatmap", x: xs, y: ys, z, colorscale: "Viridis", name: m,
            hovertemplate: `${p0} %{x}<br>${p1} %{y}<br>${m} %{z}<extra></extra>` }], { xaxis: { title: { text: p0 } }, yaxis: { title: { text: p1 } }, showlegend: false });
          continue;
        }
      }
      const order = rows.map((_, i) => i).sort((a, b) => rows[a][0] - rows[b][0]);
      const others = data.parameters.slice(1);
      const groups = new Map();
      for (const i of order) {
        const key = others.map((p) => `${p}=${rows[i][columns.indexOf(p)]}`).join(", ");
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(i);
      }
      const lines = groups.size <= 8;
      const traces = lines ? [...groups].map(([key, idx]) => ({ type: "scatter", mode: "lines+markers", name: key || m,
        x: idx.map((i) => rows[i][0]), y: idx.map((i) => rows[i][columns.indexOf(m)]) }))
        : [{ type: "scatter", mode: "markers", name: m, x: order.map((i) => rows[i][0]), y: order.map((i) => rows[i][columns.indexOf(m)]) }];
      draw(card(`sweep:${m}`, `${m} against ${p0}`), traces, { xaxis: { title: { text: p0 } }, yaxis: { title: { text: m } }, showlegend: traces.length > 1 });
    }
  }

  function montecarlo() {
    const qs = (data.percentiles || []).slice().sort((a, b) => a - b);
    for (const [series, bands] of Object.entries(data.bands || {})) {
      const n = (bands[`p${qs[0]}`] || []).length, t = clock(n);
      const traces = [];
      for (let i = 0; i < Math.floor(qs.length / 2); i++) {
        const lo = `p${qs[i]}`, hi = `p${qs[qs.length - 1 - i]}`, alpha = 0.16 + 0.14 * i;
        traces.push({ type: "scatter", mode: "lines", name: lo, x: t.x, y: bands[lo], line: { width: 0.5, color: BLUE, shape: "hv" }, legendgroup: lo, showlegend: false });
        traces.push({ type: "scatter", mode: "lines", name: `${lo}–${hi}`, x: t.x, y: bands[hi], line: { width: 0.5, color: BLUE, shape: "hv" }, fill: "tonexty",
          fillcolor: `rgba(47, 91, 211, ${alpha})`, legendgroup: lo, meta: hi, hovertemplate: `${hi} %{y}<extra></extra>` });
      }
      if (qs.length % 2) {
        const mid = `p${qs[Math.floor(qs.length / 2)]}`;
        traces.push({ type: "scatter", mode: "lines", name: mid, x: t.x, y: bands[mid], line: { width: 2.2, color: BLUE, shape: "hv" } });
      }
      draw(card(`bands:${series}`, `${series}: percentile bands over ${data.table.rows.length} replications`,
        `Shaded: ${qs.slice(0, Math.floor(qs.length / 2)).map((q, i) => `p${q}–p${qs[qs.length - 1 - i]}`).join(", ")}; line: the median. A bin's value holds for the bin.`),
        traces, { xaxis: { title: { text: t.title } }, yaxis: { title: { text: series } }, hovermode: "x unified" });
    }
    for (const [m, h] of Object.entries(data.histograms || {})) {
      const mids = h.counts.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2), widths = h.counts.map((_, i) => h.edges[i + 1] - h.edges[i]);
      draw(card(`hist:${m}`, `${m}: distribution over the replications`, h.nan ? `${h.nan} replications gave no value (not counted).` : ""),
        [{ type: "bar", name: m, x: mids, y: h.counts, width: widths, marker: { color: ORANGE, line: { color: "#fff", width: 1 } } }],
        { xaxis: { title: { text: m } }, yaxis: { title: { text: "replications" } }, showlegend: false, bargap: 0 });
    }
  }

  function sensitivity() {
    const a = data.answer || {};
    if (a.tornado) {
      for (const [m, effects] of Object.entries(a.tornado)) {
        const rev = effects.slice().reverse(), names = rev.map((e) => e.parameter);
        draw(card(`tornado:${m}`, `Sensitivity of ${m} (local, widest swing on top)`, "Bars: the change in the metric with each parameter stepped down and up from the base point."),
          [{ type: "bar", orientation: "h", name: "parameter down", y: names, x: rev.map((e) => e.low), marker: { color: BLUE } },
           { type: "bar", orientation: "h", name: "parameter up", y: names, x: rev.map((e) => e.high), marker: { color: ORANGE } }],
          { barmode: "overlay", xaxis: { title: { text: `change in ${m}` } }, margin: { l: 140, r: 20, t: 36, b: 52 } });
      }
      return;
    }
    const indices = a.indices || {};
    const sets = a.method === "morris" ? [["muStar", "muStarConf", BLUE], ["sigma", null, GREY]] : [["S1", "S1Conf", BLUE], ["ST", "STConf", ORANGE]];
    for (const [m, got] of Object.entries(indices)) {
      const traces = sets.filter(([k]) => got[k]).map(([k, conf, color]) => ({
        type: "bar", name: k, x: a.parameters, y: got[k], marker: { color },
        error_y: conf && got[conf] ? { type: "data", array: got[conf], visible: true, color: "#344054" } : undefined,
      }));
      draw(card(`indices:${m}`, `Sensitivity of ${m} (${a.method})`, sets[0][1] ? `Error bars: the ${Math.round(100 * ((data.settings || {}).confidence || 0.95))} % bootstrap interval.` : ""),
        traces, { barmode: "group", yaxis: { title: { text: a.method === "morris" ? "effect" : "index" } } });
    }
  }

  function goalseek() {
    const a = data.answer || {}, tr = a.trace || [], n = tr.map((_, i) => i + 1);
    draw(card("goalseek:metric", `${a.metric} at each evaluation`, `Target ${a.target}; the bracket's two ends are evaluated first.`),
      [{ type: "scatter", mode: "lines+markers", name: a.metric, x: n, y: tr.map((p) => p.value), line: { color: BLUE } },
       { type: "scatter", mode: "lines", name: "target", x: [1, Math.max(1, n.length)], y: [a.target, a.target], line: { color: RED, dash: "dash" } }],
      { xaxis: { title: { text: "evaluation" }, dtick: 1 }, yaxis: { title: { text: a.metric } } });
    draw(card("goalseek:x", `${a.parameter} at each evaluation`),
      [{ type: "scatter", mode: "lines+markers", name: a.parameter, x: n, y: tr.map((p) => p.x), line: { color: ORANGE } }],
      { xaxis: { title: { text: "evaluation" }, dtick: 1 }, yaxis: { title: { text: a.parameter } }, showlegend: false });
  }

  function optimize() {
    const a = data.answer || {}, tr = a.trace || [];
    const traces = [{ type: "scatter", mode: "lines+markers", name: `${a.metric} (${a.goal})`, x: tr.map((s) => s.iteration), y: tr.map((s) => s.objective), line: { color: BLUE } }];
    if (tr.some((s) => s.violation)) traces.push({ type: "scatter", mode: "lines", name: "constraint violation", yaxis: "y2", x: tr.map((s) => s.iteration), y: tr.map((s) => s.violation), line: { color: RED, dash: "dot" } });
    draw(card("optimize:trace", `Optimisation trace (${a.method})`), traces, { xaxis: { title: { text: "iteration" } }, yaxis: { title: { text: a.metric } },
      yaxis2: { ...AXIS, overlaying: "y", side: "right", title: { text: "violation" }, rangemode: "tozero" } });
  }

  function fit() {
    const a = data.answer || {}, obs = data.observed || [], t = clock(obs.length);
    draw(card("fit:series", "Fitted against observed"),
      [{ type: "scatter", mode: "markers", name: "observed", x: t.x, y: obs, marker: { color: "#111827", size: 7 } },
       { type: "scatter", mode: "lines", name: "fitted", x: t.x, y: a.fitted, line: { color: BLUE, width: 2.2, shape: "hv" } }],
      { xaxis: { title: { text: t.title } }, hovermode: "x unified" });
    draw(card("fit:residuals", "Residuals (fitted − observed)"),
      [{ type: "bar", name: "residual", x: t.x, y: a.residuals, marker: { color: (a.residuals || []).map((r) => (r > 0 ? GREEN : r < 0 ? RED : GREY)) } }],
      { xaxis: { title: { text: t.title } }, showlegend: false });
  }

  const KINDS = { sweep, montecarlo, sensitivity, goalseek, optimize, fit };
  (KINDS[data.kind] || (() => {}))();
  charts.dataset.ready = "true";
})();
