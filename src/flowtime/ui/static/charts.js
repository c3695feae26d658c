// FlowTime UI charts: run series (select, zoom, hover, table) and run comparison, on plotly.js.
// Time runs along x as clock time from the grid's start (UTC) with the bin size in the axis title, or as
// hours/minutes from the start when the grid has none. Series of different units get separate y-axes
// (stacked panels sharing x), so a ratio is not flattened beside counts. Long series are drawn min/max per
// pixel bucket: every peak and trough survives, but no more than two points per pixel are drawn.
(function () {
  "use strict";
  const PALETTE = ["#2f5bd3", "#e0701b", "#16a34a", "#c2312b", "#7c3aed", "#0891b2", "#ca8a04", "#db2777", "#475569", "#65a30d"];
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1c2430" };
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d", "toggleSpikelines"] };
  const AXIS = { gridcolor: "#eef0f3", zerolinecolor: "#d0d5dd", linecolor: "#d0d5dd", automargin: true };
  const UNIT_MINUTES = { minutes: 1, hours: 60, days: 1440, weeks: 10080 };
  // Tick spacings tried, in minutes (each must also be a whole number of bins).
  const NICE = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 40320, 80640, 161280, 525600];
  const DATE_FMT = "%Y-%m-%d %H:%M";
  const fmt = (v) => (v === null || v === undefined ? "" : Number.isInteger(v) ? String(v) : String(+v.toPrecision(10)));
  const pad = (n) => String(n).padStart(2, "0");
  const esc = (t) => String(t).replace(/[<>&]/g, "");

  function duration(m) {
    if (m % 1440 === 0) return `${m / 1440} d`;
    if (m % 60 === 0) return `${m / 60} h`;
    return `${m} min`;
  }
  // "2025-01-01 05:00" (UTC): plotly reads it as a naive date and shows it as written.
  function plotDate(ms) {
    const t = new Date(ms);
    return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}`;
  }

  // ---- the time axis of a grid -----------------------------------------------------------------------
  function timeAxis(grid) {
    const g = grid || {};
    const m = g.binMinutes || (g.binSize && UNIT_MINUTES[g.binUnit] ? g.binSize * UNIT_MINUTES[g.binUnit] : null);
    const bins = g.bins || 0;
    if (!m) return { kind: "bin", at: (i) => i, layout: { title: { text: "bin" } }, minutes: null };
    const size = duration(m);
    if (g.startTimeUtc) {
      const t0 = Date.parse(g.startTimeUtc);
      if (!Number.isNaN(t0)) {
        return {
          kind: "clock", minutes: m, t0, bins,
          at: (i) => plotDate(t0 + i * m * 60000),
          layout: { type: "date", title: { text: `time (UTC) · ${size} bins` }, tickformat: DATE_FMT, hoverformat: DATE_FMT },
        };
      }
    }
    const hours = bins * m >= 180;
    return {
      kind: "offset", minutes: m,
      at: (i) => (hours ? (i * m) / 60 : i * m),
      layout: { title: { text: `${hours ? "hours" : "minutes"} from the start · ${size} bins` } },
    };
  }

  // Linear ticks from the grid's start, a whole number of bins apart, about one per 130 px of the visible range.
  function clockTicks(axis, fromMs, toMs, width) {
    const want = Math.max(2, Math.floor(width / 130));
    const spanMin = Math.max(axis.minutes, (toMs - fromMs) / 60000);
    const raw = spanMin / want;
    let step = NICE.find((n) => n >= raw && n % axis.minutes === 0);
    if (!step) step = axis.minutes * Math.max(1, Math.ceil(raw / axis.minutes));
    return { tickmode: "linear", tick0: plotDate(axis.t0), dtick: step * 60000 };
  }

  // ---- min/max per pixel bucket ----------------------------------------------------------------------
  // Indexes to draw of ``values``: all of them when they fit in 2 per bucket, else each bucket's min and max.
  function downsample(values, buckets) {
    const n = values.length;
    if (n <= 2 * buckets) return values.map((_, i) => i);
    const out = [];
    const size = n / buckets;
    for (let b = 0; b < buckets; b++) {
      const lo = Math.floor(b * size), hi = Math.min(n, Math.floor((b + 1) * size));
      let iMin = -1, iMax = -1;
      for (let i = lo; i < hi; i++) {
        const v = values[i];
        if (v === null || v === undefined || Number.isNaN(v)) continue;
        if (iMin < 0 || v < values[iMin]) iMin = i;
        if (iMax < 0 || v > values[iMax]) iMax = i;
      }
      if (iMin < 0) { out.push(lo); continue; } // an undefined bucket: a gap
      if (iMin === iMax) out.push(iMin);
      else out.push(Math.min(iMin, iMax), Math.max(iMin, iMax));
    }
    return out;
  }

  // ---- units: one y-axis (a stacked panel) per unit --------------------------------------------------
  const UNIT_TITLE = { "entities/bin": "entities / bin", ratio: "ratio", minutes: "minutes", ms: "ms" };
  function groupsOf(series) {
    // Unknown units share the first panel with entities/bin: with nothing known there is one axis.
    const key = (s) => (s.unit && s.unit !== "entities/bin" ? s.unit : "");
    const keys = [...new Set(series.map(key))].sort((a, b) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
    return { keys, of: (s) => keys.indexOf(key(s)), title: (k, any) => (k ? UNIT_TITLE[k] || k : any ? "entities / bin" : "value") };
  }
  function panels(count, gap) {
    // Domains from the top; the first panel is the tallest when there are several.
    if (count === 1) return [[0, 1]];
    const weights = Array.from({ length: count }, (_, i) => (i === 0 ? 1.6 : 1));
    const total = weights.reduce((a, b) => a + b, 0);
    const usable = 1 - gap * (count - 1);
    const out = [];
    let top = 1;
    for (const w of weights) { const h = (usable * w) / total; out.push([Math.max(0, top - h), top]); top -= h + gap; }
    return out;
  }
  const yName = (i) => (i === 0 ? "y" : `y${i + 1}`);
  const yKey = (i) => (i === 0 ? "yaxis" : `yaxis${i + 1}`);

  function applyTicks(el, axis) {
    if (axis.kind !== "clock") return;
    const full = el._fullLayout;
    if (!full || !full.xaxis) return;
    const [a, b] = full.xaxis.range.map((v) => (typeof v === "number" ? v : Date.parse(String(v).replace(" ", "T") + "Z")));
    const ticks = clockTicks(axis, a, b, el.clientWidth || 800);
    if (full.xaxis.dtick !== ticks.dtick) Plotly.relayout(el, { "xaxis.tickmode": "linear", "xaxis.tick0": ticks.tick0, "xaxis.dtick": ticks.dtick });
  }

  function watchZoom(el, axis) {
    if (axis.kind !== "clock" || el.dataset.zoomWatch) return;
    el.dataset.zoomWatch = "true";
    el.on("plotly_relayout", (ev) => {
      if (ev && ("xaxis.range[0]" in ev || "xaxis.autorange" in ev || "xaxis.range" in ev)) applyTicks(el, axis);
    });
  }

  function xLayout(axis, el) {
    const base = { ...AXIS, ...axis.layout };
    if (axis.kind === "clock") {
      const end = axis.t0 + Math.max(1, axis.bins - 1) * axis.minutes * 60000;
      return { ...base, range: [plotDate(axis.t0), plotDate(end)], ...clockTicks(axis, axis.t0, end, el.clientWidth || 800) };
    }
    return { ...base, rangemode: "tozero" };
  }

  // A trace of one series: its drawn points (downsampled) against time.
  function trace(values, axis, buckets, extra) {
    const idx = downsample(values, buckets);
    return { x: idx.map(axis.at), y: idx.map((i) => values[i]), type: "scatter", mode: idx.length > 60 ? "lines" : "lines+markers",
      marker: { size: 5 }, connectgaps: false, ...extra, _drawn: idx.length };
  }

  function mark(el, traces, units, axis) {
    el.dataset.traces = String(traces.length);
    el.dataset.points = String(Math.max(0, ...traces.map((t) => t._drawn || (t.y ? t.y.length : 0))));
    el.dataset.axes = units.join("|");
    el.dataset.axis = axis.kind;
    el.dataset.ready = "true";
  }

  // ---- run page ----------------------------------------------------------------------------------
  function runPage(data) {
    const chart = document.getElementById("chart");
    const list = document.getElementById("series-list");
    const table = document.getElementById("series-table");
    const series = data.series;
    const axis = timeAxis(data.grid);
    const color = {};
    series.forEach((s, i) => { color[s.id] = PALETTE[i % PALETTE.length]; });
    const selected = new Set(series.filter((s) => s.values).slice(0, 8).map((s) => s.id));
    let tablePage = 0;
    const PAGE = 100;

    list.innerHTML = "";
    for (const s of series) {
      const label = document.createElement("label");
      label.innerHTML = `<input type="checkbox"><span class="sw"></span><span></span>`;
      const box = label.querySelector("input");
      box.value = s.id;
      box.checked = selected.has(s.id);
      label.querySelector(".sw").style.background = color[s.id];
      label.querySelector("span:last-child").textContent = s.label + (s.unit && s.unit !== "entities/bin" ? ` (${s.unit})` : "");
      label.title = s.id;
      box.addEventListener("change", () => { if (box.checked) selected.add(s.id); else selected.delete(s.id); update(); });
      list.appendChild(label);
    }
    document.querySelectorAll("[data-select]").forEach((b) => b.addEventListener("click", () => {
      const all = b.dataset.select === "all";
      list.querySelectorAll("input").forEach((x) => { x.checked = all; });
      selected.clear();
      if (all) series.forEach((s) => selected.add(s.id));
      update();
    }));

    async function ensure(s) {
      if (s.values) return;
      const resp = await fetch(`/runs/${encodeURIComponent(data.runId)}/series/${encodeURIComponent(s.id)}.json`, { headers: { Accept: "application/json" } });
      if (resp.ok) s.values = (await resp.json()).values || [];
      else s.values = [];
    }

    async function update() {
      const shown = series.filter((s) => selected.has(s.id));
      await Promise.all(shown.map(ensure));
      drawChart(shown);
      drawTable(shown);
    }

    function drawChart(shown) {
      const groups = groupsOf(shown);
      const buckets = Math.max(100, chart.clientWidth || 800);
      const traces = shown.map((s) => {
        const g = groups.of(s);
        return trace(s.values, axis, buckets, { name: s.label, yaxis: yName(g), line: { color: color[s.id], width: 2 },
          hovertemplate: "%{y}<extra>" + esc(s.label) + "</extra>" });
      });
      const domains = panels(groups.keys.length, 0.08);
      const anyCounts = shown.some((s) => !s.unit || s.unit === "entities/bin");
      const layout = {
        font: FONT, margin: { l: 56, r: 16, t: 12, b: 48 }, hovermode: "x unified", showlegend: true,
        legend: { orientation: "h", y: -0.22 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
        height: groups.keys.length > 1 ? 420 + 120 * (groups.keys.length - 1) : undefined,
        xaxis: { ...xLayout(axis, chart), anchor: yName(groups.keys.length - 1) },
      };
      groups.keys.forEach((k, i) => {
        layout[yKey(i)] = { ...AXIS, domain: domains[i], anchor: "x", rangemode: "tozero", title: { text: groups.title(k, anyCounts) } };
      });
      Plotly.react(chart, traces, layout, CONFIG);
      watchZoom(chart, axis);
      mark(chart, traces, groups.keys.map((k) => groups.title(k, anyCounts)), axis);
      chart.dataset.bins = String((data.grid && data.grid.bins) || "");
    }

    function drawTable(shown) {
      if (!table) return;
      const n = Math.max(0, ...shown.map((s) => s.values.length));
      const pages = Math.max(1, Math.ceil(n / PAGE));
      tablePage = Math.min(tablePage, pages - 1);
      if (!shown.length) { table.innerHTML = '<p class="muted">Select series on the Chart tab.</p>'; return; }
      const start = tablePage * PAGE, end = Math.min(n, start + PAGE);
      const head = `<tr><th class="num">t</th>${axis.kind === "bin" ? "" : '<th class="num">time</th>'}` + shown.map(() => `<th class="num"></th>`).join("") + "</tr>";
      let rows = "";
      for (let t = start; t < end; t++) {
        rows += `<tr><td class="num muted">${t}</td>${axis.kind === "bin" ? "" : `<td class="num muted">${axis.at(t)}</td>`}` +
          shown.map((s) => `<td class="num">${fmt(s.values[t])}</td>`).join("") + "</tr>";
      }
      table.innerHTML = `<div class="table-wrap"><table id="values-table"><thead>${head}</thead><tbody>${rows}</tbody></table></div>
        <div class="pager"><span>Rows ${n ? start + 1 : 0}–${end} of ${n}</span><span class="pages">
        <button type="button" class="btn btn-sm" data-page="-1" ${tablePage === 0 ? "disabled" : ""}>← Previous</button>
        <button type="button" class="btn btn-sm" data-page="1" ${tablePage >= pages - 1 ? "disabled" : ""}>Next →</button></span></div>`;
      const skip = axis.kind === "bin" ? 1 : 2;
      table.querySelectorAll("thead th").forEach((th, i) => { if (i >= skip) th.textContent = shown[i - skip].label; });
      table.querySelectorAll("[data-page]").forEach((b) => b.addEventListener("click", () => { tablePage += Number(b.dataset.page); drawTable(shown); }));
    }

    document.addEventListener("ft:tab", (e) => { if (e.detail === "chart") Plotly.Plots.resize(chart); });
    update();
  }

  // ---- compare page --------------------------------------------------------------------------------
  function comparePage(data) {
    const box = document.getElementById("compare-charts");
    const axis = timeAxis(data.grid);
    const runs = data.runs;
    const others = runs.filter((r) => r.id !== data.baseline);
    const colour = (i) => PALETTE[i % PALETTE.length];
    const cards = [];
    data.series.forEach((s, i) => {
      const card = document.createElement("div");
      card.className = "card";
      card.id = "s-" + i;
      card.dataset.series = s.id;
      card.innerHTML = `<div class="card-head"><h3 class="mono"></h3><span class="badge"></span></div><div class="card-body" style="padding:8px"><div class="chart-sm"></div></div>`;
      card.querySelector("h3").textContent = s.label + (s.unit && s.unit !== "entities/bin" ? ` (${s.unit})` : "");
      const badge = card.querySelector(".badge");
      const changed = Number(s.maxAbsDeltaAny || 0) !== 0;
      badge.textContent = changed ? `max |Δ| ${fmt(s.maxAbsDeltaAny)}` : "unchanged";
      badge.className = "badge " + (changed ? "badge-warn" : "badge-ok");
      box.appendChild(card);
      cards.push([card, s]);
    });

    function draw(card, s) {
      const el = card.querySelector(".chart-sm");
      if (el.dataset.ready) return;
      const buckets = Math.max(100, el.clientWidth || 500);
      const traces = runs.map((r, i) => trace((s.values || {})[r.id] || [], axis, buckets, {
        name: r.id === data.baseline && others.length > 1 ? `${r.label} (baseline)` : r.label,
        line: { color: colour(i), width: 2, dash: r.id === data.baseline ? "dot" : "solid" }, mode: "lines" }));
      for (const r of others) {
        const d = (s.deltas || {})[r.id] || [];
        const i = runs.indexOf(r);
        const base = runs.find((x) => x.id === data.baseline);
        const name = `${r.label} − ${base ? base.label : "baseline"}`;
        if (others.length === 1) {
          const idx = downsample(d, buckets);
          traces.push({ x: idx.map(axis.at), y: idx.map((k) => d[k]), name, type: "bar", yaxis: "y2", _drawn: idx.length,
            marker: { color: idx.map((k) => (d[k] > 0 ? "#16a34a" : d[k] < 0 ? "#c2312b" : "#98a2b3")) } });
        } else {
          traces.push(trace(d, axis, buckets, { name, yaxis: "y2", mode: "lines", line: { color: colour(i), width: 1.5 } }));
        }
      }
      const unit = s.unit && UNIT_TITLE[s.unit] ? UNIT_TITLE[s.unit] : s.unit || "";
      const layout = {
        font: FONT, height: 340, margin: { l: 52, r: 12, t: 28, b: 40 }, hovermode: "x unified", showlegend: true,
        legend: { orientation: "h", y: 1.14, x: 0 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff", bargap: 0.15,
        xaxis: { ...xLayout(axis, el), anchor: "y2" },
        yaxis: { ...AXIS, anchor: "x", domain: [0.38, 1], title: { text: unit } },
        yaxis2: { ...AXIS, anchor: "x", domain: [0, 0.28], title: { text: "Δ" } },
      };
      Plotly.newPlot(el, traces, layout, CONFIG);
      watchZoom(el, axis);
      mark(el, traces, [unit || "value", "Δ"], axis);
    }

    const io = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) { const pair = cards.find(([c]) => c === e.target); if (pair) draw(...pair); io.unobserve(e.target); }
    }, { rootMargin: "300px" }) : null;
    cards.forEach(([card, s], i) => { if (i < 6 || !io) draw(card, s); else io.observe(card); });
  }

  window.FTCharts = { timeAxis, downsample, clockTicks };
  const run = document.getElementById("run-data");
  if (run) runPage(JSON.parse(run.textContent));
  const cmp = document.getElementById("compare-data");
  if (cmp) comparePage(JSON.parse(cmp.textContent));
})();
