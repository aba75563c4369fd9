"""One-line alert titles for operators, in Chinese by default.

The title is what an operator reads on the wall screen and in a DingTalk message, so it
names the enterprise, the device, the measured quantity in words (压差, not ``dp``), the
value and limit with units and the warning grade (橙色预警).  Wording lives in one
:class:`_Vocabulary` per locale, plain data, so adding a locale is adding a table.

:func:`render_title` is the entry point; :func:`check_locale` lets a caller reject a bad
locale at start-up, and :func:`format_number` keeps every title at ``2150 Pa`` rather
than ``2150.000000 Pa``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerting.models import Subject, level_color
from alerting.timefmt import parse_ts, zone


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """Every word and pattern a locale needs; ``{}`` fields are ``str.format`` slots."""

    level_tag: Mapping[str, str]
    """Colour word to the title prefix, e.g. ``"orange"`` -> ``"【橙色预警】"``."""
    bands: Mapping[str, str]
    """Threshold band to its phrase, e.g. ``"hihi"`` -> ``"超上上限"``."""
    threshold: str
    """Slots: where, quantity, band, value, limit."""
    threshold_no_limit: str
    offline_for: str
    offline_since: str
    offline_never: str
    generic: str
    generic_value: str
    generic_limit: str
    point_kinds: Mapping[str, str]
    kinds: Mapping[str, str]
    duration: Callable[[float], str]
    phrases: Mapping[str, str]
    """Titles of the plant-level rules by ``detail["phrase"]``; slots: where, quantity,
    device, value, limit (with units), duration (from ``silent_for_s``), count."""


def _duration(seconds: float, *, s: str, m: str, m_alone: str, h: str, h_m: str) -> str:
    """Seconds as the largest two units that matter, in the words of one locale."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} {s}"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} {m} {secs} {s}" if secs else f"{minutes} {m_alone}"
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    return f"{hours} {h} {minutes} {h_m}" if minutes else f"{hours} {h}"


def _duration_zh(seconds: float) -> str:
    return _duration(seconds, s="秒", m="分", m_alone="分钟", h="小时", h_m="分")


def _duration_en(seconds: float) -> str:
    return _duration(seconds, s="s", m="min", m_alone="min", h="h", h_m="min")


_ZH = _Vocabulary(
    level_tag={"red": "【红色预警】", "orange": "【橙色预警】",
               "yellow": "【黄色预警】", "blue": "【蓝色预警】"},
    bands={"hi": "超上限", "hihi": "超上上限", "lo": "低于下限", "lolo": "低于下下限"},
    threshold="{where} {quantity}{band}：{value}（限值 {limit}）",
    threshold_no_limit="{where} {quantity}{band}：{value}",
    offline_for="{where} 设备 {device} 离线：已 {duration}无数据",
    offline_since="{where} 设备 {device} 离线：最后数据 {last_seen}",
    offline_never="{where} 设备 {device} 离线：尚未收到数据",
    generic="{where} {what}",
    generic_value="：{value}",
    generic_limit="（限值 {limit}）",
    point_kinds={
        "differential_pressure": "压差", "temperature": "温度", "co": "一氧化碳浓度",
        "hydrogen": "氢气浓度", "flow": "流量", "pressure": "压力", "power": "功率",
        "run_state": "运行状态", "water_level": "液位", "energy": "电能",
        "current": "电流", "voltage": "电压", "power_factor": "功率因数",
        "oxygen": "氧气浓度", "dust_concentration": "粉尘浓度", "humidity": "湿度",
        "level": "料位", "rpm": "转速", "vibration": "振动",
    },
    kinds={
        "threshold": "超限", "device_offline": "设备离线", "hidden_operation": "明停暗开",
        "fake_offline": "疑似虚假离线", "interlock_violation": "联锁异常",
        "rate_of_change": "变化速率超限", "flatline": "数据冻结", "replay": "疑似数据重放",
        "abnormal_condition": "异常工况", "spark": "火花报警", "leak": "疑似泄漏",
    },
    duration=_duration_zh,
    phrases={
        "hidden_operation": "{where} 明停暗开：申报停产期间电表显示生产，超出基线用电 {value}",
        "fake_offline:site_silent":
            "{where} 疑似虚假离线：现场监测设备已 {duration}无数据，独立电表显示生产中",
        "fake_offline:frozen": "{where} {quantity} 疑似虚假数据：数值冻结不变，电表显示生产中",
        "fake_offline:replay": "{where} {quantity} 疑似虚假数据：与历史数据完全重复（重放）",
        "fake_offline:noisy_replay": "{where} {quantity} 疑似虚假数据：与历史数据高度相似（重放）",
        "fake_offline:clone": "{where} {quantity} 疑似虚假数据：与同设备另一测点数值完全相同",
        "interlock:fan_off_while_producing": "{where} 联锁异常：除尘风机停运时生产线仍在运行",
        "interlock:cooling_low_while_energised":
            "{where} 联锁异常：中频炉加热时冷却水流量或压力不足"
            "（{quantity} {value}，限值 {limit}）",
        "interlock:cooling_leak_while_energised":
            "{where} 联锁异常：中频炉运行时冷却水进出水流量差 {value}，疑似炉内漏水",
        "rate_of_change": "{where} {quantity}变化过快：每分钟 {value}（限值 {limit}）",
        "event_burst": "{where} {device} 火花报警频发：{window}内 {count} 次",
        "deviation_high": "{where} {quantity}偏离运行基线（偏高）：{value}（基线 {limit}）",
        "deviation_low": "{where} {quantity}偏离运行基线（偏低）：{value}（基线 {limit}）",
    },
)

