// #/enterprises/{id}: one site. Power of all its meters on one chart (hidden operation is
// read there, against the declared periods), each other device's points on its own
// chart, the alerts of the site as vertical markers, refreshed every 10 s and when an
// alert of this site is pushed. Declared production status (申报停产): the periods of
// GET .../declared (the registry's read-only, withdrawn ones struck through), a form to
// declare one for any user who may act, and a withdraw button for regulators.

import { ApiError, get, post, request } from "../api.js";
import { LEVEL_COLOURS, timeChart } from "../charts.js";
import { fill, h, notice, shortTime, toMs, zoneTime } from "../dom.js";
import { kindName, levelName, t } from "../i18n.js";
import { onAlert } from "../live.js";
import { canAct, isRegulator } from "../session.js";
import { alertRow } from "./alerts.js";
import { stateChips } from "./enterprises.js";

const REFRESH_MS = 10_000;
// Range name → [milliseconds, resolution]; raw samples only for short ranges.
const RANGES = { "1h": [3_600_000, "raw"], "6h": [21_600_000, "1m"],
                 "24h": [86_400_000, "1m"], "7d": [604_800_000, "1m"] };

export function mount(el, [id], query) {
  const range = RANGES[query.get("range")] ? query.get("range") : "6h";
  const head = h("div", { id: "enterprise-head" });
  const chartsBox = h("div", { id: "enterprise-charts" });
  const seriesNote = h("div", { class: "message" });
  const declaredList = h("div");
  const declaredMessage = h("div", { class: "message", id: "declared-message" });
  const declareForm = canAct() ? declaredForm(submitPeriod) : null;
  const devices = h("tbody");
  const alertRows = h("tbody", { id: "alerts" });
  const charts = new Map(); // group key → {el, chart}
  let enterprise = null;
  let periods = null; // GET .../declared items; null until it answers (or on older services)
  let gone = false;

  fill(el,
    h("p", {}, h("a", { href: "#/enterprises" }, "← " + t("back"))),
    head,
    h("section", {}, h("h2", {}, t("series_title")),
      h("div", { class: "filters" }, t("range"), " ", Object.keys(RANGES).map((r) =>
        h("a", { href: `#/enterprises/${encodeURIComponent(id)}?range=${r}`,
                 class: `range ${r === range ? "active" : ""}` }, r))),
      seriesNote, chartsBox),
    h("section", {}, h("h2", {}, t("declared_periods")), declaredMessage, declaredList,
      declareForm?.el),
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
                     spans: key === "power" ? declaredSpans(periods ?? enterprise?.declared) : [],
                     zone: enterprise?.timezone };
      const chart = await timeChart(entry.el, spec);
      if (gone) chart.dispose(); else entry.chart = chart;
    }
  }

  async function loadDeclared() {
    try {
      const data = await get(`api/v1/enterprises/${encodeURIComponent(id)}/declared`);
      periods = data.items ?? [];
    } catch (err) {
      // A service without the route: the enterprise list's periods, read-only.
      const missing = err instanceof ApiError && err.status === 404 &&
        (!err.code || err.code === "not_found");
      if (!missing) return fill(declaredMessage, notice(err.message));
      periods = null;
    }
    const editable = periods !== null;
    fill(declaredList, declaredTable(periods ?? enterprise?.declared ?? [],
                                     editable && canAct() && isRegulator() ? withdraw : null));
    if (declareForm) {
      declareForm.el.hidden = !editable;
      if (editable) declareForm.prefill(enterprise?.timezone);
    }
  }

  async function submitPeriod(body) {
    const period = await post(`api/v1/enterprises/${encodeURIComponent(id)}/declared`, body);
    fill(declaredMessage, notice(`${t("saved")}: ${t(`declared_state_${period.state}`)} ` +
      `${shortTime(period.from)} – ${shortTime(period.to)}`, "ok"));
    await refresh();
  }

  async function withdraw(period) {
    try {
      await request("DELETE", `api/v1/enterprises/${encodeURIComponent(id)}/declared/` +
                              encodeURIComponent(period.id));
      fill(declaredMessage, notice(t("withdrawn_ok"), "ok"));
      await refresh();
    } catch (err) {
      fill(declaredMessage, notice(err.message));
    }
  }

  async function refresh() { await loadEnterprise(); await loadDeclared(); await loadCurves(); }

  const zoneOf = () => enterprise?.timezone;
  declareForm?.setZone(zoneOf);

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

function declaredSpans(list) {
  return (list ?? []).filter((p) => p.state === "stopped" && !p.withdrawn_at).map((p) => ({
    name: t("declared_stop"), from: toMs(p.from), to: toMs(p.to), colour: "rgba(30,136,229,0.12)" }));
}

// The periods, newest declarations last as the service lists them. `withdraw` is null
// when the user may not withdraw (or the service cannot): then there are no buttons.
function declaredTable(list, withdraw) {
  if (!list.length) return h("p", { class: "muted" }, t("no_declared"));
  return h("table", { id: "declared" },
    h("thead", {}, h("tr", {}, ["source", "state", "from", "to", "reason", "declared_by",
      "withdrawn", ""].map((k) => h("th", {}, k && t(k))))),
    h("tbody", {}, list.map((p) => declaredRow(p, withdraw))));
}

