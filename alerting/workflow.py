"""The handling workflow of an alert: 推送 → 核实处置 → 反馈 → 核查 → 销号.

An alert has two independent lives.  Its *condition* (firing, resolved, reopened,
flapping) is driven by the detectors through :class:`~alerting.manager.AlertManager`.
Its *handling* is driven by people: somebody acknowledges it, dispatches someone to the
site, the enterprise feeds back what it found and did, a regulator verifies that and
closes the alert (销号).  A condition that clears by itself does not close an alert:
it stays for review until a person closes it, because a regulator must still see that
it happened.  The two lives meet in the contract's single ``state`` field
(:func:`contract_state`).

This module holds the handling rules as data (:data:`TRANSITIONS`) and checks one
action at a time; it has no clock and no I/O.  Every accepted action yields an
:class:`AuditEvent` (who, when, what, comment), which the store writes in the same
transaction as the alert's new stage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["pending", "acknowledged", "dispatched", "feedback", "verified", "closed"]
STAGES: tuple[Stage, ...] = ("pending", "acknowledged", "dispatched", "feedback",
                             "verified", "closed")
"""Handling stages in their usual order; ``pending`` means nobody has responded yet."""

Action = Literal["acknowledge", "dispatch", "feedback", "verify", "reject", "close",
                 "dismiss", "comment"]


@dataclass(frozen=True, slots=True)
class Transition:
    """Which stages an action is allowed from, where it leads, and what it needs."""

    sources: frozenset[Stage]
    target: Stage | None
    """``None``: the stage does not change (a comment)."""
    needs_comment: bool = False
    needs_assignee: bool = False


_OPEN: frozenset[Stage] = frozenset(STAGES) - {"closed"}

TRANSITIONS: Mapping[str, Transition] = {
    # Anyone responsible says "seen, on it": stops escalation to the next tier.
    "acknowledge": Transition(frozenset({"pending"}), "acknowledged"),
    # Someone is sent to handle it (again, if a verification failed); acknowledges too.
    "dispatch": Transition(frozenset({"pending", "acknowledged", "dispatched"}),
                           "dispatched", needs_assignee=True),
    # The enterprise or the dispatched person reports what was found and done.
    "feedback": Transition(frozenset({"acknowledged", "dispatched"}), "feedback",
                           needs_comment=True),
    # The regulator checks the feedback (核查): accepted ...
    "verify": Transition(frozenset({"feedback"}), "verified"),
    # ... or not, and the handling goes back to the field.
    "reject": Transition(frozenset({"feedback"}), "dispatched", needs_comment=True),
    # 销号: only after verification.
    "close": Transition(frozenset({"verified"}), "closed"),
    # A false or duplicate alert is closed without the loop, with the reason written.
    "dismiss": Transition(_OPEN, "closed", needs_comment=True),
    "comment": Transition(frozenset(STAGES), None, needs_comment=True),
}


class WorkflowError(ValueError):
    """An action that the alert's stage or the request does not allow; the message says
    which, in words an operator understands.  ``code`` is stable for API clients."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of an alert's audit trail."""

    alert_id: str
    at: float
    """Epoch seconds: wall time of a person's action, event time of a system one."""
    actor: str
    """User name, or ``"system"`` for what the service itself did."""
    action: str
    """A workflow :data:`Action`, or a system action: ``created``, ``updated``,
    ``resolved``, ``reopened``, ``flapping``, ``flapping_ended``, ``escalated``,
    ``silenced``, ``inhibited``."""
    from_stage: Stage | None = None
    to_stage: Stage | None = None
    comment: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    """Deterministic key of a system event (:func:`system_event_key`), so that a replay
    run twice into one database records it once; ``None`` for people's actions, which
    are each unique."""


@dataclass(frozen=True, slots=True)
class StageChange:
    """What an accepted action changes on the alert."""

    stage: Stage
    assignee: str | None
    acknowledged_at: float | None
    closed_at: float | None
    """Set by the action that closes the alert; ``None`` otherwise (a comment on a
    closed alert keeps the stored closing time)."""
    event: AuditEvent


def decide(alert_id: str, stage: Stage, action: str, *, actor: str, at: float,
           comment: str | None = None, assignee: str | None = None,
           current_assignee: str | None = None, acknowledged_at: float | None = None,
           data: Mapping[str, Any] | None = None) -> StageChange:
    """Check ``action`` against the alert's ``stage`` and return what changes.

    Raises :class:`WorkflowError` for an unknown action, a stage that does not allow it,
    or a missing comment or assignee.
    """
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise WorkflowError(f"unknown action {action!r}; one of {', '.join(TRANSITIONS)}",
                            "unknown_action")
    if not actor.strip():
        raise WorkflowError("an action needs the name of who takes it", "missing_actor")
    if stage not in rule.sources:
        allowed = ", ".join(s for s in STAGES if s in rule.sources)
        raise WorkflowError(f"cannot {action} an alert in stage {stage!r} "
                            f"(allowed from: {allowed})", "invalid_transition")
    text = (comment or "").strip() or None
    if rule.needs_comment and text is None:
        raise WorkflowError(f"{action} needs a comment", "missing_comment")
    who = (assignee or "").strip() or None
    if rule.needs_assignee and who is None:
        raise WorkflowError(f"{action} needs an assignee", "missing_assignee")
    target = rule.target or stage
    first_response = acknowledged_at is None and stage == "pending" and target != "pending"
    event = AuditEvent(alert_id=alert_id, at=at, actor=actor.strip(), action=action,
                       from_stage=stage, to_stage=target, comment=text,
                       data={**(data or {}), **({"assignee": who} if who else {})})
    return StageChange(
        stage=target,
        assignee=who if who is not None else current_assignee,
        acknowledged_at=at if first_response else acknowledged_at,
        closed_at=at if target == "closed" and stage != "closed" else None,
        event=event,
    )


def contract_state(stage: str, resolved: bool) -> str:
    """CONTRACT.md §4's ``state`` from the two lives: closed wins, then a cleared
    condition (resolved, kept for review), then any response (acknowledged).

    >>> contract_state("pending", False), contract_state("dispatched", False)
    ('firing', 'acknowledged')
    >>> contract_state("feedback", True), contract_state("closed", True)
    ('resolved', 'closed')
    """
    if stage == "closed":
        return "closed"
    if resolved:
        return "resolved"
    return "firing" if stage == "pending" else "acknowledged"


def system_event_key(alert_id: str, action: str, at: float, extra: object = None) -> str:
    """Key of a system-made audit event: 32 hex digits over (alert, action, ms, extra).

    >>> len(system_event_key("a1", "resolved", 1795478400.0))
    32
    """
    canonical = json.dumps([alert_id, action, round(at * 1000), extra],
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
