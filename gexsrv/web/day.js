// The day view: one feed's GEX by strike over one UTC day as a heatmap (strike up the side, time along the
// bottom, a diverging scale), spot, zero gamma and the majors traced per bucket over it, a hover readout, and a
// slider that profiles any moment. Data: GET /api/days (the pickers) and GET /api/heatmap (the grid); today's view
// is extended every `refresh` seconds with the buckets from its last one on. Page parameters: ?ticker=&endpoint=
// &date=&measure=&bucket_s=&agg=&band=&refresh=5. The canvas and the profile carry what they show in data-*
// attributes (the browser test reads them).
"use strict";

(() => {
  const query = new URLSearchParams(location.search);
  const REFRESH_MS = 1000 * (Number(query.get("refresh")) || 5);
  const TOKEN_KEY = "gexsrv-token"; // the status page's: one token for both pages
  const DAY_MS = 86400000;
  const MARGIN = {left: 56, right: 8, top: 8, bottom: 24};
  const NULL_RGB = [236, 239, 243];
  const NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  // generation: bumped by every new load, so that a reply to an older request (a poll in flight while the
  // controls change) is dropped instead of drawn over the newer view
  const state = {days: [], view: null, moment: 0, image: null, geometry: null, timer: null, generation: 0};

  class ApiFailure extends Error {
    constructor(status, body) {
      super(`${status}: ${body.error || "request failed"}`);
      this.status = status;
      this.field = body.field;
    }
  }

  async function api(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const reply = await fetch(path, {headers: token ? {Authorization: `Bearer ${token}`} : {}, cache: "no-store"});
    if (!reply.ok) throw new ApiFailure(reply.status, await reply.json().catch(() => ({})));
    return reply.json();
  }

  function notice(text) {
    $("notice").textContent = text || "";
    $("notice").hidden = !text;
  }

  function utcTime(ms, seconds) {
    return new Date(ms).toISOString().slice(11, seconds ? 19 : 16);
  }

  const NEW_YORK = new Intl.DateTimeFormat("en-US", {timeZone: "America/New_York", hour: "2-digit",
    minute: "2-digit", hour12: false});

  function compact(value) {
    const size = Math.abs(value);
    for (const [limit, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
      if (size >= limit) return (value / limit).toFixed(size >= 10 * limit ? 0 : 1) + suffix;
    }
    return String(Math.round(value * 10) / 10);
  }

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function rgb(hex) {
    return [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
  }

  // ---- the controls and the days stored

  function option(value, text, chosen) {
    const found = document.createElement("option");
    found.value = value;
    found.textContent = text;
    found.selected = chosen;
    return found;
  }

  function pick(select, wanted) {
    if (wanted != null && [...select.options].some((o) => o.value === wanted)) select.value = wanted;
  }

  function fillFeeds() {
    const feeds = [...new Set(state.days.map((day) => `${day.ticker} ${day.endpoint}`))];
    const wanted = `${query.get("ticker") || ""} ${query.get("endpoint") || ""}`;
    $("feed").replaceChildren(...feeds.map((feed) => option(feed, feed, feed === wanted)));
  }

  function fillDates() {
    const [ticker, endpoint] = $("feed").value.split(" ");
    const dates = state.days.filter((day) => day.ticker === ticker && day.endpoint === endpoint)
      .map((day) => [day.date, day.source]).reverse();
    const wanted = query.get("date");
    $("date").replaceChildren(...dates.map(([date, source]) =>
      option(date, source === "lake" ? `${date} (lake)` : date, date === wanted)));
  }

  function selection() {
    const [ticker, endpoint] = $("feed").value.split(" ");
    const found = {ticker, endpoint, date: $("date").value, measure: $("measure").value,
      bucket_s: $("bucket").value, agg: $("agg").value};
    if ($("band").value) found.band = $("band").value;
    return found;
  }

  function isToday(date) {
    return date === new Date().toISOString().slice(0, 10);
  }

  // ---- loading

  async function loadDays() {
    state.days = (await api("/api/days")).days;
    fillFeeds();
    fillDates();
    if (!state.days.length) $("caption").textContent = "No snapshots stored yet: post some to /gex.";
  }

  async function loadView() {
    clearTimeout(state.timer);
    const generation = ++state.generation;
    const chosen = selection();
    if (!chosen.ticker || !chosen.date) return;
    const params = new URLSearchParams(chosen);
    history.replaceState(null, "", `?${params}${query.has("refresh") ? `&refresh=${query.get("refresh")}` : ""}`);
    let view;
    try {
      view = await api(`/api/heatmap?${params}`);
      notice("");
    } catch (error) {
      if (!(error instanceof ApiFailure && error.field === "band")) throw error;
      params.delete("band"); // a day whose lake holds strike rows only has no spot to centre a band on
      view = await api(`/api/heatmap?${params}`);
      notice("This day is only in the Parquet lake, which holds its strike rows but not its spot: every strike is "
        + "shown.");
    }
    if (generation !== state.generation) return;
    for (const form of ["csv", "parquet"]) $(form).href = `/api/heatmap?${params}&format=${form}`;
    show(view, true);
    follow(chosen.date);
  }

  function follow(date) {
    $("live").hidden = !isToday(date);
    if (isToday(date)) state.timer = setTimeout(() => extend().catch(failed), REFRESH_MS);
  }

  // Today's view grows by the buckets from its last one on, within the strikes shown; a strike it lacks means a
  // whole new load.
  async function extend() {
    const view = state.view;
    if (!view.times.length) return loadView();
    const params = new URLSearchParams({ticker: view.ticker, endpoint: view.endpoint, from: view.times.at(-1),
      to: view.to, bucket_s: view.bucket_s, measure: view.measure, agg: view.agg,
      min_strike: view.strikes[0], max_strike: view.strikes.at(-1)});
    const generation = state.generation;
    const more = await api(`/api/heatmap?${params}`);
    if (generation !== state.generation) return undefined;
    const column = new Map(view.strikes.map((strike, j) => [strike, j]));
    if (more.strikes.some((strike) => !column.has(strike))) return loadView();
    const atEnd = state.moment === view.times.length - 1;
    more.times.forEach((time, k) => {
      let i = view.times.indexOf(time);
      if (i < 0) i = view.times.push(time) - 1;
      const row = new Array(view.strikes.length).fill(null);
      more.strikes.forEach((strike, j) => { row[column.get(strike)] = more.grid[k][j]; });
      view.grid[i] = row;
      for (const name of Object.keys(view.series)) view.series[name][i] = more.series[name][k];
    });
    show(view, atEnd);
    follow(view.date);
  }

  // ---- the heatmap

  function show(view, toEnd) {
    view.date = view.date || $("date").value;
    state.view = view;
    const cols = view.times.length;
    state.moment = toEnd ? Math.max(0, cols - 1) : Math.min(state.moment, Math.max(0, cols - 1));
    $("moment").max = Math.max(0, cols - 1);
    $("moment").value = state.moment;
    state.image = cellImage(view);
    const what = view.agg === "last" ? "the last snapshot" : "the mean";
    $("caption").textContent = cols ? `${view.ticker} ${view.endpoint} ${view.date}: ${cols} buckets × `
      + `${view.strikes.length} strikes, ${what} of each ${view.bucket_s} s bucket, GEX by `
      + `${view.measure === "vol" ? "volume" : "open interest"}, from the ${view.source}`
      + (view.source === "lake" && view.series.spot.every((v) => v == null)
        ? " (which holds its strike rows only: no spot, zero gamma or majors)" : "")
      : `${view.ticker} ${view.endpoint} ${view.date}: no snapshots${isToday(view.date) ? " yet" : ""}.`;
    drawMap();
    drawProfile();
  }

  // One pixel per cell (strikes bottom-up), scaled onto the plot later; the scale is the 99th percentile of
  // |GEX|, so one outlier does not wash the rest out.
  function cellImage(view) {
    const cols = view.times.length;
    const rows = view.strikes.length;
    if (!cols || !rows) return null;
    const magnitudes = view.grid.flat().filter((v) => v != null).map(Math.abs).sort((a, b) => a - b);
    const scale = magnitudes.length ? magnitudes[Math.floor(0.99 * (magnitudes.length - 1))] || 1 : 1;
    const pos = rgb(color("--pos"));
    const neg = rgb(color("--neg"));
    const pixels = new ImageData(cols, rows);
    view.grid.forEach((row, i) => row.forEach((value, j) => {
      const at = 4 * ((rows - 1 - j) * cols + i);
      const t = value == null ? 0 : Math.min(1, Math.abs(value) / scale);
      const ink = value == null ? NULL_RGB : (value >= 0 ? pos : neg).map((c) => 255 + (c - 255) * t);
      pixels.data.set([...ink.map(Math.round), 255], at);
    }));
    const canvas = document.createElement("canvas");
    canvas.width = cols;
    canvas.height = rows;
    canvas.getContext("2d").putImageData(pixels, 0, 0);
    $("scale-low").textContent = compact(-scale);
    $("scale-high").textContent = `+${compact(scale)}`;
    return {canvas, scale};
  }

  function plotHeight(rows) {
    const narrow = window.innerWidth < 600;
    return Math.min(Math.max(rows * (narrow ? 3 : 4), narrow ? 220 : 280), narrow ? 460 : 620);
  }

  // Where a strike level sits among the rows: rows are strikes in order, whatever their spacing, so a level is
  // placed between the two strikes around it; null outside the strikes shown.
  function rowOf(strikes, value) {
    if (value == null || value < strikes[0] || value > strikes.at(-1)) return null;
    let j = 0;
    while (j < strikes.length - 1 && strikes[j + 1] < value) j += 1;
    const next = Math.min(j + 1, strikes.length - 1);
    return next === j ? j : j + (value - strikes[j]) / (strikes[next] - strikes[j]);
  }

  function drawMap() {
    const view = state.view;
    const canvas = $("heatmap");
    const width = $("map").clientWidth;
    const rows = view.strikes.length;
    const cols = view.times.length;
    const g = {left: MARGIN.left, top: MARGIN.top, width: Math.max(10, width - MARGIN.left - MARGIN.right),
      height: plotHeight(rows)};
    const height = g.top + g.height + MARGIN.bottom;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    state.geometry = g;
    Object.assign(canvas.dataset, {columns: cols, rows, left: g.left, top: g.top, width: g.width, height: g.height,
      scale: state.image ? state.image.scale : 0});
    ctx.font = "11px system-ui, sans-serif";
    if (!state.image) {
      ctx.fillStyle = color("--muted");
      ctx.fillText("nothing to show for this selection", g.left + 10, g.top + 20);
      return;
    }
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(state.image.canvas, g.left, g.top, g.width, g.height);
    drawAxes(ctx, view, g);
    drawLevels(ctx, view, g);
    const x = g.left + (state.moment + 0.5) * g.width / cols;
    ctx.strokeStyle = "#1d2430";
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(x, g.top);
    ctx.lineTo(x, g.top + g.height);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  function drawAxes(ctx, view, g) {
    const rows = view.strikes.length;
    const cols = view.times.length;
    ctx.fillStyle = color("--muted");
    ctx.textAlign = "right";
    const everyRow = Math.max(1, Math.ceil(rows / (g.height / 16)));
    view.strikes.forEach((strike, j) => {
      if (j % everyRow) return;
      ctx.fillText(String(strike), g.left - 4, g.top + g.height * (1 - (j + 0.5) / rows) + 4);
    });
    ctx.textAlign = "center";
    const everyCol = Math.max(1, Math.ceil(cols / (g.width / 56)));
    view.times.forEach((time, i) => {
      if (i % everyCol) return;
      ctx.fillText(utcTime(time), g.left + (i + 0.5) * g.width / cols, g.top + g.height + 15);
    });
  }

  function levelsOf(view) {
    const side = view.measure === "vol" ? "vol" : "oi";
    return [["spot", "--spot", []], ["zero_gamma", "--zero", []], [`major_pos_${side}`, "--major-pos", [5, 3]],
      [`major_neg_${side}`, "--major-neg", [5, 3]]];
  }

  function drawLevels(ctx, view, g) {
    const rows = view.strikes.length;
    const cols = view.times.length;
    ctx.lineWidth = 2;
    for (const [name, ink, dash] of levelsOf(view)) {
      ctx.strokeStyle = color(ink);
      ctx.setLineDash(dash);
      ctx.beginPath();
      let drawing = false;
      view.series[name].forEach((value, i) => {
        const row = rowOf(view.strikes, value);
        if (row == null) {
          drawing = false;
          return;
        }
        const x = g.left + (i + 0.5) * g.width / cols;
        const y = g.top + g.height * (1 - (row + 0.5) / rows);
        if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        drawing = true;
      });
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.lineWidth = 1;
  }

  // The cell under a point of the canvas (CSS pixels from its corner), or null.
  function cellAt(x, y) {
    const view = state.view;
    const g = state.geometry;
    if (!view || !g || !view.times.length || x < g.left || y < g.top || x >= g.left + g.width
        || y >= g.top + g.height) return null;
    const i = Math.floor((x - g.left) / g.width * view.times.length);
    const j = view.strikes.length - 1 - Math.floor((y - g.top) / g.height * view.strikes.length);
    return {i, j};
  }

  function readout(cell) {
    const view = state.view;
    const time = view.times[cell.i];
    const strike = view.strikes[cell.j];
    const value = view.grid[cell.i][cell.j];
    const text = value == null ? "no value" : value.toLocaleString("en-US", {maximumFractionDigits: 3});
    $("readout").textContent = `${utcTime(time)} UTC (${NEW_YORK.format(time)} New York) · strike ${strike} · `
      + `GEX ${text}`;
    Object.assign($("readout").dataset, {time, strike, value: value == null ? "" : value});
  }

  function pointed(event) {
    const box = $("heatmap").getBoundingClientRect();
    return cellAt(event.clientX - box.left, event.clientY - box.top);
  }

  // ---- the profile of one moment

  function svg(tag, attrs, text) {
    const found = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs)) found.setAttribute(name, value);
    if (text !== undefined) found.textContent = text;
    return found;
  }

  function drawProfile() {
    const view = state.view;
    const i = state.moment;
    // drawn at the width it is shown at, so its labels keep their size on a phone
    const W = Math.max(320, $("profile").clientWidth || 1000), H = 260, L = 56, R = 12, T = 12, B = 36;
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "profile", role: "img",
      "aria-label": "GEX by strike at the moment chosen"});
    $("profile").replaceChildren(root);
    if (!view.times.length || !view.strikes.length) {
      $("moment-label").textContent = "";
      root.append(svg("text", {x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle"}, "no data"));
      return;
    }
    const row = view.grid[i];
    const at = view.series.at[i];
    $("moment-label").textContent = `${utcTime(view.times[i])} UTC: ${view.series.snapshots[i]} snapshots, `
      + `the last at ${utcTime(at, true)}`;
    Object.assign(root.dataset, {time: view.times[i], at});
    const rows = view.strikes.length;
    const step = (W - L - R) / rows;
    const x = (j) => L + (j + 0.5) * step;
    const reach = Math.max(...row.filter((v) => v != null).map(Math.abs), 1e-9);
    const y = (value) => T + (H - T - B) / 2 - value / reach * ((H - T - B) / 2 - 2);
    root.append(svg("rect", {x: L, y: T, width: W - L - R, height: H - T - B, class: "frame"}));
    root.append(svg("line", {x1: L, x2: W - R, y1: y(0), y2: y(0), class: "zero-line"}));
    for (const [value, label] of [[reach, compact(reach)], [0, "0"], [-reach, compact(-reach)]]) {
      root.append(svg("text", {x: L - 6, y: y(value) + 4, class: "tick", "text-anchor": "end"}, label));
    }
    row.forEach((value, j) => {
      if (value == null) return;
      const bar = svg("rect", {x: x(j) - Math.max(step * 0.4, 0.5), y: Math.min(y(value), y(0)),
        width: Math.max(step * 0.8, 1), height: Math.max(Math.abs(y(value) - y(0)), 0.5),
        class: `bar ${value >= 0 ? "pos" : "neg"}`, "data-strike": view.strikes[j], "data-value": value});
      bar.append(svg("title", {}, `${view.strikes[j]}: ${value}`));
      root.append(bar);
    });
    const every = Math.max(1, Math.ceil(rows / ((W - L - R) / 60)));
    view.strikes.forEach((strike, j) => {
      if (j % every === 0) root.append(svg("text", {x: x(j), y: H - B + 16, class: "tick", "text-anchor": "middle"},
        strike));
    });
    for (const [name] of levelsOf(view)) {
      const value = view.series[name][i];
      const place = rowOf(view.strikes, value);
      if (place == null) continue;
      const kind = name.replace(/_(vol|oi)$/, "").replace(/_/g, "-");
      root.append(svg("line", {x1: x(place), x2: x(place), y1: T, y2: H - B, class: `level ${kind}`,
        "data-level": name, "data-value": value}));
    }
  }

  // ---- wiring

  function failed(error) {
    if (error instanceof ApiFailure && error.status === 401) {
      $("auth").hidden = false;
      notice(`${error.message}: give the token`);
      return;
    }
    notice(String(error.message || error));
    if (state.view) follow(state.view.date); // a live view keeps trying
  }

  async function start() {
    pick($("measure"), query.get("measure"));
    pick($("bucket"), query.get("bucket_s") || "60");
    pick($("agg"), query.get("agg"));
    pick($("band"), query.has("band") ? query.get("band") : "2.5");
    try {
      await loadDays();
      $("auth").hidden = true;
      await loadView();
    } catch (error) {
      failed(error);
    }
  }

  $("feed").addEventListener("change", () => {
    fillDates();
    loadView().catch(failed);
  });
  for (const id of ["date", "measure", "bucket", "agg", "band"]) {
    $(id).addEventListener("change", () => loadView().catch(failed));
  }
  $("moment").addEventListener("input", () => {
    state.moment = Number($("moment").value);
    drawMap();
    drawProfile();
  });
  $("heatmap").addEventListener("pointermove", (event) => {
    const cell = pointed(event);
    if (cell) readout(cell);
  });
  $("heatmap").addEventListener("click", (event) => {
    const cell = pointed(event);
    if (!cell) return;
    readout(cell);
    state.moment = cell.i;
    $("moment").value = cell.i;
    drawMap();
    drawProfile();
  });
  window.addEventListener("resize", () => { if (state.view) drawMap(); });
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    start();
  });
  start();
})();
