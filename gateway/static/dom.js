// Small DOM helpers. Everything the service sends is put into the page as text nodes,
// never as HTML: alert titles, comments and quarantined payloads come from outside.

/** An element: `h("td", {class: "x", onclick: fn}, "text", child, ...)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value; // properties such as `value`, `checked`, `hidden`
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the contents of `el` by `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The contract's default zone (CONTRACT.md); alerts name their own. */
export const DEFAULT_ZONE = "Asia/Shanghai";

/** "2026-11-02T08:58:31+08:00" → "2026-11-02 08:58:31": alert times as the service wrote
 * them, in the enterprise's own zone, which is what operators talk about on the phone.
 * UTC times ("...Z": devices' last data, evidence) are shown in the default zone, so one
 * page never mixes two clocks. */
export function shortTime(iso) {
  if (!iso) return "";
  const text = String(iso);
  return /Z$/i.test(text) ? zoneTime(Date.parse(text)) : text.replace("T", " ").slice(0, 19);
}

const formatters = new Map();

/** Epoch ms as "YYYY-MM-DD HH:mm:ss" in `zone` (the sv-SE locale writes exactly that). */
export function zoneTime(ms, zone = DEFAULT_ZONE) {
  if (!Number.isFinite(ms)) return "";
  if (!formatters.has(zone)) {
    formatters.set(zone, new Intl.DateTimeFormat("sv-SE", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }));
  }
  return formatters.get(zone).format(new Date(ms));
}

/** Epoch ms of an RFC 3339 time, or NaN. */
export const toMs = (iso) => (iso ? Date.parse(iso) : NaN);

/** A level badge: `<span class="lv lv2">橙色</span>`; tests look for `.lv{level}`. */
export function levelBadge(level, text) {
  return h("span", { class: `lv lv${level}` }, text);
}

/** A status message box that pages reuse for errors and confirmations. */
export function notice(text, kind = "error") {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
