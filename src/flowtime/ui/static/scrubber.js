// FlowTime time scrubber (#scrubber): a slider over the run's bins with step and play/pause buttons.
// Keys anywhere in it: ←/→ one bin, PageUp/PageDown a tenth of the run, Home/End the first/last bin, Space play
// or pause. Time reads as clock time from the grid's start (startTimeUtc), or "+HH:MM" from the start when the
// grid has none, with the bin size and index. Moves go through FT.setBin; ft:bin from other views moves it.
(function () {
  "use strict";
  const FT = window.FT;
  const TICK_MS = 250;
  let timer = null, start = null;

  const bins = () => (FT.view.grid && FT.view.grid.bins) || 1;
  const binMinutes = () => (FT.view.grid && FT.view.grid.binMinutes) || null;
  const pad = (n) => String(n).padStart(2, "0");

  function duration(minutes) {
    if (minutes % 1440 === 0) return `${minutes / 1440} d`;
    if (minutes % 60 === 0) return `${minutes / 60} h`;
    return `${minutes} min`;
  }

  // "2025-01-01 05:00 UTC" from the grid's start, else "+05:00" (hours may pass 99) after the start.
  function clock(bin) {
    const m = binMinutes();
    if (m === null) return `bin ${bin}`;
    if (start) {
      const t = new Date(start.getTime() + bin * m * 60000);
      return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
        `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())} UTC`;
    }
    const total = bin * m;
    return `+${pad(Math.floor(total / 60))}:${pad(total % 60)}`;
  }
  FT.clock = clock;

  function build() {
    const box = document.getElementById("scrubber");
    const last = bins() - 1;
    box.innerHTML = `
      <div class="scrub-row">
        <button type="button" class="btn btn-sm" id="scrub-prev" aria-label="Previous bin" title="Previous bin (←)">◀</button>
        <button type="button" class="btn btn-sm" id="scrub-play" aria-pressed="false" aria-label="Play"
          aria-keyshortcuts="Space" title="Play / pause (Space)">▶ Play</button>
        <button type="button" class="btn btn-sm" id="scrub-next" aria-label="Next bin" title="Next bin (→)">▶</button>
        <input type="range" id="scrub-range" min="0" max="${last}" step="1" value="${FT.view.bin}"
          aria-label="Time bin" aria-keyshortcuts="ArrowLeft ArrowRight Home End PageUp PageDown Space">
        <output id="scrub-time" for="scrub-range" aria-live="off"></output>
      </div>`;
    box.setAttribute("aria-label", "Time scrubber");
    const range = box.querySelector("#scrub-range");
    range.addEventListener("input", () => FT.setBin(Number(range.value)));
    box.querySelector("#scrub-prev").addEventListener("click", () => step(-1));
    box.querySelector("#scrub-next").addEventListener("click", () => step(1));
    box.querySelector("#scrub-play").addEventListener("click", toggle);
    box.addEventListener("keydown", onKey);
    show(FT.view.bin);
  }

  function onKey(ev) {
    const jump = Math.max(1, Math.round(bins() / 10));
    const moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -jump, PageUp: jump };
    if (ev.key === " " || ev.key === "Spacebar") { ev.preventDefault(); toggle(); return; }
    if (ev.key === "Home") { ev.preventDefault(); FT.setBin(0); return; }
    if (ev.key === "End") { ev.preventDefault(); FT.setBin(bins() - 1); return; }
    if (ev.key in moves) { ev.preventDefault(); step(moves[ev.key]); }
  }

  function step(delta) { FT.setBin(FT.view.bin + delta); }

  function toggle() { if (timer) pause(); else play(); }
  function play() {
    if (FT.view.bin >= bins() - 1) FT.setBin(0);
    timer = setInterval(() => {
      if (FT.view.bin >= bins() - 1) { pause(); return; }
      step(1);
    }, TICK_MS);
    playButton(true);
  }
  function pause() {
    clearInterval(timer);
    timer = null;
    playButton(false);
  }
  function playButton(on) {
    const b = document.getElementById("scrub-play");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.setAttribute("aria-label", on ? "Pause" : "Play");
    b.textContent = on ? "❚❚ Pause" : "▶ Play";
  }

  function show(bin) {
    const range = document.getElementById("scrub-range");
    if (!range) return;
    range.value = String(bin);
    const m = binMinutes();
    const text = `${clock(bin)} · bin ${bin} of ${bins()}` + (m ? ` · ${duration(m)} bins` : "");
    range.setAttribute("aria-valuetext", text);
    const out = document.getElementById("scrub-time");
    out.textContent = text;
    out.dataset.bin = String(bin);
  }

  document.addEventListener("ft:bin", (ev) => show(ev.detail));
  document.addEventListener("ft:data", (ev) => {
    const grid = (ev.detail.window && ev.detail.window.metadata && ev.detail.window.metadata.grid) || {};
    start = grid.startTimeUtc ? new Date(grid.startTimeUtc) : null;
    show(FT.view.bin);
  });
  document.addEventListener("DOMContentLoaded", build);
})();
