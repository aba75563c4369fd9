// What an alert's evidence can be drawn as. Evidence differs per rule (CONTRACT.md §4
// only says "the data window and the rule that fired"), so curves are found by shape,
// not by rule: any list of [time, value] pairs is a series, named after the object that
// holds it (e.g. interlocks keep `power`, `guard`, `other`, each {device, point, unit,
// window}). Known scalars become limit lines, known periods shaded spans.

import { t } from "./i18n.js";
import { toMs } from "./dom.js";

const ON_WORDS = new Set(["production", "producing", "on", "running", "true", "1"]);

/** {series, limits, marks, spans, rest}: a timeChart spec plus the evidence without
 * the plotted arrays (for the JSON view). */
export function evidenceChart(alert) {
  const evidence = alert.evidence ?? {};
  const series = [];
  const rest = collect(evidence, [], series, alert, evidence);
  const firstUnit = series[0]?.unit;
  const limits = [];
  for (const [name, value] of Object.entries(evidence.limits ?? {})) {
    if (typeof value === "number") limits.push({ name, value, unit: rootUnit(alert, evidence) });
  }
  const scalar = (key, unit, name = key) => {
    if (typeof evidence[key] === "number") limits.push({ name, value: evidence[key], unit });
  };
  scalar("power_on_kw", evidence.power?.unit ?? "kW");
  scalar("guard_limit", evidence.guard?.unit);
  scalar("floor_kw", "kW");
  scalar("production_level_kw", "kW");
  if (typeof evidence.baseline?.centre === "number") {
    limits.push({ name: "baseline", value: evidence.baseline.centre, unit: firstUnit, colour: "#2e7d32" });
  }
  const marks = [
    { name: t("alert_start"), at: toMs(alert.started_at), colour: "#555" },
    { name: t("alert_detect"), at: toMs(alert.detected_at), colour: "#d32f2f" },
  ].filter((m) => Number.isFinite(m.at));
  const spans = [];
  if (evidence.declared?.from) {
    spans.push({ name: t("declared_stop"), from: toMs(evidence.declared.from),
                 to: toMs(evidence.declared.to), colour: "rgba(30,136,229,0.12)" });
  }
  if (evidence.silent_since) {
    const end = toMs(alert.resolved_at) || Date.now();
    spans.push({ name: t("silent_since"), from: toMs(evidence.silent_since), to: end,
                 colour: "rgba(211,47,47,0.10)" });
  }
  return { series, limits, marks, spans, rest };
}

function rootUnit(alert, evidence) {
  return evidence.unit ?? alert.unit ?? "";
}

// Walk the evidence: pull out [[time, value], ...] lists as series and return a copy
// of the rest with each plotted list replaced by a short note.
function collect(node, path, series, alert, evidence) {
  if (Array.isArray(node)) {
    const points = asPoints(node);
    if (points) {
      series.push(describe(path, node, points, alert, evidence));
      return `[${node.length} points, plotted]`;
    }
    return node.map((x, i) => collect(x, [...path, i], series, alert, evidence));
  }
  if (node && typeof node === "object") {
    return Object.fromEntries(Object.entries(node).map(
      ([k, v]) => [k, collect(v, [...path, k], series, alert, evidence)]));
  }
  return node;
}

/** [[ms, number], ...] when `list` is non-empty time/value pairs, else null. */
function asPoints(list) {
  if (list.length === 0 || !list.every((p) => Array.isArray(p) && p.length === 2)) return null;
  const out = [];
  for (const [time, value] of list) {
    const ms = typeof time === "number" ? time : toMs(time);
    if (!Number.isFinite(ms)) return null;
    if (typeof value === "number" || value === null) out.push([ms, value]);
    else out.push([ms, ON_WORDS.has(String(value).toLowerCase()) ? 1 : 0]); // a state
  }
  return out;
}

function describe(path, raw, data, alert, evidence) {
  const key = path[path.length - 1];
  const owner = path.slice(0, -1).reduce((node, k) => node?.[k], evidence) ?? {};
  const textual = raw.some(([, v]) => typeof v === "string");
  let name = key;
  let unit = owner.unit;
  if (owner.device && owner.point) name = `${owner.device} ${owner.point}`;
  else if (key === "load_curve") name = `${evidence.meter ?? "meter"} kW`;
  else if (key === "window" && path.length === 1) {
    name = [alert.device_id, alert.point].filter(Boolean).join(" ") || "window";
  }
  if (key === "load_curve") unit = "kW";
  if (unit === undefined && path.length === 1 && !textual) unit = rootUnit(alert, evidence);
  if (textual) unit = t("producing_flag");
  return { name: String(name), unit: unit ?? "", data, step: textual };
}
