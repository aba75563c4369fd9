// #/alerts: the alert board. Filters and the page live in the hash query, so a reload or
// a shared link shows the same list. New and changed alerts arrive over SSE and are
// merged in place; while the stream is down the board polls instead.

import { get } from "../api.js";
import { fill, h, levelBadge, notice, shortTime, toMs } from "../dom.js";
import { KIND_CODES, kindName, levelName, stageName, stateName, t } from "../i18n.js";
import { isLive, onAlert, onLiveStatus } from "../live.js";
import { beep } from "../sound.js";

const POLL_MS = 5_000; // only while the live stream is down
const FILTERS = ["region", "kind", "level", "state"];
const PAGE_SIZES = [20, 50, 100, 200];
const STATES = ["firing", "acknowledged", "resolved", "closed"];

export function mount(el, _params, query) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) ?? ""]));
  const limit = PAGE_SIZES.includes(Number(query.get("limit"))) ? Number(query.get("limit")) : 50;
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  let rows = [];
  let total = 0;

  const body = h("tbody", { id: "alerts" });
  const status = h("div", { class: "message" });
  const pager = h("div", { class: "pager" });

  async function load() {
    try {
      const data = await get("api/v1/alerts", { ...filters, limit, offset });
      rows = data.items;
      total = data.total;
      render();
    } catch (err) {
      fill(status, notice(err.message));
    }
  }

  function render() {
    fill(body, rows.map((a) => alertRow(a)));
    fill(status, rows.length ? null : h("p", { id: "empty", class: "muted" }, t("no_alerts")));
    fill(pager,
      h("button", { type: "button", disabled: offset === 0,
                    onclick: () => go({ offset: Math.max(0, offset - limit) }) }, t("prev")),
      h("span", {}, t("page_of", { from: total ? offset + 1 : 0,
                                   to: offset + rows.length, total })),
      h("button", { type: "button", disabled: offset + rows.length >= total,
                    onclick: () => go({ offset: offset + limit }) }, t("next")));
  }

  // A pushed alert: replace its row, or insert it when it belongs on this page.
  function onPushed(alert) {
    const index = rows.findIndex((r) => r.id === alert.id);
    const fits = matches(alert, filters);
    if (index >= 0 && !fits) {
      rows.splice(index, 1);
      total = Math.max(0, total - 1);
    } else if (index >= 0) {
      rows[index] = alert;
    } else if (fits && offset === 0) {
      rows.push(alert);
      total += 1;
    } else {
      return; // a new alert for a later page: the counts refresh with the next load
    }
    rows.sort(newestFirst);
    rows = rows.slice(0, limit);
    render();
    const urgent = index < 0 && fits && alert.level <= 2 && alert.state === "firing";
    if (urgent) {
      body.querySelector(`tr[data-alert-id="${CSS.escape(alert.id)}"]`)?.classList.add("flash");
      beep();
    }
  }

  function go(changes) {
    const next = new URLSearchParams({ ...filters, limit, offset, ...changes });
    for (const [k, v] of [...next]) if (v === "" || (k === "offset" && v === "0")) next.delete(k);
    location.hash = `#/alerts?${next}`;
  }

  fill(el,
    h("h1", {}, t("alerts_title")),
    filterForm(filters, limit, (values) => go({ ...values, offset: 0 })),
    h("table", { class: "board" },
      h("thead", {}, h("tr", {}, ["level", "state", "stage", "title", "enterprise", "kind",
                                  "started", "detected", "resolved"].map((k) => h("th", {}, t(k))))),
      body),
    status, pager);

  load();
  const unsubscribe = onAlert(onPushed);
  // Reload when the stream comes back: events sent while it was down are lost.
  const unwatch = onLiveStatus((live) => { if (live) load(); });
  const poller = setInterval(() => { if (!isLive()) load(); }, POLL_MS);
  return () => { unsubscribe(); unwatch(); clearInterval(poller); };
}

function alertRow(a) {
  const urgent = a.level <= 2 && (a.state === "firing" || a.state === "acknowledged");
  const cls = [urgent ? `urgent urgent${a.level}` : "", a.state === "firing" ? "" : "settled"];
  const td = (content, nowrap = true) => h("td", { class: nowrap ? "nowrap" : null }, content);
  const detail = `#/alerts/${encodeURIComponent(a.id)}`;
  return h("tr", { dataset: { alertId: a.id }, class: cls.join(" ").trim() || null },
    td(levelBadge(a.level, levelName(a.level))),
    td(stateName(a.state)),
    td(stageName(a.stage)),
    td(h("a", { href: detail }, a.title), false),
    td(h("a", { href: `#/enterprises/${encodeURIComponent(a.enterprise_id)}` },
         a.enterprise_name || a.enterprise_id), false),
    td(kindName(a.kind)),
    td(shortTime(a.started_at)), td(shortTime(a.detected_at)), td(shortTime(a.resolved_at)));
}

function filterForm(filters, limit, apply) {
  const select = (name, options, current) => h("select", { name },
    h("option", { value: "" }, t("any")),
    options.map(([value, text]) => h("option", { value, selected: String(value) === current }, text)));
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, t("region"), h("input", { name: "region", value: filters.region, size: 10,
                                             pattern: "\\d{6}(\\d{3})?" })),
    h("label", {}, t("kind"), select("kind", KIND_CODES.map((k) => [k, kindName(k)]), filters.kind)),
    h("label", {}, t("level"), select("level", [1, 2, 3, 4].map((l) => [l, levelName(l)]), filters.level)),
    h("label", {}, t("state"), select("state", STATES.map((s) => [s, stateName(s)]), filters.state)),
    h("label", {}, "#", h("select", { name: "limit" },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit }, n)))),
    h("button", { type: "submit", class: "primary" }, t("filter")),
    h("button", { type: "button", onclick: () => apply({ region: "", kind: "", level: "", state: "" }) },
      t("reset")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply(Object.fromEntries(new FormData(form)));
  });
  return form;
}

/** The server's filters, applied to a pushed alert (region matches any level). */
export function matches(alert, filters) {
  if (filters.kind && alert.kind !== filters.kind) return false;
  if (filters.level && String(alert.level) !== String(filters.level)) return false;
  if (filters.state && alert.state !== filters.state) return false;
  if (filters.region && Array.isArray(alert.region) && !alert.region.includes(filters.region)) {
    return false;
  }
  if (filters.enterprise && alert.enterprise_id !== filters.enterprise) return false;
  return true;
}

/** The API's order: detection time descending, then id descending. */
export function newestFirst(a, b) {
  return (toMs(b.detected_at) - toMs(a.detected_at)) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export { alertRow };
