// The status page: polls GET /api/status (served from memory) and redraws the server facts, feeds, history jobs
// and recent problems; the chart (chart.js) is fetched again from GET /api/strikes only when the chosen feed's
// newest snapshot changes. Page parameters: ?ticker=SPX&endpoint=gex_zero (the feed charted), &band=2.5 (the
// strikes within 2.5% of spot; `all` for every one), &refresh=2 (seconds between polls), &stale=120 (seconds past
// which a feed is stale). The URL always says what is charted, so a link shows the same view; the ticker and
// endpoint last chosen are remembered (localStorage) for a URL that names none. With auth on, the bearer token is
// asked for once and sent with every request.
"use strict";

(() => {
  const query = new URLSearchParams(location.search);
  const REFRESH_MS = 1000 * (Number(query.get("refresh")) || 2);
  const STALE_S = Number(query.get("stale")) || 120;
  const TOKEN_KEY = "gexsrv-token";
  const CHOSEN_KEY = "gexsrv-chosen"; // {ticker, endpoint} last picked on the page
  const DEFAULT_BAND = "2.5";
  const remembered = JSON.parse(localStorage.getItem(CHOSEN_KEY) || "{}");
  // A URL's ticker wins over the one remembered; the remembered endpoint goes with its own ticker only.
  const urlTicker = query.get("ticker");
  const rememberedHolds = !urlTicker || urlTicker === remembered.ticker;
  const state = {
    ticker: urlTicker || remembered.ticker || "",
    endpoint: query.get("endpoint") || (rememberedHolds && remembered.endpoint) || "",
    band: bandParam(query.get("band")), // "all" or a percentage of spot
    timestamp: "", // "" follows the newest snapshot; else the epoch ms of the one chosen
    drawn: null, // what the chart shows: "<ticker> <endpoint> <timestamp> <received>"
    snapshot: null, // the /api/strikes reply charted
    feeds: [],
  };
  const $ = (id) => document.getElementById(id);

  function bandParam(value) {
    if (value === "all" || Number(value) > 0) return value;
    return DEFAULT_BAND;
  }

  class Unauthorized extends Error {}

  async function api(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const reply = await fetch(path, {headers: token ? {Authorization: `Bearer ${token}`} : {}, cache: "no-store"});
    if (reply.status === 401) throw new Unauthorized((await reply.json()).error);
    if (!reply.ok) {
      const body = await reply.json().catch(() => ({}));
      throw new Error(`${path}: ${reply.status} ${body.error || reply.statusText}`);
    }
    return reply.json();
  }

  function el(tag, attrs, ...children) {
    const found = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) found.setAttribute(name, value);
    }
    found.append(...children.map((child) => (child instanceof Node ? child : String(child ?? ""))));
    return found;
  }

  function utc(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "";
  }

  function age(seconds) {
    if (seconds == null) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor(s / 60) % 60} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor(s / 3600) % 24} h`;
  }

  function megabytes(bytes) {
    return bytes == null ? "" : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  }

  // ---- server, feeds, jobs, errors ----

  // The badge says "ok" only while the server is healthy and every feed is fresh: a healthy server whose feeds
  // all stopped is no good to a trader.
  function renderBadge(health, feeds) {
    const stale = feeds.filter((feed) => feed.age_s > STALE_S).length;
    const staleness = !stale ? "" : stale === feeds.length ? "all feeds stale"
      : `${stale} of ${feeds.length} feeds stale`;
    const badge = $("server-status");
    badge.textContent = health.status === "ok" ? staleness || "ok"
      : [health.status, staleness].filter(Boolean).join(" · ");
    badge.className = `badge ${health.status === "ok" && stale ? "stale" : health.status}`;
    badge.title = stale ? `feeds whose newest data is older than ${age(STALE_S)}` : "";
  }

  function renderServer(health, now) {
    $("updated").textContent = `updated ${utc(now)}`;
    const storage = health.storage || {};
    const journal = health.journal || {};
    const ingest = health.ingest || {};
    const recent = ingest.recent || {};
    const facts = [
      ["version", health.version],
      ["uptime", age(health.uptime_s)],
      ["storage", storage.state + (storage.error ? ` (${storage.cause || "error"}: ${storage.error})` : ""),
       storage.state !== "writable"],
      ["quarantined", storage.quarantined, storage.quarantined > 0],
      ["commit conflicts", Object.entries(storage.commit_conflicts || {}).map(([w, n]) => `${w} ${n}`).join(", ")],
      ["journal", `${journal.segments} segments, ${journal.fsyncs} fsyncs${journal.error ? `, ${journal.error}` : ""}`,
       Boolean(journal.error)],
      ["waiting for ingest", `${ingest.records_waiting} records, ${megabytes(journal.bytes_waiting)}, ` +
        `lag ${ingest.lag_s} s`, ingest.lag_s > 5],
      ["recent ingests", recent.ingests ? `${recent.ingests}, p50 ${recent.ms_p50} ms, max ${recent.ms_max} ms, ` +
        `${recent.records_mean} records each` : "none yet"],
      ["ingest error", ingest.last_error || "none", Boolean(ingest.last_error)],
      ["history", `${(health.history || {}).pending_jobs ?? "?"} jobs pending`],
      ["poller", (health.poller || {}).enabled ? `${health.poller.stored} stored, ${health.poller.errors} errors`
        : "off"],
      ["latest view", `${(health.latest || {}).tickers} tickers, load ${(health.latest || {}).load}`],
    ];
    $("server").replaceChildren(...facts.flatMap(([name, value, bad]) => [
      el("dt", {}, name), el("dd", {class: bad ? "bad" : undefined, "data-fact": name}, value ?? ""),
    ]));
  }

  function renderFeeds(feeds) {
    $("stale-after").textContent = age(STALE_S);
    const rows = feeds.map((feed) => {
      const stale = feed.age_s > STALE_S;
      const chosen = feed.kind === "snapshot" && feed.ticker === state.ticker && feed.endpoint === state.endpoint;
      const row = el("tr", {class: [stale ? "stale" : "", chosen ? "chosen" : "",
        feed.kind === "snapshot" ? "pickable" : ""].join(" ").trim() || undefined,
        "data-ticker": feed.ticker, "data-endpoint": feed.endpoint, "data-kind": feed.kind,
        "data-stale": String(stale)},
      el("td", {}, feed.ticker), el("td", {}, feed.endpoint), el("td", {}, feed.kind),
      el("td", {}, utc(feed.timestamp)), el("td", {class: "age"}, age(feed.age_s)),
      el("td", {}, `${age(feed.received_age_s)} ago`), el("td", {class: "num"}, feed.records));
      if (feed.kind === "snapshot") row.addEventListener("click", () => choose(feed.ticker, feed.endpoint));
      return row;
    });
    $("feeds").tBodies[0].replaceChildren(...(rows.length ? headed($("feeds"), rows)
      : [el("tr", {}, el("td", {colspan: 7, class: "muted"}, "no data received yet"))]));
  }

  // Each cell names its column (data-label): a phone shows a row as a card of "column: value" lines (status.css).
  function headed(table, rows) {
    const names = [...table.tHead.rows[0].cells].map((cell) => cell.textContent);
    for (const row of rows) [...row.cells].forEach((cell, i) => cell.setAttribute("data-label", names[i]));
    return rows;
  }

  function progress(job) {
    if (job.status === "downloading") return `${megabytes(job.bytes)} downloaded`;
    if (job.status === "skipped") return "nothing new";
    if (job.snapshots_imported == null) return job.status === "completed" ? "done" : "";
    return `${job.snapshots_imported} snapshots, ${job.rows_imported} rows`;
  }

  function renderJobs(history) {
    const body = $("jobs").tBodies[0];
    if (!history.jobs) {
      body.replaceChildren(el("tr", {}, el("td", {colspan: 9, class: "bad"}, history.error || "unavailable")));
      return;
    }
    const rows = history.jobs.map((job) => el("tr", {class: `job ${job.status}`, "data-job": job.id},
      el("td", {class: "num"}, job.id), el("td", {}, job.status), el("td", {}, job.ticker),
      el("td", {}, job.endpoint), el("td", {}, progress(job)), el("td", {class: "num"}, job.rows_per_s ?? ""),
      el("td", {class: "num"}, job.attempts), el("td", {}, (job.updated_at || "").slice(0, 19)),
      el("td", {class: "error-text"}, job.last_error || "")));
    body.replaceChildren(...(rows.length ? headed($("jobs"), rows)
      : [el("tr", {}, el("td", {colspan: 9, class: "muted"}, "no history jobs"))]));
  }

  function renderErrors(errors) {
    $("errors").replaceChildren(...(errors.length ? errors.map((error) => el("li", {class: error.level},
      el("span", {class: "muted"}, `${utc(error.at)} ${error.level} ${error.logger}: `), error.message))
      : [el("li", {class: "muted"}, "none since start")]));
  }

  // ---- the chart ----

  function snapshotFeeds() {
    return state.feeds.filter((feed) => feed.kind === "snapshot");
  }

  function options(select, values, chosen) {
    select.replaceChildren(...values.map((value) => el("option", {value, selected: value === chosen}, value)));
  }

  function endpointsOf(ticker) {
    return snapshotFeeds().filter((feed) => feed.ticker === ticker).map((feed) => feed.endpoint);
  }

  function updateChoices() {
    const tickers = [...new Set(snapshotFeeds().map((feed) => feed.ticker))];
    if (!tickers.includes(state.ticker) && tickers.length) state.ticker = tickers[0];
    const endpoints = endpointsOf(state.ticker);
    if (!endpoints.includes(state.endpoint) && endpoints.length) state.endpoint = endpoints[0];
    options($("ticker"), tickers, state.ticker);
    options($("endpoint"), endpoints, state.endpoint);
    showInUrl();
  }

  function showInUrl() {
    const url = new URL(location.href);
    for (const [name, value] of [["ticker", state.ticker], ["endpoint", state.endpoint], ["band", state.band]]) {
      if (value) url.searchParams.set(name, value);
      else url.searchParams.delete(name);
    }
    history.replaceState(null, "", url);
    const day = new URLSearchParams({ticker: state.ticker || "", endpoint: state.endpoint || ""});
    document.getElementById("day-link").href = state.ticker ? `/day?${day}` : "/day";
  }

  function choose(ticker, endpoint) {
    state.ticker = ticker;
    state.endpoint = endpoint;
    state.timestamp = "";
    state.drawn = null;
    localStorage.setItem(CHOSEN_KEY, JSON.stringify({ticker, endpoint}));
    showInUrl();
    $("snapshot").replaceChildren(el("option", {value: ""}, "live (newest)"));
    tick();
  }

  // The band select offers the URL's band too when it is not one of its own (?band=3).
  function showBand() {
    const select = $("range");
    if (![...select.options].some((option) => option.value === state.band)) {
      select.append(el("option", {value: state.band}, `spot ± ${state.band}%`));
    }
    select.value = state.band;
  }

  async function refreshChart() {
    const feed = snapshotFeeds().find((f) => f.ticker === state.ticker && f.endpoint === state.endpoint);
    if (!feed) return;
    const wanted = state.timestamp ? `${state.ticker} ${state.endpoint} ${state.timestamp}`
      : `${state.ticker} ${state.endpoint} ${feed.timestamp} ${feed.received_at}`;
    if (wanted === state.drawn) return;
    const params = new URLSearchParams({ticker: state.ticker, endpoint: state.endpoint});
    if (state.timestamp) params.set("timestamp", state.timestamp);
    state.snapshot = await api(`/api/strikes?${params}`);
    state.drawn = wanted;
    drawChart();
  }

  function drawChart() {
    const snap = state.snapshot;
    if (!snap) return;
    const count = GexChart.draw($("chart"), snap, state.band === "all" ? 0 : Number(state.band));
    const mode = state.timestamp ? "chosen snapshot" : "live";
    const band = state.band === "all" ? "all strikes" : `spot ± ${state.band}%`;
    $("chart-caption").textContent = `${snap.ticker} ${snap.endpoint} · ${utc(snap.timestamp)} (${mode}) · ` +
      `${count} of ${snap.strikes.length} strikes shown (${band}) · ` +
      `net GEX ${GexChart.compact(snap.sum_gex_vol ?? 0)} by volume, ` +
      `${GexChart.compact(snap.sum_gex_oi ?? 0)} by OI`;
    const levels = [["spot", snap.spot], ["zero gamma", snap.zero_gamma], ["major +vol", snap.major_pos_vol],
      ["major −vol", snap.major_neg_vol], ["major +OI", snap.major_pos_oi], ["major −OI", snap.major_neg_oi]];
    $("levels").textContent = levels.map(([name, value]) => `${name} ${value ?? "–"}`).join(" · ");
  }

  async function listSnapshots() {
    const params = new URLSearchParams({ticker: state.ticker, endpoint: state.endpoint, limit: "200"});
    const found = await api(`/api/snapshots?${params}`);
    const choices = found.snapshots.map((snap) => el("option", {value: snap.timestamp,
      selected: String(snap.timestamp) === state.timestamp}, utc(snap.timestamp)));
    $("snapshot").replaceChildren(el("option", {value: ""}, "live (newest)"), ...choices);
  }

  // ---- the loop ----

  function notice(text) {
    $("notice").textContent = text || "";
    $("notice").hidden = !text;
  }

  async function tick() {
    try {
      const status = await api("/api/status");
      state.feeds = status.feeds;
      renderBadge(status.health, status.feeds);
      renderServer(status.health, status.now);
      renderFeeds(status.feeds);
      renderJobs(status.history);
      renderErrors(status.errors);
      updateChoices();
      await refreshChart();
      notice("");
      $("auth").hidden = true;
    } catch (error) {
      if (error instanceof Unauthorized) {
        $("auth").hidden = false;
        notice(`401: ${error.message}`);
      } else {
        notice(`${error.message} (retrying)`);
      }
    }
  }

  async function loop() {
    await tick();
    setTimeout(loop, REFRESH_MS);
  }

  $("ticker").addEventListener("change", (event) => choose(event.target.value,
    endpointsOf(event.target.value)[0] ?? ""));
  $("endpoint").addEventListener("change", (event) => choose(state.ticker, event.target.value));
  $("snapshot").addEventListener("focus", () => listSnapshots().catch((error) => notice(error.message)));
  $("snapshot").addEventListener("change", (event) => {
    state.timestamp = event.target.value;
    tick();
  });
  $("range").addEventListener("change", (event) => {
    state.band = event.target.value;
    showInUrl();
    drawChart();
  });
  // The chart is drawn at the width it has, so it is drawn again when that changes (a phone turned sideways).
  let drawnWidth = $("chart").clientWidth;
  new ResizeObserver(() => {
    if ($("chart").clientWidth === drawnWidth) return;
    drawnWidth = $("chart").clientWidth;
    drawChart();
  }).observe($("chart"));
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    tick();
  });
  showBand();
  loop();
})();
