// The GEX profile chart in plain SVG: net GEX by strike as bars, by volume (top panel) and by open interest
// (bottom panel), sharing the strike axis; spot and zero gamma across both panels, each panel's major levels in it.
// GexChart.draw(container, snapshot, rangePercent) replaces the container's content; `snapshot` is a reply of
// GET /api/strikes. Every bar and line carries its value in data-* attributes (the browser test reads them).
"use strict";

const GexChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const WIDTH = 1000;
  const LEFT = 64;
  const RIGHT = 16;
  const TOP = 40; // room for the spot and zero gamma labels
  const PANEL = 210;
  const GAP = 44;
  const HEIGHT = TOP + 2 * PANEL + GAP + 40;
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

  function compact(value) {
    const size = Math.abs(value);
    for (const [limit, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
      if (size >= limit) return (value / limit).toFixed(size >= 10 * limit ? 0 : 1) + suffix;
    }
    return String(Math.round(value * 10) / 10);
  }

  function shown(strikes, spot, rangePercent) {
    if (!rangePercent || spot == null) return strikes;
    const reach = spot * rangePercent / 100;
    return strikes.filter((row) => Math.abs(row[0] - spot) <= reach);
  }

  function smallestStep(strikes) {
    let step = Infinity;
    for (let i = 1; i < strikes.length; i += 1) step = Math.min(step, strikes[i][0] - strikes[i - 1][0]);
    return Number.isFinite(step) && step > 0 ? step : 1;
  }

  function draw(container, snapshot, rangePercent) {
    const strikes = shown(snapshot.strikes.slice().sort((a, b) => a[0] - b[0]), snapshot.spot, rangePercent);
    const root = node("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "profile", role: "img",
      "aria-label": `GEX profile of ${snapshot.ticker} ${snapshot.endpoint}`, "data-ticker": snapshot.ticker,
      "data-endpoint": snapshot.endpoint, "data-timestamp": snapshot.timestamp, "data-strikes": strikes.length});
    container.replaceChildren(root);
    if (!strikes.length) {
      root.append(node("text", {x: WIDTH / 2, y: HEIGHT / 2, class: "empty", "text-anchor": "middle"},
        "no strike rows in this range"));
      return;
    }
    const step = smallestStep(strikes);
    const low = strikes[0][0] - step / 2;
    const high = strikes[strikes.length - 1][0] + step / 2;
    const x = (strike) => LEFT + (strike - low) / (high - low) * (WIDTH - LEFT - RIGHT);
    const barWidth = Math.max(1, (x(low + step) - x(low)) * 0.8);
    const inside = (value) => value != null && value >= low && value <= high;
    PANELS.forEach((panel, i) => drawPanel(root, panel, TOP + i * (PANEL + GAP), strikes, snapshot, x, barWidth,
      inside));
    drawStrikeAxis(root, strikes, x);
    const levels = [["spot", "Spot", snapshot.spot], ["zero-gamma", "Zero γ", snapshot.zero_gamma]];
    levels.forEach(([name, label, value], row) => {
      if (!inside(value)) return;
      level(root, name, x(value), TOP - 4, TOP + 2 * PANEL + GAP, value);
      root.append(labelAt(x(value), 14 + row * 14, `${label} ${value}`, name));
    });
  }

  function drawPanel(root, panel, top, strikes, snapshot, x, barWidth, inside) {
    const values = strikes.map((row) => row[panel.column]).filter((value) => value != null);
    const reach = Math.max(...values.map(Math.abs), 1e-9);
    const y = (value) => top + PANEL / 2 - value / reach * (PANEL / 2 - 4);
    const group = node("g", {class: `panel ${panel.key}`});
    group.append(node("rect", {x: LEFT, y: top, width: WIDTH - LEFT - RIGHT, height: PANEL, class: "frame"}));
    group.append(node("text", {x: LEFT + 6, y: top + 14, class: "title"}, panel.title));
    for (const [value, anchor] of [[reach, reach], [0, 0], [-reach, -reach]]) {
      group.append(node("text", {x: LEFT - 6, y: y(anchor) + 4, class: "tick", "text-anchor": "end"},
        compact(value)));
    }
    group.append(node("line", {x1: LEFT, x2: WIDTH - RIGHT, y1: y(0), y2: y(0), class: "zero-line"}));
    for (const row of strikes) {
      const value = row[panel.column];
      if (value == null) continue;
      const bar = node("rect", {x: x(row[0]) - barWidth / 2, y: Math.min(y(value), y(0)), width: barWidth,
        height: Math.max(Math.abs(y(value) - y(0)), 0.5), class: `bar ${panel.key} ${value >= 0 ? "pos" : "neg"}`,
        "data-strike": row[0], "data-value": value});
      bar.append(node("title", {}, `${row[0]}: ${value}`));
      group.append(bar);
    }
    panel.majors.forEach(([field, label, name], row) => {
      const value = snapshot[field];
      if (!inside(value)) return;
      level(group, `${name} ${field}`, x(value), top, top + PANEL, value);
      group.append(labelAt(x(value), top + 30 + row * 13, `${label} ${value}`, name));
    });
    root.append(group);
  }

  function level(parent, name, at, from, to, value) {
    parent.append(node("line", {x1: at, x2: at, y1: from, y2: to, class: `level ${name}`, "data-value": value}));
  }

  function labelAt(at, y, text, name) {
    const clamped = Math.min(Math.max(at, LEFT + 40), WIDTH - RIGHT - 40);
    return node("text", {x: clamped, y, class: `label ${name}`, "text-anchor": "middle"}, text);
  }

  function drawStrikeAxis(root, strikes, x) {
    const bottom = TOP + 2 * PANEL + GAP;
    const every = Math.max(1, Math.ceil(strikes.length / 12));
    strikes.forEach((row, i) => {
      if (i % every) return;
      root.append(node("text", {x: x(row[0]), y: bottom + 16, class: "tick", "text-anchor": "middle"}, row[0]));
      root.append(node("text", {x: x(row[0]), y: TOP + PANEL + 16, class: "tick", "text-anchor": "middle"},
        row[0]));
    });
    root.append(node("text", {x: WIDTH / 2, y: bottom + 34, class: "axis-title", "text-anchor": "middle"},
      "strike"));
  }

  return {draw, compact};
})();
