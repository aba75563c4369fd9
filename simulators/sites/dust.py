"""Dust-explosion site (粉尘涉爆): production lines, a dry bag dust collector, meters.

Physics, all on the 30 s base grid:

* line power (kW) = rated × utilisation × wander while a line works, standby otherwise;
* the collector fan starts 5-15 min before the first line and stops 5-20 min after the
  last (start-up order); airflow fraction ``q`` follows the fan's operating point,
  ``q = q0 (R_ref / R)^0.2``, so more filter resistance means a little less air;
* ΔP (Pa) = R × q², the filter resistance R growing with the dust collected (∝ line
  energy) and dropping after each pulse-cleaning cycle (a sawtooth); fan off → ΔP ≈ 0;
* fan power ∝ q³ (affinity law), fan current (A) = P / (√3 · 0.38 kV · pf · η);
* hopper temperature (degC) = ambient + a first-order lag of the production heat;
* total meter (utility, 15 min) = Σ lines + fan + base load (lighting, offices,
  compressors; present when idle too), averaged over each interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulators.sites.common import (
    BASE_STEP_S,
    BOOL,
    F64,
    METER_POINTS,
    DeviceSeries,
    EventSeries,
    SiteBase,
    SiteIds,
    ambient_temperature,
    ar1,
    energy_counter,
    expand_mask,
    first_order,
    intervals_mask,
    local_hour,
    sample_state,
    total_meter,
)

_FAN_SIZES_KW = np.array([11, 15, 18.5, 22, 30, 37, 45, 55, 75, 90])
_MATERIALS = ("wood", "steel", "steel", "aluminium", "magnesium", "wood", "steel")
_PROCESS = {"wood": "woodworking", "steel": "grinding", "aluminium": "polishing",
            "magnesium": "polishing"}
_AMPS_PER_KW = 1000.0 / (math.sqrt(3.0) * 380.0 * 0.86 * 0.92)
"""Line current per kW of a 380 V motor with pf 0.86 and efficiency 0.92, A/kW."""


@dataclass(slots=True)
class DustPlan:
    """Editable process state on the base grid (``ts``); scenarios change these knobs.

    ``work``: per line, merged working intervals (epoch s).  ``level``: per line, load
    multiplier while working (hidden-operation ramps, partial loads).  ``fan_off``:
    fan forced off (interlock violation, a faker saving power).  ``power_ok``: false
    during a grid power outage.  ``extra_kw``: extra site load (maintenance).
    ``extra_resistance``: Pa at design airflow (clogging); ``resistance_scale``:
    multiplier (a ruptured bag lets air bypass).  ``hopper_heat``: K (smouldering).
    ``steady``: legitimately steady process (continuous cleaning, constant load).
    ``fan_load``: multiplier on the fan's power draw (a slipping belt or worn impeller
    unloads the motor; the airflow, and so ΔP, is left as it was).
    """

    ts: F64
    work: list[tuple[F64, F64]]
    level: F64
    fan_off: BOOL
    power_ok: BOOL
    extra_kw: F64
    extra_resistance: F64
    resistance_scale: F64
    hopper_heat: F64
    steady: BOOL
    fan_load: F64
    sparks: list[tuple[float, int]] = field(default_factory=list)
    """Extra spark detections: (epoch s, line index)."""

    def line_on(self) -> BOOL:
        """Per line (lines, n): working and powered."""
        rows = [intervals_mask(self.ts, s, e) for s, e in self.work]
        return np.asarray(np.vstack(rows) & self.power_ok[None, :], dtype=np.bool_)

    def producing(self) -> BOOL:
        return np.asarray(self.line_on().any(axis=0) & (self.level.max(axis=0) > 0.15))


class DustSite(SiteBase):
    """One dust-explosion enterprise with 1-3 lines and one dry bag collector."""

    industry = "dust"

    def __init__(self, eid: str, rng: np.random.Generator) -> None:
        self.material = str(rng.choice(_MATERIALS))  # drawn before the shift pattern
        self.process = _PROCESS[self.material]
        super().__init__(eid, rng, patterns=(0, 1, 2, 3, 0, 2))
        self.n_lines = int(rng.choice([1, 2, 2, 3]))
        self.line_kw = np.round(rng.uniform(30.0, 160.0, self.n_lines), -1) + 0.0
        self.line_idle_kw = np.round(rng.uniform(0.3, 1.5, self.n_lines), 1)
        self.utilisation = rng.uniform(0.55, 0.8, self.n_lines)
        fan_need = 0.3 * float(self.line_kw.sum())
        self.fan_kw = float(_FAN_SIZES_KW[np.searchsorted(_FAN_SIZES_KW, min(fan_need, 90.0))])
        self.lead_s = float(rng.uniform(300.0, 900.0))
        self.lag_s = float(rng.uniform(300.0, 1200.0))
        self.base_idle_kw = float(rng.uniform(2.0, 8.0))
        self.base_work_kw = float(rng.uniform(6.0, 25.0))
        self.compressor_kw = float(rng.choice([7.5, 11.0, 15.0, 22.0]))
        self.r_clean = float(rng.uniform(550.0, 800.0))
        """Filter resistance right after cleaning, Pa at design airflow."""
        self.r_span = float(rng.uniform(300.0, 500.0))
        """Resistance added by a full cleaning cycle's dust cake, Pa."""
        self.r_drift_per_day = float(rng.uniform(0.0, 4.0))
        """Residual cake build-up, Pa per day."""
        self.fill_kwh = float(self.line_kw.sum() * rng.uniform(0.5, 1.5))
        """Line energy that loads the filter from clean to cleaning set point, kWh."""
        self.q0 = float(rng.uniform(0.97, 1.0))
        self.hopper_dt = float(rng.uniform(5.0, 15.0))
        self.hopper_tau_s = float(rng.uniform(1800.0, 3600.0))
        self.airlock_period_s = float(rng.uniform(1200.0, 2400.0))
        self.airlock_on_s = float(rng.uniform(180.0, 360.0))
        self.spark_rate_per_h = float(rng.uniform(0.0005, 0.004))
        self.wet = self.material in ("aluminium", "magnesium")
        self.water_flow_nom = float(rng.uniform(4.0, 12.0))
        self.start_kwh = self.draw_registers(rng, 1e4, 9e5)
        self.ids = _Ids(eid, self.n_lines)

    # -- plan ----------------------------------------------------------------------------

    def plan(self, ts: F64, work: list[tuple[F64, F64]]) -> DustPlan:
        n = ts.size
        return DustPlan(
            ts=ts, work=work, level=np.ones((self.n_lines, n)), fan_off=np.zeros(n, bool),
            power_ok=np.ones(n, bool), extra_kw=np.zeros(n), extra_resistance=np.zeros(n),
            resistance_scale=np.ones(n), hopper_heat=np.zeros(n), steady=np.zeros(n, bool),
            fan_load=np.ones(n),
        )

    def fan_on(self, plan: DustPlan) -> BOOL:
        """Fan state: on around production (start-up order), unless forced off."""
        on = np.asarray(plan.line_on().any(axis=0), dtype=np.bool_)
        fan = expand_mask(on, math.ceil(self.lead_s / BASE_STEP_S),
                          math.ceil(self.lag_s / BASE_STEP_S))
        return np.asarray(fan & plan.power_ok & ~plan.fan_off)

    # -- physics -------------------------------------------------------------------------

    def simulate(self, plan: DustPlan, rng: np.random.Generator
                 ) -> tuple[dict[str, DeviceSeries], list[EventSeries]]:
        ts, n = plan.ts, plan.ts.size
        line_on = plan.line_on()
        wander = np.vstack([1.0 + ar1(n, 0.08, 20.0, rng) for _ in range(self.n_lines)])
        wander = np.where(plan.steady[None, :], 1.0, wander)
        line_kw = np.where(
            line_on,
            (self.line_kw * self.utilisation)[:, None] * plan.level * np.clip(wander, 0.5, 1.5),
            self.line_idle_kw[:, None] * plan.power_ok[None, :],
        )
        fan = self.fan_on(plan)
        # Filter loading: dust collected ∝ line energy; pulse cleaning resets a cycle.
        produced = np.cumsum(np.where(line_on, line_kw, 0.0).sum(axis=0)) * BASE_STEP_S / 3600
        cycle = (produced / self.fill_kwh) % 1.0
        days = (ts - ts[0]) / 86_400.0
        resistance = self.r_clean + self.r_drift_per_day * days + self.r_span * cycle
        resistance = np.where(plan.steady, self.r_clean + 0.5 * self.r_span, resistance)
        resistance = (resistance + plan.extra_resistance) * plan.resistance_scale
        r_ref = self.r_clean + 0.5 * self.r_span
        q = np.where(fan, np.clip(self.q0 * (r_ref / resistance) ** 0.2, 0.0, 1.3), 0.0)
        dp = resistance * q * q
        fan_kw = self.fan_kw * 0.85 * q**3 * plan.fan_load
        total = (line_kw.sum(axis=0) + fan_kw + self._base_load(ts, line_on, rng)
                 + plan.extra_kw) * plan.power_ok
        ambient = ambient_temperature(ts, rng)
        load = np.where(line_on, line_kw, 0.0).sum(axis=0) / float(self.line_kw.sum())
        hopper = ambient + first_order(load * self.hopper_dt / 0.7, self.hopper_tau_s,
                                       BASE_STEP_S, 0.0) + plan.hopper_heat
        devices = {
            self.ids.collector: self._collector(plan, fan, dp, fan_kw, hopper, rng),
            self.ids.total: total_meter(self.ids.total, ts, total, float(self.start_kwh[-1])),
        }
        for k in range(self.n_lines):
            devices[self.ids.lines[k]] = self._line_meter(ts, line_kw[k], k, rng)
        if self.wet:
            devices[self.ids.wet] = self._wet(ts, fan, load, plan.steady, rng)
        return devices, [self._sparks(plan, line_on, rng)]

    def _base_load(self, ts: F64, line_on: BOOL, rng: np.random.Generator) -> F64:
        """Lighting, offices and compressors, kW: idle floor always, more while working."""
        working = line_on.any(axis=0)
        hour = local_hour(ts)
        night_lights = ((hour < 6.5) | (hour > 18.0)) * 1.5
        period = rng.uniform(600.0, 1200.0)
        compressor = ((ts % period) < 0.55 * period) * self.compressor_kw * working
        return np.asarray(self.base_idle_kw + night_lights + working * self.base_work_kw
                          + compressor + ar1(ts.size, 0.4, 10.0, rng), dtype=np.float64)

    def _collector(self, plan: DustPlan, fan: BOOL, dp: F64, fan_kw: F64, hopper: F64,
                   rng: np.random.Generator) -> DeviceSeries:
        ts = plan.ts
        steady = plan.steady
        noise = np.where(steady, 0.05, 1.0)
        dp_meas = dp * (1.0 + 0.012 * noise * rng.standard_normal(ts.size)) \
            + rng.uniform(-2.0, 4.0)
        amps = fan_kw * _AMPS_PER_KW * (1.0 + 0.005 * noise * rng.standard_normal(ts.size))
        temp = hopper + noise * ar1(ts.size, 0.08, 3.0, rng)
        phase = (ts + rng.uniform(0, self.airlock_period_s)) % self.airlock_period_s
        airlock = fan & (phase < self.airlock_on_s)
        return DeviceSeries(
            device_id=self.ids.collector, topic="telemetry", interval_s=30.0, ts=ts.copy(),
            values={"fan_run": fan.astype(np.float64), "fan_current": np.where(fan, amps, 0.0),
                    "dp": dp_meas, "hopper_temp": temp,
                    "airlock_run": airlock.astype(np.float64)},
            decimals={"fan_run": 0, "fan_current": 1, "dp": 0, "hopper_temp": 1,
                      "airlock_run": 0},
            flag_points=("dp",), stopped=~fan,
        )

    def _wet(self, ts: F64, fan: BOOL, load: F64, steady: BOOL,
             rng: np.random.Generator) -> DeviceSeries:
        """Wet collector of Al/Mg dust: float-valve refilled tank, pump, hydrogen."""
        use = np.cumsum(fan) * BASE_STEP_S / rng.uniform(3600.0, 7200.0)
        level = 0.55 - 0.06 * (use % 1.0) + 0.002 * rng.standard_normal(ts.size)
        level = np.where(steady, 0.53, level)
        flow = np.where(fan, self.water_flow_nom * (1.0 + 0.02 * rng.standard_normal(ts.size)),
                        0.0)
        h2 = rng.uniform(0.3, 1.5) + first_order(load * rng.uniform(1.0, 5.0), 1800.0,
                                                 BASE_STEP_S, 0.0)
        h2 = h2 + np.abs(ar1(ts.size, 0.2, 5.0, rng))
        return DeviceSeries(
            device_id=self.ids.wet, topic="telemetry", interval_s=30.0, ts=ts.copy(),
            values={"water_level": level, "water_flow": flow, "hydrogen": h2},
            decimals={"water_level": 2, "water_flow": 1, "hydrogen": 1},
            flag_points=("water_flow",), stopped=~fan,
        )

    def _line_meter(self, ts: F64, kw: F64, k: int, rng: np.random.Generator) -> DeviceSeries:
        at = ts[::2]
        p = sample_state(ts, kw, at) * (1.0 + 0.01 * rng.standard_normal(at.size))
        return DeviceSeries(
            device_id=self.ids.lines[k], topic="meter", interval_s=60.0, ts=at,
            values={"p_kw": np.maximum(p, 0.0),
                    "e_kwh": energy_counter(ts, kw, at, float(self.start_kwh[k]))},
            decimals={"p_kw": 1, "e_kwh": 2},
        )

    def _sparks(self, plan: DustPlan, line_on: BOOL, rng: np.random.Generator) -> EventSeries:
        """Rare single spark detections while grinding, plus any a scenario adds."""
        chance = line_on * (self.spark_rate_per_h * BASE_STEP_S / 3600.0)
        hits = np.argwhere(rng.random(line_on.shape) < chance)
        times = [float(plan.ts[i]) + float(rng.uniform(0, BASE_STEP_S)) for _, i in hits]
        lines = [int(k) for k, _ in hits]
        times += [t for t, _ in plan.sparks]
        lines += [k for _, k in plan.sparks]
        order = np.argsort(np.array(times), kind="stable")
        return EventSeries(
            device_id=self.ids.collector, ts=np.round(np.array(times)[order]) if times
            else np.zeros(0), type="spark_detected",
            zone=[f"{self.process}-{lines[i] + 1}" for i in order],
            value=np.ones(len(times)),
        )

    # -- registry ------------------------------------------------------------------------

    def limits(self) -> dict[str, float]:
        """ΔP limits (Pa) bracketing every normal reading with a margin."""
        r_ref = self.r_clean + 0.5 * self.r_span
        r_max = self.r_clean + self.r_span + self.r_drift_per_day * 60.0
        dp_max = 1.3 ** 0.0 * r_max ** 0.6 * r_ref ** 0.4 * 1.06 + 5.0
        dp_min = 0.97 ** 2 * self.r_clean ** 0.6 * r_ref ** 0.4 * 0.94 - 2.0
        hi = math.ceil((dp_max + 150.0) / 50.0) * 50.0
        return {"lo": math.floor(0.7 * dp_min / 50.0) * 50.0, "hi": hi, "hihi": hi + 400.0}

    def devices(self) -> list[dict[str, Any]]:
        dp = self.limits()
        ids = self.ids
        out: list[dict[str, Any]] = [{
            "id": ids.collector, "kind": "dust_collector", "expected_interval_s": 30,
            "points": {
                "fan_run": {"kind": "run_state"},
                "fan_current": {"kind": "current", "unit": "A"},
                "dp": {"kind": "differential_pressure", "unit": "Pa", **dp},
                "hopper_temp": {"kind": "temperature", "unit": "degC", "hi": 60, "hihi": 70,
                                "rate_hi_per_min": 2},
                "airlock_run": {"kind": "run_state"},
            }}]
        for k in range(self.n_lines):
            out.append({"id": ids.lines[k], "kind": "meter", "role": "production",
                        "expected_interval_s": 60, "rated_kw": float(self.line_kw[k]),
                        "points": METER_POINTS})
        if self.wet:
            out.append({"id": ids.wet, "kind": "wet_dust_collector", "expected_interval_s": 30,
                        "points": {
                            "water_level": {"kind": "water_level", "unit": "m", "lo": 0.35,
                                            "lolo": 0.25},
                            "water_flow": {"kind": "flow", "unit": "m3/h",
                                           "lo": round(0.6 * self.water_flow_nom, 1)},
                            "hydrogen": {"kind": "hydrogen", "unit": "%LEL", "hi": 25,
                                         "hihi": 50},
                        }})
        rated = float(self.line_kw.sum()) + self.fan_kw + self.base_work_kw + self.compressor_kw
        out.append({"id": ids.total, "kind": "meter", "role": "total",
                    "expected_interval_s": 900, "rated_kw": round(rated),
                    "points": METER_POINTS})
        return out


@dataclass(frozen=True, slots=True)
class _Ids(SiteIds):
    n_lines: int

    @property
    def collector(self) -> str:
        return f"{self.eid}-DC1"

    @property
    def wet(self) -> str:
        return f"{self.eid}-WC1"

    @property
    def lines(self) -> list[str]:
        return [f"{self.eid}-M-L{k + 1}" for k in range(self.n_lines)]
