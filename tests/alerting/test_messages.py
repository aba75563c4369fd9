"""Notification texts: what the enterprise, the town station and the county bureau read."""

from __future__ import annotations

import typing
from dataclasses import replace

import orjson
import pytest

from alerting.manager import AlertManager
from alerting.messages import (
    DIGEST_MAX_ITEMS,
    EVIDENCE_MAX_KEYS,
    build_notification,
    evidence_summary,
    short_text,
)
from alerting.models import Alert, Condition, Subject
from alerting.notification import Notification, Reason, Tier, notification_key

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
ENTERPRISE = "某某金属制品有限公司"
REGION = ("370000", "370800", "370829", "370829101")
ALL_REASONS: tuple[Reason, ...] = typing.get_args(Reason)
TITLE = "某某金属制品有限公司 DC1 压差超上上限：2150 Pa（限值 2000 Pa）"


def subject(enterprise_id: str = "E370829001", device_id: str | None = "DC1",
            point: str | None = "dp", timezone: str = "Asia/Shanghai") -> Subject:
    return Subject(
        enterprise_id=enterprise_id, enterprise_name=ENTERPRISE, industry="dust",
        region=REGION, timezone=timezone, device_id=device_id,
        device_kind=None if device_id is None else "dust_collector", point=point,
        point_kind=None if point is None else "differential_pressure",
        unit=None if point is None else "Pa",
    )


def threshold_alert(level: int = 2, started_at: float = T0, value: float = 2150.0,
                    **subject_args: typing.Any) -> Alert:
    """A real alert from the alert manager, with its rendered title and evidence."""
    condition = Condition(
        kind="threshold", subject=subject(**subject_args), active=True, level=level,
        started_at=started_at, at=started_at + 30,
        evidence={"rule": "threshold", "band": "hihi", "value": value, "limit": 2000.0,
                  "unit": "Pa", "window": [["2026-11-24T00:00:00Z", value]]},
        detail={"band": "hihi", "value": value, "limit": 2000.0},
    )
    [alert] = AlertManager().apply([condition])
    return alert


def notify(alerts: list[Alert], reason: Reason = "firing", *, tier: Tier = "enterprise",
           locale: str = "zh", seq: int = 0, receiver: str = "E370829001-duty",
           channel: str = "dingtalk", created_at: float = T0 + 630) -> Notification:
    return build_notification(alerts, receiver=receiver, tier=tier, channel=channel,
                              reason=reason, locale=locale, created_at=created_at, seq=seq)


# --- one alert, Chinese ---------------------------------------------------------------------

def test_firing_in_chinese_names_enterprise_region_device_level_times_and_evidence() -> None:
    alert = threshold_alert()

    message = build_notification([alert], receiver="E370829001-duty", tier="enterprise",
                                 channel="dingtalk", reason="firing", created_at=T0 + 60)

    assert message.locale == "zh"
    assert message.subject == "【橙色预警】" + TITLE
    assert message.body.splitlines() == [
        "- 企业：某某金属制品有限公司（E370829001）",
        "- 地区：370000 / 370800 / 370829 / 370829101",
        "- 设备/测点：DC1 / dp（压差）",
        "- 级别：橙色预警（2 级）",
        "- 开始时间：2026-11-24 08:00:00 +08:00",
        "- 发现时间：2026-11-24 08:00:30 +08:00",
        f"- 预警内容：{TITLE}",
        "- 判定依据：threshold：band=hihi，value=2150，limit=2000，unit=Pa",
        f"- 预警编号：{alert.id}",
        "",
        "请核实处置并反馈。",
    ]


ZH_EXPECTED: dict[str, tuple[str, str]] = {
    # reason: (subject marker after the grade tag, request at the end of the body)
    "firing": ("", "请核实处置并反馈。"),
    "repeat": ("【提醒】", "提醒：该预警仍未处置完毕，请尽快核实处置并反馈。"),
    "escalated": ("【已升级】",
                  "企业 10 分钟未响应，已升级至镇街安监站，请督促企业核实处置并反馈。"),
    "flapping": ("【频繁反复】",
                 "该预警频繁反复（多次恢复后又触发），请检查设备与工况，核实后反馈。"),
    "reopened": ("【再次触发】", "该预警恢复后再次触发，请重新核实处置并反馈。"),
    "resolved": ("【已恢复】", "条件已恢复，待核查销号。"),
    "closed": ("【已销号】", "已核查销号，无需进一步处理。"),
}

