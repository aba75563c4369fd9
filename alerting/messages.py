"""The words of a notification: subject, body and SMS text, Chinese by default.

A notification tells one receiver one thing about one alert (or a digest of several
alerts of one enterprise): *what* is wrong (the alert title, the enterprise, the device,
the grade and when it started, all in the site's own time zone), *why* it can be
trusted (a short evidence summary: the rule and its key values) and *what is expected*
of the receiver, which depends on why the message is sent (:data:`Reason`): a new
warning asks the enterprise to verify and report back, an escalation tells the town
station or county bureau that the enterprise has not answered, a recovery asks for
verification and close-out (核查销号).

Wording lives in one :class:`_Texts` per locale, plain data like the vocabulary of
:mod:`alerting.titles` (whose grade tags, 【红色预警】 and so on, are reused here), so a
locale is a table.  Everything here is pure: the same alerts and arguments give the same
:class:`Notification`, key included, in every process.

Alert titles are rendered once, in the alert manager's locale, and stored with the
alert; an English notification therefore carries the stored title as it is (only its
grade tag is replaced by the English one).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerting.models import Alert
from alerting.notification import Notification, Reason, Tier, notification_key
from alerting.timefmt import format_ts
from alerting.titles import LOCALES as TITLE_LOCALES
from alerting.titles import format_number, level_tag, point_kind_word, strip_level_tag

REASONS: tuple[str, ...] = typing.get_args(Reason)
"""Every reason a notification may have; each locale has texts for all of them."""

DIGEST_MAX_ITEMS = 20
"""A digest lists at most this many alerts and counts the rest, so a flood of alerts
cannot make a message longer than a robot or an e-mail reader accepts."""

EVIDENCE_MAX_KEYS = 5
"""Top-level scalar evidence values shown besides the rule; the full evidence travels
in the machine-readable payload."""

_EVIDENCE_MAX_TEXT = 40
"""Characters of one string evidence value before it is cut."""

_SMS_MIN_SUBJECT = 12
"""Below this many characters of subject an SMS says too little to be worth keeping
the request intact; the whole text is cut instead."""


@dataclass(frozen=True, slots=True)
class _Texts:
    """Every word and pattern of one locale; ``{}`` fields are ``str.format`` slots."""

    line: str
    """One body line; slots: label, value."""
    labels: Mapping[str, str]
    """Body line labels by field: enterprise, region, target, level, started, detected,
    resolved, title, evidence, alert_id, count."""
    level_name: str
    """Slots: colour (the grade tag without brackets), level (1..4)."""
    whole_site: str
    """Target of an enterprise-level alert (no device)."""
    point_kind: str
    """Slots: point, kind (the measured quantity in words, from titles)."""
    enterprise: str
    """Slots: name, id."""
    evidence_sep: str
    evidence_rule: str
    """Slots: rule, values."""
    reason_tags: Mapping[str, str]
    """Subject marker after the grade tag; empty for a plain new warning."""
    tiers: Mapping[str, str]
    """Who a tier is, as the escalation sentence names it."""
    actions: Mapping[str, str]
    """What the receiver is asked to do, by reason; slots: minutes, tier."""
    short_actions: Mapping[str, str]
    """The same, short enough for an SMS; slot: tier (from ``short_tiers``)."""
    short_tiers: Mapping[str, str]
    short_sep: str
    digest_subject: str
    """Subject of a ``group`` digest; slots: enterprise, count."""
    digest_subject_other: str
    """Subject of several alerts sent for another reason; slots: enterprise, count."""
    digest_item: str
    """One alert of a digest; slots: index, title, target, started."""
    digest_more: str
    """Slot: count of alerts left out of the list."""


_ZH = _Texts(
    line="- {label}：{value}",
    labels={
        "enterprise": "企业", "region": "地区", "target": "设备/测点", "level": "级别",
        "started": "开始时间", "detected": "发现时间", "resolved": "恢复时间",
        "title": "预警内容", "evidence": "判定依据", "alert_id": "预警编号",
        "count": "预警数量",
    },
    level_name="{colour}（{level} 级）",
    whole_site="全厂",
    point_kind="{point}（{kind}）",
    enterprise="{name}（{id}）",
    evidence_sep="，",
    evidence_rule="{rule}：{values}",
    reason_tags={
        "firing": "", "group": "", "repeat": "【提醒】", "escalated": "【已升级】",
        "flapping": "【频繁反复】", "reopened": "【再次触发】", "resolved": "【已恢复】",
        "closed": "【已销号】",
    },
    tiers={"enterprise": "企业", "town": "镇街安监站", "county": "县应急局"},
    actions={
        "firing": "请核实处置并反馈。",
        "group": "请逐条核实处置并反馈。",
        "repeat": "提醒：该预警仍未处置完毕，请尽快核实处置并反馈。",
        "escalated": "企业 {minutes} 分钟未响应，已升级至{tier}，请督促企业核实处置并反馈。",
        "flapping": "该预警频繁反复（多次恢复后又触发），请检查设备与工况，核实后反馈。",
        "reopened": "该预警恢复后再次触发，请重新核实处置并反馈。",
        "resolved": "条件已恢复，待核查销号。",
        "closed": "已核查销号，无需进一步处理。",
    },
    short_actions={
        "firing": "请核实处置并反馈", "group": "请逐条核实处置并反馈",
        "repeat": "仍未处置，请尽快核实反馈", "escalated": "企业未响应，已升级至{tier}",
        "flapping": "频繁反复，请检查设备与工况", "reopened": "再次触发，请重新核实处置",
        "resolved": "已恢复，待核查销号", "closed": "已核查销号",
    },
    short_tiers={"enterprise": "企业", "town": "镇街安监站", "county": "县应急局"},
    short_sep="，",
    digest_subject="{enterprise} {count} 条新预警",
    digest_subject_other="{enterprise} {count} 条预警",
    digest_item="{index}. {title}（{target}，开始 {started}）",
    digest_more="……另有 {count} 条",
)

_EN = _Texts(
    line="- {label}: {value}",
    labels={
        "enterprise": "Enterprise", "region": "Region", "target": "Device/point",
        "level": "Level", "started": "Started", "detected": "Detected",
        "resolved": "Resolved", "title": "Alert", "evidence": "Evidence",
        "alert_id": "Alert id", "count": "Alerts",
    },
    level_name="{colour} (level {level})",
    whole_site="whole site",
    point_kind="{point} ({kind})",
    enterprise="{name} ({id})",
    evidence_sep=", ",
    evidence_rule="{rule}: {values}",
    reason_tags={
        "firing": "", "group": "", "repeat": "[Reminder] ", "escalated": "[Escalated] ",
        "flapping": "[Flapping] ", "reopened": "[Reopened] ", "resolved": "[Resolved] ",
        "closed": "[Closed] ",
    },
    tiers={"enterprise": "the enterprise", "town": "the town safety station",
           "county": "the county emergency management bureau"},
    actions={
        "firing": "Please verify, take action and report back.",
        "group": "Please verify and act on each alert and report back.",
        "repeat": "Reminder: this alert is still open; please verify, act and report "
                  "back as soon as possible.",
        "escalated": "The enterprise has not responded for {minutes} min; escalated to "
                     "{tier}. Please make sure the enterprise verifies, acts and reports "
                     "back.",
        "flapping": "This alert is flapping (clearing and firing again repeatedly); please "
                    "check the equipment and the process and report back.",
        "reopened": "This alert fired again after clearing; please verify again, act and "
                    "report back.",
        "resolved": "The condition has cleared; awaiting verification and close-out.",
        "closed": "Verified and closed out; no further action needed.",
    },
    short_actions={
        "firing": "please verify, act and report back",
        "group": "please verify each and report back",
        "repeat": "still open, please act and report back",
        "escalated": "no response, escalated to {tier}",
        "flapping": "flapping, check equipment and process",
        "reopened": "fired again, please verify again",
        "resolved": "cleared, awaiting close-out", "closed": "closed out",
    },
    short_tiers={"enterprise": "enterprise", "town": "town station",
                 "county": "county bureau"},
    short_sep="; ",
    digest_subject="{enterprise}: {count} new alerts",
    digest_subject_other="{enterprise}: {count} alerts",
    digest_item="{index}. {title} ({target}, started {started})",
    digest_more="... and {count} more",
)

_TEXTS: Mapping[str, _Texts] = {"zh": _ZH, "en": _EN}
LOCALES: tuple[str, ...] = tuple(sorted(_TEXTS))
"""Locales :func:`build_notification` accepts."""


def check_locale(locale: str) -> None:
    """Raise ``ValueError`` naming the available locales unless ``locale`` is one."""
    if locale not in _TEXTS or locale not in TITLE_LOCALES:
        raise ValueError(f"unknown message locale {locale!r}; available: {', '.join(LOCALES)}")


def build_notification(
    alerts: Sequence[Alert], *, receiver: str, tier: Tier, channel: str, reason: Reason,
    created_at: float, locale: str = "zh", seq: int = 0,
    unanswered_for_s: float | None = None,
) -> Notification:
    """Render the notification of ``alerts`` for one channel of one receiver.

    One alert gives a message about it; several alerts (or ``reason="group"``) give a
    digest of one enterprise, most severe first.  ``seq`` tells apart repeated
    notifications of the same alerts, receiver, channel and reason (the n-th reminder).
    ``unanswered_for_s`` is how long the enterprise has not responded, for the
    escalation sentence; when ``None`` it is the time from the earliest detection to
    ``created_at`` (event time, epoch seconds).

    The key is :func:`~alerting.notification.notification_key` over the sorted alert
    ids (a JSON array, also for one alert), receiver, channel, reason and ``seq``, so the
    same decision always yields the same key.
    """
    if not alerts:
        raise ValueError("a notification needs at least one alert")
    if reason not in REASONS:
        raise ValueError(f"unknown notification reason {reason!r}; expected one of {REASONS}")
    check_locale(locale)
    enterprises = {alert.subject.enterprise_id for alert in alerts}
    if len(enterprises) != 1:
        raise ValueError(f"a notification is about one enterprise, got {sorted(enterprises)}")
    texts = _TEXTS[locale]
    ordered = sorted(alerts, key=lambda a: (a.level, a.started_at, a.id))
    ids = tuple(sorted(alert.id for alert in alerts))
    if unanswered_for_s is None:
        unanswered_for_s = created_at - min(alert.detected_at for alert in alerts)
    action = texts.actions[reason].format(
        minutes=max(1, round(unanswered_for_s / 60.0)), tier=texts.tiers[tier])
    if len(ordered) == 1 and reason != "group":
        subject = _subject_one(texts, locale, ordered[0], reason)
        body = _body_one(texts, locale, ordered[0], action)
    else:
        subject = _subject_digest(texts, locale, ordered, reason)
        body = _body_digest(texts, locale, ordered, action)
    key = notification_key(list(ids), receiver, channel, reason, seq)
    payload: dict[str, Any] = {
        "key": key, "reason": reason, "tier": tier, "receiver": receiver, "locale": locale,
        "subject": subject, "body": body, "alerts": [alert.to_json() for alert in ordered],
    }
    return Notification(
        key=key, alert_ids=ids, enterprise_id=ordered[0].subject.enterprise_id,
        receiver=receiver, tier=tier, channel=channel, reason=reason, locale=locale,
        subject=subject, body=body, payload=payload, created_at=created_at,
    )


def short_text(notification: Notification, max_chars: int) -> str:
    """The notification as one SMS of at most ``max_chars`` characters.

    The subject (grade, reason marker, title) followed by a short request; when too
    long the subject is cut with an ellipsis so the request survives, and when even
    that does not fit the whole text is cut.  Characters are Unicode code points, which
    is how Chinese SMS gateways count (70 per segment for UCS-2 messages).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    check_locale(notification.locale)
    texts = _TEXTS[notification.locale]
    action = texts.short_actions.get(notification.reason, "").format(
        tier=texts.short_tiers.get(notification.tier, ""))
    tail = texts.short_sep + action if action else ""
    full = notification.subject + tail
    if len(full) <= max_chars:
        return full
    room = max_chars - len(tail) - 1
    if room >= min(_SMS_MIN_SUBJECT, len(notification.subject)):
        return notification.subject[:room] + "…" + tail
    return full[:max_chars - 1] + "…"


