// #/alerts/{id}: one alert with its evidence chart, the handling actions its stage
// allows, and the audit trail. A pushed update of this alert re-renders it in place.

import { get, post } from "../api.js";
import { timeChart } from "../charts.js";
import { fill, h, levelBadge, notice, shortTime } from "../dom.js";
import { evidenceChart } from "../evidence.js";
import { actionName, kindName, levelName, stageName, stateName, t } from "../i18n.js";
import { onAlert } from "../live.js";
import { canAct, isRegulator, legacyActor } from "../session.js";
import { ACTIONS, actionsFor } from "../workflow.js";

export function mount(el, [id]) {
  const base = `api/v1/alerts/${encodeURIComponent(id)}`;
  const header = h("div");
  const chartBox = h("div", { id: "evidence-chart", class: "chart" });
  const chartNote = h("div", { class: "muted" });
  const json = h("pre", { id: "evidence-json", class: "json" });
  const actions = h("section", { id: "actions" });
  const history = h("tbody", { id: "history" });
  let chart = null;
  let gone = false;

  fill(el,
    h("p", {}, h("a", { href: "#/alerts" }, "← " + t("back"))),
    header,
    h("section", {}, h("h2", {}, t("evidence")), chartNote, chartBox,
      h("details", {}, h("summary", {}, t("evidence_json")), json)),
    actions,
    h("section", {}, h("h2", {}, t("history")),
      h("table", {}, h("thead", {}, h("tr", {}, ["at", "actor", "action", "from_to", "comment"]
        .map((k) => h("th", {}, t(k))))), history)));

  async function load() {
    try {
      show(await get(base));
    } catch (err) {
      fill(header, notice(err.message));
      return;
    }
    loadHistory();
  }

  async function show(alert, note = null) {
    fill(header, summary(alert));
    if (canAct()) fill(actions, actionPanel(alert, act, note));
    else fill(actions);
    const spec = { ...evidenceChart(alert), zone: alert.timezone };
    fill(json, JSON.stringify(spec.rest, null, 2));
    chartBox.hidden = spec.series.length === 0;
    fill(chartNote, spec.series.length ? null : t("no_series"));
    if (spec.series.length) {
      try {
        const drawn = await timeChart(chartBox, spec);
        if (gone) drawn.dispose(); else chart = drawn;
      } catch (err) {
        fill(chartNote, notice(err.message));
      }
    }
  }

  async function loadHistory() {
    try {
      const data = await get(`${base}/history`);
      fill(history, data.items.length ? data.items.map(historyRow)
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, t("no_history"))));
    } catch (err) {
      fill(history, h("tr", {}, h("td", { colspan: 5 }, notice(err.message))));
    }
  }

  // Returns the error text for the panel, or null on success.
  async function act(action, fields) {
    try {
      const result = await post(`${base}/${action}`, { ...fields, ...legacyActor() });
      await show(result.alert, notice(t("saved"), "ok"));
      await loadHistory();
      return null;
    } catch (err) {
      return err.message;
    }
  }

  load();
  const unsubscribe = onAlert((alert) => {
    if (alert.id === id) { show(alert); loadHistory(); }
  });
  return () => { gone = true; unsubscribe(); chart?.dispose(); };
}

function summary(a) {
  const row = (key, value) => value ? [h("dt", {}, t(key)), h("dd", {}, value)] : null;
  return h("div", {},
    h("h1", { id: "alert-title" }, levelBadge(a.level, levelName(a.level)), " ", a.title),
    h("dl", { class: "facts" },
      row("state", stateName(a.state)),
      row("stage", h("span", { id: "alert-stage" }, stageName(a.stage))),
      row("kind", kindName(a.kind)),
      row("enterprise", h("a", { href: `#/enterprises/${encodeURIComponent(a.enterprise_id)}` },
        a.enterprise_name || a.enterprise_id)),
      row("device", a.device_id), row("point", a.point),
      row("started", shortTime(a.started_at)), row("detected", shortTime(a.detected_at)),
      row("resolved", shortTime(a.resolved_at)),
      row("acknowledged", shortTime(a.acknowledged_at)), row("closed", shortTime(a.closed_at)),
      row("assignee", a.assignee)));
}

// One comment box and one assignee box serve every action; each button says what it
// needs, and we check that before asking the server so the operator is told at once.
function actionPanel(alert, act, note) {
  const comment = h("textarea", { name: "comment", id: "action-comment", rows: 2, maxlength: 4000 });
  const assignee = h("input", { name: "assignee", id: "action-assignee", maxlength: 128,
                                value: alert.assignee ?? "" });
  const message = h("div", { class: "message" }, note);
  const names = actionsFor(alert.stage, isRegulator());
  const buttons = names.map((name) => h("button", {
    type: "button", class: `action ${name === "dismiss" ? "danger" : ""}`,
    dataset: { action: name },
    onclick: async (event) => {
      const rule = ACTIONS[name];
      const fields = {};
      if (comment.value.trim()) fields.comment = comment.value.trim();
      if (rule.assignee) fields.assignee = assignee.value.trim();
      if (rule.comment && !fields.comment) return fill(message, notice(t("needs_comment")));
      if (rule.assignee && !fields.assignee) return fill(message, notice(t("needs_assignee")));
      event.target.disabled = true;
      const error = await act(name, fields); // on success the panel is rebuilt
      event.target.disabled = false;
      if (error) fill(message, notice(error));
    },
  }, actionName(name)));
  return h("div", {},
    h("h2", {}, t("actions")),
    h("div", { class: "action-fields" },
      h("label", {}, t("comment"), comment),
      h("label", {}, t("assignee"), assignee)),
    h("div", { class: "buttons" }, buttons),
    message);
}

function historyRow(e) {
  const change = e.from_stage && e.to_stage && e.from_stage !== e.to_stage
    ? `${stageName(e.from_stage)} → ${stageName(e.to_stage)}` : "";
  return h("tr", {},
    h("td", { class: "nowrap" }, shortTime(e.at)), h("td", {}, e.actor),
    h("td", { class: "nowrap" }, actionName(e.action)), h("td", { class: "nowrap" }, change),
    h("td", {}, [e.comment, details(e.data)].filter(Boolean).join(" · ")));
}

// The event's data: who was sent (dispatch) in words, anything else (a system event's
// escalation tier, a silence id) as compact JSON.
function details(data = {}) {
  const { assignee, ...rest } = data ?? {};
  const parts = assignee ? [`${t("assignee")}: ${assignee}`] : [];
  if (Object.keys(rest).length) parts.push(JSON.stringify(rest));
  return parts.join(" ");
}
