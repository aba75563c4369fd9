// #/silences: silences mute notifications (not alerts) of matching alerts for a while.
// Listed newest first; regulators create them and may end them early. The service keeps
// ended ones, so nothing here deletes.

import { get, post, request } from "../api.js";
import { fill, h, notice, shortTime } from "../dom.js";
import { KIND_CODES, kindName, levelName, t } from "../i18n.js";
import { canAct, isRegulator, legacyActor, session } from "../session.js";

export function mount(el) {
  const rows = h("tbody", { id: "silences" });
  const message = h("div", { class: "message" });
  const mayEdit = canAct() && isRegulator();
  const form = mayEdit ? createForm(async (body) => {
    await post("api/v1/silences", { ...body, ...legacyActor("created_by") });
    fill(message, notice(t("saved"), "ok"));
    await load();
  }) : null;

  async function load() {
    try {
      const data = await get("api/v1/silences", { state: "all", limit: 200 });
      fill(rows, data.items.length ? data.items.map((s) => row(s, mayEdit, expire))
        : h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("no_silences"))));
    } catch (err) {
      fill(message, notice(err.message));
    }
  }

  async function expire(silence) {
    try {
      // The route is DELETE with the actor as a query parameter; once the actor comes
      // from the session the parameter is simply ignored.
      await request("DELETE", `api/v1/silences/${encodeURIComponent(silence.id)}`,
                    { query: { actor: session.user?.username } });
      await load();
    } catch (err) {
      fill(message, notice(err.message));
    }
  }

  fill(el, h("h1", {}, t("silences_title")), form, message,
    h("table", {}, h("thead", {}, h("tr", {}, ["state", "matchers", "starts", "ends",
      "created_by", "reason", "expired_by", ""].map((k) => h("th", {}, k && t(k))))), rows));
  load();
}

function row(s, mayEdit, expire) {
  const matchers = Object.entries(s.matchers).map(([k, v]) => `${k}=${v.join("|")}`).join(", ");
  const live = s.state !== "expired";
  return h("tr", { class: live ? null : "settled", dataset: { silenceId: s.id } },
    h("td", { class: "nowrap" }, t(`silence_state_${s.state}`)),
    h("td", {}, matchers),
    h("td", { class: "nowrap" }, shortTime(s.starts_at)),
    h("td", { class: "nowrap" }, shortTime(s.ends_at)),
    h("td", {}, s.created_by), h("td", {}, s.comment),
    h("td", {}, s.expired_by ?? ""),
    h("td", {}, mayEdit && live
      ? h("button", { type: "button", class: "danger", onclick: () => expire(s) }, t("expire")) : ""));
}

function createForm(submit) {
  const message = h("div", { class: "message" });
  const field = (name, label, input) => h("label", {}, label, input ?? h("input", { name }));
  const select = (name, options) => h("select", { name }, h("option", { value: "" }, t("any")),
    options.map(([v, text]) => h("option", { value: v }, text)));
  const form = h("form", { class: "filters card", id: "silence-form" },
    h("strong", {}, t("create")),
    field("enterprise", t("enterprise")),
    field("device", t("device")),
    field("region", t("region")),
    field("kind", t("kind"), select("kind", KIND_CODES.map((k) => [k, kindName(k)]))),
    field("level", t("level"), select("level", [1, 2, 3, 4].map((l) => [l, levelName(l)]))),
    field("hours", t("duration_h"), h("input", { name: "hours", type: "number", min: "0.5",
                                                 step: "0.5", value: "2", required: true })),
    field("comment", t("reason"), h("input", { name: "comment", required: true, size: 30 })),
    h("button", { type: "submit", class: "primary" }, t("create")),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const matchers = {};
    for (const key of ["enterprise", "device", "region", "kind", "level"]) {
      if (values[key].trim()) matchers[key] = values[key].trim();
    }
    if (Object.keys(matchers).length === 0) return fill(message, notice(t("matchers_needed")));
    try {
      await submit({ matchers, duration_s: Number(values.hours) * 3600,
                     comment: values.comment.trim() });
      fill(message);
      form.reset();
    } catch (err) {
      fill(message, notice(err.message));
    }
  });
  return form;
}
