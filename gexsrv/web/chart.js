// The GEX profile chart in plain SVG: net GEX by strike as bars, by volume (top panel) and by open interest
// (bottom panel), sharing the strike axis; spot and zero gamma across both panels, each panel's major levels in it.
// GexChart.draw(container, snapshot, bandPercent) replaces the container's content with the strikes within
// bandPercent of spot (all of them when it is 0) and returns how many it shows; `snapshot` is a reply of
// GET /api/strikes. The SVG is drawn at the container's width in pixels, so its text is as large on a phone as on
// a desk. Every bar and line carries its value in data-* attributes (the browser test reads them).
"use strict";

const GexChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const LEFT = 76; // room for the y-axis title and its tick labels
  const RIGHT = 16;
  const LINE = 16; // one row of level labels
  const PANEL = 210;
  const GAP = 44;
  const TICK_SPACING = 60; // pixels between strike ticks at least: a label such as 6625 is about 30 wide
  const LABEL_GAP = 8; // pixels between two level labels on a row
  const UNIT = "net GEX (gexbot units)"; // gexbot publishes no unit: the values are shown as the feed sends them
  const PANELS = [
    {key: "vol", column: 1, title: "Net GEX by volume",
     majors: [["major_pos_vol", "+Vol", "major-pos"], ["major_neg_vol", "−Vol", "major-neg"]]},
    {key: "oi", column: 2, title: "Net GEX by open interest",
     majors: [["major_pos_oi", "+OI", "major-pos"], ["major_neg_oi", "−OI", "major-neg"]]},
  ];

  function node(tag, attrs, text) {
    const found = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) found.setAttribute(name, value);
    if (text !== undefined) found.textContent = text;
    return found;
  }

  const SCALES = [[1e9, "B"], [1e6, "M"], [1e3, "K"]];

  function compact(value) {
    const size = Math.abs(value);
    for (const [limit, suffix] of SCALES) {
      if (size >= limit) return (value / limit).toFixed(size >= 10 * limit ? 0 : 1) + suffix;
    }
    return String(Math.round(value * 10) / 10);
  }

  // The smallest round step (1, 2, 2.5 or 5 times a power of ten) that cuts span into at most `count` parts.
  function niceStep(span, count) {
    const raw = span / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= raw * (1 - 1e-9));
  }

  function decimals(step) {
    let digits = 0;
    while (digits < 10 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6) digits += 1;
    return digits;
  }

  // Every multiple of step from low to high, each with its label: scaled to K, M or B by the largest one shown.
  function ticks(low, high, step, scaled) {
    const [limit, suffix] = scaled && SCALES.find(([size]) => Math.max(-low, high) >= size) || [1, ""];
    const digits = decimals(step / limit);
    const found = [];
    for (let i = Math.ceil(low / step - 1e-9); i * step <= high + step * 1e-9; i += 1) {
      const value = i * step;
      found.push([value, i === 0 ? "0" : (value / limit).toFixed(digits) + suffix]);
    }
    return found;
  }

  function shown(strikes, spot, bandPercent) {
    if (!bandPercent || spot == null) return strikes;
    const reach = spot * bandPercent / 100;
    return strikes.filter((row) => Math.abs(row[0] - spot) <= reach);
  }

  function smallestStep(strikes) {
    let step = Infinity;
    for (let i = 1; i < strikes.length; i += 1) step = Math.min(step, strikes[i][0] - strikes[i - 1][0]);
    return Number.isFinite(step) && step > 0 ? step : 1;
  }

  function draw(container, snapshot, bandPercent) {
    const strikes = shown(snapshot.strikes.slice().sort((a, b) => a[0] - b[0]), snapshot.spot, bandPercent);
    const width = Math.max(container.clientWidth, 300);
    const root = node("svg", {class: "profile", role: "img",
      "aria-label": `GEX profile of ${snapshot.ticker} ${snapshot.endpoint}`, "data-ticker": snapshot.ticker,
      "data-endpoint": snapshot.endpoint, "data-timestamp": snapshot.timestamp, "data-strikes": strikes.length});
    container.replaceChildren(root);
    if (!strikes.length) {
      size(root, width, 120);
      root.append(node("text", {x: width / 2, y: 60, class: "empty", "text-anchor": "middle"},
        "no strike rows in this band: choose a wider one"));
      return 0;
    }
    const step = smallestStep(strikes);
    const low = strikes[0][0] - step / 2;
    const high = strikes[strikes.length - 1][0] + step / 2;
    const x = (strike) => LEFT + (strike - low) / (high - low) * (width - LEFT - RIGHT);
    const barWidth = Math.max(1, (x(low + step) - x(low)) * 0.8);
    const inside = (value) => value != null && value >= low && value <= high;

    // Spot and zero gamma are labelled above the panels, in as many rows as keep the labels apart.
    const across = [["spot", "Spot", snapshot.spot], ["zero-gamma", "Zero γ", snapshot.zero_gamma]]
      .filter(([, , value]) => inside(value));
    const labels = across.map(([name, label, value]) => labelAt(root, x(value), `${label} ${value}`, name));
    const rows = stack(labels, width, LINE, LINE);
    const top = (rows + 0.5) * LINE;
    const bottom = top + 2 * PANEL + GAP;
    size(root, width, bottom + 42);
    PANELS.forEach((panel, i) => drawPanel(root, panel, top + i * (PANEL + GAP), width, strikes, snapshot, x,
      barWidth, inside));
    across.forEach(([name, , value]) => level(root, name, x(value), top, bottom, value));
    drawStrikeAxis(root, low, high, x, width, top, bottom);
    return strikes.length;
  }

  function size(root, width, height) {
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("width", width);
    root.setAttribute("height", height);
  }

  function drawPanel(root, panel, top, width, strikes, snapshot, x, barWidth, inside) {
    const largest = Math.max(...strikes.map((row) => Math.abs(row[panel.column] ?? 0)), 1e-9);
    const step = niceStep(2 * largest, 6);
    const reach = Math.ceil(largest / step - 1e-9) * step;
    const y = (value) => top + PANEL / 2 - value / reach * (PANEL / 2 - 4);
    const group = node("g", {class: `panel ${panel.key}`});
    root.append(group);
    group.append(node("rect", {x: LEFT, y: top, width: width - LEFT - RIGHT, height: PANEL, class: "frame"}));
    group.append(node("text", {x: LEFT + 6, y: top + 16, class: "title"}, panel.title));
    for (const [value, text] of ticks(-reach, reach, step, true)) {
      group.append(node("text", {x: LEFT - 6, y: y(value) + 4, class: "tick y", "text-anchor": "end"}, text));
    }
    const middle = top + PANEL / 2;
    group.append(node("text", {x: 0, y: 0, class: "axis-title", "text-anchor": "middle",
      transform: `translate(14 ${middle}) rotate(-90)`}, UNIT));
    group.append(node("line", {x1: LEFT, x2: width - RIGHT, y1: y(0), y2: y(0), class: "zero-line"}));
    for (const row of strikes) {
      const value = row[panel.column];
      if (value == null) continue;
      const bar = node("rect", {x: x(row[0]) - barWidth / 2, y: Math.min(y(value), y(0)), width: barWidth,
        height: Math.max(Math.abs(y(value) - y(0)), 0.5), class: `bar ${panel.key} ${value >= 0 ? "pos" : "neg"}`,
        "data-strike": row[0], "data-value": value});
      bar.append(node("title", {}, `${row[0]}: ${value}`));
      group.append(bar);
    }
    // The majors' labels go below the panel's title, in as many rows as keep them apart.
    const majors = panel.majors.filter(([field]) => inside(snapshot[field]));
    majors.forEach(([field, , name]) => level(group, `${name} ${field}`, x(snapshot[field]), top, top + PANEL,
      snapshot[field]));
    stack(majors.map(([field, label, name]) => labelAt(group, x(snapshot[field]), `${label} ${snapshot[field]}`,
      name)), width, top + 16 + LINE, LINE);
  }

  function level(parent, name, at, from, to, value) {
    parent.append(node("line", {x1: at, x2: at, y1: from, y2: to, class: `level ${name}`, "data-value": value}));
  }

  function labelAt(parent, at, text, name) {
    const label = node("text", {x: at, class: `label ${name}`, "text-anchor": "middle"}, text);
    parent.append(label);
    return label;
  }

  // Put each label on the first row (baselines from `first`, `line` apart) where it clears the labels already
  // there, kept inside the plot; levels a hair apart (SPY's strikes are a dollar apart) land on rows of their
  // own. Returns the number of rows used.
  function stack(labels, width, first, line) {
    const placed = labels.map((label) => {
      const half = label.getComputedTextLength() / 2;
      const at = Math.min(Math.max(Number(label.getAttribute("x")), LEFT + half + 2), width - RIGHT - half - 2);
      return {label, at, left: at - half, right: at + half};
    }).sort((a, b) => a.left - b.left);
    const ends = []; // per row, the right edge of its last label
    for (const item of placed) {
      let row = ends.findIndex((end) => end + LABEL_GAP <= item.left);
      if (row < 0) row = ends.push(-Infinity) - 1;
      ends[row] = item.right;
      item.label.setAttribute("x", item.at);
      item.label.setAttribute("y", first + row * line);
    }
    return ends.length;
  }

  // Round strikes (6600, 6625, 6650 ...) chosen from the range shown, no closer than TICK_SPACING pixels.
  function drawStrikeAxis(root, low, high, x, width, top, bottom) {
    const step = niceStep(high - low, (width - LEFT - RIGHT) / TICK_SPACING);
    for (const [value, text] of ticks(low, high, step, false)) {
      for (const y of [top + PANEL + 18, bottom + 18]) {
        root.append(node("text", {x: x(value), y, class: "tick x", "text-anchor": "middle", "data-strike": value},
          text));
      }
    }
    root.append(node("text", {x: width / 2, y: bottom + 36, class: "axis-title", "text-anchor": "middle"},
      "strike"));
  }

  return {draw, compact};
})();
