// Charts with the vendored Apache ECharts (static/vendor/echarts.min.js, a UMD build
// that defines window.echarts). It is 1 MB, so only pages that draw load it, once.
// `timeChart` turns a plain description (series, limits, markers, shaded spans) into an
// ECharts option, so pages describe what to show, not how ECharts wants it.

import { DEFAULT_ZONE, zoneTime } from "./dom.js";
import { getLang } from "./i18n.js";

let loading = null;

export function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = new URL("./vendor/echarts.min.js", import.meta.url).href;
    script.onload = () => resolve(window.echarts);
    script.onerror = () => { loading = null; reject(new Error("echarts.min.js not loaded")); };
    document.head.append(script);
  });
  return loading;
}

// Level colours of the alert badges, reused for markers so a red alert looks red.
export const LEVEL_COLOURS = { 1: "#d32f2f", 2: "#ef6c00", 3: "#f9a825", 4: "#1e88e5" };
const LIMIT_COLOURS = { lolo: "#d32f2f", lo: "#ef6c00", hi: "#ef6c00", hihi: "#d32f2f" };

/**
 * Draw into `el` and return the chart (call `.dispose()` when the page goes away).
 * spec = {
 *   series: [{name, unit, data: [[epochMs, value], ...], step?, band?: [[ms, min, max]]}],
 *   limits: [{name, value, unit, colour?}]   horizontal lines on the axis of that unit,
 *   marks:  [{name, at: epochMs, colour?}]   vertical lines (alert start, detection),
 *   spans:  [{name, from: epochMs, to: epochMs, colour?}]  shaded periods,
 *   zone:   IANA time zone of the labels (the enterprise's; default Asia/Shanghai),
 * }
 */
export async function timeChart(el, spec) {
  const echarts = await loadECharts();
  const chart = echarts.getInstanceByDom(el) ??
    echarts.init(el, null, { locale: getLang() === "en" ? "EN" : "ZH" });
  chart.setOption(timeOption(spec), { notMerge: true });
  if (!el.dataset.resizeWatched) {
    el.dataset.resizeWatched = "1";
    new ResizeObserver(() => chart.resize()).observe(el);
  }
  return chart;
}

function timeOption({ series = [], limits = [], marks = [], spans = [], zone = DEFAULT_ZONE }) {
  const units = [...new Set(series.map((s) => s.unit ?? ""))];
  const axisOf = (unit) => Math.max(0, units.indexOf(unit ?? ""));
  // Limits widen their axis: how far a reading is from its limit is the point.
  const limitValues = (i) => limits.filter((l) => axisOf(l.unit) === i).map((l) => l.value);
  const yAxis = units.map((unit, i) => ({
    type: "value", name: unit, scale: true,
    min: (e) => niceFloor(Math.min(e.min, ...limitValues(i))),
    max: (e) => niceCeil(Math.max(e.max, ...limitValues(i))),
    position: i % 2 === 0 ? "left" : "right",
    offset: Math.floor(i / 2) * 55, // a third or fourth unit moves outwards
    splitLine: { show: i === 0 },
  }));
  const out = series.map((s, i) => ({
    name: s.name, type: "line", yAxisIndex: axisOf(s.unit), data: s.data,
    step: s.step ? "end" : false, showSymbol: s.data.length < 60, connectNulls: false,
    // The first series carries the markers, so they are drawn once.
    ...(i === 0 ? markers(marks, spans) : {}),
  }));
  for (const s of series.filter((x) => x.band)) out.push(...bandSeries(s, axisOf(s.unit)));
  for (const limit of limits) {
    // A limit is drawn by the first series on its unit's axis; without one, it is skipped.
    const host = out.find((s) => s.yAxisIndex === axisOf(limit.unit) && !s.stack);
    if (!host) continue;
    host.markLine ??= { symbol: "none", silent: true, data: [] };
    host.markLine.data.push({
      yAxis: limit.value, name: limit.name,
      label: { formatter: `${limit.name} ${limit.value}`, position: "insideEndTop" },
      lineStyle: { color: limit.colour ?? LIMIT_COLOURS[limit.name] ?? "#888", type: "dashed" },
    });
  }
  if (out.length === 0) out.push({ type: "line", data: [], ...markers(marks, spans) });
  return {
    animation: false,
    grid: { left: 60 + 55 * Math.floor((units.length - 1) / 2), right: 60, top: 40, bottom: 70 },
    tooltip: { trigger: "axis", formatter: (params) => tooltip(params, zone) },
    legend: { type: "scroll", top: 0, data: series.map((s) => s.name) },
    // Labels in the enterprise's zone, not the browser's: operators compare them with
    // the alert times, which the service writes in that zone.
    xAxis: { type: "time", axisLabel: { formatter: (ms) => axisLabel(ms, spanOf(series), zone),
                                        hideOverlap: true } },
    yAxis: yAxis.length ? yAxis : [{ type: "value" }],
    dataZoom: [{ type: "inside" }, { type: "slider", height: 20, bottom: 10 }],
    series: out,
  };
}