_EN = _Vocabulary(
    level_tag={"red": "[Red] ", "orange": "[Orange] ", "yellow": "[Yellow] ", "blue": "[Blue] "},
    bands={"hi": "above high limit", "hihi": "above high-high limit",
           "lo": "below low limit", "lolo": "below low-low limit"},
    threshold="{where} {quantity} {band}: {value} (limit {limit})",
    threshold_no_limit="{where} {quantity} {band}: {value}",
    offline_for="{where} device {device} offline: no data for {duration}",
    offline_since="{where} device {device} offline: last data {last_seen}",
    offline_never="{where} device {device} offline: no data received yet",
    generic="{where}: {what}",
    generic_value=", {value}",
    generic_limit=" (limit {limit})",
    point_kinds={
        "differential_pressure": "differential pressure", "temperature": "temperature",
        "co": "CO concentration", "hydrogen": "hydrogen concentration", "flow": "flow",
        "pressure": "pressure", "power": "power", "run_state": "run state",
        "water_level": "water level", "energy": "energy", "current": "current",
        "voltage": "voltage", "power_factor": "power factor",
        "oxygen": "oxygen concentration", "dust_concentration": "dust concentration",
        "humidity": "humidity", "level": "level", "rpm": "speed", "vibration": "vibration",
    },
    kinds={
        "threshold": "limit exceeded", "device_offline": "device offline",
        "hidden_operation": "hidden operation while declared stopped",
        "fake_offline": "suspected fake offline", "interlock_violation": "interlock violation",
        "rate_of_change": "rate of change too high", "flatline": "frozen data",
        "replay": "suspected replayed data", "abnormal_condition": "abnormal working condition",
        "spark": "spark detected", "leak": "suspected leak",
    },
    duration=_duration_en,
    phrases={
        "hidden_operation": "{where}: production while declared stopped, {value} above the "
                            "idle baseline",
        "fake_offline:site_silent": "{where}: suspected fake offline, site monitoring silent "
                                    "for {duration} while the independent meter shows production",
        "fake_offline:frozen": "{where} {quantity}: suspected fake data, values frozen while "
                               "the meter shows production",
        "fake_offline:replay": "{where} {quantity}: suspected fake data, exact replay of "
                               "earlier data",
        "fake_offline:noisy_replay": "{where} {quantity}: suspected fake data, near copy of "
                                     "earlier data",
        "fake_offline:clone": "{where} {quantity}: suspected fake data, identical to another "
                              "point of the device",
        "interlock:fan_off_while_producing": "{where}: interlock violation, production running "
                                             "with the dust-collector fan off",
        "interlock:cooling_low_while_energised": "{where}: interlock violation, furnace heating "
                                                 "with low cooling ({quantity} {value}, "
                                                 "limit {limit})",
        "interlock:cooling_leak_while_energised": "{where}: interlock violation, cooling outlet "
                                                  "short of inlet by {value}, suspected leak",
        "rate_of_change": "{where} {quantity} rising too fast: {value} per minute "
                          "(limit {limit})",
        "event_burst": "{where} {device}: repeated spark alarms, {count} within {window}",
        "deviation_high": "{where} {quantity} far above its running baseline: {value} "
                          "(baseline {limit})",
        "deviation_low": "{where} {quantity} far below its running baseline: {value} "
                         "(baseline {limit})",
    },
)

