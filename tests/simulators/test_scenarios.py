"""Scenario catalogue: every named scenario is placed, labelled and visible in the data."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pytest

from simulators.labels import Label, parse_time
from simulators.scenarios import SCENARIOS, Placed, expand
from simulators.suite import CHINA, Suite, SuiteOptions, build_suite

H = 3600.0


def test_expand_understands_all_families_and_names() -> None:
    assert expand(["all"]) == list(SCENARIOS)
    hidden = expand(["hidden_operation"])
    assert hidden == [n for n in SCENARIOS if n.startswith("hidden_operation.")]
    assert len(hidden) == 4
    mixed = expand(["negative", "abnormal.spark", "abnormal.spark"])
    assert mixed.count("abnormal.spark") == 1
    assert mixed.index("abnormal.spark") < mixed.index("negative.power_outage")  # catalogue order
    assert all(SCENARIOS[n].negative for n in expand(["negative"]))


def test_unknown_scenario_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"hidden_operation\.full") as info:
        expand(["hidden"])
    assert "negative" in str(info.value)


@cache
def suite_with(name: str, start: datetime | None = None, seed: int = 11
               ) -> tuple[Suite, dict[str, list[tuple[float, dict[str, Any]]]]]:
    suite = build_suite(SuiteOptions(sites=2, days=6, scenarios=(name,), seed=seed,
                                     start=start, clean_share=0.0, outages_per_site_day=0.0))
    by_topic: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for topic, payload in suite.messages():
        by_topic[topic].append((parse_time(payload["ts"]), payload))
    return suite, by_topic


def scenario_labels(suite: Suite, name: str) -> list[Label]:
    return [lb for lb in suite.labels if lb.scenario == name]


def readings(by_topic: dict[str, list[tuple[float, dict[str, Any]]]], device: str,
             point: str, start: float, end: float) -> np.ndarray:
    rows = next(v for k, v in by_topic.items() if k.split("/")[3] == device
                and k.split("/")[4] in ("telemetry", "meter"))
    out = [p["values"][point] for t, p in rows if start <= t < end]
    return np.array([v["v"] if isinstance(v, dict) else v for v in out], dtype=float)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_writes_a_label_of_its_kind(name: str) -> None:
    suite, _ = suite_with(name)
    spec = SCENARIOS[name]
    assert not suite.skipped
    labels = scenario_labels(suite, name)
    main = [lb for lb in labels if lb.kind == spec.kind and lb.negative == spec.negative]
    assert main, f"{name}: no {spec.kind} label (negative={spec.negative})"
    for lb in main:
        assert lb.end > lb.start
        if spec.kind == "hidden_operation":
            assert lb.device_id is None
            assert lb.end - lb.start >= (3600 if not spec.negative else 1800) * 0.9


@pytest.mark.parametrize("name", expand(["hidden_operation"]))
def test_hidden_operation_runs_inside_a_declared_stop_with_meter_load(name: str) -> None:
    suite, by_topic = suite_with(name)
    for lb in scenario_labels(suite, name):
        ent = next(e for e in suite.registry.enterprises if e.id == lb.enterprise_id)
        stops = [(d.from_.timestamp(), d.to.timestamp()) for d in ent.declared]
        assert any(s <= lb.start and lb.end <= e for s, e in stops)
        total = f"{ent.id}-M-TOTAL"
        stop_s, stop_e = next((s, e) for s, e in stops if s <= lb.start < e)
        during = readings(by_topic, total, "p_kw", lb.start + 1800, lb.end)
        floor = np.percentile(readings(by_topic, total, "p_kw", stop_s, stop_e), 5)
        assert during.size
        assert during.max() > 3 * floor + 20.0


def test_maintenance_load_is_small_compared_with_production() -> None:
    suite, by_topic = suite_with("negative.maintenance_load")
    lb = scenario_labels(suite, "negative.maintenance_load")[0]
    total = f"{lb.enterprise_id}-M-TOTAL"
    during = readings(by_topic, total, "p_kw", lb.start + 900, lb.end)
    normal = readings(by_topic, total, "p_kw", suite.start, suite.end)
    assert during.max() < 0.4 * normal.max()


def test_silent_site_sends_nothing_but_the_utility_meter_shows_production() -> None:
    name = "fake_offline.silent"
    suite, by_topic = suite_with(name)
    lb = next(lb for lb in scenario_labels(suite, name) if lb.kind == "fake_offline")
    site = [k for k in by_topic if k.split("/")[2] == lb.enterprise_id]
    for topic in site:
        times = [t for t, p in by_topic[topic] if lb.start + 60 <= t < lb.end - 60
                 and topic.endswith(("telemetry", "meter"))]
        if "M-TOTAL" in topic:
            assert times, "the utility meter keeps reporting"
        else:
            assert not times, f"{topic} reported during the faked silence"
    total = readings(by_topic, f"{lb.enterprise_id}-M-TOTAL", "p_kw", lb.start + 900, lb.end)
    idle = readings(by_topic, f"{lb.enterprise_id}-M-TOTAL", "p_kw", suite.start, suite.end)
    assert total.min() > 2 * np.percentile(idle, 5)
    offline = {x.device_id for x in scenario_labels(suite, name)
               if x.kind == "device_offline" and x.enterprise_id == lb.enterprise_id}
    on_site = {t.split("/")[3] for t in site if "M-TOTAL" not in t}
    assert offline == on_site, "every silent device is labelled device_offline"


@pytest.mark.parametrize("name", ["fake_offline.frozen", "fake_offline.replay_day"])
def test_frozen_and_replayed_values_repeat_exactly(name: str) -> None:
    suite, by_topic = suite_with(name)
    lb = scenario_labels(suite, name)[0]
    assert lb.device_id is not None
    point = "hopper_temp" if lb.device_id.endswith("DC1") else "temp_out"
    now = readings(by_topic, lb.device_id, point, lb.start + 10, lb.end - 10)
    if name.endswith("frozen"):
        assert np.unique(now).size == 1
        return
    src = readings(by_topic, lb.device_id, point, lb.start - 86_400 * 7, lb.end - 86_400 * 7)
    if src.size == 0:
        src = readings(by_topic, lb.device_id, point, lb.start - 86_400, lb.end - 86_400)
    # Drops differ between the two days, so compare as multisets of exact values.
    common = np.intersect1d(now, src)
    assert common.size >= 0.8 * np.unique(now).size


def test_clone_copies_inlet_flow_to_outlet() -> None:
    suite, by_topic = suite_with("fake_offline.clone")
    lb = scenario_labels(suite, "fake_offline.clone")[0]
    assert lb.device_id is not None
    a = readings(by_topic, lb.device_id, "flow_in", lb.start, lb.end)
    b = readings(by_topic, lb.device_id, "flow_out", lb.start, lb.end)
    assert (a == b).all()
    before_a = readings(by_topic, lb.device_id, "flow_in", lb.start - 7200, lb.start)
    before_b = readings(by_topic, lb.device_id, "flow_out", lb.start - 7200, lb.start)
    assert (before_a != before_b).any()


def test_fan_off_interlock_shows_lines_running_with_the_fan_stopped() -> None:
    suite, by_topic = suite_with("abnormal.fan_off_interlock")
    lb = next(x for x in suite.labels if x.kind == "interlock_violation")
    assert lb.device_id is not None
    assert (readings(by_topic, lb.device_id, "fan_run", lb.start, lb.end) == 0).all()
    eid = lb.enterprise_id
    line = readings(by_topic, f"{eid}-M-L1", "p_kw", lb.start, lb.end)
    assert np.median(line) > 5.0


@pytest.mark.parametrize(("name", "point", "direction"), [
    ("abnormal.filter_clogging", "dp", 1), ("abnormal.bag_rupture", "dp", -1),
    ("abnormal.co_high", "co", 1), ("abnormal.cooling_flow_loss", "flow_in", -1),
])
def test_abnormal_values_cross_the_registry_limit(name: str, point: str,
                                                  direction: int) -> None:
    suite, by_topic = suite_with(name)
    lb = next(x for x in scenario_labels(suite, name) if x.point == point)
    assert lb.device_id is not None
    ent = next(e for e in suite.registry.enterprises if e.id == lb.enterprise_id)
    spec = next(d for d in ent.devices if d.id == lb.device_id).points[point]
    values = readings(by_topic, lb.device_id, point, lb.start, lb.end)
    if direction > 0:
        assert spec.hi is not None
        assert values.max() > spec.hi
    else:
        assert spec.lo is not None
        assert values.min() < spec.lo


def test_hopper_temperature_rises_fast() -> None:
    suite, by_topic = suite_with("abnormal.hopper_temp_rise")
    lb = next(x for x in suite.labels if x.kind == "rate_of_change")
    assert lb.device_id is not None
    temp = readings(by_topic, lb.device_id, "hopper_temp", lb.start, lb.end + 60)
    assert (temp[-1] - temp[0]) / ((lb.end - lb.start) / 60.0) > 2.0


def test_spark_burst_arrives_as_events() -> None:
    suite, by_topic = suite_with("abnormal.spark")
    lb = next(x for x in suite.labels if x.kind == "abnormal_condition")
    events = [p for k, v in by_topic.items() if k.endswith("/event") for t, p in v
              if lb.start <= t <= lb.end]
    assert len(events) >= 5
    assert all(p["type"] == "spark_detected" and p["zone"] for p in events)


ABNORMAL_CONDITIONS = {  # scenario: (device suffix, deviating point, run state)
    "abnormal.fan_belt_slip": ("DC1", "fan_current", "fan_run"),
    "abnormal.cooling_tower_fault": ("CW1", "temp_in", "pump_run"),
}


def placed(suite: Suite, name: str) -> list[tuple[str, Placed]]:
    return [(b.eid, p) for b in suite.sites for p in b.placed if p.spec.name == name]


def table(by_topic: dict[str, list[tuple[float, dict[str, Any]]]], device: str,
          start: float, end: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Times and every point of a device's telemetry in ``[start, end)``, row-aligned;
    flagged values (``{"v": ..., "q": "F"}``) come as NaN."""
    rows = sorted(((t, p["values"]) for k, v in by_topic.items()
                   if k.split("/")[3] == device and k.endswith("/telemetry")
                   for t, p in v if start <= t < end), key=lambda r: r[0])
    names = list(rows[0][1])
    return np.array([t for t, _ in rows]), {
        n: np.array([np.nan if isinstance(v[n], dict) else v[n] for _, v in rows], dtype=float)
        for n in names}


