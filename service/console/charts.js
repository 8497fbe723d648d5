// Hand-drawn SVG charts: no library, no inline styles (colours come from console.css classes).
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c !== undefined && c !== null) {
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

function shortTime(ms, spanMs) {
  const d = new Date(ms);
  const hh = String(d.getUTCHours()).padStart(2, "0");
  const mm = String(d.getUTCMinutes()).padStart(2, "0");
  if (spanMs <= 36 * 3600e3) return `${hh}:${mm}`;
  return `${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")} ${hh}h`;
}

export function formatNumber(v, unit = "") {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  const abs = Math.abs(v);
  let text;
  if (unit === "%") text = `${(v * 100).toFixed(abs < 0.1 ? 1 : 0)}%`;
  else if (abs >= 1000) text = `${(v / 1000).toFixed(1)}k`;
  else if (abs >= 10 || v === 0) text = v.toFixed(0);
  else text = v.toFixed(abs < 1 ? 3 : 1);
  return unit && unit !== "%" ? `${text} ${unit}` : text;
}

/**
 * A time-series line chart.
 * series: [{name, cls, points: [[timeMs, value], ...]}]; unit: "%", "ms", "req/s"...
 * Returns a <figure> with the SVG (role=img, labelled) and the numbers as a table in <details>.
 */
export function lineChart({ id, title, unit = "", series, description }) {
  const W = 640, H = 240, L = 92, R = 30, T = 16, B = 36;
  const all = series.flatMap((x) => x.points);
  const fig = h("figure", { class: "chart", id });
  const caption = h("figcaption", {}, title);
  fig.append(caption);
  if (!all.length) {
    fig.append(h("p", { class: "empty" }, "No data in this time range."));
    return fig;
  }
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const span = Math.max(1, x1 - x0);
  const yMax = niceMax(Math.max(...all.map((p) => p[1] || 0)));
  const X = (t) => L + ((t - x0) / span) * (W - L - R);
  const Y = (v) => T + (1 - (v || 0) / yMax) * (H - T - B);
  const titleId = `${id}-title`;
  const summary = series
    .map((x) => {
      const vals = x.points.map((p) => p[1] || 0);
      const max = Math.max(...vals);
      const last = vals[vals.length - 1];
      return `${x.name}: latest ${formatNumber(last, unit)}, peak ${formatNumber(max, unit)}`;
    })
    .join("; ");
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": titleId,
    class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(s("title", { id: titleId }, `${title}. ${description || ""} ${summary}`.trim()));
  // Gridlines on round values: 0-50 in tens, 0-20% in fives.
  const mantissa = Math.round(yMax / 10 ** Math.floor(Math.log10(yMax)));
  const steps = mantissa === 2 ? 4 : 5;
  for (let i = 0; i <= steps; i += 1) {
    const v = (yMax * i) / steps;
    const y = Y(v);
    svg.append(s("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: L - 6, y: y + 4, class: "tick", "text-anchor": "end" }, formatNumber(v, unit)));
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i += 1) {
    const t = x0 + (span * i) / ticks;
    svg.append(s("text", { x: X(t), y: H - B + 18, class: "tick", "text-anchor": "middle" }, shortTime(t, span)));
  }
  svg.append(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  series.forEach((x, i) => {
    const pts = x.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: pts, class: `line ${x.cls || `s${i}`}` }));
    if (x.points.length === 1) {
      svg.append(s("circle", { cx: X(x.points[0][0]), cy: Y(x.points[0][1]), r: 3, class: `dot ${x.cls || `s${i}`}` }));
    }
  });
  fig.append(h("div", { class: "chart-frame" }, svg));
  fig.append(
    h(
      "ul",
      { class: "legend", "aria-hidden": "true" },
      series.map((x, i) => h("li", {}, h("span", { class: `swatch ${x.cls || `s${i}`}` }), x.name)),
    ),
  );
  // The same numbers for screen readers and for copying.
  const rows = all.length ? series[0].points.map((p, idx) => [
    new Date(p[0]).toISOString().replace(":00.000Z", "Z"),
    ...series.map((x) => formatNumber(x.points[idx] ? x.points[idx][1] : null, unit)),
  ]) : [];
  fig.append(
    h(
      "details",
      { class: "chart-data" },
      h("summary", {}, `${title}: data table`),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, [h("th", { scope: "col" }, "bin (UTC)"), ...series.map((x) => h("th", { scope: "col" }, x.name))])),
          h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i ? h("td", {}, c) : h("th", { scope: "row" }, c)))))),
        ),
      ),
    ),
  );
  return fig;
}

/** Horizontal bars: items [{label, value, note}] (value >= 0). */
export function barChart({ id, title, unit = "", items }) {
  const fig = h("figure", { class: "chart", id }, h("figcaption", {}, title));
  if (!items.length) {
    fig.append(h("p", { class: "empty" }, "No data in this time range."));
    return fig;
  }
  const W = 960, row = 26, L = 300, R = 80;
  const H = items.length * row + 8;
  const max = niceMax(Math.max(...items.map((i) => i.value)));
  const titleId = `${id}-title`;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId, class: "chart-svg" });
  svg.append(
    s("title", { id: titleId }, `${title}: ${items.map((i) => `${i.label} ${formatNumber(i.value, unit)}`).join(", ")}`),
  );
  items.forEach((item, idx) => {
    const y = 4 + idx * row;
    const w = Math.max(1, ((W - L - R) * item.value) / max);
    const label = item.label.length > 40 ? `${item.label.slice(0, 39)}…` : item.label;
    svg.append(s("text", { x: L - 8, y: y + 16, class: "tick", "text-anchor": "end" }, label));
    svg.append(s("rect", { x: L, y: y + 3, width: w.toFixed(1), height: row - 8, class: `bar ${item.cls || ""}` }));
    svg.append(s("text", { x: L + w + 6, y: y + 16, class: "tick" }, formatNumber(item.value, unit)));
  });
  fig.append(h("div", { class: "chart-frame" }, svg));
  return fig;
}