_LOCALES: Mapping[str, _Vocabulary] = {"zh": _ZH, "en": _EN}
LOCALES: tuple[str, ...] = tuple(sorted(_LOCALES))
"""Locales :func:`render_title` accepts."""

_UNITS = {"degC": "°C", "degF": "°F", "m3/h": "m³/h", "Nm3/h": "Nm³/h", "m3": "m³"}
"""Registry unit spellings (ASCII, CONTRACT.md §2) to what a person writes."""


def level_tag(level: int, locale: str) -> str:
    """The grade tag of ``level`` in ``locale``, e.g. ``【橙色预警】``."""
    return _LOCALES[locale].level_tag[level_color(level)]


def strip_level_tag(title: str) -> str:
    """``title`` without a leading grade tag of any locale (stored titles carry the tag
    of the level they were rendered at; a message puts the current one back)."""
    for vocabulary in _LOCALES.values():
        for tag in vocabulary.level_tag.values():
            if title.startswith(tag):
                return title[len(tag):]
    return title


def point_kind_word(point_kind: str | None, locale: str) -> str | None:
    """The quantity in words (``differential_pressure`` -> ``压差``), if known."""
    return _LOCALES[locale].point_kinds.get(point_kind or "")


def check_locale(locale: str) -> None:
    """Raise ``ValueError`` naming the available locales unless ``locale`` is one."""
    if locale not in _LOCALES:
        raise ValueError(f"unknown title locale {locale!r}; available: {', '.join(LOCALES)}")


def render_title(
    kind: str, subject: Subject, detail: Mapping[str, Any], level: int, locale: str = "zh"
) -> str:
    """The operator-facing one-line title of an alert.

    ``detail`` holds the template values: for ``threshold`` ``band`` (hi, hihi, lo,
    lolo), ``value`` and ``limit`` in the point's unit; for ``device_offline``
    ``silent_for_s`` (seconds) and ``last_seen`` (RFC 3339 or ``None``).  Any other kind
    gets a generic title naming the kind, plus ``value``/``limit`` when present, unless
    ``detail["phrase"]`` names one of the locale's phrases (the plant-level rules).  An
    optional ``unit`` in ``detail`` overrides the point's unit (a rate is in Pa/min).

    >>> s = Subject("E1", "某某金属制品有限公司", "dust", ("370000",), "Asia/Shanghai",
    ...             device_id="DC1", point="dp", point_kind="differential_pressure", unit="Pa")
    >>> render_title("threshold", s, {"band": "hihi", "value": 2150.0, "limit": 2000.0}, 2)
    '【橙色预警】某某金属制品有限公司 DC1 压差超上上限：2150 Pa（限值 2000 Pa）'
    """
    check_locale(locale)
    words = _LOCALES[locale]
    tag = words.level_tag[level_color(level)]
    phrase = words.phrases.get(str(detail.get("phrase")))
    if phrase is not None:
        body = _phrase(words, phrase, subject, detail)
    elif kind == "threshold" and detail.get("band") in words.bands:
        body = _threshold(words, subject, detail)
    elif kind == "device_offline" and subject.device_id is not None:
        body = _offline(words, subject, detail)
    else:
        body = _generic(words, kind, subject, detail)
    return tag + body


