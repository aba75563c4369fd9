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

/** The declared period covering `now` with state "stopped" (not withdrawn), if any. */
export function declaredStopNow(enterprise, now = Date.now()) {
  return (enterprise.declared ?? []).find((p) => p.state === "stopped" && !p.withdrawn_at &&
    toMs(p.from) <= now && now < toMs(p.to)) ?? null;
}

/** The service's `plant_state` as {state, at}: "production" | "standby" | "off" and the
 * time of the meter reading it comes from; null when the meters have not reported yet.
 * An older service sent a bare string ("producing" / "stopped"), read the same way. */
export function plantState(enterprise) {
  const raw = enterprise.plant_state;
  if (!raw) return null;
  const legacy = { producing: "production", stopped: "off" };
  if (typeof raw === "string") return { state: legacy[raw] ?? raw, at: null };
  return raw.state ? { state: legacy[raw.state] ?? raw.state, at: raw.at ?? null } : null;
}

/** {online, declaredStop, plant, suspicion}: plant is plantState() (the meter verdict is
 * not guessed here). suspicion (明停暗开): a declared stop covers now while the meter
 * says production, read during the stop (a reading from before it began says nothing). */
export function enterpriseState(enterprise, now = Date.now()) {
  const declaredStop = declaredStopNow(enterprise, now);
  const plant = plantState(enterprise);
  const readAt = toMs(plant?.at);
  return {
    online: (enterprise.devices ?? []).some((d) => deviceOnline(d, now)),
    declaredStop,
    plant,
    suspicion: Boolean(declaredStop && plant?.state === "production" &&
      (!Number.isFinite(readAt) || readAt >= toMs(declaredStop.from))),
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