EN_EXPECTED: dict[str, tuple[str, str]] = {
    "firing": ("", "Please verify, take action and report back."),
    "repeat": ("[Reminder] ", "Reminder: this alert is still open"),
    "escalated": ("[Escalated] ", "The enterprise has not responded for 10 min; escalated to "
                                  "the town safety station."),
    "flapping": ("[Flapping] ", "This alert is flapping"),
    "reopened": ("[Reopened] ", "This alert fired again after clearing"),
    "resolved": ("[Resolved] ", "The condition has cleared; awaiting verification and "
                                "close-out."),
    "closed": ("[Closed] ", "Verified and closed out; no further action needed."),
}


@pytest.mark.parametrize("reason", sorted(ZH_EXPECTED))
def test_every_reason_in_chinese_marks_the_subject_and_asks_for_the_right_action(
        reason: Reason) -> None:
    marker, action = ZH_EXPECTED[reason]
    tier: Tier = "town" if reason == "escalated" else "enterprise"

    message = notify([threshold_alert()], reason, tier=tier)

    assert message.subject == "【橙色预警】" + marker + TITLE
    assert message.body.endswith("\n\n" + action)
    assert message.reason == reason


@pytest.mark.parametrize("reason", sorted(EN_EXPECTED))
def test_every_reason_in_english_marks_the_subject_and_asks_for_the_right_action(
        reason: Reason) -> None:
    marker, action = EN_EXPECTED[reason]
    tier: Tier = "town" if reason == "escalated" else "enterprise"

    message = notify([threshold_alert()], reason, tier=tier, locale="en")

    # The stored title keeps the alert manager's language; only the grade tag follows
    # the notification's locale.
    assert message.subject == "[Orange] " + marker + TITLE
    assert action in message.body.rsplit("\n\n", 1)[1]
    assert "- Level: Orange (level 2)" in message.body
    assert "- Device/point: DC1 / dp (differential pressure)" in message.body
    assert "- Evidence: threshold: band=hihi, value=2150, limit=2000, unit=Pa" in message.body


def test_every_reason_has_texts_in_every_locale() -> None:
    alert = threshold_alert()
    for locale in ("zh", "en"):
        for reason in ALL_REASONS:
            message = notify([alert], reason, locale=locale, tier="county")
            assert message.subject
            assert message.body
            assert "{" not in message.body, (locale, reason)


def test_escalation_to_the_county_names_the_bureau_and_the_minutes_waited() -> None:
    alert = threshold_alert()  # detected at T0 + 30

    derived = notify([alert], "escalated", tier="county", created_at=T0 + 30 + 25 * 60)
    given = build_notification([alert], receiver="county", tier="county", channel="sms",
                               reason="escalated", created_at=T0 + 3600,
                               unanswered_for_s=15 * 60)

    assert derived.body.endswith("企业 25 分钟未响应，已升级至县应急局，请督促企业核实处置并反馈。")
    assert "企业 15 分钟未响应，已升级至县应急局" in given.body


def test_resolved_alert_shows_when_it_cleared() -> None:
    manager = AlertManager()
    s = subject()
    manager.apply([Condition("threshold", s, True, 2, T0, T0 + 30, {"rule": "threshold"},
                             {"band": "hihi", "value": 2150.0, "limit": 2000.0})])
    [resolved] = manager.apply([Condition("threshold", s, False, 4, T0, T0 + 900,
                                          {"rule": "threshold", "cleared_by": 1800.0})])

    message = notify([resolved], "resolved")

    assert "- 恢复时间：2026-11-24 08:15:00 +08:00" in message.body
    assert message.payload["alerts"][0]["state"] == "resolved"


def test_times_are_shown_in_the_site_time_zone() -> None:
    message = notify([threshold_alert(timezone="UTC")])

    assert "- 开始时间：2026-11-24 00:00:00 +00:00" in message.body


