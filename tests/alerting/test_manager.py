"""Alert lifecycle: conditions in, one alert per anomaly out, firing -> resolved."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.manager import AlertManager
from alerting.models import Alert, Condition, Subject, alert_id, fingerprint

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00

DP = Subject(
    enterprise_id="E370829001", enterprise_name="某某金属制品有限公司", industry="dust",
    region=("370000", "370800", "370829", "370829101"), timezone="Asia/Shanghai",
    device_id="DC1", device_kind="dust_collector", point="dp",
    point_kind="differential_pressure", unit="Pa",
)
DC1 = Subject(
    enterprise_id="E370829001", enterprise_name="某某金属制品有限公司", industry="dust",
    region=("370000", "370800", "370829", "370829101"), timezone="Asia/Shanghai",
    device_id="DC1", device_kind="dust_collector",
)


def fire(level: int = 3, *, started: float = T0, at: float = T0 + 10, value: float = 1650.0,
         band: str = "hi", subject: Subject = DP, kind: str = "threshold") -> Condition:
    limit = 2000.0 if band == "hihi" else 1500.0
    evidence: dict[str, Any] = {"rule": "threshold", "band": band, "value": value,
                                "limit": limit}
    return Condition(kind=kind, subject=subject, active=True, level=level, started_at=started,
                     at=at, evidence=evidence,
                     detail={"band": band, "value": value, "limit": limit})


def clear(*, started: float = T0, at: float = T0 + 60, subject: Subject = DP,
          kind: str = "threshold") -> Condition:
    return Condition(kind=kind, subject=subject, active=False, level=4, started_at=started,
                     at=at, evidence={"rule": "threshold", "cleared_by": 1200.0})


def test_new_condition_fires_an_alert() -> None:
    manager = AlertManager()

    [alert] = manager.apply([fire(level=3)])

    fp = fingerprint("threshold", "E370829001", "DC1", "dp")
    assert alert.state == "firing"
    assert alert.fingerprint == fp
    assert alert.id == alert_id(fp, T0)
    assert alert.level == 3
    assert (alert.started_at, alert.detected_at, alert.updated_at) == (T0, T0 + 10, T0 + 10)
    assert alert.resolved_at is None
    assert alert.title == "【黄色预警】某某金属制品有限公司 DC1 压差超上限：1650 Pa（限值 1500 Pa）"
    assert alert.evidence["value"] == 1650.0
    assert manager.open_alerts() == [alert]
    assert manager.stats["created"] == 1


def test_same_fingerprint_active_again_is_deduplicated() -> None:
    manager = AlertManager()
    [first] = manager.apply([fire()])

    again = manager.apply([fire(at=T0 + 20)])

    assert again == []
    assert manager.open_alerts() == [first]
    assert manager.stats["created"] == 1
    assert manager.stats["deduplicated"] == 1


def test_level_change_updates_the_same_alert() -> None:
    manager = AlertManager()
    [first] = manager.apply([fire(level=3, band="hi", value=1650.0)])

    [escalated] = manager.apply([fire(level=2, band="hihi", value=2150.0, at=T0 + 30)])

    assert escalated.id == first.id
    assert escalated.level == 2
    assert escalated.title.startswith("【橙色预警】")
    assert "超上上限：2150 Pa" in escalated.title
    assert escalated.evidence["band"] == "hihi"
    assert escalated.updated_at == T0 + 30
    assert escalated.detected_at == T0 + 10
    assert manager.stats["updated"] == 1
    [deescalated] = manager.apply([fire(level=3, band="hi", value=1700.0, at=T0 + 40)])
    assert (deescalated.id, deescalated.level) == (first.id, 3)


def test_evidence_change_without_level_change_updates() -> None:
    manager = AlertManager()
    manager.apply([fire(value=1650.0)])

    [updated] = manager.apply([fire(value=1800.0, at=T0 + 20)])

    assert updated.evidence["value"] == 1800.0
    assert "1800 Pa" in updated.title
    assert manager.stats == {"created": 1, "updated": 1, "resolved": 0, "deduplicated": 0,
                             "stray_clears": 0, "reopened": 0, "flapping": 0}


def test_clear_resolves_the_open_alert() -> None:
    manager = AlertManager()
    [fired] = manager.apply([fire()])

    [resolved] = manager.apply([clear(at=T0 + 60)])

    assert resolved.id == fired.id
    assert resolved.state == "resolved"
    assert resolved.resolved_at == T0 + 60
    assert resolved.updated_at == T0 + 60
    assert resolved.evidence["value"] == 1650.0, "firing evidence is kept"
    assert resolved.evidence["resolution"] == {"rule": "threshold", "cleared_by": 1200.0}
    assert manager.open_alerts() == []
    assert manager.stats["resolved"] == 1


def test_returned_alerts_do_not_change_afterwards() -> None:
    manager = AlertManager()
    [fired] = manager.apply([fire()])

    manager.apply([clear()])

    assert fired.state == "firing"
    assert fired.resolved_at is None


def test_stray_clear_is_ignored_and_counted() -> None:
    manager = AlertManager()

    assert manager.apply([clear()]) == []
    assert manager.stats["stray_clears"] == 1
    assert manager.open_alerts() == []


def test_refire_after_the_reopen_window_is_a_new_alert_with_a_new_id() -> None:
    manager = AlertManager(reopen_window_s=60.0)
    [first] = manager.apply([fire(started=T0)])
    manager.apply([clear(at=T0 + 60)])

    [second] = manager.apply([fire(started=T0 + 120, at=T0 + 130)])  # 70 s after

    assert second.id != first.id
    assert second.fingerprint == first.fingerprint
    assert second.state == "firing"
    assert manager.stats["created"] == 2


def test_refire_with_the_same_start_still_gets_a_new_id() -> None:
    manager = AlertManager(reopen_window_s=0)
    ids = []
    for n in range(3):
        [fired] = manager.apply([fire(started=T0, at=T0 + 10 * n)])
        manager.apply([clear(at=T0 + 10 * n + 5)])
        ids.append(fired.id)

    assert len(set(ids)) == 3
    assert ids[0] == alert_id(fingerprint("threshold", "E370829001", "DC1", "dp"), T0)


def test_one_call_returns_each_changed_alert_once_in_first_change_order() -> None:
    manager = AlertManager()

    changed = manager.apply([
        fire(level=3),
        fire(level=4, subject=DC1, kind="device_offline"),
        fire(level=2, band="hihi", value=2150.0, at=T0 + 20),
        clear(at=T0 + 30),
    ])

    assert [(a.kind, a.state, a.level) for a in changed] == [
        ("threshold", "resolved", 2),
        ("device_offline", "firing", 4),
    ]
    assert manager.stats == {"created": 2, "updated": 1, "resolved": 1, "deduplicated": 0,
                             "stray_clears": 0, "reopened": 0, "flapping": 0}


def test_fingerprint_separates_points_devices_and_kinds() -> None:
    manager = AlertManager()
    other_point = Subject(**{**_fields(DP), "point": "hopper_temp", "point_kind": "temperature"})

    changed = manager.apply([
        fire(subject=DP),
        fire(subject=other_point),
        fire(subject=DC1, kind="device_offline"),
    ])

    assert len({a.fingerprint for a in changed}) == 3
    assert len(manager.open_alerts()) == 3


def test_ids_are_deterministic_across_managers() -> None:
    script = [fire(), fire(level=2, band="hihi", value=2100.0, at=T0 + 15), clear(),
              fire(started=T0 + 200, at=T0 + 210)]
    first, second = AlertManager(reopen_window_s=0), AlertManager(reopen_window_s=0)

    ids_first = [a.id for c in script for a in first.apply([c])]
    ids_second = [a.id for c in script for a in second.apply([c])]

    assert ids_first == ids_second
    assert len(set(ids_first)) == 2


def test_restore_lets_a_later_clear_resolve_the_restored_alert() -> None:
    before_restart = AlertManager()
    [fired] = before_restart.apply([fire()])
    stored = [Alert.from_json(fired.to_json())]

    after_restart = AlertManager()
    after_restart.restore(stored)

    assert after_restart.apply([fire(at=T0 + 100)]) == []
    assert after_restart.stats["deduplicated"] == 1
    [resolved] = after_restart.apply([clear(at=T0 + 200)])
    assert resolved.id == fired.id
    assert resolved.state == "resolved"
    assert resolved.resolved_at == T0 + 200


def test_restore_ignores_closed_alerts_and_keeps_the_latest_open_one() -> None:
    manager = AlertManager()
    [fired] = AlertManager().apply([fire()])
    older = Alert(**{**_fields(fired), "id": "older", "detected_at": T0})
    resolved = Alert(**{**_fields(fired), "id": "done", "state": "resolved",
                        "resolved_at": T0 + 50, "detected_at": T0 + 40})

    manager.restore([fired, older, resolved])

    assert [a.id for a in manager.open_alerts()] == [fired.id]


def test_english_titles() -> None:
    [alert] = AlertManager(locale="en").apply([fire(level=2, band="hihi", value=2150.0)])

    assert alert.title == ("[Orange] 某某金属制品有限公司 DC1 differential pressure above "
                           "high-high limit: 2150 Pa (limit 2000 Pa)")


def test_unknown_locale_is_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="available: en, zh"):
        AlertManager(locale="de")


def test_active_condition_needs_a_valid_level() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        fire(level=0)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


# --- reopening and flapping -------------------------------------------------------------

def test_refire_within_the_window_reopens_the_resolved_alert() -> None:
    manager = AlertManager(reopen_window_s=1800.0)
    [first] = manager.apply([fire(started=T0)])
    manager.apply([clear(at=T0 + 60)])

    [again] = manager.apply([fire(level=2, band="hihi", value=2100.0, started=T0 + 900,
                                  at=T0 + 910)])

    assert again.id == first.id
    assert (again.state, again.resolved_at, again.reopen_count) == ("firing", None, 1)
    assert again.level == 2
    assert "resolution" not in again.evidence
    assert again.started_at == T0  # the anomaly's first start
    assert manager.stats["reopened"] == 1
    assert manager.stats["created"] == 1
    assert manager.open_alerts() == [again]


def test_a_reopened_alert_keeps_its_handling() -> None:
    manager = AlertManager()
    [first] = manager.apply([fire()])
    assert manager.set_handling(first.id, stage="dispatched", assignee="张三",
                                acknowledged_at=T0 + 30, closed_at=None)
    [resolved] = manager.apply([clear(at=T0 + 60)])
    assert resolved.state == "resolved"

    [again] = manager.apply([fire(at=T0 + 120)])

    assert (again.state, again.stage, again.assignee) == ("acknowledged", "dispatched", "张三")


def test_a_closed_alert_never_reopens() -> None:
    manager = AlertManager()
    [first] = manager.apply([fire()])
    manager.apply([clear(at=T0 + 60)])
    manager.set_handling(first.id, stage="closed", assignee=None, acknowledged_at=T0 + 70,
                         closed_at=T0 + 80)

    [second] = manager.apply([fire(started=T0 + 100, at=T0 + 110)])

    assert second.id != first.id
    assert second.reopen_count == 0


def test_three_transitions_in_ten_minutes_mark_one_flapping_alert() -> None:
    manager = AlertManager(flap_transitions=3, flap_window_s=600.0)
    seen = []
    for n in range(4):  # fire, clear, fire, clear, ... every minute
        seen += manager.apply([fire(started=T0 + 120 * n, at=T0 + 120 * n)])
        seen += manager.apply([clear(at=T0 + 120 * n + 60)])

    assert len({a.id for a in seen}) == 1
    assert [a.flapping for a in seen] == [False, False, True, True, True, True, True, True]
    assert manager.stats["flapping"] == 1
    assert manager.stats["reopened"] == 3

    assert manager.sweep(T0 + 420 + 599) == []  # still inside the window
    [calm] = manager.sweep(T0 + 420 + 601)
    assert (calm.flapping, calm.state) == (False, "resolved")


def test_transitions_spread_out_do_not_flap() -> None:
    manager = AlertManager(flap_transitions=3, flap_window_s=600.0)
    for n in range(4):
        manager.apply([fire(started=T0 + 700 * n, at=T0 + 700 * n)])
        changed = manager.apply([clear(at=T0 + 700 * n + 10)])
    assert not changed[0].flapping
    assert manager.stats["flapping"] == 0


def test_sweep_forgets_resolved_alerts_after_the_window() -> None:
    manager = AlertManager(reopen_window_s=600.0)
    [first] = manager.apply([fire()])
    manager.apply([clear(at=T0 + 60)])

    manager.sweep(T0 + 60 + 601)
    [second] = manager.apply([fire(started=T0 + 500, at=T0 + 500)])  # late re-fire

    assert second.id != first.id


def test_restore_brings_back_resolved_alerts_that_may_reopen() -> None:
    before = AlertManager()
    [first] = before.apply([fire()])
    [resolved] = before.apply([clear(at=T0 + 60)])

    after = AlertManager()
    after.restore([Alert.from_json(resolved.to_json())])
    [again] = after.apply([fire(at=T0 + 300)])

    assert again.id == first.id
    assert again.reopen_count == 1


def test_handling_fields_round_trip_through_json() -> None:
    manager = AlertManager()
    [fired] = manager.apply([fire()])
    manager.set_handling(fired.id, stage="feedback", assignee="李四",
                         acknowledged_at=T0 + 30, closed_at=None)
    [alert] = manager.open_alerts()

    body = alert.to_json()
    back = Alert.from_json(body)

    assert body["stage"] == "feedback"
    assert body["state"] == "acknowledged"
    assert body["acknowledged_at"] == "2026-11-24T08:00:30+08:00"
    assert (back.stage, back.assignee, back.acknowledged_at) == ("feedback", "李四", T0 + 30)