@pytest.mark.parametrize("name", list(ABNORMAL_CONDITIONS))
def test_abnormal_condition_is_labelled_on_its_device_for_the_fault(name: str) -> None:
    suite, _ = suite_with(name)
    suffix, point, _ = ABNORMAL_CONDITIONS[name]
    labels = scenario_labels(suite, name)
    assert labels
    assert {lb.kind for lb in labels} == {"abnormal_condition"}, "no limit may be crossed"
    got = sorted((lb.enterprise_id, lb.device_id, lb.point, lb.start, lb.end) for lb in labels)
    want = sorted((eid, f"{eid}-{suffix}", point, p.start, p.end)
                  for eid, p in placed(suite, name))
    assert got == want, "first affected sample to one interval after the last"


@pytest.mark.parametrize("name", list(ABNORMAL_CONDITIONS))
def test_abnormal_condition_crosses_no_registry_limit(name: str) -> None:
    suite, by_topic = suite_with(name)
    _, _, run = ABNORMAL_CONDITIONS[name]
    for lb in scenario_labels(suite, name):
        assert lb.device_id is not None
        ent = next(e for e in suite.registry.enterprises if e.id == lb.enterprise_id)
        device = next(d for d in ent.devices if d.id == lb.device_id)
        ts, values = table(by_topic, lb.device_id, lb.start, lb.end)
        assert (values[run] == 1).all(), "the equipment keeps running"
        assert any(s.lo or s.hi for s in device.points.values())
        for point, spec in device.points.items():
            v = values[point][~np.isnan(values[point])]
            assert v.size > 0.9 * ts.size
            for band in (spec.hi, spec.hihi):
                assert band is None or v.max() < band, (point, band)
            for band in (spec.lo, spec.lolo):
                assert band is None or v.min() > band, (point, band)


