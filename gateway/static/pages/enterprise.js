// #/enterprises/{id}: one site. Power of all its meters on one chart (hidden operation is
// read there, against the declared periods), each other device's points on its own
// chart, the alerts of the site as vertical markers, refreshed every 10 s and when an
// alert of this site is pushed. Declared periods are shown read-only.

import { ApiError, get } from "../api.js";
import { LEVEL_COLOURS, timeChart } from "../charts.js";
import { fill, h, notice, shortTime, toMs } from "../dom.js";
import { kindName, levelName, t } from "../i18n.js";
import { onAlert } from "../live.js";
import { alertRow } from "./alerts.js";
import { stateChips } from "./enterprises.js";

const REFRESH_MS = 10_000;
// Range name → [milliseconds, resolution]; raw samples only for short ranges.
const RANGES = { "1h": [3_600_000, "raw"], "6h": [21_600_000, "1m"],
                 "24h": [86_400_000, "1m"], "7d": [604_800_000, "1m"] };

export function mount(el, [id], query) {
  const range = RANGES[query.get("range")] ? query.get("range") : "6h";
  const head = h("div");
  const chartsBox = h("div", { id: "enterprise-charts" });
  const seriesNote = h("div", { class: "message" });
  const declared = h("div");
  const devices = h("tbody");
  const alertRows = h("tbody", { id: "alerts" });
  const charts = new Map(); // group key → {el, chart}
  let enterprise = null;
  let gone = false;

  fill(el,
    h("p", {}, h("a", { href: "#/enterprises" }, "← " + t("back"))),
    head,
    h("section", {}, h("h2", {}, t("series_title")),
      h("div", { class: "filters" }, t("range"), " ", Object.keys(RANGES).map((r) =>
        h("a", { href: `#/enterprises/${encodeURIComponent(id)}?range=${r}`,
                 class: `range ${r === range ? "active" : ""}` }, r))),
      seriesNote, chartsBox),
    h("section", {}, h("h2", {}, t("declared_periods")), declared),
    h("section", {}, h("h2", {}, t("devices")), h("table", {},
      h("thead", {}, h("tr", {}, ["device", "kind", "last_seen", "silent", "status"]
        .map((k) => h("th", {}, t(k))))), devices)),
    h("section", {}, h("h2", {}, t("alerts_of")), h("table", { class: "board" }, alertRows)));

  async function loadEnterprise() {
    try {
      const all = await get("api/v1/enterprises");
      enterprise = all.items.find((e) => e.id === id) ?? null;
    } catch (err) {
      fill(head, notice(err.message));
      return;
    }
    if (!enterprise) return fill(head, notice(`${t("not_found")}: ${id}`));
    fill(head, h("h1", {}, enterprise.name, " ", h("span", { class: "muted" }, enterprise.id)),
      h("div", { class: "chips" }, stateChips(enterprise)));
    fill(declared, declaredTable(enterprise));
    fill(devices, (enterprise.devices ?? []).map(deviceRow));
  }

  async function loadCurves() {
    const [span, resolution] = RANGES[range];
    const since = Date.now() - span;
    let alerts = [];
    try {
      const data = await get("api/v1/alerts", { enterprise: id, since, limit: 200 });
      alerts = data.items;
      fill(alertRows, alerts.map(alertRow));
    } catch (err) {
      fill(alertRows, h("tr", {}, h("td", {}, notice(err.message))));
    }
    let data;
    try {
      data = await get(`api/v1/enterprises/${encodeURIComponent(id)}/series`,
                       { since, until: Date.now(), resolution });
    } catch (err) {
      // The series route is newer than this page may be deployed with: say so and
      // keep the rest of the page useful.
      // (an unknown route is a bare 404 or code "not_found"; the route's own 404s name
      // what is missing, e.g. enterprise_not_found).
      const missing = err instanceof ApiError && err.status === 404 &&
        (!err.code || err.code === "not_found");
      return fill(seriesNote, notice(missing ? t("no_series_api") : err.message, "warn"));
    }
    const groups = groupSeries(data.series ?? [], data.resolution_s > 0);
    fill(seriesNote, groups.size ? null : h("p", { class: "muted" }, t("no_series_data")));
    await draw(groups, alerts);
  }

  async function draw(groups, alerts) {
    for (const [key, entry] of charts) {
      if (!groups.has(key)) { entry.chart?.dispose(); entry.el.remove(); charts.delete(key); }
    }
    for (const [key, group] of groups) {
      let entry = charts.get(key);
      if (!entry) {
        entry = { el: h("div", { class: "chart", id: `chart-${key}` }), chart: null };
        chartsBox.append(h("h3", {}, group.title), entry.el);
        charts.set(key, entry);
      }
      const spec = { series: group.series, limits: group.limits,
                     marks: alertMarks(alerts, group.devices, key === "power"),
                     spans: key === "power" ? declaredSpans(enterprise) : [],
                     zone: enterprise?.timezone };
      const chart = await timeChart(entry.el, spec);
      if (gone) chart.dispose(); else entry.chart = chart;
    }
  }

  async function refresh() { await loadEnterprise(); await loadCurves(); }

  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  let pending = null;
  const unsubscribe = onAlert((alert) => {
    if (alert.enterprise_id !== id) return;
    pending ??= setTimeout(() => { pending = null; refresh(); }, 500);
  });
  return () => {
    gone = true;
    unsubscribe(); clearInterval(timer); clearTimeout(pending);
    for (const entry of charts.values()) entry.chart?.dispose();
  };
}