def test_enterprise_level_alert_targets_the_whole_site() -> None:
    message = notify([threshold_alert(device_id=None, point=None)])

    assert "- 设备/测点：全厂" in message.body


def test_subject_uses_the_current_level_not_the_tag_stored_in_the_title() -> None:
    alert = threshold_alert(level=3)  # title rendered as 【黄色预警】...
    alert.level = 1                   # later raised to red

    message = notify([alert])

    assert message.subject == "【红色预警】" + TITLE
    assert "黄色" not in message.subject


# --- evidence -------------------------------------------------------------------------------

def test_evidence_summary_keeps_the_rule_and_a_few_scalars_and_skips_nested_data() -> None:
    evidence = {"rule": "hidden_operation", "meter": "M-TOTAL", "load_curve": [[1, 2.0]],
                "declared": {"state": "stopped"}, "floor_kw": 12.04, "by": "load",
                "production_level_kw": 80.0, "load_fraction": 0.734, "excess_kwh": 153.2,
                "ignored_beyond_the_limit": 1}

    summary = evidence_summary(evidence)

    assert summary == ("hidden_operation：meter=M-TOTAL，floor_kw=12.04，by=load，"
                       "production_level_kw=80，load_fraction=0.734")
    assert summary.count("=") == EVIDENCE_MAX_KEYS
    assert evidence_summary({"value": 1.5}, "en") == "value=1.5"
    assert evidence_summary({"rule": "silence"}, "en") == "silence"


def test_long_string_evidence_is_cut() -> None:
    summary = evidence_summary({"rule": "x", "reason": "停产整顿" * 30})

    assert len(summary) < 60
    assert summary.endswith("…")


# --- digests --------------------------------------------------------------------------------

def test_group_digest_counts_the_alerts_and_lists_the_most_severe_first() -> None:
    yellow = threshold_alert(level=3, started_at=T0)
    red = threshold_alert(level=1, started_at=T0 + 120, device_id="DC2")
    orange = threshold_alert(level=2, started_at=T0 + 60, device_id="DC3")

    message = notify([yellow, red, orange], "group")

    assert message.subject == "【红色预警】某某金属制品有限公司 3 条新预警"
    lines = message.body.splitlines()
    assert lines[:3] == ["- 企业：某某金属制品有限公司（E370829001）",
                         "- 地区：370000 / 370800 / 370829 / 370829101",
                         "- 预警数量：3"]
    items = [line for line in lines if line[:2] in ("1.", "2.", "3.")]
    assert [item[:9] for item in items] == ["1. 【红色预警】", "2. 【橙色预警】", "3. 【黄色预警】"]
    assert "DC2 / dp（压差），开始 2026-11-24 08:02:00 +08:00" in items[0]
    assert message.body.endswith("请逐条核实处置并反馈。")
    assert [a["id"] for a in message.payload["alerts"]] == [red.id, orange.id, yellow.id]


def test_group_digest_in_english() -> None:
    alerts = [threshold_alert(level=3), threshold_alert(level=2, device_id="DC2")]

    message = notify(alerts, "group", locale="en")

    assert message.subject == "[Orange] 某某金属制品有限公司: 2 new alerts"
    assert "- Alerts: 2" in message.body
    assert "1. [Orange] " in message.body
    assert message.body.endswith("Please verify and act on each alert and report back.")


def test_group_of_one_alert_is_still_a_digest() -> None:
    message = notify([threshold_alert()], "group")

    assert message.subject == "【橙色预警】某某金属制品有限公司 1 条新预警"


def test_several_alerts_for_another_reason_are_a_digest_with_the_reason_marker() -> None:
    alerts = [threshold_alert(), threshold_alert(device_id="DC2")]

    message = notify(alerts, "resolved")

    assert message.subject == "【橙色预警】【已恢复】某某金属制品有限公司 2 条预警"
    assert message.body.endswith("条件已恢复，待核查销号。")


