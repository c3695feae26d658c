// FlowTime UI: small progressive enhancement. Every page works without it.
//  - form[data-live="#target"]: refresh #target from the server as you type (X-Fragment request)
//  - a[data-live-link] inside [data-live-region]: same, for sort headers, pager, tag chips
//  - form[data-validate]: check template parameters as you type, messages next to the field
//  - run selection for Compare, delete confirmation, tabs, file upload preview
(function () {
  "use strict";

  // ---- fragments ---------------------------------------------------------------------------
  let pending = null;

  async function swap(target, url, push) {
    if (pending) pending.abort();
    pending = new AbortController();
    target.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch(url, { headers: { "X-Fragment": "1" }, signal: pending.signal });
      const html = await resp.text();
      target.innerHTML = html;
      if (push) history.pushState({ live: true }, "", url); else history.replaceState({ live: true }, "", url);
      target.dispatchEvent(new CustomEvent("ft:swapped", { bubbles: true }));
    } catch (err) {
      if (err.name !== "AbortError") location.href = url;
    } finally {
      target.removeAttribute("aria-busy");
    }
  }

  function formUrl(form) {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (v !== "" && k !== "page") params.append(k, v);
    }
    for (const k of ["sort", "order", "size"]) {
      // keep the defaults out of the URL
      if ((k === "sort" && params.get(k) === "created") || (k === "order" && params.get(k) === "desc") || (k === "size" && params.get(k) === "50")) params.delete(k);
    }
    const q = params.toString();
    return form.action.split("?")[0] + (q ? "?" + q : "");
  }

  document.querySelectorAll("form[data-live]").forEach((form) => {
    const target = document.querySelector(form.dataset.live);
    if (!target) return;
    let timer = null;
    const go = () => swap(target, formUrl(form), false);
    form.addEventListener("input", (e) => {
      if (e.target.type === "date" || e.target.tagName === "SELECT") return;
      clearTimeout(timer); timer = setTimeout(go, 250);
    });
    form.addEventListener("change", (e) => {
      if (e.target.type === "date" || e.target.tagName === "SELECT") { clearTimeout(timer); go(); }
    });
    form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(timer); go(); });
  });

  document.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-live-link]");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    const region = link.closest("[data-live-region]");
    if (!region) return;
    e.preventDefault();
    swap(region, link.href, true).then(() => {
      const form = document.querySelector(`form[data-live="#${region.id}"]`);
      if (form) {
        const params = new URL(link.href, location.href).searchParams;
        for (const el of form.elements) {
          if (!el.name || el.type === "submit") continue;
          const defaults = { sort: "created", order: "desc", size: "50" };
          el.value = params.get(el.name) || defaults[el.name] || "";
        }
      }
    });
  });

  window.addEventListener("popstate", (e) => {
    if (e.state && e.state.live) location.reload();
  });

  // ---- run selection for Compare -------------------------------------------------------------
  const selOrder = [];
  const MAX_COMPARED = 8; // the Engine compares at most 8 runs at once
  function refreshSelection() {
    const boxes = [...document.querySelectorAll(".run-select")];
    for (const b of boxes) b.closest("tr")?.classList.toggle("selected", b.checked);
    const picked = boxes.filter((b) => b.checked).map((b) => b.value);
    const btn = document.getElementById("compare-btn");
    const status = document.getElementById("sel-status");
    if (!btn || !status) return;
    btn.disabled = picked.length < 2;
    const order = selOrder.filter((id) => picked.includes(id));
    status.textContent = picked.length === 0 ? "Tick two or more runs to compare them."
      : picked.length === 1 ? `1 run selected (${picked[0]}) — tick one more.`
      : picked.length === 2 ? `Compare ${order[0] || picked[0]} with ${order[1] || picked[1]}.`
      : `Compare ${picked.length} runs against ${order[0] || picked[0]} (the baseline; change it on the compare page).`;
  }
  document.addEventListener("change", (e) => {
    const box = e.target.closest(".run-select");
    if (!box) return;
    const i = selOrder.indexOf(box.value);
    if (i >= 0) selOrder.splice(i, 1);
    if (box.checked) selOrder.push(box.value);
    while (selOrder.length > MAX_COMPARED) {
      const drop = selOrder.shift();
      const other = document.querySelector(`.run-select[value="${CSS.escape(drop)}"]`);
      if (other) other.checked = false;
    }
    refreshSelection();
  const compareForm = document.getElementById("compare-form");
  if (compareForm) {
    compareForm.addEventListener("submit", (e) => {
      // A is the run ticked first, B the second (the delta is A - B).
      const picked = selOrder.filter((id) => document.querySelector(`.run-select[value="${CSS.escape(id)}"]`)?.checked);
      if (picked.length < 2) return;
      e.preventDefault();
      // Several runs: deltas against the first ticked (the baseline, changeable on the page).
      location.href = picked.length === 2 ? `/compare?a=${encodeURIComponent(picked[0])}&b=${encodeURIComponent(picked[1])}`
        : "/compare?" + picked.map((id) => `run=${encodeURIComponent(id)}`).join("&") + `&baseline=${encodeURIComponent(picked[0])}`;
    });
  }
  });
  document.addEventListener("ft:swapped", () => {
    for (const b of document.querySelectorAll(".run-select")) b.checked = selOrder.includes(b.value);
    refreshSelection();
  });
  refreshSelection();

  // ---- delete confirmation -----------------------------------------------------------------
  document.addEventListener("click", async (e) => {
    const link = e.target.closest("a[data-delete]");
    if (!link || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    const id = link.dataset.delete;
    if (!window.confirm(`Delete run ${id}? Its files are removed from the Engine. This cannot be undone.`)) return;
    const form = document.createElement("form");
    form.method = "post";
    form.action = `/runs/${encodeURIComponent(id)}/delete`;
    document.body.appendChild(form);
    form.submit();
  });

  // ---- tabs ------------------------------------------------------------------------------------
  document.querySelectorAll("[data-tabs]").forEach((box) => {
    const buttons = box.querySelectorAll("[data-tab]");
    const show = (name) => {
      buttons.forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
      box.querySelectorAll("[data-panel]").forEach((p) => p.classList.toggle("hidden", p.dataset.panel !== name));
      box.dispatchEvent(new CustomEvent("ft:tab", { detail: name, bubbles: true }));
    };
    buttons.forEach((b) => b.addEventListener("click", () => { show(b.dataset.tab); history.replaceState(history.state, "", "#" + b.dataset.tab); }));
    const initial = location.hash.slice(1);
    if ([...buttons].some((b) => b.dataset.tab === initial)) show(initial);
  });

  // ---- parameter validation (mirrors flowtime/ui/forms.py and Parameter.check) ---------------
  const fmt = (n) => String(n);
  function checkNumber(raw, kind, lead) {
    const v = raw === "" ? NaN : Number(raw);
    if (Number.isNaN(v)) return [null, `${lead} be ${kind === "integer" ? "a whole number" : "a number"}, got the text '${raw}'.`];
    if (!Number.isFinite(v)) return [null, `${lead} be a finite number, got ${raw}.`];
    if (kind === "integer" && !Number.isInteger(v)) return [null, `${lead} be a whole number, got ${fmt(v)}.`];
    return [v, null];
  }
  function bounds(v, lo, hi, lead) {
    if (lo !== null && hi !== null) { if (v < lo || v > hi) return `${lead} be between ${fmt(lo)} and ${fmt(hi)}, got ${fmt(v)}.`; }
    else if (lo !== null && v < lo) return `${lead} be at least ${fmt(lo)}, got ${fmt(v)}.`;
    else if (hi !== null && v > hi) return `${lead} be at most ${fmt(hi)}, got ${fmt(v)}.`;
    return null;
  }
  const numAttr = (el, name) => (el.getAttribute(name) === null || el.getAttribute(name) === "" ? null : Number(el.getAttribute(name)));

  function validateField(el) {
    const kind = el.dataset.kind;
    const raw = (el.value || "").trim();
    if (kind === "boolean" || kind === "string" || el.tagName === "SELECT") return null;
    if (raw === "") return "A value is required.";
    if (kind === "array") {
      const body = raw.replace(/^\[/, "").replace(/\]$/, "").trim();
      const parts = body ? body.split(/[\s,;]+/).filter(Boolean) : [];
      if (!parts.length) return "Enter at least one value, separated by commas.";
      const minItems = numAttr(el, "data-min-items"), maxItems = numAttr(el, "data-max-items");
      if (minItems !== null && parts.length < minItems) return `Needs at least ${minItems} elements, got ${parts.length}.`;
      if (maxItems !== null && parts.length > maxItems) return `Takes at most ${maxItems} elements, got ${parts.length}.`;
      for (let i = 0; i < parts.length; i++) {
        const [v, err] = checkNumber(parts[i], el.dataset.itemType || "number", `Element ${i} must`);
        if (err) return err;
        const b = bounds(v, numAttr(el, "data-min"), numAttr(el, "data-max"), `Element ${i} must`);
        if (b) return b;
      }
      return null;
    }
    const [v, err] = checkNumber(raw, kind, "Must");
    if (err) return err;
    return bounds(v, numAttr(el, "min"), numAttr(el, "max"), "Must");
  }

  function showError(el, message) {
    const box = el.closest(".field");
    const slot = document.getElementById("err-" + el.name);
    if (slot) slot.textContent = message || "";
    if (box) box.classList.toggle("invalid", !!message);
    if (message) el.setAttribute("aria-invalid", "true"); else el.removeAttribute("aria-invalid");
  }

  document.querySelectorAll("form[data-validate]").forEach((form) => {
    const inputs = [...form.querySelectorAll("[data-kind]")];
    inputs.forEach((el) => {
      el.addEventListener("input", () => { if (el.closest(".field")?.classList.contains("invalid")) showError(el, validateField(el)); });
      el.addEventListener("blur", () => showError(el, validateField(el)));
    });
    form.addEventListener("submit", (e) => {
      let first = null;
      for (const el of inputs) {
        const msg = validateField(el);
        showError(el, msg);
        if (msg && !first) first = el;
      }
      if (first) { e.preventDefault(); first.focus(); return; }
      const btn = form.querySelector("[type=submit]");
      if (btn) { btn.disabled = true; btn.textContent = "Generating…"; }
    });
  });

  // ---- per-bin arrays follow the bins field (same rule as Sim, docs/decisions/0010) ---------
  // Each array keeps the pattern the user last typed; changing bins repeats or trims that
  // pattern, so going 6 -> 3 -> 6 gives the six values back. The values stay editable.
  document.querySelectorAll("form[data-bins][data-per-bin]").forEach((form) => {
    const binsEl = form.elements.namedItem(form.dataset.bins);
    if (!binsEl || !binsEl.dataset) return;
    const split = (text) => {
      const body = text.trim().replace(/^\[/, "").replace(/\]$/, "").trim();
      return body ? body.split(/[\s,;]+/).filter(Boolean) : [];
    };
    const arrays = form.dataset.perBin.split(/\s+/).filter(Boolean)
      .map((name) => form.elements.namedItem(name))
      .filter((el) => el && el.dataset && el.dataset.kind === "array");
    const patterns = new Map(arrays.map((el) => [el, split(el.value)]));

    function note(el, text) {
      let slot = document.getElementById("resized-" + el.name);
      if (!slot) {
        slot = document.createElement("div");
        slot.className = "hint";
        slot.id = "resized-" + el.name;
        slot.setAttribute("aria-live", "polite");
        el.insertAdjacentElement("afterend", slot);
      }
      slot.textContent = text;
    }

    function resize() {
      const n = Number(binsEl.value);
      if (validateField(binsEl) || !Number.isInteger(n) || n < 1) return;
      for (const el of arrays) {
        const pattern = patterns.get(el) || [];
        if (!pattern.length || split(el.value).length === n) continue;
        const values = Array.from({ length: n }, (_, i) => pattern[i % pattern.length]);
        el.value = values.join(", ");
        const how = n > pattern.length ? "pattern repeated" : "trimmed";
        note(el, `Resized to ${n} value${n === 1 ? "" : "s"} (${how}) to follow ${form.dataset.binsLabel || binsEl.name}.`);
        el.closest(".field")?.classList.add("changed");
        showError(el, validateField(el));
      }
    }

    binsEl.addEventListener("input", resize);
    binsEl.addEventListener("change", resize);
    for (const el of arrays) {
      el.addEventListener("input", () => {
        patterns.set(el, split(el.value));
        note(el, "");
      });
    }
  });

  // Busy state on the other long-running forms.
  document.querySelectorAll("#run-form, #yaml-form").forEach((form) => {
    form.addEventListener("submit", (e) => {
      const btn = e.submitter;
      if (btn) setTimeout(() => { btn.disabled = true; }, 0);
    });
  });

  // ---- Run YAML: show an uploaded file in the editor ----------------------------------------
  const file = document.getElementById("yaml-file");
  if (file) {
    file.addEventListener("change", async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      const note = document.getElementById("file-note");
      if (f.size > 10 * 1024 * 1024) { if (note) note.textContent = "The file is larger than 10 MB."; return; }
      document.getElementById("yaml").value = await f.text();
      if (note) note.textContent = `Loaded ${f.name} (${f.size} bytes) — edit it here before running.`;
      file.value = "";  // the editor's text is what gets sent
    });
  }
})();
