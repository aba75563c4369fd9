"""Alert titles: what an operator reads, in Chinese and English."""

from __future__ import annotations

import pytest

from alerting.models import Subject
from alerting.titles import format_number, render_title

ENTERPRISE = "某某金属制品有限公司"


def _point(point_kind: str | None = "differential_pressure", unit: str | None = "Pa",
           point: str = "dp") -> Subject:
    return Subject(
        enterprise_id="E370829001", enterprise_name=ENTERPRISE, industry="dust",
        region=("370000", "370800", "370829", "370829101"), timezone="Asia/Shanghai",
        device_id="DC1", device_kind="dust_collector", point=point, point_kind=point_kind,
        unit=unit,
    )


def _device() -> Subject:
    return Subject(
        enterprise_id="E370829001", enterprise_name=ENTERPRISE, industry="dust",
        region=("370000",), timezone="Asia/Shanghai", device_id="DC1",
        device_kind="dust_collector",
    )


@pytest.mark.parametrize(
    ("band", "level", "expected"),
    [
        ("hi", 3, "【黄色预警】某某金属制品有限公司 DC1 压差超上限：1650 Pa（限值 1500 Pa）"),
        ("hihi", 2, "【橙色预警】某某金属制品有限公司 DC1 压差超上上限：1650 Pa（限值 1500 Pa）"),
        ("lo", 3, "【黄色预警】某某金属制品有限公司 DC1 压差低于下限：1650 Pa（限值 1500 Pa）"),
        ("lolo", 1, "【红色预警】某某金属制品有限公司 DC1 压差低于下下限：1650 Pa（限值 1500 Pa）"),
    ],
)
def test_threshold_title_zh_names_band_value_and_limit(band: str, level: int,
                                                       expected: str) -> None:
    detail = {"band": band, "value": 1650.0, "limit": 1500.0}

    assert render_title("threshold", _point(), detail, level) == expected


@pytest.mark.parametrize(
    ("band", "phrase"),
    [
        ("hi", "above high limit"),
        ("hihi", "above high-high limit"),
        ("lo", "below low limit"),
        ("lolo", "below low-low limit"),
    ],
)
def test_threshold_title_en_names_band_value_and_limit(band: str, phrase: str) -> None:
    detail = {"band": band, "value": 2150.0, "limit": 2000.0}

    title = render_title("threshold", _point(), detail, 2, locale="en")

    assert title == (f"[Orange] 某某金属制品有限公司 DC1 differential pressure {phrase}: "
                     "2150 Pa (limit 2000 Pa)")


def test_contract_example_titles() -> None:
    detail = {"band": "hihi", "value": 2150, "limit": 2000}

    assert render_title("threshold", _point(), detail, 2) == (
        "【橙色预警】某某金属制品有限公司 DC1 压差超上上限：2150 Pa（限值 2000 Pa）")
    assert render_title("device_offline", _device(),
                        {"silent_for_s": 35, "last_seen": None}, 3) == (
        "【黄色预警】某某金属制品有限公司 设备 DC1 离线：已 35 秒无数据")


@pytest.mark.parametrize(
    ("point_kind", "unit", "zh", "en"),
    [
        ("temperature", "degC", "DC1 温度超上限：65.5 °C",
         "DC1 temperature above high limit: 65.5 °C"),
        ("co", "ppm", "DC1 一氧化碳浓度超上限：65.5 ppm", "DC1 CO concentration above"),
        ("hydrogen", "%", "DC1 氢气浓度超上限：65.5%", "DC1 hydrogen concentration above"),
        ("flow", "m3/h", "DC1 流量超上限：65.5 m³/h", "DC1 flow above"),
        ("water_level", None, "DC1 液位超上限：65.5（限值 60）", "DC1 water level above"),
        ("mystery", "Pa", "DC1 dp超上限", "DC1 dp above"),
    ],
)
def test_point_kind_is_named_in_words_with_unit(point_kind: str, unit: str | None, zh: str,
                                                en: str) -> None:
    subject = _point(point_kind=point_kind, unit=unit)
    detail = {"band": "hi", "value": 65.5, "limit": 60.0}

    assert zh in render_title("threshold", subject, detail, 3)
    assert en in render_title("threshold", subject, detail, 3, locale="en")