function markers(marks, spans) {
  return {
    markLine: { symbol: "none", silent: false, data: marks.map((m) => ({
      xAxis: m.at, name: m.name,
      label: { formatter: m.name, position: "insideEndTop" },
      lineStyle: { color: m.colour ?? "#555", type: "solid", width: 1.5 },
    })) },
    markArea: { silent: true, data: spans.map((s) => [
      { xAxis: s.from, name: s.name, itemStyle: { color: s.colour ?? "rgba(120,120,120,0.15)" },
        label: { color: "#444" } },
      { xAxis: s.to },
    ]) },
  };
}

// min..max as a shaded band under the mean line: two stacked invisible/filled lines.
function bandSeries(s, yAxisIndex) {
  const stack = `band-${s.name}`;
  const common = { type: "line", yAxisIndex, stack, symbol: "none", silent: true,
                   lineStyle: { opacity: 0 }, tooltip: { show: false } };
  return [
    { ...common, id: `band:min:${s.name}`, name: `${s.name} min`, data: s.band.map(([t, lo]) => [t, lo]) },
    { ...common, id: `band:max:${s.name}`, name: `${s.name} max`, areaStyle: { opacity: 0.15 },
      data: s.band.map(([t, lo, hi]) => [t, lo == null || hi == null ? null : hi - lo]) },
  ];
}

function spanOf(series) {
  const times = series.flatMap((s) => (s.data.length ? [s.data[0][0], s.data.at(-1)[0]] : []));
  return times.length ? Math.max(...times) - Math.min(...times) : 0;
}

function axisLabel(ms, span, zone) {
  const text = zoneTime(ms, zone); // "YYYY-MM-DD HH:mm:ss"
  if (span > 86_400_000) return text.slice(5, 16);
  return span > 600_000 ? text.slice(11, 16) : text.slice(11, 19);
}

// Round outwards to two significant digits, so axis ends are readable numbers.
function niceFloor(v) { return round(v, Math.floor); }
function niceCeil(v) { return round(v, Math.ceil); }
function round(v, how) {
  if (!Number.isFinite(v) || v === 0) return v;
  const step = 10 ** (Math.floor(Math.log10(Math.abs(v))) - 1);
  return how(v / step) * step;
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// ECharts renders the tooltip as HTML, so every name and value is escaped here.
function tooltip(params, zone) {
  const list = (Array.isArray(params) ? params : [params])
    .filter((p) => Array.isArray(p.value) && !String(p.seriesId).startsWith("band:"));
  if (!list.length) return "";
  const lines = list.map((p) => `${p.marker}${escapeHtml(p.seriesName)}: ${escapeHtml(p.value[1] ?? "–")}`);
  return [escapeHtml(zoneTime(list[0].value[0], zone)), ...lines].join("<br>");
}
