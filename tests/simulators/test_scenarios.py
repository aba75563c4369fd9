"""Scenario catalogue: every named scenario is placed, labelled and visible in the data."""

from __future__ import annotations

import itertools
from collections import defaultdict
from functools import cache
from typing import Any

import numpy as np
import pytest

from simulators.labels import Label, parse_time
from simulators.scenarios import SCENARIOS, expand
from simulators.suite import Suite, SuiteOptions, build_suite


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
def suite_with(name: str) -> tuple[Suite, dict[str, list[tuple[float, dict[str, Any]]]]]:
    suite = build_suite(SuiteOptions(sites=2, days=6, scenarios=(name,), seed=11,
                                     clean_share=0.0, outages_per_site_day=0.0))
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
