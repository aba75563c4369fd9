"""The handling workflow: every action from every stage, accepted or refused with why."""

from __future__ import annotations

import pytest

from alerting.workflow import (
    STAGES,
    TRANSITIONS,
    WorkflowError,
    contract_state,
    decide,
    system_event_key,
)

T = 1_795_478_400.0

ALLOWED = {
    ("acknowledge", "pending"): "acknowledged",
    ("dispatch", "pending"): "dispatched",
    ("dispatch", "acknowledged"): "dispatched",
    ("dispatch", "dispatched"): "dispatched",
    ("feedback", "acknowledged"): "feedback",
    ("feedback", "dispatched"): "feedback",
    ("verify", "feedback"): "verified",
    ("reject", "feedback"): "dispatched",
    ("close", "verified"): "closed",
    **{("dismiss", s): "closed" for s in STAGES if s != "closed"},
    **{("comment", s): s for s in STAGES},
}


@pytest.mark.parametrize("action", list(TRANSITIONS))
@pytest.mark.parametrize("stage", STAGES)
def test_every_action_from_every_stage(action: str, stage: str) -> None:
    expected = ALLOWED.get((action, stage))
    kwargs = {"comment": "现场已处理", "assignee": "张三"}
    if expected is None:
        with pytest.raises(WorkflowError) as caught:
            decide("a1", stage, action, actor="op", at=T, **kwargs)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_transition"
        assert stage in str(caught.value)
        assert action in str(caught.value)
        return
    change = decide("a1", stage, action, actor="op", at=T, **kwargs)  # type: ignore[arg-type]
    assert change.stage == expected
    assert (change.event.from_stage, change.event.to_stage) == (stage, expected)
    assert change.event.actor == "op"
    assert change.event.action == action
    assert change.event.key is None  # people's actions are each unique
    assert (change.closed_at == T) == (expected == "closed" and stage != "closed")


def test_first_response_sets_acknowledged_at_once() -> None:
    first = decide("a1", "pending", "dispatch", actor="op", at=T, assignee="李四")
    assert first.acknowledged_at == T
    later = decide("a1", first.stage, "feedback", actor="ent", at=T + 60, comment="已停机检修",
                   current_assignee=first.assignee, acknowledged_at=first.acknowledged_at)
    assert later.acknowledged_at == T
    assert later.assignee == "李四"  # kept when the action names nobody new


def test_a_comment_on_a_pending_alert_is_no_response() -> None:
    change = decide("a1", "pending", "comment", actor="op", at=T, comment="看一下")
    assert change.stage == "pending"
    assert change.acknowledged_at is None


@pytest.mark.parametrize(("action", "stage", "code"), [
    ("feedback", "dispatched", "missing_comment"),
    ("reject", "feedback", "missing_comment"),
    ("dismiss", "pending", "missing_comment"),
    ("comment", "pending", "missing_comment"),
    ("dispatch", "acknowledged", "missing_assignee"),
])
def test_required_fields(action: str, stage: str, code: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        decide("a1", stage, action, actor="op", at=T, comment="  ")  # type: ignore[arg-type]
    assert caught.value.code == code


def test_unknown_action_and_anonymous_actor_are_refused() -> None:
    with pytest.raises(WorkflowError) as unknown:
        decide("a1", "pending", "escalate", actor="op", at=T)
    assert unknown.value.code == "unknown_action"
    with pytest.raises(WorkflowError) as anonymous:
        decide("a1", "pending", "acknowledge", actor=" ", at=T)
    assert anonymous.value.code == "missing_actor"


def test_the_full_loop_reaches_closed() -> None:
    stage, acked = "pending", None
    for action in ("acknowledge", "dispatch", "feedback", "reject", "feedback", "verify",
                   "close"):
        change = decide("a1", stage, action, actor="op", at=T, comment="ok",  # type: ignore[arg-type]
                        assignee="王五", acknowledged_at=acked)
        stage, acked = change.stage, change.acknowledged_at
    assert stage == "closed"


@pytest.mark.parametrize(("stage", "resolved", "state"), [
    ("pending", False, "firing"), ("pending", True, "resolved"),
    ("acknowledged", False, "acknowledged"), ("verified", False, "acknowledged"),
    ("verified", True, "resolved"), ("closed", False, "closed"), ("closed", True, "closed"),
])
def test_contract_state(stage: str, resolved: bool, state: str) -> None:
    assert contract_state(stage, resolved) == state


def test_system_event_keys_are_deterministic_and_distinct() -> None:
    assert system_event_key("a1", "resolved", T) == system_event_key("a1", "resolved", T)
    assert system_event_key("a1", "resolved", T) != system_event_key("a1", "reopened", T)
    assert system_event_key("a1", "escalated", T, "town") != system_event_key(
        "a1", "escalated", T, "county")