def test_fan_belt_slip_cuts_the_current_of_the_running_fan() -> None:
    """A healthy fan keeps ΔP × current constant (ΔP = R q², q⁵ ∝ 1/R, current ∝ q³),
    so the slip shows as that product falling to 55-70 % inside the window only."""
    name = "abnormal.fan_belt_slip"
    suite, by_topic = suite_with(name)
    for lb in scenario_labels(suite, name):
        assert lb.device_id is not None
        ts, v = table(by_topic, lb.device_id, lb.start - 2 * H, lb.end + 2 * H)
        inside = (ts >= lb.start + 60) & (ts < lb.end - 60)
        outside = (ts < lb.start - 60) | (ts >= lb.end + 60)
        running = v["fan_run"] == 1
        assert running[inside].all()
        assert (running & outside).sum() > 100
        product = v["fan_current"] * v["dp"]
        ratio = product / np.median(product[running & outside])
        assert 0.54 < np.median(ratio[inside]) < 0.71
        assert (ratio[inside] < 0.76).all()
        assert (np.abs(ratio[running & outside] - 1.0) < 0.08).all()


def test_cooling_tower_fault_lifts_the_supply_temperature_with_the_pump_running() -> None:
    name = "abnormal.cooling_tower_fault"
    suite, by_topic = suite_with(name)
    rises = {(eid, p.start): p.extra["rise"] for eid, p in placed(suite, name)}
    for lb in scenario_labels(suite, name):
        assert lb.device_id is not None
        rise = rises[lb.enterprise_id, lb.start]
        assert 8.0 <= rise <= 15.0, "November: far below temp_out's hi, so not capped"
        ts, v = table(by_topic, lb.device_id, lb.start - H, lb.end + H)
        before, after = ts < lb.start - 60, ts >= lb.end + 60
        held = (ts >= lb.start + 660) & (ts < lb.end - 60)
        inside = (ts >= lb.start + 60) & (ts < lb.end - 60)
        assert (v["pump_run"][inside] == 1).all()
        t_in, t_out = v["temp_in"], v["temp_out"]
        # Up within 10 min and held there; straight back when the fan runs again.
        assert abs(np.median(t_in[held][:10]) - np.median(t_in[before][-10:]) - rise) < 2.0
        assert abs(np.median(t_in[held][-10:]) - np.median(t_in[after][:10]) - rise) < 1.0
        # temp_out steps with it: the coil's ΔT runs on across the end of the window.
        last, first = np.flatnonzero(ts < lb.end - 15)[-1], np.flatnonzero(ts >= lb.end - 15)[0]
        assert t_in[last] - t_in[first] > rise - 1.0
        assert abs((t_out - t_in)[last] - (t_out - t_in)[first]) < 1.0
        assert (t_in[held] > np.median(t_in[before][-10:]) + rise - 3.0).all()
        for part in (before, after):
            assert (np.abs(np.diff(t_in[part])) < 1.0).all(), "no deviation outside"
        # No interlock: the water keeps flowing as before.
        flow = v["flow_in"]
        assert np.abs(flow[inside] / np.median(flow[before]) - 1.0).max() < 0.06