def format_number(value: object) -> str:
    """A measured value as a person writes it: at most 3 decimals, no trailing zeros.

    Values below 1 keep 3 significant digits so small concentrations do not become 0.

    >>> [format_number(v) for v in (2150.0, 2150.000001, 1.23456, -0.5, 0.000123, 7, -0.0)]
    ['2150', '2150', '1.235', '-0.5', '0.000123', '7', '0']
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) < 1:
        text = f"{value:.3g}"
        if "e" in text:
            return text
    else:
        text = f"{value:.3f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def _with_unit(value: object, unit: str | None) -> str:
    number = format_number(value)
    if not unit:
        return number
    shown = _UNITS.get(unit, unit)
    return f"{number}{shown}" if shown == "%" else f"{number} {shown}"


def _unit(subject: Subject, detail: Mapping[str, Any]) -> str | None:
    """``detail["unit"]`` when given (a rate is Pa/min, not Pa), else the point's unit."""
    unit = detail.get("unit")
    return str(unit) if unit else subject.unit


def _where(subject: Subject) -> str:
    return subject.enterprise_name or subject.enterprise_id


def _quantity(words: _Vocabulary, subject: Subject) -> str:
    """Device id and point name, e.g. ``DC1 压差``; the point id when its kind is unknown."""
    name = words.point_kinds.get(subject.point_kind or "") or subject.point or ""
    parts = [part for part in (subject.device_id, name) if part]
    return " ".join(parts)


def _threshold(words: _Vocabulary, subject: Subject, detail: Mapping[str, Any]) -> str:
    unit = _unit(subject, detail)
    values = {
        "where": _where(subject),
        "quantity": _quantity(words, subject),
        "band": words.bands[str(detail["band"])],
        "value": _with_unit(detail.get("value"), unit),
    }
    if detail.get("limit") is None:
        return words.threshold_no_limit.format(**values)
    return words.threshold.format(limit=_with_unit(detail["limit"], unit), **values)


def _phrase(words: _Vocabulary, phrase: str, subject: Subject,
            detail: Mapping[str, Any]) -> str:
    unit = _unit(subject, detail)
    silent = detail.get("silent_for_s")
    window = detail.get("window_s")
    return phrase.format(
        where=_where(subject), quantity=_quantity(words, subject),
        device=subject.device_id or "",
        value=_with_unit(detail.get("value"), unit),
        limit=_with_unit(detail.get("limit"), unit),
        duration=words.duration(float(silent)) if isinstance(silent, int | float) else "",
        window=words.duration(float(window)) if isinstance(window, int | float) else "",
        count=format_number(detail.get("count")),
    )


def _offline(words: _Vocabulary, subject: Subject, detail: Mapping[str, Any]) -> str:
    where, device = _where(subject), subject.device_id
    silent = detail.get("silent_for_s")
    if isinstance(silent, int | float) and not isinstance(silent, bool):
        return words.offline_for.format(where=where, device=device,
                                        duration=words.duration(float(silent)))
    last_seen = detail.get("last_seen")
    if isinstance(last_seen, str) and last_seen:
        return words.offline_since.format(where=where, device=device,
                                          last_seen=_local_time(last_seen, subject.timezone))
    return words.offline_never.format(where=where, device=device)


def _generic(words: _Vocabulary, kind: str, subject: Subject, detail: Mapping[str, Any]) -> str:
    where = " ".join(part for part in (_where(subject), _quantity(words, subject)) if part)
    text = words.generic.format(where=where, what=words.kinds.get(kind, kind))
    unit = _unit(subject, detail)
    if detail.get("value") is not None:
        text += words.generic_value.format(value=_with_unit(detail["value"], unit))
        if detail.get("limit") is not None:
            text += words.generic_limit.format(limit=_with_unit(detail["limit"], unit))
    return text


def _local_time(iso: str, timezone: str) -> str:
    """``2026-11-24 08:00:00`` in the site zone; the input unchanged if unreadable."""
    try:
        epoch = parse_ts(iso)
        return datetime.fromtimestamp(epoch, zone(timezone)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
