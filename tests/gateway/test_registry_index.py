"""The registry flattens into dense ids and per-point arrays the detectors can use.

The fixture ``tests/fixtures/registry_small.yaml`` has a dust site (DC1, M-TOTAL) and
a metallurgy site (M-FURNACE1, CW1, GD-CO1): 2 enterprises, 5 devices, 12 points.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gateway.registry import (
    POINT_KIND_DEFAULTS,
    Registry,
    build_index,
    defaults_for,
    load_registry,
    load_registry_text,
)
from gateway.registry.models import RegistrySpec

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "registry_small.yaml"


@pytest.fixture
def registry() -> Registry:
    return load_registry(FIXTURE)


def one_device(points_yaml: str) -> Registry:
    """A one-enterprise, one-device registry whose ``points:`` block is ``points_yaml``."""
    head = textwrap.dedent("""\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: metallurgy
            region: ["370000"]
            devices:
              - id: D1
                kind: test
                expected_interval_s: 10
                points:
        """)
    return load_registry_text(head + textwrap.indent(textwrap.dedent(points_yaml), " " * 10))


def test_the_fixture_is_numbered_in_file_order(registry: Registry) -> None:
    index = registry.index

    assert (index.n_enterprises, index.n_devices, index.n_points) == (2, 5, 12)
    assert index.enterprise_ids == ["E370829001", "E320583002"]
    assert index.device_ids == ["DC1", "M-TOTAL", "M-FURNACE1", "CW1", "GD-CO1"]
    assert index.device_index["CW1"] == 3
    assert index.device_enterprise.tolist() == [0, 0, 1, 1, 1]
    assert index.device_expected_interval_s.tolist() == [10.0, 900.0, 60.0, 10.0, 10.0]


def test_the_decoder_finds_a_point_by_device_and_name(registry: Registry) -> None:
    index = registry.index

    assert index.device_points[0] == {"dp": 0, "hopper_temp": 1, "fan_run": 2}
    assert index.device_points[index.device_index["CW1"]] == {
        "flow_in": 7,
        "flow_out": 8,
        "temp_out": 9,
        "pressure": 10,
    }
    p_kw_of_furnace = index.device_points[index.device_index["M-FURNACE1"]]["p_kw"]
    assert p_kw_of_furnace == 5
    assert index.point_names[5] == "p_kw"
    assert index.point_device[5] == 2
    assert index.point_enterprise[5] == 1
    assert index.point_kinds[5] == "power"
    assert index.point_units[2] is None  # fan_run is dimensionless


def test_arrays_have_the_dtypes_detectors_expect(registry: Registry) -> None:
    index = registry.index

    for ids in (index.device_enterprise, index.point_device, index.point_enterprise):
        assert ids.dtype == np.int32
    for values in (
        index.device_expected_interval_s,
        index.point_lo,
        index.point_hi,
        index.point_lolo,
        index.point_hihi,
        index.point_deadband,
        index.point_on_delay_s,
        index.point_rate_hi_per_min,
    ):
        assert values.dtype == np.float64
        assert values.shape[0] in (index.n_devices, index.n_points)


def test_limits_come_from_the_registry_with_nan_where_absent(registry: Registry) -> None:
    index = registry.index
    dp, hopper_temp, fan_run = 0, 1, 2

    assert (index.point_lo[dp], index.point_hi[dp], index.point_hihi[dp]) == (300, 1500, 2000)
    assert math.isnan(index.point_lolo[dp])
    assert index.point_rate_hi_per_min[hopper_temp] == 2.0
    assert math.isnan(index.point_rate_hi_per_min[dp])
    assert np.isnan(
        [
            index.point_lo[fan_run],
            index.point_hi[fan_run],
            index.point_lolo[fan_run],
            index.point_hihi[fan_run],
        ]
    ).all()
    pressure = index.device_points[index.device_index["CW1"]]["pressure"]
    assert index.point_lo[pressure] == 0.2
    assert math.isnan(index.point_hi[pressure])


def test_defaults_fill_what_the_registry_leaves_out(registry: Registry) -> None:
    index = registry.index
    dp, hopper_temp, fan_run = 0, 1, 2
    co = index.device_points[index.device_index["GD-CO1"]]["co"]

    assert (index.point_deadband[dp], index.point_on_delay_s[dp]) == (20.0, 30.0)
    assert (index.point_deadband[hopper_temp], index.point_on_delay_s[hopper_temp]) == (1.0, 10.0)
    assert (index.point_deadband[fan_run], index.point_on_delay_s[fan_run]) == (0.0, 0.0)
    # GB/T 50493-2019 toxic-gas alarm levels for CO, in ppm.
    assert (index.point_hi[co], index.point_hihi[co]) == (25.0, 50.0)
    assert math.isnan(index.point_lo[co])


def test_explicit_values_override_the_defaults() -> None:
    registry = one_device("""\
        dp: {kind: differential_pressure, unit: Pa, deadband: 50, on_delay_s: 0}
        """)

    index = registry.index
    assert (index.point_deadband[0], index.point_on_delay_s[0]) == (50.0, 0.0)


def test_default_limits_apply_only_as_a_set_and_only_in_their_unit() -> None:
    registry = one_device("""\
        co_ppm:   {kind: co, unit: ppm}
        co_mg:    {kind: co, unit: mg/m3}
        co_own:   {kind: co, unit: ppm, hi: 20}
        h2:       {kind: hydrogen, unit: "%LEL"}
        """)

    index = registry.index
    assert (index.point_hi[0], index.point_hihi[0]) == (25.0, 50.0)
    assert np.isnan([index.point_hi[1], index.point_hihi[1]]).all()  # wrong unit: no guess
    assert index.point_hi[2] == 20.0
    assert math.isnan(index.point_hihi[2])  # not 50 from the defaults mixed in
    assert (index.point_hi[3], index.point_hihi[3]) == (25.0, 50.0)
    assert index.point_deadband[1] == 2.0  # deadband and on-delay still apply


def test_unknown_point_kinds_get_no_deadband_and_no_delay() -> None:
    registry = one_device("""\
        vibration: {kind: vibration_velocity, unit: mm/s, hi: 7.1}
        """)

    assert defaults_for("vibration_velocity") == defaults_for("also_unknown")
    assert (registry.index.point_deadband[0], registry.index.point_on_delay_s[0]) == (0.0, 0.0)
    assert registry.index.point_hi[0] == 7.1


def test_the_defaults_table_covers_the_kinds_the_sites_use() -> None:
    expected = {
        "differential_pressure",
        "temperature",
        "run_state",
        "power",
        "energy",
        "current",
        "voltage",
        "flow",
        "pressure",
        "water_level",
        "co",
        "hydrogen",
        "spark_count",
    }

    assert expected <= POINT_KIND_DEFAULTS.keys()
    for defaults in POINT_KIND_DEFAULTS.values():
        assert defaults.deadband >= 0
        assert defaults.on_delay_s >= 0


def test_lookups_by_id_and_by_dense_index(registry: Registry) -> None:
    enterprise, device = registry.device("CW1")

    assert enterprise.name == "昆山市示例精密铸造有限公司"
    assert device.kind == "cooling_water"
    assert registry.enterprise("E370829001").industry == "dust"
    assert registry.device_of_index(2).rated_kw == 750
    assert registry.enterprise_of_device_index(2).id == "E320583002"
    enterprise, device, name, point = registry.point_of_index(11)
    assert (enterprise.id, device.id, name, point.unit) == ("E320583002", "GD-CO1", "co", "ppm")
    assert point.hi is None  # the spec stays as written; defaults live in the index


def test_unknown_ids_raise_key_error(registry: Registry) -> None:
    with pytest.raises(KeyError):
        registry.enterprise("E000000000")
    with pytest.raises(KeyError):
        registry.device("DC9")


def test_index_arrays_are_read_only(registry: Registry) -> None:
    with pytest.raises(ValueError, match="read-only"):
        registry.index.point_hi[0] = 1.0


def test_a_spec_built_in_code_with_a_shared_device_id_is_refused() -> None:
    device = {
        "id": "DC1",
        "kind": "dust_collector",
        "expected_interval_s": 10,
        "points": {"fan_run": {"kind": "run_state"}},
    }
    spec = RegistrySpec.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "name": "甲",
                    "industry": "dust",
                    "region": ["370000"],
                    "devices": [device],
                },
                {
                    "id": "E2",
                    "name": "乙",
                    "industry": "dust",
                    "region": ["370000"],
                    "devices": [device],
                },
            ]
        }
    )

    with pytest.raises(ValueError, match="device DC1 already belongs to enterprise E1"):
        build_index(spec)
