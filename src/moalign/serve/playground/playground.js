"use strict";
// moalign playground: objective sliders -> per-request weights -> /v1/chat/completions, streamed.
// No dependencies and nothing fetched from elsewhere: every request goes to the serving origin.
(() => {
  const KEY_STORE = "moalign.playground.apiKey";
  const SETTING_NAMES = ["A", "B", "C"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (sel, root = document) => root.querySelector(sel);
  const state = {
    info: null, model: null, scoring: { objectives: [], higher_is_better: {} }, search: null,
    settings: [], controllers: [], errors: [],
  };

  // ------------------------------------------------------------------ errors and server calls

  function showError(message) {
    if (!state.errors.includes(message)) state.errors.push(message);
    $("#error-text").textContent = state.errors.join("\n");
    $("#error").hidden = false;
  }

  function clearError() {
    state.errors = [];
    $("#error-text").textContent = "";
    $("#error").hidden = true;
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = $("#api-key").value.trim();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  // The server answers errors as {"error": {"message", "type", "code"}}; older shapes too.
  function messageOf(body, fallback) {
    const e = body && body.error;
    if (e && typeof e === "object" && e.message) return e.message;
    if (typeof e === "string") return e;
    if (body && typeof body.detail === "string") return body.detail;
    return fallback;
  }

  async function errorOf(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON: use the status text */ }
    return new Error(`HTTP ${res.status}: ${messageOf(body, res.statusText || "request failed")}`);
  }

  async function call(path, body, signal) {
    const init = { headers: headers(), signal };
    if (body !== undefined) Object.assign(init, { method: "POST", body: JSON.stringify(body) });
    const res = await fetch(path, init);
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  const getJSON = async (path) => (await call(path)).json();

  // ------------------------------------------------------------------ connecting

  async function connect() {
    clearError();
    $("#server-info").textContent = "connecting to the server\u2026";
    try {
      const [info, models] = await Promise.all([getJSON("/objectives"), getJSON("/v1/models")]);
      const names = [...info.objectives].sort().join("\n");
      const same = state.settings.every((s) => Object.keys(s.weights).sort().join("\n") === names);
      if (!same) state.settings = []; // keep the sliders when reconnecting to the same ensemble
      state.info = info;
      state.model = models.data && models.data.length ? models.data[0].id : "moalign";
      state.scoring = await getJSON("/score").catch(() => ({ objectives: [] }));
      state.search = await getJSON("/playground/search").catch(() => null);
      setUp();
      return true;
    } catch (e) {
      state.info = null;
      $("#server-info").textContent = "not connected";
      const hint = /HTTP 401/.test(e.message) ? "\nEnter the server's API key above." : "";
      showError(`Could not load the objectives: ${e.message}${hint}`);
      return false;
    }
  }

  function setUp() {
    const { info } = state;
    const scored = state.scoring.objectives || [];
    $("#server-info").textContent = `${state.model} \u00b7 objectives: ${info.objectives.join(", ")}`
      + (scored.length ? ` \u00b7 scored: ${scored.join(", ")}` : "");
    const level = $("#level");
    const current = level.value || "states";
    level.replaceChildren(...(info.levels || ["states"]).map((name) => new Option(name, name)));
    level.value = (info.levels || []).includes(current) ? current : level.options[0].value;
    const limits = info.limits || {};
    const maxTokens = $("#max-tokens");
    if (limits.max_new_tokens_limit) maxTokens.max = limits.max_new_tokens_limit;
    if (limits.default_max_new_tokens && !maxTokens.dataset.touched) {
      maxTokens.value = limits.default_max_new_tokens;
    }
    setSettingCount(Number($("#compare").value));
    setUpAxes();
    setUpSearched();
  }

  // ------------------------------------------------------------------ weight settings and cards

  function defaultWeights() {
    return { ...state.info.default_weights };
  }

  function oneHot(index) {
    return Object.fromEntries(state.info.objectives.map((n, i) => [n, i === index ? 1 : 0]));
  }

  function initialWeights(i) {
    const k = state.info.objectives.length;
    return i === 0 || k < 2 ? defaultWeights() : oneHot((i - 1) % k);
  }

  function setSettingCount(count) {
    const old = state.settings;
    state.settings = SETTING_NAMES.slice(0, count).map((name, i) => (
      old[i] || { name, weights: initialWeights(i) }));
    renderCards();
    renderPlot();
    setUpSearchedTargets();
  }

  function renderCards() {
    const cards = $("#cards");
    cards.replaceChildren(...state.settings.map((s) => makeCard(s)));
  }

  function makeCard(setting) {
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    card.dataset.setting = setting.name;
    $(".card-title", card).textContent = `Setting ${setting.name}`;
    $(".answer", card).setAttribute("aria-label", `Answer at setting ${setting.name}`);
    const box = $(".weights", card);
    const top = Math.max(1, ...Object.values(state.info.default_weights));
    state.info.objectives.forEach((name, j) => box.append(makeSlider(setting, name, j, top)));
    card.querySelector("[data-action=defaults]").addEventListener("click", () => {
      setWeights(setting, defaultWeights());
    });
    card.querySelector("[data-action=uniform]").addEventListener("click", () => {
      const k = state.info.objectives.length;
      setWeights(setting, Object.fromEntries(state.info.objectives.map((n) => [n, 1 / k])));
    });
    updateWeightsLine(card, setting);
    return card;
  }

  function makeSlider(setting, name, j, top) {
    const id = `w-${setting.name}-${j}`;
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = name;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", id, min: "0", max: String(top), step: "0.01" });
    input.value = String(setting.weights[name] ?? 0);
    input.dataset.objective = name;
    const out = document.createElement("output");
    out.htmlFor = id;
    out.textContent = fmt(Number(input.value));
    input.addEventListener("input", () => {
      setting.weights[name] = Number(input.value);
      out.textContent = fmt(setting.weights[name]);
      updateWeightsLine(input.closest(".card"), setting);
      renderPlot();
    });
    row.append(label, input, out);
    return row;
  }

  function setWeights(setting, weights) {
    setting.weights = { ...weights };
    const card = cardOf(setting);
    card.querySelectorAll("input[type=range]").forEach((input) => {
      const w = setting.weights[input.dataset.objective] ?? 0;
      if (w > Number(input.max)) input.max = String(w);
      input.value = String(w);
      input.nextElementSibling.textContent = fmt(w);
    });
    updateWeightsLine(card, setting);
    renderPlot();
  }

  function cardOf(setting) {
    return document.querySelector(`.card[data-setting="${setting.name}"]`);
  }

  function updateWeightsLine(card, setting) {
    const values = state.info.objectives.map((n) => setting.weights[n] ?? 0);
    const total = values.reduce((a, b) => a + b, 0);
    $(".weights-line", card).textContent = total > 0
      ? "share: " + state.info.objectives.map((n, i) => (
        `${n} ${Math.round((100 * values[i]) / total)}%`)).join(" \u00b7 ")
      : "all weights are 0: give at least one objective a positive weight";
  }

  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : String(x));

  // ------------------------------------------------------------------ generating

  function numberField(selector, parse) {
    const raw = $(selector).value.trim();
    return raw === "" ? undefined : parse(raw);
  }

  function requestBody(setting, prompt) {
    const body = {
      model: state.model, messages: [{ role: "user", content: prompt }], stream: true,
      stream_options: { include_usage: true }, weights: { ...setting.weights },
      level: $("#level").value,
    };
    const maxTokens = numberField("#max-tokens", Number);
    if (maxTokens !== undefined) body.max_tokens = maxTokens;
    if (samplingMode() === "sample") {
      body.temperature = numberField("#temperature", Number) ?? 1;
      body.top_p = numberField("#top-p", Number) ?? 1;
      const seed = numberField("#seed", Number);
      if (seed !== undefined) body.seed = seed;
    } else {
      body.temperature = 0; // greedy, as OpenAI-compatible servers read temperature 0
    }
    return body;
  }

  const samplingMode = () => document.querySelector("input[name=mode]:checked").value;

  // Reads OpenAI chat-completion chunks (`data: {...}` events, `data: [DONE]`) as they arrive.
  async function streamChat(body, signal, onText) {
    const res = await call("/v1/chat/completions", body, signal);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let usage = null;
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return usage;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(messageOf(chunk, "the stream failed"));
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) onText(delta.content);
          if (chunk.usage) usage = chunk.usage;
        }
      }
      if (done) return usage;
    }
  }

  async function generate() {
    if (!state.info && !(await connect())) return;
    const prompt = $("#prompt").value;
    if (!prompt.trim()) {
      showError("Write a prompt first.");
      $("#prompt").focus();
      return;
    }
    clearError();
    stopAll();
    setBusy(true);
    try {
      await Promise.all(state.settings.map((s) => runSetting(s, cardOf(s), prompt)));
    } finally {
      setBusy(false);
    }
  }

  async function runSetting(setting, card, prompt) {
    const answer = $(".answer", card);
    const meta = $(".meta", card);
    answer.textContent = "";
    meta.textContent = "";
    $(".scores", card).hidden = true;
    card.dataset.state = "running";
    const controller = new AbortController();
    state.controllers.push(controller);
    const started = performance.now();
    try {
      const usage = await streamChat(requestBody(setting, prompt), controller.signal, (text) => {
        answer.append(text);
      });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const tokens = usage && usage.completion_tokens;
      meta.textContent = `${tokens ?? "?"} tokens in ${seconds} s`;
      answer.normalize();
      await showScores(card, prompt, answer.textContent);
      card.dataset.state = "done";
    } catch (e) {
      if (e.name === "AbortError") {
        card.dataset.state = "stopped";
        meta.textContent = "stopped";
      } else {
        card.dataset.state = "error";
        showError(`Setting ${setting.name}: ${e.message}`);
      }
    }
  }

  async function showScores(card, prompt, text) {
    const names = state.scoring.objectives || [];
    if (!names.length) return;
    const dl = $(".scores", card);
    const meta = $(".meta", card);
    const before = meta.textContent;
    meta.textContent = `${before} \u00b7 scoring\u2026`;
    try {
      const res = await (await call("/score", { prompt, responses: [text] })).json();
      const row = res.scores[0];
      const higher = res.higher_is_better || {};
      dl.replaceChildren(...names.flatMap((name) => {
        const dt = document.createElement("dt");
        dt.textContent = `${name} ${higher[name] === false ? "\u2193" : "\u2191"}`;
        dt.title = higher[name] === false ? "lower is better" : "higher is better";
        const dd = document.createElement("dd");
        dd.textContent = Number(row[name]).toFixed(3);
        dd.dataset.objective = name;
        return [dt, dd];
      }));
      dl.setAttribute("aria-label", "Scores per objective");
      dl.hidden = false;
    } catch (e) {
      showError(`Scoring failed: ${e.message}`);
    } finally {
      meta.textContent = before;
    }
  }

  function stopAll() {
    state.controllers.forEach((c) => c.abort());
    state.controllers = [];
  }

  function setBusy(busy) {
    $("#generate").disabled = busy;
    $("#stop").disabled = !busy;
    document.body.setAttribute("aria-busy", String(busy));
  }

  // ------------------------------------------------------------------ the plot

  function setUpAxes() {
    const names = state.info.objectives;
    const many = names.length > 2;
    $("#axes").hidden = !many;
    for (const [sel, pick] of [["#axis-x", 0], ["#axis-y", 1]]) {
      const select = $(sel);
      select.replaceChildren(...names.map((n, i) => new Option(n, String(i))));
      select.value = String(Math.min(pick, names.length - 1));
    }
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function searchPoints() {
    const s = state.search;
    return s && s.available ? s : { points: [], front: [], best_weights: null, simplex: false };
  }

  function renderPlot() {
    const svg = $("#plot");
    const names = state.info ? state.info.objectives : [];
    if (names.length < 2) {
      svg.replaceChildren();
      $("#plot-desc").textContent = names.length ? "One objective: nothing to trade off." : "";
      return;
    }
    const ix = Number($("#axis-x").value || 0);
    const iy = Number($("#axis-y").value || 1);
    const search = searchPoints();
    const shown = (w) => {
      if (!search.simplex) return w;
      const total = names.reduce((a, n) => a + (w[n] || 0), 0);
      return total > 0 ? Object.fromEntries(names.map((n) => [n, (w[n] || 0) / total])) : w;
    };
    const current = state.settings.map((s) => ({ name: s.name, w: shown(s.weights) }));
    const all = [...search.points.map((p) => p.weights), ...current.map((c) => c.w)];
    const top = Math.max(1, ...all.flatMap((w) => [w[names[ix]] || 0, w[names[iy]] || 0]));
    const box = { left: 44, right: 244, top: 10, bottom: 192 };
    const sx = (v) => box.left + (v / top) * (box.right - box.left);
    const sy = (v) => box.bottom - (v / top) * (box.bottom - box.top);
    const xy = (w) => [sx(w[names[ix]] || 0), sy(w[names[iy]] || 0)];
    svg.replaceChildren(...axes(box, top, sx, sy, names[ix], names[iy]));
    drawSearch(svg, search, xy);
    for (const c of current) {
      const [x, y] = xy(c.w);
      svg.append(el("circle", { class: `cur ${c.name}`, cx: x, cy: y, r: 6 }));
      const right = x > box.right - 14; // keep the letter inside the plot
      const low = y < box.top + 14;
      svg.append(el("text", { class: "cur-label", x: right ? x - 9 : x + 9,
        y: low ? y + 16 : y - 7, "text-anchor": right ? "end" : "start" }, c.name));
    }
    $("#plot-desc").textContent = plotCaption(current, search, names);
  }

  function axes(box, top, sx, sy, xName, yName) {
    const nodes = [];
    for (let t = 0; t <= 4; t++) {
      const v = (top * t) / 4;
      nodes.push(el("line", { class: "grid", x1: sx(v), x2: sx(v), y1: box.top, y2: box.bottom }));
      nodes.push(el("line", { class: "grid", x1: box.left, x2: box.right, y1: sy(v), y2: sy(v) }));
      nodes.push(el("text", { x: sx(v), y: box.bottom + 12, "text-anchor": "middle" }, v.toFixed(2)));
      nodes.push(el("text", { x: box.left - 4, y: sy(v) + 3, "text-anchor": "end" }, v.toFixed(2)));
    }
    nodes.push(el("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
    nodes.push(el("line", { class: "axis", x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }));
    nodes.push(el("text", { x: (box.left + box.right) / 2, y: 226, "text-anchor": "middle" },
      `weight: ${xName}`));
    nodes.push(el("text", { x: 10, y: (box.top + box.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 10 ${(box.top + box.bottom) / 2})` }, `weight: ${yName}`));
    return nodes;
  }

  function drawSearch(svg, search, xy) {
    for (const p of search.points) {
      const [x, y] = xy(p.weights);
      const dot = el("circle", { class: "pt", cx: x, cy: y, r: 2.5 });
      dot.append(el("title", {}, `searched point, score ${fmt(p.score)}`));
      svg.append(dot);
    }
    for (const p of search.front) {
      const [x, y] = xy(p.weights);
      svg.append(el("circle", { class: "front", cx: x, cy: y, r: 4.5 }));
    }
    if (search.best_weights) {
      const [x, y] = xy(search.best_weights);
      svg.append(el("path", { class: "best", d: `M${x} ${y - 5}L${x + 5} ${y}L${x} ${y + 5}L${x - 5} ${y}Z` }));
    }
  }

  function plotCaption(current, search, names) {
    const where = current.map((c) => (
      `${c.name}: ${names.map((n) => `${n} ${fmt(c.w[n] || 0)}`).join(", ")}`)).join("; ");
    if (!search.points.length) {
      return `${where}. No weight search in this run directory; only the settings are shown.`;
    }
    const norm = search.simplex ? " (weights normalised to sum 1, as in the search)" : "";
    return `${where}${norm}. ${search.points.length} searched points (grey), `
      + `${search.front.length} on the Pareto front (ringed), best weights \u25c6.`;
  }

  // ------------------------------------------------------------------ searched weights

  function setUpSearched() {
    const search = searchPoints();
    const choices = [];
    if (search.best_weights) choices.push({ label: "best", weights: search.best_weights });
    search.front.forEach((p, i) => choices.push({ label: `Pareto ${i + 1}`, weights: p.weights }));
    state.choices = choices;
    $("#searched-box").hidden = !choices.length;
    $("#searched").replaceChildren(...choices.map((c, i) => new Option(
      `${c.label}: ${state.info.objectives.map((n) => `${n} ${fmt(c.weights[n] || 0)}`).join(", ")}`,
      String(i))));
  }

  function setUpSearchedTargets() {
    $("#searched-target").replaceChildren(...state.settings.map((s) => (
      new Option(`to setting ${s.name}`, s.name))));
  }

  function applySearched() {
    const choice = state.choices[Number($("#searched").value)];
    const target = state.settings.find((s) => s.name === $("#searched-target").value);
    if (choice && target) setWeights(target, choice.weights);
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    const key = $("#api-key");
    key.value = sessionStorage.getItem(KEY_STORE) || "";
    $("#key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (key.value.trim()) sessionStorage.setItem(KEY_STORE, key.value.trim());
      else sessionStorage.removeItem(KEY_STORE);
      connect();
    });
    $("#prompt-form").addEventListener("submit", (ev) => { ev.preventDefault(); generate(); });
    $("#prompt").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); generate(); }
    });
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") stopAll(); });
    $("#stop").addEventListener("click", stopAll);
    $("#error-close").addEventListener("click", clearError);
    $("#compare").addEventListener("change", (ev) => {
      if (state.info) setSettingCount(Number(ev.target.value));
    });
    $("#max-tokens").addEventListener("input", (ev) => { ev.target.dataset.touched = "1"; });
    document.querySelectorAll("input[name=mode]").forEach((radio) => radio.addEventListener(
      "change", () => {
        const greedy = samplingMode() === "greedy";
        for (const id of ["#temperature", "#top-p", "#seed"]) $(id).disabled = greedy;
      }));
    $("#axis-x").addEventListener("change", renderPlot);
    $("#axis-y").addEventListener("change", renderPlot);
    $("#searched-apply").addEventListener("click", applySearched);
  }

  document.addEventListener("DOMContentLoaded", () => { wire(); connect(); });
})();
