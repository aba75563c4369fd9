"""Inhibitor: an open site-level fake_offline alert marks the device_offline alerts of
its enterprise as covered, without hiding or resolving them."""

from __future__ import annotations

from dataclasses import replace

from alerting.inhibition import INHIBITED_BY, Inhibitor, InhibitRule
from alerting.manager import AlertManager
from alerting.models import Alert, Condition, Subject

T0 = 1_795_478_400.0

SITE = Subject(enterprise_id="E370829001", enterprise_name="某某金属制品有限公司",
               industry="dust", region=("370000", "370800"), timezone="Asia/Shanghai")
OTHER_SITE = replace(SITE, enterprise_id="E320583002", enterprise_name="某某精密铸造有限公司")


def device(subject: Subject, device_id: str) -> Subject:
    return replace(subject, device_id=device_id, device_kind="dust_collector")


def condition(kind: str, subject: Subject, *, at: float, active: bool = True,
              started: float | None = None, evidence: dict[str, object] | None = None
              ) -> Condition:
    return Condition(kind=kind, subject=subject, active=active, level=2 if active else 4,
                     started_at=at if started is None else started, at=at,
                     evidence=evidence or {"rule": kind},
                     detail={"silent_for_s": 600, "last_seen": None})


def offline(device_id: str, at: float, subject: Subject = SITE, **kwargs: object) -> Condition:
    return condition("device_offline", device(subject, device_id), at=at, **kwargs)  # type: ignore[arg-type]


def site_silent(at: float, subject: Subject = SITE, **kwargs: object) -> Condition:
    return condition("fake_offline", subject, at=at, **kwargs)  # type: ignore[arg-type]


class Stage:
    """The manager followed by the inhibitor, as the pipeline runs them."""

    def __init__(self) -> None:
        self.manager = AlertManager()
        self.inhibitor = Inhibitor()

    def apply(self, *conditions: Condition) -> list[Alert]:
        return self.inhibitor.apply(self.manager, self.manager.apply(conditions))

    def open(self, kind: str) -> dict[str | None, Alert]:
        return {a.subject.device_id: a for a in self.manager.open_alerts() if a.kind == kind}


def marks(alerts: list[Alert]) -> list[tuple[str, str | None, object]]:
    return [(a.kind, a.subject.device_id, a.evidence.get(INHIBITED_BY)) for a in alerts]


def test_the_site_alert_marks_the_devices_already_offline() -> None:
    stage = Stage()
    stage.apply(offline("DC1", T0), offline("GD1", T0 + 5))

    changed = stage.apply(site_silent(T0 + 1800, started=T0 - 60))

    parent = stage.open("fake_offline")[None]
    assert marks(changed) == [("fake_offline", None, None),
                              ("device_offline", "DC1", parent.id),
                              ("device_offline", "GD1", parent.id)]
    children = stage.open("device_offline")
    assert {d: a.evidence[INHIBITED_BY] for d, a in children.items()} == {
        "DC1": parent.id, "GD1": parent.id}
    assert all(a.state == "firing" for a in children.values())  # kept, only marked
    assert children["DC1"].updated_at == T0 + 1800
    assert children["DC1"].evidence["rule"] == "device_offline"


def test_a_device_going_offline_under_an_open_site_alert_is_marked_at_once() -> None:
    stage = Stage()
    stage.apply(site_silent(T0))

    changed = stage.apply(offline("DC1", T0 + 60))

    parent = stage.open("fake_offline")[None]
    assert marks(changed) == [("device_offline", "DC1", parent.id)]
    assert stage.manager.stats["created"] == 2


def test_other_enterprises_are_not_covered() -> None:
    stage = Stage()
    stage.apply(offline("CW1", T0, subject=OTHER_SITE))

    changed = stage.apply(site_silent(T0 + 60), offline("DC1", T0 + 60))

    assert marks(changed)[1] == ("device_offline", "DC1", stage.open("fake_offline")[None].id)
    assert INHIBITED_BY not in stage.open("device_offline")["CW1"].evidence


def test_a_point_level_fake_offline_alert_is_no_parent() -> None:
    stage = Stage()
    tampered = replace(device(SITE, "DC1"), point="dp", point_kind="differential_pressure")

    changed = stage.apply(condition("fake_offline", tampered, at=T0), offline("GD1", T0))

    assert [m[2] for m in marks(changed)] == [None, None]


def test_without_a_parent_the_changes_pass_through_untouched() -> None:
    stage = Stage()
    changed = stage.manager.apply([offline("DC1", T0)])

    assert stage.inhibitor.apply(stage.manager, changed) is changed
    assert stage.inhibitor.apply(stage.manager, []) == []