def _subject_one(texts: _Texts, locale: str, alert: Alert, reason: str) -> str:
    return level_tag(alert.level, locale) + texts.reason_tags[reason] + strip_level_tag(
        alert.title)


def _subject_digest(texts: _Texts, locale: str, ordered: Sequence[Alert], reason: str) -> str:
    pattern = texts.digest_subject if reason in ("group", "firing") else texts.digest_subject_other
    return (level_tag(ordered[0].level, locale) + texts.reason_tags[reason]
            + pattern.format(enterprise=_enterprise_name(ordered[0]), count=len(ordered)))


def _body_one(texts: _Texts, locale: str, alert: Alert, action: str) -> str:
    tz = alert.subject.timezone
    fields: list[tuple[str, str]] = [
        ("enterprise", _enterprise(texts, alert)),
        ("region", _region(alert)),
        ("target", _target(texts, locale, alert)),
        ("level", _level_name(texts, locale, alert.level)),
        ("started", local_time(alert.started_at, tz)),
        ("detected", local_time(alert.detected_at, tz)),
    ]
    if alert.resolved_at is not None:
        fields.append(("resolved", local_time(alert.resolved_at, tz)))
    fields.append(("title", strip_level_tag(alert.title)))
    evidence = evidence_summary(alert.evidence, locale)
    if evidence:
        fields.append(("evidence", evidence))
    fields.append(("alert_id", alert.id))
    lines = [texts.line.format(label=texts.labels[name], value=value) for name, value in fields]
    return "\n".join(lines) + "\n\n" + action