@pytest.mark.parametrize(
    ("detail", "zh", "en"),
    [
        ({"silent_for_s": 35, "last_seen": None}, "离线：已 35 秒无数据",
         "offline: no data for 35 s"),
        ({"silent_for_s": 600, "last_seen": "2026-11-24T00:00:00Z"}, "离线：已 10 分钟无数据",
         "offline: no data for 10 min"),
        ({"silent_for_s": 3725}, "离线：已 1 小时 2 分无数据", "offline: no data for 1 h 2 min"),
        ({"last_seen": "2026-11-24T00:00:00Z"}, "离线：最后数据 2026-11-24 08:00:00",
         "offline: last data 2026-11-24 08:00:00"),
        ({"silent_for_s": None, "last_seen": None}, "离线：尚未收到数据",
         "offline: no data received yet"),
    ],
)
def test_device_offline_title(detail: dict[str, object], zh: str, en: str) -> None:
    zh_title = render_title("device_offline", _device(), detail, 3)
    en_title = render_title("device_offline", _device(), detail, 3, locale="en")

    assert zh_title == f"【黄色预警】某某金属制品有限公司 设备 DC1 {zh}"
    assert en_title == f"[Yellow] 某某金属制品有限公司 device DC1 {en}"


def test_other_kinds_get_a_generic_title() -> None:
    enterprise_only = Subject("E1", ENTERPRISE, "metallurgy", ("370000",), "Asia/Shanghai")

    assert render_title("hidden_operation", enterprise_only, {}, 1) == (
        "【红色预警】某某金属制品有限公司 明停暗开")
    assert render_title("hidden_operation", enterprise_only, {"value": 312.5, "unit": "kW"},
                        1, locale="en") == (
        "[Red] 某某金属制品有限公司: hidden operation while declared stopped, 312.5 kW")
    assert render_title("rate_of_change", _point(point_kind="temperature", unit="degC"),
                        {"value": 3.2, "limit": 2, "unit": "°C/min"}, 3) == (
        "【黄色预警】某某金属制品有限公司 DC1 温度 变化速率超限：3.2 °C/min（限值 2 °C/min）")
    assert render_title("brand_new_kind", _point(), {}, 4) == (
        "【蓝色预警】某某金属制品有限公司 DC1 压差 brand_new_kind")


def test_threshold_without_band_falls_back_to_generic() -> None:
    title = render_title("threshold", _point(), {}, 3)

    assert title == "【黄色预警】某某金属制品有限公司 DC1 压差 超限"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2150.0, "2150"),
        (2150.0000001, "2150"),
        (1650.5, "1650.5"),
        (3.14159, "3.142"),
        (12.3456789, "12.346"),
        (0.5, "0.5"),
        (0.01234, "0.0123"),
        (-7.250, "-7.25"),
        (-0.0004, "-0.0004"),
        (0.0, "0"),
        (-0.0, "0"),
        (42, "42"),
        (float("nan"), "nan"),
        (None, "—"),
    ],
)
def test_number_formatting(value: object, text: str) -> None:
    assert format_number(value) == text


def test_no_long_float_tails_in_titles() -> None:
    title = render_title("threshold", _point(), {"band": "hi", "value": 1650.0000001,
                                                  "limit": 1500.0}, 3)

    assert "1650 Pa" in title
    assert "1650.0" not in title


def test_unknown_locale_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'fr'.*en, zh"):
        render_title("threshold", _point(), {"band": "hi", "value": 1, "limit": 0}, 3,
                     locale="fr")


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        render_title("threshold", _point(), {"band": "hi", "value": 1, "limit": 0}, 5)
