"""Synthetic registries of many enterprises, for benchmarks and load tests.

Half dust sites (dust collector + total meter), half metallurgy sites (furnace meter +
coil cooling water + CO detector), with limits typical of each so the stream exercises
every threshold band.  Deterministic: enterprise ``i`` always looks the same.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.registry.models import RegistrySpec

_TOWNS = ["370829101", "370829102", "370829103", "370883104", "370883105"]


def synthetic_registry(enterprises: int, *, telemetry_interval_s: float = 10.0) -> RegistrySpec:
    """A registry of ``enterprises`` sites (ids ``E000001`` …)."""
    if enterprises < 1:
        raise ValueError("need at least one enterprise")
    return RegistrySpec.model_validate(
        {"enterprises": [_enterprise(i, telemetry_interval_s) for i in range(enterprises)]}
    )


def write_registry(spec: RegistrySpec, path: Path) -> None:
    """Write ``spec`` as registry YAML that :func:`gateway.registry.load_registry` reads."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _enterprise(i: int, interval: float) -> dict[str, object]:
    town = _TOWNS[i % len(_TOWNS)]
    region = [town[:2] + "0000", town[:4] + "00", town[:6], town]
    eid = f"E{i + 1:06d}"
    common = {
        "id": eid,
        "region": region,
        "timezone": "Asia/Shanghai",
        "schedule": {"workdays": [1, 2, 3, 4, 5, 6], "hours": ["08:00-12:00", "13:00-20:00"]},
        "supervisors": [f"safety-officer@{eid}"],
    }
    if i % 2 == 0:
        return {
            **common,
            "name": f"测试粉尘企业{i + 1:06d}",
            "industry": "dust",
            "devices": [
                {"id": f"{eid}-DC1", "kind": "dust_collector", "expected_interval_s": interval,
                 "points": {
                     "dp": {"kind": "differential_pressure", "unit": "Pa",
                            "lo": 300, "hi": 1500, "hihi": 2000},
                     "hopper_temp": {"kind": "temperature", "unit": "degC",
                                     "hi": 60, "hihi": 70},
                     "fan_run": {"kind": "run_state"},
                 }},
                {"id": f"{eid}-M1", "kind": "meter", "role": "total",
                 "expected_interval_s": 60, "rated_kw": 250,
                 "points": {"p_kw": {"kind": "power", "unit": "kW"},
                            "e_kwh": {"kind": "energy", "unit": "kWh"}}},
            ],
        }
    return {
        **common,
        "name": f"测试冶炼企业{i + 1:06d}",
        "industry": "metallurgy",
        "devices": [
            {"id": f"{eid}-CW1", "kind": "cooling_water", "expected_interval_s": interval,
             "points": {
                 "flow_in": {"kind": "flow", "unit": "m3/h", "lo": 20},
                 "flow_out": {"kind": "flow", "unit": "m3/h", "lo": 20},
                 "temp_out": {"kind": "temperature", "unit": "degC", "hi": 55, "hihi": 65},
                 "pressure": {"kind": "pressure", "unit": "MPa", "lo": 0.2, "lolo": 0.1},
             }},
            {"id": f"{eid}-GAS1", "kind": "gas_detector", "expected_interval_s": interval,
             "points": {"co": {"kind": "co", "unit": "ppm", "hi": 25, "hihi": 50}}},
            {"id": f"{eid}-MF1", "kind": "meter", "role": "furnace",
             "expected_interval_s": 60, "rated_kw": 1500,
             "points": {"p_kw": {"kind": "power", "unit": "kW"},
                        "e_kwh": {"kind": "energy", "unit": "kWh"}}},
        ],
    }