// Meters' power together; every other device on its own chart.
function groupSeries(list, aggregated) {
  const groups = new Map();
  for (const s of list) {
    const key = s.point_kind === "power" ? "power" : safeKey(s.device_id);
    if (!groups.has(key)) {
      groups.set(key, { title: key === "power" ? "kW" : s.device_id, series: [], limits: [],
                        devices: new Set() });
    }
    const group = groups.get(key);
    const values = s.mean ?? s.value ?? s.last ?? []; // 1m aggregates, or raw samples
    const name = key === "power" ? `${s.device_id} ${s.point}` : s.point;
    group.devices.add(s.device_id);
    group.series.push({
      name, unit: s.unit ?? "", data: s.t.map((ms, i) => [ms, values[i] ?? null]),
      step: s.point_kind === "run_state",
      band: aggregated && s.min && s.max ? s.t.map((ms, i) => [ms, s.min[i], s.max[i]]) : null,
    });
    for (const [band, value] of Object.entries(s.limits ?? {})) {
      if (typeof value === "number") {
        group.limits.push({ name: `${s.point} ${band}`, value, unit: s.unit ?? "",
                            colour: band === "lolo" || band === "hihi" ? "#d32f2f" : "#ef6c00" });
      }
    }
  }
  return groups;
}

const safeKey = (text) => String(text).replace(/[^A-Za-z0-9_-]/g, "_");

// An alert marks the charts of its device; one without a device (the whole site, e.g.
// hidden operation) marks the power chart.
function alertMarks(alerts, devices, isPower) {
  return alerts
    .filter((a) => (a.device_id ? devices.has(a.device_id) : isPower))
    .map((a) => ({ name: `${levelName(a.level)} ${kindName(a.kind)}`, at: toMs(a.started_at),
                   colour: LEVEL_COLOURS[a.level] }))
    .filter((m) => Number.isFinite(m.at));
}

function declaredSpans(enterprise) {
  return (enterprise?.declared ?? []).filter((p) => p.state === "stopped").map((p) => ({
    name: t("declared_stop"), from: toMs(p.from), to: toMs(p.to), colour: "rgba(30,136,229,0.12)" }));
}

// TODO(declared-status API): editing declared periods (申报停产) needs a write route
// that does not exist yet; until then they are listed read-only, with no buttons.
function declaredTable(enterprise) {
  const periods = enterprise.declared ?? [];
  return [
    h("p", { class: "muted" }, t("declared_todo")),
    periods.length ? h("table", { id: "declared" },
      h("thead", {}, h("tr", {}, ["state", "from", "to", "reason"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, periods.map((p) => h("tr", {},
        h("td", {}, t(p.state)),
        h("td", {}, shortTime(p.from)), h("td", {}, shortTime(p.to)), h("td", {}, p.reason ?? "")))))
      : null,
  ];
}

export function deviceRow(d) {
  const status = d.status ? `${d.status.online ? t("online") : t("offline")}` +
    `${d.status.reason ? ` (${d.status.reason})` : ""} ${shortTime(d.status.ts)}` : "";
  return h("tr", { class: d.silent ? "silent" : null },
    h("td", { class: "nowrap" }, d.id), h("td", {}, d.kind),
    h("td", { class: "nowrap" }, shortTime(d.last_seen)),
    h("td", {}, d.silent ? t("yes") : t("no")), h("td", {}, status));
}
