"""Site models: the physics the detectors will lean on must hold in the generated data."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.sites import DeviceSeries, DustSite, MetalSite
from simulators.sites.common import (
    BASE_STEP_S,
    SHIFT_PATTERNS,
    interval_mean,
    iso_weekday,
    local_day,
    local_hour,
    merge_intervals,
    shift_intervals,
)
from simulators.sites.metallurgy import WATER_KWH_PER_M3K

START = 1_793_548_800.0  # 2026-11-02T00:00:00+08:00, a Monday
DAYS = 4


def grid(days: float = DAYS) -> np.ndarray:
    return START + np.arange(int(days * 86_400 / BASE_STEP_S)) * BASE_STEP_S


def dust(seed: int) -> tuple[DustSite, dict[str, DeviceSeries], np.ndarray]:
    rng = np.random.default_rng(seed)
    site = DustSite(f"E{seed:03d}", rng)
    ts = grid()
    plan = site.plan(ts, site.work_intervals(START, START + DAYS * 86_400, rng))
    devices, _ = site.simulate(plan, rng)
    return site, devices, site.fan_on(plan)


def metal(seed: int) -> tuple[MetalSite, dict[str, DeviceSeries]]:
    rng = np.random.default_rng(seed)
    site = MetalSite(f"E{seed:03d}", rng)
    ts = grid()
    plan = site.plan(ts, site.work_intervals(START, START + DAYS * 86_400, rng))
    devices, _ = site.simulate(plan, rng)
    return site, devices


def test_calendar_helpers_know_the_local_week() -> None:
    assert int(iso_weekday(local_day(START))) == 1
    assert local_hour(np.array([START + 8 * 3600.0]))[0] == pytest.approx(8.0)
    s, e = merge_intervals(np.array([0.0, 5.0, 20.0]), np.array([10.0, 12.0, 30.0]))
    assert s.tolist() == [0.0, 20.0]
    assert e.tolist() == [12.0, 30.0]


def test_shifts_follow_workdays_and_overnight_shifts_cross_midnight() -> None:
    rng = np.random.default_rng(1)
    single = SHIFT_PATTERNS[0]
    s, _ = shift_intervals(single, START, START + 7 * 86_400, rng, skip_day_p=0.0)
    days = {int(iso_weekday(local_day(x))) for x in s}
    assert 7 not in days  # Sunday off
    night = next(p for p in SHIFT_PATTERNS if p.name == "night_valley")
    assert night.hours_text() == ["22:00-06:00"]
    s, e = shift_intervals(night, START, START + 3 * 86_400, rng, skip_day_p=0.0)
    assert ((e - s) > 7 * 3600).all()


@pytest.mark.parametrize("seed", range(6))
def test_dust_collector_dp_follows_airflow_and_loading(seed: int) -> None:
    site, devices, fan = dust(seed)
    dc = devices[site.ids.collector]
    dp, run = dc.values["dp"], dc.values["fan_run"]
    assert (run == fan).all()
    assert np.abs(dp[run == 0]).max() < 10.0, "fan off: no airflow, no ΔP"
    assert dp[run == 1].min() > 300.0
    assert (dc.stopped == (run == 0)).all(), "ΔP is flagged stopped while the fan is off"
    # Sawtooth: slow rise while producing, sharp drop after pulse cleaning.
    step = np.diff(dp)
    both_on = (run[1:] == 1) & (run[:-1] == 1)
    assert (step[both_on] < -150).sum() >= 3, "pulse cleaning drops ΔP"
    assert np.median(step[both_on & (step > -50)]) > 0, "dust cake builds up"
    # Fan current follows the affinity law: more resistance, less air, less current.
    amps = dc.values["fan_current"]
    assert amps[run == 0].max() == 0.0
    assert amps[run == 1].min() > 0.0


@pytest.mark.parametrize("seed", range(6))
def test_collector_fan_starts_before_and_stops_after_production(seed: int) -> None:
    site, devices, fan = dust(seed)
    ts = grid()
    producing = np.zeros(ts.size, bool)
    for k in range(site.n_lines):
        meter = devices[site.ids.lines[k]]
        on = meter.values["p_kw"] > 5.0
        producing |= np.repeat(on, 2)[: ts.size]
    starts = np.flatnonzero(producing[1:] & ~producing[:-1]) + 1
    stops = np.flatnonzero(~producing[1:] & producing[:-1]) + 1
    lead = int(300 / BASE_STEP_S)
    for i in starts:
        assert fan[max(0, i - lead):i + 1].all(), "fan on ≥ 5 min before production"
    for i in stops:
        assert fan[i:i + lead].all(), "fan on ≥ 5 min after production"


@pytest.mark.parametrize("seed", range(4))
def test_total_meter_holds_lines_fan_and_base_load(seed: int) -> None:
    site, devices, _ = dust(seed)
    ts = grid()
    total = devices[site.ids.total]
    lines = np.zeros(ts.size)
    for k in range(site.n_lines):
        lines += np.repeat(devices[site.ids.lines[k]].values["p_kw"], 2)[: ts.size]
    lines_avg = interval_mean(ts, lines, total.ts, 900.0)
    assert (total.values["p_kw"] >= 0.97 * lines_avg + site.base_idle_kw - 2.0).all()
    assert total.values["p_kw"].min() > 0.0, "base load is present when idle"
    energy = np.diff(total.values["e_kwh"])
    assert np.allclose(energy, total.values["p_kw"][1:] * 0.25, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_coil_water_heats_by_furnace_power_over_flow(seed: int) -> None:
    site, devices = metal(seed)
    cw = devices[site.ids.cooling]
    furnace = devices[site.ids.furnace]
    kw = np.repeat(furnace.values["p_kw"], 2)[: cw.ts.size]
    full = kw > 0.9 * site.rated_kw
    steady = full & np.roll(full, 4) & np.roll(full, 2)
    assert steady.sum() > 100
    dt = cw.values["temp_out"] - cw.values["temp_in"]
    expected = kw[steady] * site.coil_loss / (WATER_KWH_PER_M3K * cw.values["flow_in"][steady])
    assert np.median(np.abs(dt[steady] - expected)) < 0.05 * np.median(expected)
    pump = cw.values["pump_run"] == 1
    assert np.corrcoef(kw[pump], dt[pump])[0, 1] > 0.9
    # Pump runs whenever the furnace is energised.
    assert pump[kw > 0.05 * site.rated_kw].all()


@pytest.mark.parametrize("seed", range(8))
def test_normal_readings_stay_inside_registry_limits(seed: int) -> None:
    for site, devices in (dust(seed)[:2], metal(seed)):
        for spec in site.devices():
            series = devices[spec["id"]]
            for point, limits in spec["points"].items():
                v = np.round(series.values[point], series.decimals[point])
                judged = ~series.stopped if point in series.flag_points else np.ones(v.size, bool)
                for band in ("hi", "hihi"):
                    if band in limits:
                        assert v[judged].max() < limits[band], (spec["id"], point, band)
                for band in ("lo", "lolo"):
                    if band in limits:
                        assert v[judged].min() > limits[band], (spec["id"], point, band)
