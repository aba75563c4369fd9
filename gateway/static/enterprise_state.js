// What the enterprise cards and pages say about a site, computed from
// GET /api/v1/enterprises (devices' liveness, declared periods) and the open alerts.

import { toMs } from "./dom.js";

const RECENT_FLOOR_S = 600;

/** A device is online when the service has not flagged it silent and its last data is
 * recent: within five reporting intervals, and never less than ten minutes. */
export function deviceOnline(device, now = Date.now()) {
  if (device.silent || !device.last_seen) return false;
  const interval = Number(device.expected_interval_s) || 60;
  const recentMs = Math.max(RECENT_FLOOR_S, 5 * interval) * 1000;
  return now - toMs(device.last_seen) <= recentMs;
}

/** The declared period covering `now` with state "stopped", if any. */
export function declaredStopNow(enterprise, now = Date.now()) {
  return (enterprise.declared ?? []).find((p) => p.state === "stopped" &&
    toMs(p.from) <= now && now < toMs(p.to)) ?? null;
}

/** {online, declaredStop, plant}: plant is the service's `plant_state` when it sends one
 * (producing / stopped), else null: the meter verdict is not guessed here. */
export function enterpriseState(enterprise, now = Date.now()) {
  return {
    online: (enterprise.devices ?? []).some((d) => deviceOnline(d, now)),
    declaredStop: declaredStopNow(enterprise, now),
    plant: enterprise.plant_state ?? null,
  };
}

/** enterprise id → highest open level (1 is highest), from firing/acknowledged alerts. */
export function riskByEnterprise(alerts) {
  const risk = new Map();
  for (const a of alerts) {
    if (a.state !== "firing" && a.state !== "acknowledged") continue;
    const known = risk.get(a.enterprise_id);
    if (known === undefined || a.level < known) risk.set(a.enterprise_id, a.level);
  }
  return risk;
}