def _body_digest(texts: _Texts, locale: str, ordered: Sequence[Alert], action: str) -> str:
    first = ordered[0]
    head = [
        texts.line.format(label=texts.labels["enterprise"], value=_enterprise(texts, first)),
        texts.line.format(label=texts.labels["region"], value=_region(first)),
        texts.line.format(label=texts.labels["count"], value=str(len(ordered))),
    ]
    items = [
        texts.digest_item.format(
            index=index, title=level_tag(alert.level, locale) + strip_level_tag(alert.title),
            target=_target(texts, locale, alert),
            started=local_time(alert.started_at, alert.subject.timezone))
        for index, alert in enumerate(ordered[:DIGEST_MAX_ITEMS], start=1)
    ]
    if len(ordered) > DIGEST_MAX_ITEMS:
        items.append(texts.digest_more.format(count=len(ordered) - DIGEST_MAX_ITEMS))
    return "\n".join(head) + "\n\n" + "\n".join(items) + "\n\n" + action


def local_time(epoch_s: float, timezone: str) -> str:
    """``2026-11-24 08:00:00 +08:00``: the site's wall clock with its UTC offset, so a
    reader in another zone (or a county bureau comparing sites) is never misled.

    >>> local_time(1795478400.0, "Asia/Shanghai")
    '2026-11-24 08:00:00 +08:00'
    """
    text = format_ts(epoch_s, timezone)  # ends with the offset, e.g. "+08:00"
    return f"{datetime.fromisoformat(text):%Y-%m-%d %H:%M:%S} {text[-6:]}"


