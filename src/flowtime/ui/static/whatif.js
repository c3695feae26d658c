// FlowTime live what-if (run → What-if): sliders for the session's parameters, each move sent over one WebSocket
// to this UI (which relays it to the Engine's session, decision 0043); every answer is published on the FT bus
// ("ft:state") so the topology repaints, and drawn into the chart and the warnings list.
//
// Coalescing: at most one message is in flight. Moves made while it is answered merge into one pending message
// (the latest value per parameter, the latest bin and series), sent when the answer arrives.
// Timing hook for tests: window.FT_WHATIF.timings gets {seq, ms, evalMs} per answer, ms from the first slider
// event the message carries to the end of the repaint (DOM updated), paintMs from the answer's arrival to that
// end, and frameMs to the next animation frame.
(function () {
  "use strict";
  const FT = window.FT;
  FT.view.live = true;  // values come from the session, not the stored run (topology.js)
  const $ = (id) => document.getElementById(id);
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const S = { ws: null, session: null, seq: 0, inflight: null, pending: null, pendingT0: null, sentT0: new Map(),
    series: null, base: new Map(), last: null, saveWanted: false, inputs: new Map() };
  const probe = window.FT_WHATIF = { timings: [], answered: 0, errors: [] };

  // ---- the socket ------------------------------------------------------------------------------------------
  function connect() {
    const app = $("whatif-app");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}` +
      `/runs/${encodeURIComponent(app.dataset.runId)}/whatif/ws`;
    const ws = S.ws = new WebSocket(url);
    ws.addEventListener("message", (ev) => receive(JSON.parse(ev.data)));
    ws.addEventListener("close", () => {
      S.ws = null;
      setEnabled(false);
      if (!$("whatif-error").textContent) showError({ title: "The what-if session closed", detail: "reload the page" });
    });
  }

  function queue(change, t0) {
    const p = S.pending || (S.pending = {});
    if (change.reset) { p.reset = true; p.set = {}; }
    if (change.set) p.set = Object.assign(p.set || {}, change.set);
    if ("bin" in change) p.bin = change.bin;
    if (change.series) p.series = change.series;
    if (S.pendingT0 === null) S.pendingT0 = t0 === undefined ? performance.now() : t0;
    pump();
  }

  function pump() {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN || S.inflight !== null) return;
    if (S.pending) {
      const msg = Object.assign({ seq: ++S.seq }, S.pending);
      S.sentT0.set(msg.seq, S.pendingT0);
      S.pending = null;
      S.pendingT0 = null;
      S.inflight = msg.seq;
      S.ws.send(JSON.stringify(msg));
    } else if (S.saveWanted) {  // after every move is answered: the Engine's point is the one on screen
      S.saveWanted = false;
      S.inflight = ++S.seq;
      S.ws.send(JSON.stringify({ seq: S.inflight, save: true }));
    }
  }

  function receive(m) {
    S.receivedAt = performance.now();
    if (m.type === "session") { start(m); return; }
    if (m.seq !== null && m.seq === S.inflight) S.inflight = null;
    if (m.type === "saved") saved(m);
    else if (m.error) failed(m);
    else answer(m);
    pump();
  }

  // ---- a session and its sliders ----------------------------------------------------------------------------
  function knobText(p, v) {
    if (!isNum(v)) return "";
    if (p.mode === "scale") return `× ${+v.toPrecision(4)}`;
    return `${+v.toPrecision(6)}${p.unit ? " " + p.unit : ""}`;
  }

  function start(session) {
    S.session = session;
    const form = $("whatif-form");
    form.innerHTML = "";
    if (!session.parameters.length) form.innerHTML = '<p class="muted">This model has no parameters to move.</p>';
    session.parameters.forEach((p, i) => {
      const row = document.createElement("div");
      row.className = "knob";
      row.dataset.knob = p.id;
      const id = `knob-${i}`;
      row.innerHTML = `<label for="${id}"></label><input type="range" id="${id}"><output for="${id}"></output>`;
      row.querySelector("label").textContent = p.label;
      row.title = `${p.id}${p.replans ? " (a model edit: the first move to a new value re-plans)" : ""}`;
      const input = row.querySelector("input");
      Object.assign(input, { min: String(p.min), max: String(p.max), step: String(p.step), value: String(p.value) });
      input.dataset.knob = p.id;
      input.setAttribute("aria-label", `${p.label}${p.unit ? ", " + p.unit : ""}, from ${knobText(p, p.min)} to ` +
        `${knobText(p, p.max)}`);
      input.addEventListener("input", () => {
        const t0 = performance.now();
        showKnob(p, Number(input.value));
        queue({ set: { [p.id]: Number(input.value) } }, t0);
      });
      form.appendChild(row);
      S.inputs.set(p.id, { p, input, out: row.querySelector("output") });
      showKnob(p, p.value);
    });
    const select = $("whatif-series");
    select.innerHTML = "";
    for (const n of session.nodes) select.add(new Option(n, n));
    S.series = pickSeries(session.nodes);
    if (S.series) select.value = S.series;
    select.addEventListener("change", () => { S.series = select.value; baseSeries(S.series); queue({ series: [S.series] }); });
    $("whatif-reset").addEventListener("click", () => queue({ reset: true }));
    $("whatif-save").addEventListener("click", () => { S.saveWanted = true; $("whatif-saved").textContent = "Saving…"; pump(); });
    setEnabled(true);
    if (S.series) baseSeries(S.series);
    queue({ series: S.series ? [S.series] : [], bin: FT.view.bin });
  }

  // The chart starts on the first series the model computes (an expression), else the first one.
  function pickSeries(nodes) {
    const consts = new Set((S.session.parameters || []).map((p) => p.target));
    return nodes.find((n) => !consts.has(n)) || nodes[0] || null;
  }

  function showKnob(p, v) {
    const k = S.inputs.get(p.id);
    if (!k) return;
    k.out.textContent = knobText(p, v);
    k.input.setAttribute("aria-valuetext", knobText(p, v));
  }

  function setEnabled(on) {
    for (const { input } of S.inputs.values()) input.disabled = !on;
    $("whatif-reset").disabled = !on;
    $("whatif-save").disabled = !on;
  }

  async function baseSeries(id) {
    if (S.base.has(id)) return;
    S.base.set(id, null);
    try {
      const body = await FT.getJson(`/runs/${encodeURIComponent(FT.view.runId)}/series/${encodeURIComponent(id)}.json`);
      S.base.set(id, body.values || null);
      if (S.last && S.series === id) chart(S.last);
    } catch (err) {
      S.base.delete(id);  // the stored run may not have kept it: the chart shows this point alone
    }
  }

  // ---- an answer ---------------------------------------------------------------------------------------------
  function answer(m) {
    S.last = m;
    $("whatif-error").textContent = "";
    publish(m);
    chart(m);
    warnings(m.warnings || []);
    for (const [id, v] of Object.entries(m.values || {})) {
      const k = S.inputs.get(id);
      if (!k) continue;
      if (document.activeElement !== k.input && Number(k.input.value) !== v) k.input.value = String(v);
      showKnob(k.p, v);
    }
    const t0 = S.sentT0.get(m.seq);
    S.sentT0.delete(m.seq);
    const app = $("whatif-app");
    app.dataset.answeredSeq = String(m.seq);
    probe.answered = m.seq;
    if (t0 !== undefined && t0 !== null) {
      const now = performance.now();
      const rec = { seq: m.seq, ms: now - t0, paintMs: now - S.receivedAt, evalMs: m.evalMs, coalesced: m.coalesced };
      probe.timings.push(rec);
      requestAnimationFrame(() => { rec.frameMs = performance.now() - t0; });
      $("whatif-status").textContent = `Answer ${m.seq}: repainted ${rec.ms.toFixed(1)} ms after the move ` +
        `(Engine evaluation ${m.evalMs} ms)`;
    }
    app.dataset.ready = "true";
  }

  // The answer in the state API's shape, for the topology (and anything else listening on the bus).
  function publish(m) {
    const bin = m.state.bin;
    const found = (m.warnings || []).filter((w) => w.nodeId);
    const activeAt = (w) => bin === null || (w.bins || []).includes(bin);
    const nodes = [];
    const topo = m.state.nodes || {};
    for (const [id, n] of Object.entries(topo)) {
      nodes.push({ id, metrics: n.metrics || {}, derived: {}, warnings: found.filter((w) => w.nodeId === id && activeAt(w)) });
    }
    for (const [id, v] of Object.entries(m.state.values || {})) if (!(id in topo)) nodes.push({ id, metrics: { values: v } });
    document.dispatchEvent(new CustomEvent("ft:state", { detail: { bin: { index: bin }, nodes, edges: [], findings: found } }));
  }

  // The x values, made once per length (the axis never changes): unix seconds from the grid's start when it
  // has one (a UTC time axis), else minutes from the start.
  let xsCache = null;
  function xs(n) {
    const g = (S.session && S.session.grid) || {};
    const minutes = g.binMinutes || 1;
    const meta = FT.view.data && FT.view.data.window && FT.view.data.window.metadata;
    const start = g.startTimeUtc || g.start || (meta && meta.grid && meta.grid.startTimeUtc);
    const key = `${n}|${minutes}|${start}`;
    if (xsCache && xsCache.key === key) return xsCache;
    const t0 = start ? Date.parse(start) / 1000 : NaN;
    const clock = Number.isFinite(t0);
    xsCache = Array.from({ length: n }, (_, i) => (clock ? t0 + i * minutes * 60 : i * minutes));
    xsCache.key = key;
    xsCache.clock = clock;
    return xsCache;
  }

  // uPlot, not Plotly, for this chart: a move repaints it, and Plotly's redraw of two 288-point lines took
  // 11-14 ms of the page's ~17 ms per answer where uPlot's setData takes well under one (decision 0046).
  // The chart is rebuilt only when what it shows changes (series, stored run, length); a resize resizes it.
  const plot = { u: null, sig: "", bin: 0, observer: null };

  function marker(u) {
    const x = u.data[0];
    if (!x || !x.length) return;
    const at = u.valToPos(x[Math.min(x.length - 1, Math.max(0, plot.bin))], "x", true);
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#c2312b";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(at, u.bbox.top);
    ctx.lineTo(at, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  function chart(m) {
    const box = $("whatif-chart");
    const ys = m.series && S.series ? m.series[S.series] : null;
    if (!ys || !window.uPlot) return;
    const x = xs(ys.length);
    const base = S.base.get(S.series);
    const width = Math.max(240, box.clientWidth || 600);
    const sig = `${S.series}|${!!base}|${x.key}`;
    plot.bin = FT.view.bin || 0;
    const data = base ? [x, base, ys] : [x, ys];
    if (plot.u && plot.sig === sig) {
      plot.u.setData(data);
    } else {
      if (plot.u) plot.u.destroy();
      const g = (S.session && S.session.grid) || {};
      const series = [{ label: x.clock ? "time (UTC)" : "minutes" }];
      if (base) series.push({ label: "stored run", stroke: "#98a2b3", dash: [4, 4], width: 1.5, spanGaps: false });
      series.push({ label: "this point", stroke: "#2f5bd3", width: 2, spanGaps: false });
      plot.u = new window.uPlot({
        width, height: 240, series,
        scales: { x: { time: x.clock } },
        axes: [{ label: x.clock ? `time, UTC (bins of ${g.binMinutes} min)` : "minutes from start" },
          { label: S.series, size: 60 }],
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        hooks: { draw: [marker] },
      }, data, box);
      plot.sig = sig;
      if (!plot.observer && window.ResizeObserver) {
        // A narrower window (or the 390 px layout) resizes the chart instead of overflowing it.
        plot.observer = new ResizeObserver(() => {
          const w = Math.max(240, box.clientWidth || 600);
          if (plot.u && Math.abs(w - plot.u.width) > 1) plot.u.setSize({ width: w, height: 240 });
        });
        plot.observer.observe(box);
      }
    }
    box.uplot = plot.u;
    box.dataset.series = S.series;
    box.dataset.seq = String(m.seq);
  }

  // Rebuilt only when the text changes: a slider often moves values without changing which findings hold,
  // and re-creating a few hundred list items each answer costs the page a style and layout pass.
  function warnings(list) {
    const text = (w) => {
      const bins = (w.bins || []).slice(0, 8).join(", ") + ((w.binCount || 0) > 8 ? ", …" : "");
      return `${w.severity || "info"}: ${w.code}${w.nodeId ? " at " + w.nodeId : ""}` +
        `${bins ? " (bin" + ((w.binCount || 0) === 1 ? " " : "s ") + bins + ")" : ""} — ${w.message}`;
    };
    const texts = list.map(text);
    const key = texts.join("\n");
    const ul = $("whatif-warnings");
    if (ul.dataset.key === key && ul.childElementCount) return;
    ul.dataset.key = key;
    const items = list.map((w, i) => {
      const li = document.createElement("li");
      li.className = `sev-${w.severity || "info"}`;
      li.dataset.code = w.code || "";
      li.dataset.node = w.nodeId || "";
      li.textContent = texts[i];
      return li;
    });
    if (!list.length) {
      const none = document.createElement("li");
      none.className = "muted";
      none.textContent = "None at this point.";
      items.push(none);
    }
    ul.replaceChildren(...items);
    $("whatif-warning-count").textContent = `(${list.length})`;
  }

  // ---- errors and saving ---------------------------------------------------------------------------------------
  function showError(e) {
    const box = $("whatif-error");
    box.innerHTML = "";
    const head = document.createElement("p");
    head.textContent = `${e.title || "Error"}${e.detail ? ": " + e.detail : ""}`;
    box.appendChild(head);
    if ((e.errors || []).length) {
      const ul = document.createElement("ul");
      for (const p of e.errors) {
        const li = document.createElement("li");
        li.dataset.path = p.path || "";
        li.textContent = `${p.path ? p.path + ": " : ""}${p.message}`;
        ul.appendChild(li);
      }
      box.appendChild(ul);
    }
  }

  function failed(m) {
    probe.errors.push(m.error);
    showError(m.error || {});
    S.sentT0.delete(m.seq);
    // A refused move changed nothing: the sliders go back to the point on screen.
    if (S.last) for (const [id, v] of Object.entries(S.last.values || {})) {
      const k = S.inputs.get(id);
      if (k) { k.input.value = String(v); showKnob(k.p, v); }
    }
    if (m.type === "error" && $("whatif-saved").textContent === "Saving…") $("whatif-saved").textContent = "";
  }

  function saved(m) {
    const box = $("whatif-saved");
    box.innerHTML = "Saved as run ";
    const a = document.createElement("a");
    a.id = "whatif-saved-link";
    a.href = m.url;
    a.textContent = m.runId;
    box.appendChild(a);
    const moved = Object.entries(m.parameters || {}).map(([k, v]) => `${k} = ${+Number(v).toPrecision(6)}`);
    box.appendChild(document.createTextNode(moved.length ? ` (${moved.join(", ")})` : " (no parameter moved)"));
  }

  document.addEventListener("ft:bin", (ev) => { if (S.session) queue({ bin: ev.detail }); });
  document.addEventListener("DOMContentLoaded", connect);
})();
