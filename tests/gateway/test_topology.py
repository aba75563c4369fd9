"""build_topology: meters, declared stops and interlock rules found in a registry by
device kind, meter role and point names, flattened into arrays for the detectors."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from detectors.fake_offline import FakeOfflineDetector
from detectors.hidden_operation import HiddenOperationDetector
from detectors.interlock import COOLING, FAN, LEAK, InterlockDetector
from detectors.plant_state import PlantStateDetector
from gateway.registry import Registry, load_registry_data
from gateway.registry.topology import (
    INTERLOCK_COOLING,
    INTERLOCK_FAN,
    INTERLOCK_LEAK,
    ROLE_CODES,
    SiteTopology,
    build_topology,
)


def topology_of(registry: Registry) -> SiteTopology:
    return build_topology(registry.spec, registry.index)


def point(registry: Registry, device: str, name: str) -> int:
    index = registry.index
    return index.device_points[index.device_index[device]][name]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def enterprise(eid: str, devices: list[dict[str, Any]], *, industry: str = "dust",
               declared: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": eid, "name": f"示例企业{eid}", "industry": industry, "region": ["370000"],
            "devices": devices, "declared": declared or []}


def meter(did: str, role: str | None, *, rated: float | None = None,
          interval: float = 60.0, power: bool = True) -> dict[str, Any]:
    points: dict[str, Any] = {"e_kwh": {"kind": "energy", "unit": "kWh"}}
    if power:
        points["p_kw"] = {"kind": "power", "unit": "kW"}
    device: dict[str, Any] = {"id": did, "kind": "meter", "expected_interval_s": interval,
                              "points": points}
    if role is not None:
        device["role"] = role
    if rated is not None:
        device["rated_kw"] = rated
    return device


def collector(did: str, fan_point: str | None = "fan_run") -> dict[str, Any]:
    points: dict[str, Any] = {"dp": {"kind": "differential_pressure", "unit": "Pa"}}
    if fan_point is not None:
        points[fan_point] = {"kind": "run_state"}
    return {"id": did, "kind": "dust_collector", "expected_interval_s": 30, "points": points}


def cooling(did: str, *, flow_lo: float | None = 12.0,
            pressure: bool = True) -> dict[str, Any]:
    inlet: dict[str, Any] = {"kind": "flow", "unit": "m3/h"}
    if flow_lo is not None:
        inlet["lo"] = flow_lo
    points: dict[str, Any] = {"flow_in": inlet, "flow_out": {"kind": "flow", "unit": "m3/h"}}
    if pressure:
        points["pressure"] = {"kind": "pressure", "unit": "MPa", "lo": 0.2}
    return {"id": did, "kind": "cooling_water", "expected_interval_s": 10, "points": points}


def stopped(start: str, end: str, reason: str | None = None,
            state: str = "stopped") -> dict[str, Any]:
    period = {"state": state, "from": start, "to": end}
    if reason is not None:
        period["reason"] = reason
    return period


# --- the shared fixture ------------------------------------------------------------------


def test_meters_of_the_fixture(small_registry: Registry) -> None:
    topo = topology_of(small_registry)
    index = small_registry.index

    assert topo.n_meters == 2
    assert [index.device_ids[d] for d in topo.meter_device] == ["M-TOTAL", "M-FURNACE1"]
    assert topo.meter_point.tolist() == [point(small_registry, "M-TOTAL", "p_kw"),
                                         point(small_registry, "M-FURNACE1", "p_kw")]
    assert topo.meter_enterprise.tolist() == [0, 1]
    assert topo.meter_role.tolist() == [ROLE_CODES["total"], ROLE_CODES["furnace"]]
    assert math.isnan(topo.meter_rated_kw[0])  # not given
    assert topo.meter_rated_kw[1] == 750.0
    assert topo.meter_interval_s.tolist() == [900.0, 60.0]
    assert topo.meter_independent.tolist() == [True, False]


def test_the_utility_meter_is_the_reference_and_not_part_of_the_site(
    small_registry: Registry
) -> None:
    topo = topology_of(small_registry)
    index = small_registry.index

    assert topo.enterprise_reference_meter.tolist() == [0, -1]
    not_monitoring = [index.device_ids[d] for d in np.flatnonzero(~topo.device_monitoring)]
    assert not_monitoring == ["M-TOTAL"]


def test_declared_stops_of_the_fixture(small_registry: Registry) -> None:
    topo = topology_of(small_registry)

    assert topo.stop_enterprise.tolist() == [0]
    assert topo.stop_from.tolist() == [epoch("2026-11-20T00:00:00+08:00")]
    assert topo.stop_to.tolist() == [epoch("2026-11-27T00:00:00+08:00")]
    assert topo.stop_reason == ["停产整顿"]


def test_furnace_cooling_and_leak_rules_of_the_fixture(small_registry: Registry) -> None:
    topo = topology_of(small_registry)
    reg = small_registry
    furnace = point(reg, "M-FURNACE1", "p_kw")
    flow_in, flow_out = point(reg, "CW1", "flow_in"), point(reg, "CW1", "flow_out")
    pressure = point(reg, "CW1", "pressure")
    inlet_lo = float(reg.index.point_lo[flow_in])

    assert topo.interlock_kind.tolist() == [INTERLOCK_COOLING, INTERLOCK_LEAK]
    assert topo.interlock_power_point.tolist() == [furnace, furnace]
    # Heating above 10 % of 750 kW; energised at all above 1.5 %.
    assert topo.interlock_power_on_kw.tolist() == pytest.approx([75.0, 11.25])
    assert topo.interlock_guard_point.tolist() == [flow_in, flow_in]
    # Cooling: the inlet's lo; leak: water counts as flowing above half of it.
    assert topo.interlock_guard_limit.tolist() == pytest.approx([inlet_lo, 0.5 * inlet_lo])
    assert topo.interlock_other_point.tolist() == [pressure, flow_out]
    assert topo.interlock_other_limit.tolist() == pytest.approx([0.2, 0.08])
    assert topo.interlock_subject.tolist() == [flow_in, flow_out]
    # The dust site has no production meter, so no fan rule.


def test_rule_codes_agree_with_the_interlock_detector() -> None:
    assert (INTERLOCK_FAN, INTERLOCK_COOLING, INTERLOCK_LEAK) == (FAN, COOLING, LEAK)


def test_the_detectors_accept_the_fixtures_topology(small_registry: Registry) -> None:
    topo = topology_of(small_registry)
    index = small_registry.index

    plant = PlantStateDetector(topo.meter_point, topo.meter_rated_kw, index.n_points)
    HiddenOperationDetector(topo.meter_enterprise, topo.meter_interval_s,
                            index.n_enterprises, topo.stop_enterprise, topo.stop_from,
                            topo.stop_to)
    InterlockDetector(topo.interlock_kind, topo.interlock_power_point,
                      topo.interlock_power_on_kw, topo.interlock_guard_point,
                      topo.interlock_guard_limit, topo.interlock_other_point,
                      topo.interlock_other_limit, topo.interlock_subject,
                      index.device_expected_interval_s[index.point_device])
    FakeOfflineDetector(index.device_enterprise, topo.device_monitoring,
                        topo.enterprise_reference_meter, topo.meter_enterprise,
                        topo.meter_interval_s, index.point_enterprise)

    assert plant.n_meters == 2


# --- how things are found ------------------------------------------------------------------


def dust_site() -> Registry:
    return load_registry_data({"enterprises": [enterprise("E1", [
        meter("L1", "production", rated=90.0),
        collector("DC1"),
        meter("L2", "production", rated=45.0),
        meter("L3", "production"),  # no rated power: no "running" threshold
        meter("TOTAL", "total", rated=200.0, interval=900.0),
        meter("TOTAL2", "total", rated=200.0, interval=900.0),
        meter("ENERGY-ONLY", "production", rated=30.0, power=False),
        {"id": "COMP", "kind": "compressor", "expected_interval_s": 60,
         "points": {"p_kw": {"kind": "power", "unit": "kW"}}},
        collector("DC2", fan_point="fan_main"),
        collector("DC3", fan_point=None),
        collector("DC4", fan_point="motor_run"),
    ])]})


def test_meters_are_devices_of_kind_meter_with_a_power_point() -> None:
    reg = dust_site()
    topo = topology_of(reg)

    names = [reg.index.device_ids[d] for d in topo.meter_device]
    assert names == ["L1", "L2", "L3", "TOTAL", "TOTAL2"]
    assert topo.meter_role.tolist() == [ROLE_CODES["production"]] * 3 + [ROLE_CODES["total"]] * 2
    assert topo.meter_rated_kw[[0, 1, 3]].tolist() == [90.0, 45.0, 200.0]
    assert math.isnan(topo.meter_rated_kw[2])


def test_the_first_total_meter_is_the_reference() -> None:
    topo = topology_of(dust_site())

    assert topo.enterprise_reference_meter.tolist() == [3]
    assert topo.meter_independent.tolist() == [False, False, False, True, True]


def test_every_fan_guards_every_production_line_with_a_rating() -> None:
    reg = dust_site()
    topo = topology_of(reg)
    fan1, fan2 = point(reg, "DC1", "fan_run"), point(reg, "DC2", "fan_main")
    line1, line2 = point(reg, "L1", "p_kw"), point(reg, "L2", "p_kw")

    rules = list(zip(topo.interlock_kind.tolist(), topo.interlock_power_point.tolist(),
                     topo.interlock_power_on_kw.tolist(), topo.interlock_guard_point.tolist(),
                     topo.interlock_guard_limit.tolist(), topo.interlock_other_point.tolist(),
                     topo.interlock_subject.tolist(), strict=True))
    # A line runs above 20 % of its rating; a fan run state below 0.5 is off.  DC3 has
    # no run state and DC4's is not named fan*: no rules.
    assert rules == [
        (FAN, line1, pytest.approx(18.0), fan1, 0.5, -1, fan1),
        (FAN, line2, pytest.approx(9.0), fan1, 0.5, -1, fan1),
        (FAN, line1, pytest.approx(18.0), fan2, 0.5, -1, fan2),
        (FAN, line2, pytest.approx(9.0), fan2, 0.5, -1, fan2),
    ]
    assert np.isnan(topo.interlock_other_limit).all()


def test_declared_stops_are_sorted_and_running_periods_ignored() -> None:
    reg = load_registry_data({"enterprises": [
        enterprise("E1", [meter("M1", "total")], declared=[
            stopped("2026-12-10T00:00:00+08:00", "2026-12-12T00:00:00+08:00", "春节"),
            stopped("2026-11-01T00:00:00+08:00", "2026-11-02T00:00:00+08:00"),
            stopped("2026-11-05T00:00:00+08:00", "2026-11-06T00:00:00+08:00", state="running"),
        ]),
        enterprise("E2", [meter("M2", "total")], declared=[
            stopped("2026-10-01T00:00:00+08:00", "2026-10-08T00:00:00+08:00", "国庆"),
        ]),
    ]})
    topo = topology_of(reg)

    assert topo.stop_enterprise.tolist() == [0, 0, 1]
    assert topo.stop_from.tolist() == [epoch("2026-11-01T00:00:00+08:00"),
                                       epoch("2026-12-10T00:00:00+08:00"),
                                       epoch("2026-10-01T00:00:00+08:00")]
    assert topo.stop_reason == ["", "春节", "国庆"]


def test_overlapping_or_touching_stops_of_an_enterprise_become_one() -> None:
    # A rectification order, a holiday declared inside it, and its extension.
    reg = load_registry_data({"enterprises": [enterprise("E1", [meter("M1", "total")], declared=[
        stopped("2026-11-20T00:00:00+08:00", "2026-11-30T00:00:00+08:00", "停产整顿"),
        stopped("2026-11-22T00:00:00+08:00", "2026-11-24T00:00:00+08:00", "节假日"),
        stopped("2026-11-30T00:00:00+08:00", "2026-12-05T00:00:00+08:00", "停产整顿"),
        stopped("2026-12-10T00:00:00+08:00", "2026-12-11T00:00:00+08:00", "节假日"),
    ])]})
    topo = topology_of(reg)
    hidden = HiddenOperationDetector(topo.meter_enterprise, topo.meter_interval_s, 1,
                                     topo.stop_enterprise, topo.stop_from, topo.stop_to)

    assert topo.stop_from.tolist() == [epoch("2026-11-20T00:00:00+08:00"),
                                       epoch("2026-12-10T00:00:00+08:00")]
    assert topo.stop_to.tolist() == [epoch("2026-12-05T00:00:00+08:00"),
                                     epoch("2026-12-11T00:00:00+08:00")]
    assert topo.stop_reason == ["停产整顿; 节假日", "节假日"]
    # After the holiday, the rectification order still covers the enterprise.
    inside = [epoch(f"2026-{d}T12:00:00+08:00") for d in ("11-23", "11-26", "12-01", "12-07")]
    assert hidden.stop_at(np.zeros(4, np.int64), np.array(inside)).tolist() == [0, 0, 0, -1]


def test_cooling_water_without_limits_gives_only_what_it_can() -> None:
    reg = load_registry_data({"enterprises": [enterprise("E1", [
        meter("MF", "furnace", rated=1000.0),
        meter("MF-UNRATED", "furnace"),
        cooling("CW", flow_lo=None, pressure=False),
    ], industry="metallurgy")]})
    topo = topology_of(reg)

    # No inlet lo: no cooling rule; the leak rule then counts any flow as flowing.
    assert topo.interlock_kind.tolist() == [LEAK]
    assert topo.interlock_power_on_kw.tolist() == pytest.approx([15.0])
    assert topo.interlock_guard_limit.tolist() == [0.0]
    assert topo.interlock_other_point.tolist() == [point(reg, "CW", "flow_out")]


def test_a_cooling_rule_without_a_pressure_point_has_none() -> None:
    reg = load_registry_data({"enterprises": [enterprise("E1", [
        meter("MF", "furnace", rated=1000.0), cooling("CW", pressure=False),
    ], industry="metallurgy")]})
    topo = topology_of(reg)

    assert topo.interlock_kind.tolist() == [COOLING, LEAK]
    assert topo.interlock_other_point.tolist()[0] == -1
    assert math.isnan(topo.interlock_other_limit[0])


def test_a_registry_without_meters_stops_or_rules_gives_empty_tables() -> None:
    reg = load_registry_data({"enterprises": [enterprise("E1", [collector("DC1")])]})
    topo = topology_of(reg)

    assert (topo.n_meters, topo.n_interlocks, topo.stop_enterprise.shape[0]) == (0, 0, 0)
    dtypes = (topo.meter_point.dtype, topo.stop_from.dtype, topo.interlock_kind.dtype,
              topo.interlock_guard_point.dtype)
    assert dtypes == (np.int32, np.float64, np.int8, np.int32)
    assert topo.enterprise_reference_meter.tolist() == [-1]
    assert topo.device_monitoring.tolist() == [True]
    fake = FakeOfflineDetector(reg.index.device_enterprise, topo.device_monitoring,
                               topo.enterprise_reference_meter, topo.meter_enterprise,
                               topo.meter_interval_s, reg.index.point_enterprise)
    assert len(fake.sweep_site(0.0, np.array([True]), np.array([np.nan]))) == 0


def test_deviation_points_are_unlimited_analogues_gated_by_their_run_state() -> None:
    dc = collector("DC1")
    dc["points"]["dp"].update({"lo": 300, "hi": 1500})  # limited: judged by its limits
    dc["points"].update({"fan_current": {"kind": "current", "unit": "A"},
                         "airlock_run": {"kind": "run_state"},
                         "hopper_temp": {"kind": "temperature", "unit": "degC", "hi": 60}})
    cw = cooling("CW1")
    cw["points"]["flow_out"]["lo"] = 12.0
    cw["points"].update({"pump_run": {"kind": "run_state"},
                         "temp_in": {"kind": "temperature", "unit": "degC"}})
    gd = {"id": "GD1", "kind": "gas_detector", "expected_interval_s": 10,
          "points": {"h2": {"kind": "hydrogen", "unit": "%LEL"}}}  # no run state
    reg = load_registry_data({"enterprises": [enterprise("E1", [dc, cw, gd])]})
    topo = topology_of(reg)
    watched = {reg.index.point_names[p]: p for p in np.flatnonzero(topo.point_deviation_watched)}
    assert sorted(watched) == ["fan_current", "temp_in"]
    assert topo.point_run_gate[watched["fan_current"]] == point(reg, "DC1", "fan_run")
    assert topo.point_run_gate[watched["temp_in"]] == point(reg, "CW1", "pump_run")
    assert topo.point_deviation_direction[watched["fan_current"]] == 0
    assert topo.point_deviation_direction[watched["temp_in"]] == 1
