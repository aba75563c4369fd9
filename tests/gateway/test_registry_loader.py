"""An integrator's mistake in the registry YAML is named by file, line and key.

Each test writes a small ``sites.yaml``, loads it, and checks the message a user sees.
Line numbers count from the first line of the YAML text (``\\`` after the opening
quotes keeps the text starting on line 1).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.registry import (
    Registry,
    RegistryError,
    load_registry,
    load_registry_data,
    load_registry_text,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[Path, RegistryError]:
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    return path, info.value


def test_a_valid_file_loads_and_remembers_where_it_came_from(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E370829001
            name: 嘉祥县示例金属制品有限公司
            industry: dust
            region: ["370000", "370800", "370829", "370829101"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points: {fan_run: {kind: run_state}}
        """

    path = write(tmp_path, sites)

    registry = load_registry(path)

    assert isinstance(registry, Registry)
    assert registry.source == str(path)
    assert registry.enterprise("E370829001").timezone == "Asia/Shanghai"


def test_a_typo_in_a_limit_is_an_unknown_key_on_its_own_line(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  dp:
                    kind: differential_pressure
                    unit: Pa
                    hihg: 2000
        """

    path, err = load_error(tmp_path, sites)

    assert (err.file, err.line) == (str(path), 14)
    assert err.key == "enterprises[0].devices[0].points.dp.hihg"
    assert str(err) == (
        f"{path}:14: enterprises[0].devices[0].points.dp.hihg: unknown key; did you mean 'hihi'?"
    )


def test_an_unknown_key_with_no_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            owner: 张三
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    _, err = load_error(tmp_path, sites)

    assert err.line == 6
    assert err.key == "enterprises[0].owner"
    assert err.message.startswith("unknown key; expected one of: id, name, industry, region")


def test_a_wrong_type_names_the_key_and_the_value(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: fast
                points: {fan_run: {kind: run_state}}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err).startswith(f"{path}:9: enterprises[0].devices[0].expected_interval_s: ")
    assert "'fast'" in err.message


def test_a_wrong_value_from_a_fixed_list(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: steel
            region: ["370000"]
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (4, "enterprises[0].industry")
    assert err.message == "Input should be 'dust' or 'metallurgy' (got 'steel')"


def test_an_unquoted_region_code_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000",
                     370800]
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (6, "enterprises[0].region[1]")
    assert 'quote it in YAML, e.g. "370800"' in err.message


def test_a_missing_required_key_points_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                points: {fan_run: {kind: run_state}}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err) == (
        f"{path}:7: enterprises[0].devices[0].expected_interval_s: missing required key"
    )


def test_a_key_written_twice_in_one_mapping_is_an_error(tmp_path: Path) -> None:
    # PyYAML alone would silently keep the second `hi` and drop the first.
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  hopper_temp:
                    kind: temperature
                    hi: 60
                    hi: 70
        """

    path, err = load_error(tmp_path, sites)

    assert str(err) == (
        f"{path}:14: enterprises[0].devices[0].points.hopper_temp.hi: "
        "duplicate key (first defined at line 13)"
    )


def test_a_point_name_written_twice_in_one_device_is_a_duplicate_key(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  dp: {kind: differential_pressure, unit: Pa}
                  dp: {kind: differential_pressure, unit: kPa}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (12, "enterprises[0].devices[0].points.dp")
    assert err.message == "duplicate key (first defined at line 11)"


def test_merge_keys_are_not_mistaken_for_duplicates(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  t1: &temp {kind: temperature, unit: degC, hi: 60}
                  t2: {<<: *temp, hi: 65}
        """

    path = write(tmp_path, sites)

    registry = load_registry(path)

    assert registry.device("DC1")[1].points["t2"].hi == 65


def test_an_enterprise_id_used_twice(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
          - id: E1
            name: 另一家公司
            industry: dust
            region: ["370000"]
            devices:
              - {id: DC2, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err) == f"{path}:9: enterprises[1].id: duplicate enterprise id E1 (line 2)"


def test_a_device_id_in_two_enterprises_names_its_first_owner(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points: {fan_run: {kind: run_state}}
          - id: E2
            name: 另一家公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points: {fan_run: {kind: run_state}}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err) == (
        f"{path}:16: enterprises[1].devices[0].id: "
        "device DC1 already belongs to enterprise E1 (line 7)"
    )


def test_a_device_id_twice_in_one_enterprise(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - {id: M-TOTAL, kind: meter, expected_interval_s: 900,
                 points: {p_kw: {kind: power, unit: kW}}}
              - {id: M-TOTAL, kind: meter, expected_interval_s: 60,
                 points: {p_kw: {kind: power, unit: kW}}}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (9, "enterprises[0].devices[1].id")
    assert err.message == "device M-TOTAL already belongs to enterprise E1 (line 7)"


def test_limits_out_of_order_name_the_point(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  fan_run: {kind: run_state}
                  dp: {kind: differential_pressure, unit: Pa, lo: 300, hi: 2000, hihi: 1500}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err).startswith(f"{path}:12: enterprises[0].devices[0].points.dp: ")
    assert "lolo < lo < hi < hihi" in err.message
    assert "hi=2000.0 and hihi=1500.0" in err.message


def test_an_id_that_cannot_be_a_topic_segment(tmp_path: Path) -> None:
    # Ids become MQTT topic levels (CONTRACT.md §1): no '/', '+', '#' or spaces.
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC/1
                kind: dust_collector
                expected_interval_s: 10
                points: {fan_run: {kind: run_state}}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (7, "enterprises[0].devices[0].id")
    assert "[A-Za-z0-9_.-]{1,64}" in err.message
    assert "'DC/1'" in err.message


def test_a_point_name_that_cannot_be_an_id(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: 10
                points:
                  "hopper temp": {kind: temperature, unit: degC}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (11, "enterprises[0].devices[0].points.hopper temp")
    assert err.message.startswith("invalid name: ")


def test_an_unknown_time_zone(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            timezone: Asia/Jinan
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    path, err = load_error(tmp_path, sites)

    assert str(err) == f"{path}:6: enterprises[0].timezone: unknown time zone 'Asia/Jinan'"


def test_the_declared_period_start_is_called_from_as_in_the_yaml(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            declared:
              - state: stopped
                from: last tuesday
                to: "2026-11-27T00:00:00+08:00"
            devices:
              - {id: DC1, kind: dust_collector, expected_interval_s: 10,
                 points: {fan_run: {kind: run_state}}}
        """

    _, err = load_error(tmp_path, sites)

    assert (err.line, err.key) == (8, "enterprises[0].declared[0].from")


def test_broken_yaml_syntax_reports_the_line_from_the_parser(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            region: ["370000", "370800"
            industry: dust
        """

    path, err = load_error(tmp_path, sites)

    assert err.file == str(path)
    assert err.line == 5
    assert err.key is None
    assert str(err).startswith(f"{path}:5: invalid YAML: ")


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(RegistryError) as info:
        load_registry(path)

    assert str(info.value) == f"{path}: file not found"
    assert info.value.line is None


def test_an_empty_file_says_what_is_expected(tmp_path: Path) -> None:
    path, err = load_error(tmp_path, "# nothing here yet\n")

    assert str(err) == f"{path}: registry is empty; expected a mapping with key 'enterprises'"


def test_several_problems_first_by_line_and_all_kept(tmp_path: Path) -> None:
    sites = """\
        enterprises:
          - id: E1
            name: 示例金属制品有限公司
            industry: dust
            region: ["370000"]
            devices:
              - id: DC1
                kind: dust_collector
                expected_interval_s: -5
                points:
                  dp: {kind: differential_pressure, unit: Pa, hihg: 2000}
                  fan_run: {kind: run_state}
                  fan_run: {kind: run_state}
        """

    _, err = load_error(tmp_path, sites)

    assert [(e.line, e.key) for e in err.errors] == [
        (9, "enterprises[0].devices[0].expected_interval_s"),
        (11, "enterprises[0].devices[0].points.dp.hihg"),
        (13, "enterprises[0].devices[0].points.fan_run"),
    ]
    assert (err.line, err.key) == (9, "enterprises[0].devices[0].expected_interval_s")
    assert err.report().count("\n") == 2


def test_text_and_data_sources_are_named_in_errors() -> None:
    with pytest.raises(RegistryError) as from_text:
        load_registry_text("enterprises: []\n", source="api:PUT /registry")
    with pytest.raises(RegistryError) as from_data:
        load_registry_data({"enterprises": [{"id": "E1"}]}, source="<api>")

    assert str(from_text.value).startswith("api:PUT /registry:1: enterprises: ")
    assert from_data.value.file == "<api>"
    assert from_data.value.line is None  # parsed JSON has no lines, key paths still help
    assert from_data.value.key == "enterprises[0].name"