def test_a_repeated_parent_marks_nothing_again() -> None:
    stage = Stage()
    stage.apply(offline("DC1", T0), site_silent(T0 + 60))
    updated = stage.manager.stats["updated"]

    again = stage.apply(site_silent(T0 + 65))

    assert again == []
    assert stage.manager.stats["updated"] == updated


def test_a_repeated_child_condition_is_still_deduplicated() -> None:
    stage = Stage()
    stage.apply(offline("DC1", T0), site_silent(T0 + 60))
    updated = stage.manager.stats["updated"]

    again = stage.apply(offline("DC1", T0 + 65))

    assert again == []
    assert stage.manager.stats["updated"] == updated


def test_a_child_whose_evidence_changes_is_marked_again() -> None:
    stage = Stage()
    stage.apply(site_silent(T0), offline("DC1", T0 + 60))

    changed = stage.apply(offline("DC1", T0 + 120, started=T0 + 60,
                                  evidence={"rule": "device_offline", "last_seen": "08:00"}))

    parent = stage.open("fake_offline")[None]
    assert marks(changed) == [("device_offline", "DC1", parent.id)]
    assert stage.open("device_offline")["DC1"].evidence == {
        "rule": "device_offline", "last_seen": "08:00", INHIBITED_BY: parent.id}


def test_the_mark_outlives_the_parent_but_later_children_are_not_covered() -> None:
    stage = Stage()
    stage.apply(offline("DC1", T0), site_silent(T0 + 60))
    parent_id = stage.open("fake_offline")[None].id

    resolved = stage.apply(site_silent(T0 + 600, active=False))
    changed = stage.apply(offline("GD1", T0 + 660))

    assert [(a.kind, a.state) for a in resolved] == [("fake_offline", "resolved")]
    assert marks(changed) == [("device_offline", "GD1", None)]
    assert stage.open("device_offline")["DC1"].evidence[INHIBITED_BY] == parent_id


def test_a_resolving_child_is_not_marked() -> None:
    stage = Stage()
    stage.apply(offline("DC1", T0))

    changed = stage.apply(site_silent(T0 + 60), offline("DC1", T0 + 60, active=False))

    assert [(a.kind, a.state, a.evidence.get(INHIBITED_BY)) for a in changed] == [
        ("fake_offline", "firing", None), ("device_offline", "resolved", None)]


def test_rules_are_data() -> None:
    stage = Stage()
    stage.inhibitor = Inhibitor([InhibitRule("hidden_operation", "threshold")])
    dp = replace(device(SITE, "DC1"), point="dp", point_kind="differential_pressure")
    stage.apply(condition("threshold", dp, at=T0))

    changed = stage.apply(condition("hidden_operation", SITE, at=T0 + 60),
                          offline("GD1", T0 + 60))

    parent = stage.open("hidden_operation")[None]
    assert marks(changed) == [("hidden_operation", None, None),
                              ("device_offline", "GD1", None),
                              ("threshold", "DC1", parent.id)]


def point(device_id: str, name: str, kind: str) -> Subject:
    return replace(device(SITE, device_id), point=name, point_kind=kind)


def test_a_deviation_on_a_device_with_an_open_limit_alarm_is_its_symptom() -> None:
    stage = Stage()
    dp, amps = point("DC1", "dp", "differential_pressure"), point("DC1", "fan_current", "current")
    stage.apply(condition("threshold", dp, at=T0))

    changed = stage.apply(
        condition("abnormal_condition", amps, at=T0 + 600, evidence={"rule": "deviation"}),
        condition("abnormal_condition", point("DC2", "fan_current", "current"), at=T0 + 600,
                  evidence={"rule": "deviation"}))

    threshold = {a.subject.point: a for a in stage.manager.open_alerts()
                 if a.kind == "threshold"}["dp"]
    assert [(a.subject.device_id, a.evidence.get(INHIBITED_BY)) for a in changed] == [
        ("DC1", threshold.id), ("DC2", None)]  # another device's deviation stands alone


def test_a_spark_burst_is_no_symptom_and_a_deviation_without_a_cause_stands() -> None:
    stage = Stage()
    amps = point("DC1", "fan_current", "current")
    burst = condition("abnormal_condition", device(SITE, "DC1"), at=T0,
                      evidence={"rule": "event_burst"})
    changed = stage.apply(burst, condition("abnormal_condition", amps, at=T0,
                                           evidence={"rule": "deviation"}))
    assert [a.evidence.get(INHIBITED_BY) for a in changed] == [None, None]

    later = stage.apply(condition("threshold", point("DC1", "dp", "differential_pressure"),
                                  at=T0 + 60))
    marked = {a.subject.point: a.evidence.get(INHIBITED_BY) for a in later}
    assert marked["fan_current"] is not None
    assert marked["dp"] is None
    assert None not in {a.subject.point for a in later}  # the burst is not marked