def test_a_flood_is_listed_up_to_the_cap_and_the_rest_counted() -> None:
    alerts = [threshold_alert(device_id=f"DC{i}") for i in range(DIGEST_MAX_ITEMS + 7)]

    message = notify(alerts, "group")

    assert f"{DIGEST_MAX_ITEMS}. " in message.body
    assert f"{DIGEST_MAX_ITEMS + 1}. " not in message.body
    assert "……另有 7 条" in message.body
    assert len(message.payload["alerts"]) == DIGEST_MAX_ITEMS + 7


def test_refuses_no_alerts_several_enterprises_and_unknown_locales() -> None:
    with pytest.raises(ValueError, match="at least one alert"):
        notify([])
    with pytest.raises(ValueError, match="one enterprise"):
        notify([threshold_alert(), threshold_alert(enterprise_id="E2")], "group")
    with pytest.raises(ValueError, match="available: en, zh"):
        notify([threshold_alert()], locale="fr")


# --- keys and payload -----------------------------------------------------------------------

def test_key_is_derived_from_sorted_ids_receiver_channel_reason_and_seq() -> None:
    a, b = threshold_alert(), threshold_alert(device_id="DC2")

    first = notify([a, b], "group", seq=2)
    again = notify([b, a], "group", seq=2, created_at=T0 + 9999, locale="en")

    assert first.key == again.key
    assert first.key == notification_key(sorted([a.id, b.id]), "E370829001-duty", "dingtalk",
                                         "group", 2)
    assert first.alert_ids == tuple(sorted([a.id, b.id]))
    others = {notify([a, b], "group", seq=3).key,
              notify([a, b], "group", seq=2, receiver="town-370829101").key,
              notify([a, b], "group", seq=2, channel="sms").key,
              notify([a, b], "escalated", seq=2).key,
              notify([a], "group", seq=2).key}
    assert first.key not in others
    assert len(others) == 5


def test_payload_carries_the_texts_and_the_contract_alerts_and_is_json() -> None:
    alert = threshold_alert()

    message = notify([alert], "escalated", tier="town")

    assert set(message.payload) == {"key", "reason", "tier", "receiver", "locale", "subject",
                                    "body", "alerts"}
    assert message.payload["key"] == message.key
    assert message.payload["tier"] == "town"
    assert message.payload["subject"] == message.subject
    assert message.payload["alerts"] == [alert.to_json()]
    decoded = orjson.loads(orjson.dumps(dict(message.payload)))
    assert Alert.from_json(decoded["alerts"][0]).id == alert.id
    assert message.enterprise_id == "E370829001"


# --- SMS ------------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", ["zh", "en"])
@pytest.mark.parametrize("reason", ALL_REASONS)
def test_short_text_never_exceeds_max_chars(locale: str, reason: Reason) -> None:
    message = notify([threshold_alert()], reason, locale=locale, tier="county")

    for max_chars in range(1, len(message.subject) + 40):
        text = short_text(message, max_chars)
        assert 0 < len(text) <= max_chars, (max_chars, text)


def test_short_text_is_subject_and_request_when_it_fits() -> None:
    message = notify([threshold_alert()], "escalated", tier="county")

    assert short_text(message, 300) == ("【橙色预警】【已升级】" + TITLE
                                        + "，企业未响应，已升级至县应急局")


def test_short_text_cuts_the_title_but_keeps_the_request() -> None:
    message = notify([threshold_alert()], "resolved")

    text = short_text(message, 40)

    assert len(text) == 40
    assert text.startswith("【橙色预警】【已恢复】某某金属")
    assert text.endswith("…，已恢复，待核查销号")


def test_short_text_refuses_a_non_positive_length() -> None:
    with pytest.raises(ValueError, match="positive"):
        short_text(notify([threshold_alert()]), 0)


def test_short_text_of_an_english_escalation_keeps_the_short_tier_name() -> None:
    message = notify([threshold_alert()], "escalated", tier="county", locale="en")

    text = short_text(message, 70)

    assert len(text) <= 70
    assert text.endswith("; no response, escalated to county bureau")


def test_same_inputs_render_identical_notifications() -> None:
    alert = threshold_alert()

    assert notify([alert]) == notify([replace(alert)])
