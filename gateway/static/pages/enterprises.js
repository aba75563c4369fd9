// #/enterprises: one card per enterprise the user may see, coloured by its most severe
// open alert, with what is known of its state (online, declared stopped, what the meter
// says: 生产 / 待机 / 停机) and a flag when a declared stop meets a producing meter.

import { get } from "../api.js";
import { DEFAULT_ZONE, fill, h, levelBadge, notice, toMs, zoneTime } from "../dom.js";
import { enterpriseState, riskByEnterprise } from "../enterprise_state.js";
import { levelName, t } from "../i18n.js";
import { onAlert } from "../live.js";

const REFRESH_MS = 15_000;

export function mount(el) {
  const grid = h("div", { class: "grid", id: "enterprise-grid" });
  const status = h("div", { class: "message" });
  fill(el, h("h1", {}, t("enterprises_title")), status, grid);

  async function load() {
    try {
      const [enterprises, firing, acknowledged] = await Promise.all([
        get("api/v1/enterprises"),
        get("api/v1/alerts", { state: "firing", limit: 1000 }),
        get("api/v1/alerts", { state: "acknowledged", limit: 1000 }),
      ]);
      const risk = riskByEnterprise([...firing.items, ...acknowledged.items]);
      fill(status);
      fill(grid, enterprises.items.map((e) => card(e, risk.get(e.id))));
    } catch (err) {
      fill(status, notice(err.message));
    }
  }

  // Alerts arrive in bursts (one incident, several rules): reload once per burst.
  let pending = null;
  const unsubscribe = onAlert(() => {
    pending ??= setTimeout(() => { pending = null; load(); }, 1000);
  });
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => { unsubscribe(); clearInterval(timer); clearTimeout(pending); };
}

export function stateChips(enterprise) {
  const state = enterpriseState(enterprise);
  const chips = [h("span", { class: `chip ${state.online ? "ok" : "bad"}` },
                   state.online ? t("online") : t("offline"))];
  if (state.plant) chips.push(plantChip(state.plant, enterprise.timezone));
  if (state.declaredStop) chips.push(h("span", { class: "chip declared" }, t("declared_stopped")));
  if (state.suspicion) {
    chips.push(h("span", { class: "chip suspicion", title: t("suspicion_hint") },
                 "⚠ " + t("suspicion")));
  }
  return chips;
}

// 生产 / 待机 / 停机 with the time of the meter reading on the enterprise's clock: the
// clock only when it is today's.
function plantChip(plant, zone) {
  let at = "", today = "";
  try {
    at = zoneTime(toMs(plant.at), zone || DEFAULT_ZONE);
    today = zoneTime(Date.now(), zone || DEFAULT_ZONE).slice(0, 10);
  } catch { /* an unknown zone name: the state without its time */ }
  const when = at.startsWith(today) ? at.slice(11) : at;
  return h("span", { class: `chip plant plant-${plant.state}`, title: at || null,
                     dataset: { plant: plant.state } },
    t(`plant_${plant.state}`), when ? ` ${when}` : "");
}

function card(e, level) {
  const suspect = enterpriseState(e).suspicion;
  const devices = e.devices ?? [];
  const online = devices.filter((d) => !d.silent && d.last_seen).length;
  const industry = { dust: t("industry_dust"), metallurgy: t("industry_metallurgy") }[e.industry];
  return h("a", { class: `card enterprise risk${level ?? 0}${suspect ? " suspect" : ""}`, href: `#/enterprises/${encodeURIComponent(e.id)}`,
                  dataset: { enterpriseId: e.id } },
    h("div", { class: "card-head" },
      h("strong", {}, e.name),
      level ? levelBadge(level, levelName(level)) : h("span", { class: "chip" }, t("no_risk"))),
    h("div", { class: "muted" }, `${e.id} · ${industry ?? e.industry ?? ""} · ${(e.region ?? []).at(-1) ?? ""}`),
    h("div", { class: "chips" }, stateChips(e)),
    h("div", {}, `${t("open_alerts")}: ${e.open_alerts ?? 0} · ${t("devices")}: ${online}/${devices.length}`));
}