def test_cooling_tower_rise_stays_below_the_outlet_limit_on_a_hot_day() -> None:
    name = "abnormal.cooling_tower_fault"
    suite, by_topic = suite_with(name, datetime(2026, 7, 20, tzinfo=CHINA), 1)
    assert not suite.skipped
    tops = []
    for lb in scenario_labels(suite, name):
        assert lb.kind == "abnormal_condition"
        ent = next(e for e in suite.registry.enterprises if e.id == lb.enterprise_id)
        hi = next(d for d in ent.devices if d.id == lb.device_id).points["temp_out"].hi
        assert hi is not None
        assert lb.device_id is not None
        tops.append(hi - table(by_topic, lb.device_id, lb.start, lb.end)[1]["temp_out"].max())
    assert min(tops) >= 2.0 - 1e-9
    assert min(tops) < 2.05, "the summer rise is capped 2 K below temp_out's hi"


def test_power_outage_drops_the_meter_and_silences_the_gateway() -> None:
    suite, by_topic = suite_with("negative.power_outage")
    labels = scenario_labels(suite, "negative.power_outage")
    neg = next(x for x in labels if x.kind == "fake_offline")
    assert neg.negative
    assert any(x.kind == "device_offline" and not x.negative for x in labels)
    total = readings(by_topic, f"{neg.enterprise_id}-M-TOTAL", "p_kw", neg.start + 900,
                     neg.end)
    assert total.size == 0 or total.max() < 1.0


def test_scenarios_of_one_site_never_overlap() -> None:
    suite = build_suite(SuiteOptions(sites=4, days=14, seed=5, scenarios_per_site=3.0,
                                     clean_share=0.0))
    for b in suite.sites:
        spans = sorted((p.start, p.end) for p in b.placed)
        for (_, e1), (s2, _) in itertools.pairwise(spans):
            assert s2 >= e1