function declaredRow(p, withdraw) {
  const registry = p.source !== "api";
  const withdrawn = Boolean(p.withdrawn_at);
  const cls = [registry ? "registry" : null, withdrawn ? "withdrawn settled" : null]
    .filter(Boolean).join(" ");
  return h("tr", { class: cls || null, dataset: { periodId: p.id ?? "", source: p.source ?? "registry" } },
    h("td", { class: "nowrap" }, registry
      ? h("span", { class: "chip", title: t("registry_read_only") }, t("source_registry"))
      : t("source_api")),
    h("td", { class: "struck" }, t(`declared_state_${p.state}`)),
    h("td", { class: "nowrap struck" }, shortTime(p.from)),
    h("td", { class: "nowrap struck" }, shortTime(p.to)),
    h("td", { class: "struck" }, p.reason ?? ""),
    h("td", {}, p.created_by ? `${p.created_by} ${shortTime(p.created_at)}` : ""),
    h("td", { class: "withdrawn-by" },
      withdrawn ? `${p.withdrawn_by ?? ""} ${shortTime(p.withdrawn_at)}` : ""),
    h("td", {}, withdraw && !registry && p.id && !withdrawn
      ? h("button", { type: "button", class: "danger withdraw", onclick: () => withdraw(p) },
          t("withdraw"))
      : ""));
}

/** The declare form: {el, prefill(zone), setZone(fn)}. `submit(body)` posts it and throws
 * an ApiError whose message (the server's detail) the form shows. */
function declaredForm(submit) {
  let zoneOf = () => undefined;
  let filled = false;
  const message = h("div", { class: "message" });
  const zoneNote = h("span", { class: "muted zone" });
  const input = (name, attrs = {}) => h("input", { name, required: true, ...attrs });
  const from = input("from", { type: "datetime-local" });
  const to = input("to", { type: "datetime-local" });
  const el = h("form", { class: "filters card", id: "declared-form", hidden: true },
    h("strong", {}, t("declare")),
    h("label", {}, t("state"), h("select", { name: "state" },
      ["stopped", "running"].map((s) => h("option", { value: s }, t(`declared_state_${s}`))))),
    h("label", {}, t("from"), from),
    h("label", {}, t("to"), to),
    h("label", {}, t("reason"), input("reason", { size: 24, maxlength: 500,
                                                  placeholder: t("reason_example") })),
    zoneNote,
    h("button", { type: "submit", class: "primary" }, t("declare")),
    message);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(el));
    const zone = zoneOf();
    const reason = values.reason.trim();
    if (!reason) return fill(message, notice(t("reason_needed")));
    let body;
    try {
      body = { state: values.state, from: withOffset(values.from, zone),
               to: withOffset(values.to, zone), reason };
    } catch {
      return fill(message, notice(t("bad_time")));
    }
    const button = el.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await submit(body);
      fill(message);
      el.reset();
      filled = false;
      prefill(zone);
    } catch (err) {
      fill(message, notice(err.message));
    } finally {
      button.disabled = false;
    }
  });
  // Start now, end in a day, on the enterprise's clock; once, so a refresh never
  // overwrites what the user is typing.
  function prefill(zone) {
    fill(zoneNote, `${t("time_zone")}: ${zone || localZone()}`);
    if (filled) return;
    filled = true;
    const now = Date.now();
    from.value = localInput(now, zone);
    to.value = localInput(now + 86_400_000, zone);
  }
  return { el, prefill, setZone: (fn) => { zoneOf = fn; } };
}

const localZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone ?? "local";

function validZone(zone) {
  if (!zone) return null;
  try { new Intl.DateTimeFormat("en", { timeZone: zone }); return zone; } catch { return null; }
}

/** Epoch ms as a datetime-local value ("YYYY-MM-DDTHH:mm") in `zone` (else local time). */
function localInput(ms, zone) {
  const z = validZone(zone);
  if (z) return zoneTime(ms, z).slice(0, 16).replace(" ", "T");
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** Minutes east of UTC of `zone` at the instant `ms`. */
function zoneOffsetMin(ms, zone) {
  const wall = zoneTime(ms, zone); // "YYYY-MM-DD HH:mm:ss" there
  const [date, time] = wall.split(" ");
  const [y, mo, d] = date.split("-").map(Number);
  const [hh, mi, ss] = time.split(":").map(Number);
  return Math.round((Date.UTC(y, mo - 1, d, hh, mi, ss) - Math.floor(ms / 1000) * 1000) / 60_000);
}

/** A datetime-local value read on the clock of `zone` (the browser's when the zone is
 * unknown) as RFC 3339 with its offset written out: the API wants one. */
export function withOffset(value, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value ?? "");
  if (!m) throw new Error(`not a date and time: ${value}`);
  const [y, mo, d, hh, mi, ss = "00"] = m.slice(1);
  const wallAsUtc = Date.UTC(+y, +mo - 1, +d, +hh, +mi, +ss);
  const z = validZone(zone);
  let offset;
  if (z) {
    // The offset at the wall time: guess with the offset at that instant read as UTC,
    // then correct once (enough across a DST change).
    const guess = zoneOffsetMin(wallAsUtc, z);
    offset = zoneOffsetMin(wallAsUtc - guess * 60_000, z);
  } else {
    offset = -new Date(+y, +mo - 1, +d, +hh, +mi, +ss).getTimezoneOffset();
  }
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  const pad = (n) => String(n).padStart(2, "0");
  return `${y}-${mo}-${d}T${hh}:${mi}:${ss}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function deviceRow(d) {
  const status = d.status ? `${d.status.online ? t("online") : t("offline")}` +
    `${d.status.reason ? ` (${d.status.reason})` : ""} ${shortTime(d.status.ts)}` : "";
  return h("tr", { class: d.silent ? "silent" : null },
    h("td", { class: "nowrap" }, d.id), h("td", {}, d.kind),
    h("td", { class: "nowrap" }, shortTime(d.last_seen)),
    h("td", {}, d.silent ? t("yes") : t("no")), h("td", {}, status));
}
