// FlowTime UI charts: run series (select, zoom, hover, table) and run comparison, on plotly.js.
(function () {
  "use strict";
  const PALETTE = ["#2f5bd3", "#e0701b", "#16a34a", "#c2312b", "#7c3aed", "#0891b2", "#ca8a04", "#db2777", "#475569", "#65a30d"];
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1c2430" };
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d", "toggleSpikelines"] };
  const AXIS = { gridcolor: "#eef0f3", zerolinecolor: "#d0d5dd", linecolor: "#d0d5dd" };
  const range = (n) => Array.from({ length: n }, (_, i) => i);
  const fmt = (v) => (v === null || v === undefined ? "" : Number.isInteger(v) ? String(v) : String(+v.toPrecision(10)));

  // ---- run page ----------------------------------------------------------------------------------
  function runPage(data) {
    const chart = document.getElementById("chart");
    const list = document.getElementById("series-list");
    const table = document.getElementById("series-table");
    const series = data.series;
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
      label.querySelector("span:last-child").textContent = s.label;
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
      const traces = shown.map((s) => ({
        x: range(s.values.length), y: s.values, name: s.label, type: "scatter", mode: s.values.length > 60 ? "lines" : "lines+markers",
        line: { color: color[s.id], width: 2 }, marker: { size: 5 }, hovertemplate: "%{y}<extra>" + s.label.replace(/[<>]/g, "") + "</extra>",
      }));
      const bins = data.grid && data.grid.bins;
      const layout = {
        font: FONT, margin: { l: 56, r: 16, t: 12, b: 48 }, hovermode: "x unified", showlegend: true,
        legend: { orientation: "h", y: -0.18 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
        xaxis: { ...AXIS, title: { text: "bin" }, rangemode: "tozero" }, yaxis: { ...AXIS, rangemode: "tozero" },
      };
      Plotly.react(chart, traces, layout, CONFIG);
      chart.dataset.traces = String(traces.length);
      chart.dataset.points = String(traces.length ? traces[0].y.length : 0);
      chart.dataset.bins = String(bins || "");
      chart.dataset.ready = "true";
    }

    function drawTable(shown) {
      if (!table) return;
      const n = Math.max(0, ...shown.map((s) => s.values.length));
      const pages = Math.max(1, Math.ceil(n / PAGE));
      tablePage = Math.min(tablePage, pages - 1);
      if (!shown.length) { table.innerHTML = '<p class="muted">Select series on the Chart tab.</p>'; return; }
      const start = tablePage * PAGE, end = Math.min(n, start + PAGE);
      const head = "<tr><th class=\"num\">t</th>" + shown.map((s) => `<th class="num"></th>`).join("") + "</tr>";
      let rows = "";
      for (let t = start; t < end; t++) {
        rows += `<tr><td class="num muted">${t}</td>` + shown.map((s) => `<td class="num">${fmt(s.values[t])}</td>`).join("") + "</tr>";
      }
      table.innerHTML = `<div class="table-wrap"><table id="values-table"><thead>${head}</thead><tbody>${rows}</tbody></table></div>
        <div class="pager"><span>Rows ${n ? start + 1 : 0}–${end} of ${n}</span><span class="pages">
        <button type="button" class="btn btn-sm" data-page="-1" ${tablePage === 0 ? "disabled" : ""}>← Previous</button>
        <button type="button" class="btn btn-sm" data-page="1" ${tablePage >= pages - 1 ? "disabled" : ""}>Next →</button></span></div>`;
      table.querySelectorAll("thead th").forEach((th, i) => { if (i > 0) th.textContent = shown[i - 1].label; });
      table.querySelectorAll("[data-page]").forEach((b) => b.addEventListener("click", () => { tablePage += Number(b.dataset.page); drawTable(shown); }));
    }

    document.addEventListener("ft:tab", (e) => { if (e.detail === "chart") Plotly.Plots.resize(chart); });
    update();
  }

  // ---- compare page --------------------------------------------------------------------------------
  function comparePage(data) {
    const box = document.getElementById("compare-charts");
    const cards = [];
    data.series.forEach((s, i) => {
      const card = document.createElement("div");
      card.className = "card";
      card.id = "s-" + i;
      card.dataset.series = s.id;
      card.innerHTML = `<div class="card-head"><h3 class="mono"></h3><span class="badge"></span></div><div class="card-body" style="padding:8px"><div class="chart-sm"></div></div>`;
      card.querySelector("h3").textContent = s.label;
      const badge = card.querySelector(".badge");
      const changed = Number(s.maxAbsDelta || 0) !== 0;
      badge.textContent = changed ? `max |Δ| ${fmt(s.maxAbsDelta)}` : "unchanged";
      badge.className = "badge " + (changed ? "badge-warn" : "badge-ok");
      box.appendChild(card);
      cards.push([card, s]);
    });

    function draw(card, s) {
      const el = card.querySelector(".chart-sm");
      if (el.dataset.ready) return;
      const x = range((s.a || []).length);
      const traces = [
        { x, y: s.a, name: "A", type: "scatter", mode: "lines", line: { color: "#2f5bd3", width: 2 } },
        { x, y: s.b, name: "B", type: "scatter", mode: "lines", line: { color: "#e0701b", width: 2, dash: "dot" } },
        { x, y: s.delta, name: "A − B", type: "bar", yaxis: "y2", xaxis: "x2",
          marker: { color: (s.delta || []).map((d) => (d > 0 ? "#16a34a" : d < 0 ? "#c2312b" : "#98a2b3")) } },
      ];
      const layout = {
        font: FONT, height: 330, margin: { l: 52, r: 12, t: 28, b: 40 }, hovermode: "x unified", showlegend: true,
        legend: { orientation: "h", y: 1.1, x: 0 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff", bargap: 0.15,
        xaxis: { ...AXIS, anchor: "y", domain: [0, 1], matches: "x2", showticklabels: false },
        yaxis: { ...AXIS, anchor: "x", domain: [0.36, 1] },
        xaxis2: { ...AXIS, anchor: "y2", domain: [0, 1], title: { text: "bin", standoff: 4 } },
        yaxis2: { ...AXIS, anchor: "x2", domain: [0, 0.26], title: { text: "Δ" } },
      };
      Plotly.newPlot(el, traces, layout, CONFIG);
      el.dataset.ready = "true";
      el.dataset.points = String(x.length);
    }

    const io = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) { const pair = cards.find(([c]) => c === e.target); if (pair) draw(...pair); io.unobserve(e.target); }
    }, { rootMargin: "300px" }) : null;
    cards.forEach(([card, s], i) => { if (i < 6 || !io) draw(card, s); else io.observe(card); });
  }

  const run = document.getElementById("run-data");
  if (run) runPage(JSON.parse(run.textContent));
  const cmp = document.getElementById("compare-data");
  if (cmp) comparePage(JSON.parse(cmp.textContent));
})();
