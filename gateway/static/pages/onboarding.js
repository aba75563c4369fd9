// #/onboarding: for an enterprise connecting its devices, "does my data arrive?": each
// device's last message and silence, and every refused message with the reason. The
// enterprise list is already narrowed to the user's scope by the service.

import { get } from "../api.js";
import { fill, h, notice, shortTime } from "../dom.js";
import { deviceOnline } from "../enterprise_state.js";
import { t } from "../i18n.js";
import { deviceRow } from "./enterprise.js";

const REFRESH_MS = 15_000;

export function mount(el) {
  const box = h("div", { id: "onboarding" });
  const message = h("div", { class: "message" });
  fill(el, h("h1", {}, t("onboarding_title")), message, box);

  async function load() {
    let enterprises;
    try {
      enterprises = (await get("api/v1/enterprises")).items;
    } catch (err) {
      return fill(message, notice(err.message));
    }
    const quarantined = await Promise.all(enterprises.map((e) =>
      get("api/v1/quarantine", { enterprise: e.id, limit: 50 })
        .then((d) => d.items).catch((err) => err)));
    fill(message);
    fill(box, enterprises.map((e, i) => section(e, quarantined[i])));
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function section(e, quarantined) {
  const arriving = (e.devices ?? []).filter((d) => deviceOnline(d)).length;
  return h("section", { class: "card", dataset: { enterpriseId: e.id } },
    h("h2", {}, `${e.name} `, h("span", { class: "muted" }, e.id)),
    h("p", {}, `${t("arriving")}: ${arriving}/${(e.devices ?? []).length}`),
    h("table", {}, h("thead", {}, h("tr", {}, ["device", "kind", "last_seen", "silent", "status"]
      .map((k) => h("th", {}, t(k))))), h("tbody", {}, (e.devices ?? []).map(deviceRow))),
    h("h3", {}, t("quarantine")),
    quarantined instanceof Error ? notice(quarantined.message) : quarantineTable(quarantined));
}

function quarantineTable(items) {
  if (!items.length) return h("p", { class: "muted" }, t("no_quarantine"));
  return h("table", { class: "quarantine" },
    h("thead", {}, h("tr", {}, ["received", "device", "reason", "topic", "payload"]
      .map((k) => h("th", {}, t(k))))),
    h("tbody", {}, items.map((q) => h("tr", {},
      h("td", { class: "nowrap" }, shortTime(q.received_at)),
      h("td", {}, q.device_id ?? ""),
      h("td", {}, [q.reason, q.detail].filter(Boolean).join(": ")),
      h("td", {}, q.topic ?? ""),
      h("td", {}, h("code", { class: "payload" }, payloadText(q.payload)))))));
}

function payloadText(payload) {
  const text = typeof payload === "string" ? payload : JSON.stringify(payload);
  return text && text.length > 300 ? text.slice(0, 300) + "…" : (text ?? "");
}