def evidence_summary(evidence: Mapping[str, Any], locale: str = "zh") -> str:
    """The rule and a few top-level scalar values of ``evidence``, in evidence order.

    Nested values (data windows, load curves) are left to the payload, where the full
    evidence travels; numbers are written as in titles.  Keys stay as the detectors
    name them: they are what a regulator quotes when asking for the data.

    >>> evidence_summary({"rule": "threshold", "band": "hihi", "value": 2150.0,
    ...                   "window": [[1, 2]], "limit": 2000.0})
    'threshold：band=hihi，value=2150，limit=2000'
    """
    check_locale(locale)
    texts = _TEXTS[locale]
    rule = evidence.get("rule")
    pairs = [
        f"{key}={_scalar(value)}" for key, value in evidence.items()
        if key != "rule" and _is_scalar(value)
    ][:EVIDENCE_MAX_KEYS]
    values = texts.evidence_sep.join(pairs)
    if isinstance(rule, str) and rule:
        return texts.evidence_rule.format(rule=rule, values=values) if values else rule
    return values


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and value != ""


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    text = str(value)
    return text if len(text) <= _EVIDENCE_MAX_TEXT else text[:_EVIDENCE_MAX_TEXT - 1] + "…"


def _enterprise_name(alert: Alert) -> str:
    return alert.subject.enterprise_name or alert.subject.enterprise_id


def _enterprise(texts: _Texts, alert: Alert) -> str:
    subject = alert.subject
    if subject.enterprise_name and subject.enterprise_name != subject.enterprise_id:
        return texts.enterprise.format(name=subject.enterprise_name, id=subject.enterprise_id)
    return subject.enterprise_id


def _region(alert: Alert) -> str:
    return " / ".join(alert.subject.region) or "—"


def _target(texts: _Texts, locale: str, alert: Alert) -> str:
    """``DC1 / dp（压差）``, ``DC1`` for a device-level alert, 全厂 for the site."""
    subject = alert.subject
    if subject.device_id is None:
        return texts.whole_site
    if not subject.point:
        return subject.device_id
    point = subject.point
    kind = point_kind_word(subject.point_kind, locale)
    if kind:
        point = texts.point_kind.format(point=point, kind=kind)
    return f"{subject.device_id} / {point}"


def _level_name(texts: _Texts, locale: str, level: int) -> str:
    colour = level_tag(level, locale).strip("【】[] ")
    return texts.level_name.format(colour=colour, level=level)
