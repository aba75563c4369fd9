"""Metallurgy site (金属冶炼): a medium-frequency induction furnace and its coil cooling.

Physics on the 30 s base grid:

* furnace power (kW) runs melting cycles inside working intervals: charge and ramp
  (8-12 min up to full power), melt (30-60 min at 93-100 % of rated), superheat
  (8-15 min at 50-70 %), pour and casting (8-20 min near zero) and charging idle;
* the coil cooling pump runs while the furnace is energised plus an after-run of
  20-45 min (or around the clock on closed-loop plants); pressure ∝ flow²;
* coil heat (kW) is 18-25 % of furnace power, so
  ``temp_out - temp_in = heat / (1.163 × flow)`` (kW, m³/h → K; 1.163 kWh/(m³·K) is
  water's volumetric heat capacity), with a one-minute thermal lag;
* CO (ppm) sits near zero and bumps during pouring;
* total meter (utility, 15 min) = furnace + pump + base load (cranes, lighting,
  offices, compressor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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

_RATINGS_KW = (500.0, 750.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0)
WATER_KWH_PER_M3K = 1.163
"""Volumetric heat capacity of water, kWh per m³ per K."""


@dataclass(slots=True)
class MetalPlan:
    """Editable process state on the base grid.

    ``work``: one entry (the furnace's working intervals).  ``level``: (1, n) power
    multiplier (ramped hidden operation).  ``power_ok``: grid power present.
    ``flow_factor``: pump delivery multiplier (flow loss).  ``leak``: fraction of inlet
    flow lost before the outlet meter.  ``co_extra``: ppm added (CO high).
    ``steady``: holding furnace at constant power (a legitimately flat process).
    ``hold_kw_frac``: furnace power fraction forced during ``steady``.
    """

    ts: F64
    work: list[tuple[F64, F64]]
    level: F64
    power_ok: BOOL
    extra_kw: F64
    flow_factor: F64
    leak: F64
    co_extra: F64
    steady: BOOL
    hold_kw_frac: float = 0.35

    def line_on(self) -> BOOL:
        s, e = self.work[0]
        return np.asarray(intervals_mask(self.ts, s, e)[None, :] & self.power_ok[None, :])

    def producing(self) -> BOOL:
        return np.asarray(self.line_on()[0] & (self.level[0] > 0.15))


class MetalSite(SiteBase):
    """One metallurgy enterprise with one induction furnace."""

    industry = "metallurgy"
    n_lines = 1

    def __init__(self, eid: str, rng: np.random.Generator) -> None:
        super().__init__(eid, rng, patterns=(0, 3, 5, 4, 2, 3))
        self.rated_kw = float(rng.choice(_RATINGS_KW))
        self.standby_kw = float(rng.uniform(0.5, 2.0))
        self.coil_loss = float(rng.uniform(0.18, 0.25))
        self.dt_design = float(rng.uniform(9.0, 13.0))
        """Coil water temperature rise at rated power, K."""
        self.flow_nom = round(self.rated_kw * self.coil_loss
                              / (WATER_KWH_PER_M3K * self.dt_design), 1)
        self.p_nom = float(rng.uniform(0.3, 0.45))
        self.pump_kw = float(rng.choice([7.5, 11.0, 15.0, 22.0, 30.0]))
        self.pump_always = bool(rng.random() < 0.3)
        self.after_run_s = float(rng.uniform(1200.0, 2700.0))
        self.base_idle_kw = float(rng.uniform(3.0, 10.0))
        self.base_work_kw = float(rng.uniform(15.0, 60.0))
        self.co_zero = float(rng.uniform(0.0, 3.0))
        self.co_bump = float(rng.uniform(4.0, 12.0))
        self.cycle_scale = float(rng.uniform(0.8, 1.2))
        self.start_kwh = self.draw_registers(rng, 1e5, 9e6)
        self.ids = _Ids(eid)

    def plan(self, ts: F64, work: list[tuple[F64, F64]]) -> MetalPlan:
        n = ts.size
        return MetalPlan(ts=ts, work=work, level=np.ones((1, n)), power_ok=np.ones(n, bool),
                         extra_kw=np.zeros(n), flow_factor=np.ones(n), leak=np.zeros(n),
                         co_extra=np.zeros(n), steady=np.zeros(n, bool))

    # -- physics -------------------------------------------------------------------------

    def furnace_fraction(self, plan: MetalPlan, rng: np.random.Generator) -> tuple[F64, F64]:
        """Furnace power as a fraction of rated, and a 0/1 pouring indicator."""
        times: list[float] = [float(plan.ts[0]) - 1.0]
        level: list[float] = [0.0]
        pours: list[float] = [0.0]
        c = self.cycle_scale
        for s, e in zip(*plan.work[0], strict=True):
            t = float(s)
            while t + 3600.0 * c < float(e):
                phases = (  # (duration s, level at end, pouring)
                    (rng.uniform(480, 720) * c, rng.uniform(0.93, 1.0), 0.0),
                    (rng.uniform(1800, 3600) * c, rng.uniform(0.93, 1.0), 0.0),
                    (60.0, rng.uniform(0.5, 0.7), 0.0),
                    (rng.uniform(480, 900) * c, rng.uniform(0.5, 0.7), 0.0),
                    (60.0, 0.04, 1.0),
                    (rng.uniform(480, 1200), 0.04, 1.0),
                    (60.0, 0.02, 0.0),
                    (rng.uniform(300, 1500), 0.02, 0.0),
                )
                times.append(t)
                level.append(0.1)
                pours.append(0.0)
                for duration, lv, pour in phases:
                    t += float(duration)
                    times.append(t)
                    level.append(float(lv))
                    pours.append(pour)
            times.append(t + 1.0)
            level.append(0.0)
            pours.append(0.0)
        frac = np.interp(plan.ts, times, level)
        pouring = np.interp(plan.ts, times, pours) > 0.5
        frac = np.where(plan.steady, plan.hold_kw_frac, frac * plan.level[0])
        return frac * plan.power_ok, np.asarray(pouring & plan.power_ok, dtype=np.float64)

    def simulate(self, plan: MetalPlan, rng: np.random.Generator
                 ) -> tuple[dict[str, DeviceSeries], list[EventSeries]]:
        ts, n = plan.ts, plan.ts.size
        frac, pouring = self.furnace_fraction(plan, rng)
        wobble = np.where(plan.steady, 1.0, 1.0 + ar1(n, 0.015, 6.0, rng))
        furnace_kw = np.where(frac > 0.005, self.rated_kw * frac * wobble, self.standby_kw)
        furnace_kw = furnace_kw * plan.power_ok
        energised = frac > 0.03
        pump = expand_mask(energised, 4, math.ceil(self.after_run_s / BASE_STEP_S))
        if self.pump_always:
            pump = pump | np.ones(n, bool)
        pump = pump & plan.power_ok
        ambient = ambient_temperature(ts, rng)
        heat = first_order(furnace_kw * self.coil_loss * energised, 60.0, BASE_STEP_S, 0.0)
        flow_in = np.where(pump, self.flow_nom * plan.flow_factor
                           * (1.0 + np.where(plan.steady, 0.0, ar1(n, 0.01, 30.0, rng))), 0.0)
        flow_out = flow_in * (1.0 - plan.leak)
        pressure = np.where(pump, 0.02 + (self.p_nom - 0.02) * (flow_in / self.flow_nom) ** 2
                            * (1.0 - 0.5 * plan.leak), 0.02)
        tower = first_order(furnace_kw / self.rated_kw, 1800.0, BASE_STEP_S, 0.0)
        temp_in = 0.5 * ambient + 14.0 + 3.0 * tower
        temp_in = np.where(plan.steady, first_order(temp_in, 3 * 3600.0, BASE_STEP_S), temp_in)
        rise = heat / (WATER_KWH_PER_M3K * np.maximum(flow_in, 0.05 * self.flow_nom))
        temp_out = temp_in + np.where(pump, rise, first_order(rise, 900.0, BASE_STEP_S) * 0.2)
        quiet = np.where(plan.steady, 0.1, 1.0)
        co = (self.co_zero + first_order(pouring * self.co_bump, 180.0, BASE_STEP_S, 0.0)
              + plan.co_extra + np.abs(ar1(n, 0.6, 4.0, rng)) * quiet)
        hour = local_hour(ts)
        base = (self.base_idle_kw + ((hour < 6.5) | (hour > 18.0)) * 2.0
                + energised * self.base_work_kw + pouring * rng.uniform(10.0, 25.0)
                + ar1(n, 0.5, 10.0, rng))
        total = (furnace_kw + pump * self.pump_kw + base + plan.extra_kw) * plan.power_ok
        w = rng.standard_normal((4, n)) * quiet
        devices = {
            self.ids.cooling: DeviceSeries(
                device_id=self.ids.cooling, topic="telemetry", interval_s=30.0, ts=ts.copy(),
                values={"pump_run": pump.astype(np.float64),
                        "flow_in": flow_in * (1.0 + 0.008 * w[0]),
                        "flow_out": flow_out * (1.0 + 0.008 * w[1]),
                        "pressure": pressure + 0.003 * w[2],
                        "temp_in": temp_in + 0.05 * w[3],
                        "temp_out": temp_out + 0.05 * w[3] + 0.05 * w[2]},
                decimals={"pump_run": 0, "flow_in": 1, "flow_out": 1, "pressure": 3,
                          "temp_in": 1, "temp_out": 1},
                flag_points=("flow_in", "flow_out", "pressure"), stopped=~pump,
            ),
            self.ids.gas: DeviceSeries(
                device_id=self.ids.gas, topic="telemetry", interval_s=30.0, ts=ts.copy(),
                values={"co": co}, decimals={"co": 0},
            ),
            self.ids.furnace: self._furnace_meter(ts, furnace_kw, rng),
            self.ids.total: total_meter(self.ids.total, ts, total, float(self.start_kwh[-1])),
        }
        return devices, []

    def _furnace_meter(self, ts: F64, kw: F64, rng: np.random.Generator) -> DeviceSeries:
        at = ts[:: int(60.0 / BASE_STEP_S)]
        p = sample_state(ts, kw, at) * (1.0 + 0.005 * rng.standard_normal(at.size))
        return DeviceSeries(
            device_id=self.ids.furnace, topic="meter", interval_s=60.0, ts=at,
            values={"p_kw": p, "e_kwh": energy_counter(ts, kw, at, float(self.start_kwh[0]))},
            decimals={"p_kw": 1, "e_kwh": 1},
        )

    # -- registry ------------------------------------------------------------------------

    def devices(self) -> list[dict[str, Any]]:
        ids = self.ids
        flow_lo = round(0.7 * self.flow_nom, 1)
        flow_lolo = round(0.5 * self.flow_nom, 1)
        p_lo = round(0.6 * self.p_nom, 2)
        return [
            {"id": ids.furnace, "kind": "meter", "role": "furnace", "expected_interval_s": 60,
             "rated_kw": self.rated_kw, "points": METER_POINTS},
            {"id": ids.cooling, "kind": "cooling_water", "expected_interval_s": 30,
             "points": {
                 "pump_run": {"kind": "run_state"},
                 "flow_in": {"kind": "flow", "unit": "m3/h", "lo": flow_lo, "lolo": flow_lolo},
                 "flow_out": {"kind": "flow", "unit": "m3/h", "lo": flow_lo,
                              "lolo": flow_lolo},
                 "pressure": {"kind": "pressure", "unit": "MPa", "lo": p_lo,
                              "lolo": round(0.3 * self.p_nom, 2)},
                 "temp_in": {"kind": "temperature", "unit": "degC"},
                 "temp_out": {"kind": "temperature", "unit": "degC", "hi": 55, "hihi": 65},
             }},
            {"id": ids.gas, "kind": "gas_detector", "expected_interval_s": 30,
             "points": {"co": {"kind": "co", "unit": "ppm", "hi": 25, "hihi": 50}}},
            {"id": ids.total, "kind": "meter", "role": "total", "expected_interval_s": 900,
             "rated_kw": round(self.rated_kw + self.pump_kw + self.base_work_kw + 25.0),
             "points": METER_POINTS},
        ]


@dataclass(frozen=True, slots=True)
class _Ids(SiteIds):

    @property
    def furnace(self) -> str:
        return f"{self.eid}-M-MF1"

    @property
    def cooling(self) -> str:
        return f"{self.eid}-CW1"

    @property
    def gas(self) -> str:
        return f"{self.eid}-GAS1"
