"""The notification engine on event time: grouping, escalation, repeats, condition
changes and silences, as a timeline driven by ``observe`` and ``tick`` (no sleeping)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from alerting.engine import EngineOutput, NotificationEngine
from alerting.manager import AlertManager
from alerting.models import Alert, Condition, Subject
from alerting.routing import RoutingConfig, RoutingTree
from alerting.silences import Silence

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
TOWN = "370829101"

ROUTING: dict[str, Any] = {
    "defaults": {"group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 1800},
    "receivers": {
        "screen": {"tier": "enterprise", "channels": [{"type": "mqtt"}]},
        "town-station": {"tier": "town", "channels": [
            {"type": "webhook", "url": "http://127.0.0.1:9/town"}]},
        "county-bureau": {"tier": "county", "channels": [
            {"type": "webhook", "name": "hook", "url": "http://127.0.0.1:9/county"},
            {"type": "mqtt", "name": "wall"}]},
    },
    "route": {"receivers": ["screen"], "routes": [
        {"match": {"region": [TOWN]}, "receivers": ["town-station"], "continue": True},
        {"match": {"region": ["370829"]}, "receivers": ["county-bureau"]},
    ]},
}


def engine(silences: list[Silence] | None = None, **overrides: Any) -> NotificationEngine:
    data = {**ROUTING, **overrides}
    tree = RoutingTree(RoutingConfig.model_validate(data))
    return NotificationEngine(tree, lambda: silences or [])


def subject(eid: str = "E1", point: str = "dp") -> Subject:
    return Subject(enterprise_id=eid, enterprise_name="某某公司", industry="dust",
                   region=("370000", "370800", "370829", TOWN), timezone="Asia/Shanghai",
                   device_id="DC1", device_kind="dust_collector", point=point,
                   point_kind="differential_pressure", unit="Pa")


def condition(active: bool, at: float, *, level: int = 1, eid: str = "E1",
              point: str = "dp") -> Condition:
    return Condition(kind="threshold", subject=subject(eid, point), active=active,
                     level=level, started_at=T0, at=at,
                     evidence={"rule": "threshold", "value": 2100.0, "limit": 2000.0},
                     detail={"band": "hihi", "value": 2100.0, "limit": 2000.0})


def sent(out: EngineOutput) -> list[tuple[str, str, str]]:
    return [(n.receiver, n.channel, n.reason) for n in out.notifications]


def run_until(eng: NotificationEngine, end: float, step: float = 10.0,
              start: float = T0) -> list[tuple[float, str, str, str]]:
    """Tick every ``step`` seconds of event time; what was sent, when."""
    log = []
    t = start
    while t <= end:
        for n in eng.tick(t).notifications:
            log.append((t, n.receiver, n.channel, n.reason))
        t += step
    return log


def test_level_1_escalates_enterprise_then_town_at_10_then_county_at_30_minutes() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0)])

    first = eng.observe([alert], T0)
    timeline = run_until(eng, T0 + 3600, start=T0 + 10)

    assert sent(first) == []  # grouped: waits group_wait_s
    assert [e.action for e in first.events] == ["created"]
    assert timeline == [
        (T0 + 30, "screen", "mqtt", "firing"),
        (T0 + 600, "town-station", "webhook", "escalated"),
        (T0 + 1800, "screen", "mqtt", "repeat"),
        (T0 + 1800, "town-station", "webhook", "repeat"),
        (T0 + 1800, "county-bureau", "hook", "escalated"),
        (T0 + 1800, "county-bureau", "wall", "escalated"),
        (T0 + 3600, "screen", "mqtt", "repeat"),
        (T0 + 3600, "town-station", "webhook", "repeat"),
        (T0 + 3600, "county-bureau", "hook", "repeat"),
        (T0 + 3600, "county-bureau", "wall", "repeat"),
    ]


def test_an_acknowledgement_stops_escalation_and_repeats() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)
    assert run_until(eng, T0 + 300) == [(T0 + 30, "screen", "mqtt", "firing")]

    manager.set_handling(alert.id, stage="acknowledged", assignee=None,
                         acknowledged_at=T0 + 310, closed_at=None)
    [acked] = manager.open_alerts()
    out = eng.observe([acked], T0 + 310)

    assert sent(out) == []
    assert run_until(eng, T0 + 7200, start=T0 + 320) == []
    assert eng.next_due == float("inf")


def test_level_4_never_escalates_by_default() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0, level=4)])
    eng.observe([alert], T0)

    reasons = {(r, why) for _, r, _, why in run_until(eng, T0 + 4 * 3600, step=60)}

    assert reasons == {("screen", "firing"), ("screen", "repeat")}


def test_alerts_of_one_enterprise_within_group_wait_go_out_as_one_digest() -> None:
    manager, eng = AlertManager(), engine()
    alerts = manager.apply([condition(True, T0, point="dp"), condition(True, T0 + 5, point="t")])
    other = manager.apply([condition(True, T0 + 10, eid="E2")])
    eng.observe(alerts, T0 + 5)
    eng.observe(other, T0 + 10)

    out = eng.tick(T0 + 40)

    assert sorted((n.enterprise_id, n.reason, len(n.alert_ids)) for n in out.notifications) == [
        ("E1", "group", 2), ("E2", "firing", 1)]
    # A later alert of E1 waits for the group interval after the digest.
    [late] = manager.apply([condition(True, T0 + 60, point="q")])
    assert sent(eng.observe([late], T0 + 60)) == []
    assert [n.reason for n in eng.tick(T0 + 40 + 299).notifications
            if n.receiver == "screen"] == []
    flushed = [n for n in eng.tick(T0 + 40 + 300).notifications if n.receiver == "screen"]
    assert [(n.reason, n.alert_ids) for n in flushed] == [("firing", (late.id,))]


def test_told_tiers_hear_of_resolution_and_reopening_but_not_while_flapping() -> None:
    manager, eng = AlertManager(flap_transitions=3), engine()
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)
    run_until(eng, T0 + 700)  # enterprise and town told

    [resolved] = manager.apply([condition(False, T0 + 710)])
    out = eng.observe([resolved], T0 + 710)
    assert sent(out) == [("screen", "mqtt", "resolved"), ("town-station", "webhook", "resolved")]
    assert [e.action for e in out.events] == ["resolved"]

    [back] = manager.apply([condition(True, T0 + 720)])
    out = eng.observe([back], T0 + 720)
    assert [r for _, _, r in sent(out)] == ["reopened", "reopened"]

    [flapping] = manager.apply([condition(False, T0 + 730)])
    out = eng.observe([flapping], T0 + 730)
    assert flapping.flapping
    assert [r for _, _, r in sent(out)] == ["flapping", "flapping"]
    assert {e.action for e in out.events} == {"flapping", "resolved"}
    [again] = manager.apply([condition(True, T0 + 740)])
    assert sent(eng.observe([again], T0 + 740)) == []  # no storm


def test_escalation_continues_after_an_unanswered_alert_resolved_by_itself() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)
    [resolved] = manager.apply([condition(False, T0 + 60)])
    eng.observe([resolved], T0 + 60)

    log = run_until(eng, T0 + 4000, start=T0 + 70)

    assert [(t, r, why) for t, r, _, why in log] == [
        (T0 + 600, "town-station", "escalated"), (T0 + 1800, "county-bureau", "escalated"),
        (T0 + 1800, "county-bureau", "escalated")]


def test_a_silence_mutes_but_records_and_audits() -> None:
    silence = Silence(id="s1", matchers={"enterprise": ("E1",)}, starts_at=T0 - 60,
                      ends_at=T0 + 900, created_by="op", comment="检修", created_at=T0 - 60)
    manager, eng = AlertManager(), engine([silence])
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)

    early = eng.tick(T0 + 600)
    late = eng.tick(T0 + 1800)

    assert early.notifications == []
    assert [(n.receiver, n.reason) for n in early.muted] == [
        ("screen", "firing"), ("town-station", "escalated")]
    assert [e.data["silence"] for e in early.events if e.action == "silenced"] == ["s1", "s1"]
    # After the silence ended, the county escalation and the repeats are sent.
    assert {(n.receiver, n.reason) for n in late.notifications} == {
        ("screen", "repeat"), ("town-station", "repeat"), ("county-bureau", "escalated")}


def test_closing_is_announced_and_ends_the_track() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)
    eng.tick(T0 + 30)
    closed = dataclasses.replace(alert, stage="closed", state="closed", closed_at=T0 + 100)

    out = eng.observe([closed], T0 + 100)

    assert sent(out) == [("screen", "mqtt", "closed")]
    assert eng.next_due == float("inf")


def test_deciding_again_after_a_restart_yields_the_same_keys() -> None:
    manager, eng = AlertManager(), engine()
    [alert] = manager.apply([condition(True, T0)])
    eng.observe([alert], T0)
    before = eng.tick(T0 + 30).notifications + eng.tick(T0 + 600).notifications

    restarted = engine()
    told = {alert.id: {"screen"}}
    after = restarted.restore([alert], told, T0 + 700)

    assert [n.key for n in after.notifications] == [before[-1].key]  # the town escalation
    assert after.notifications[0].reason == "escalated"


def test_restore_regroups_an_alert_whose_group_never_flushed() -> None:
    manager = AlertManager()
    [alert] = manager.apply([condition(True, T0, level=3)])
    restarted = engine()

    restarted.restore([alert], {}, T0 + 20)
    out = restarted.tick(T0 + 50)

    assert sent(out) == [("screen", "mqtt", "firing")]


@pytest.mark.parametrize("stage", ["acknowledged", "closed"])
def test_restore_of_answered_alerts_sends_nothing(stage: str) -> None:
    manager = AlertManager()
    [alert] = manager.apply([condition(True, T0)])
    answered: Alert = dataclasses.replace(alert, stage=stage)

    out = engine().restore([answered], {}, T0 + 4000)

    assert sent(out) == []


def test_an_alert_inhibited_during_the_group_wait_is_muted_not_sent() -> None:
    manager, eng = AlertManager(), engine()
    [child] = manager.apply([condition(True, T0, level=3)])
    eng.observe([child], T0)
    # The parent (site silent while running) arrives within the wait and annotates it.
    annotated = dataclasses.replace(child, evidence={**child.evidence,
                                                     "inhibited_by": "parent-id"})
    eng.observe([annotated], T0 + 10)

    out = eng.tick(T0 + 30)

    assert out.notifications == []
    assert [(n.receiver, n.reason) for n in out.muted] == [("screen", "firing")]
    [event] = [e for e in out.events if e.action == "inhibited"]
    assert event.data["inhibited_by"] == "parent-id"


def test_escalations_of_one_enterprise_due_at_one_tick_go_out_as_one_digest() -> None:
    manager, eng = AlertManager(), engine()
    alerts = manager.apply([condition(True, T0, point="dp"), condition(True, T0, point="t")])
    [other] = manager.apply([condition(True, T0, eid="E2")])
    eng.observe([*alerts, other], T0)
    eng.tick(T0 + 30)

    out = eng.tick(T0 + 610)  # both of E1 and the one of E2 fell due at T0 + 600

    town = [(n.enterprise_id, n.reason, len(n.alert_ids)) for n in out.notifications]
    assert sorted(town) == [("E1", "escalated", 2), ("E2", "escalated", 1)]
    assert [n.created_at for n in out.notifications] == [T0 + 600, T0 + 600]
    assert len([e for e in out.events if e.action == "escalated"]) == 3  # one per alert
