"""The plain data passed between alerting stages: subjects, conditions and alerts.

A :class:`Condition` is what the pipeline hands to alerting: a detector verdict change
with names already resolved from the registry.  An :class:`Alert` is what alerting
produces and stores; its JSON form is the wire object of CONTRACT.md §4.

Identity is derived, never allocated: the :func:`fingerprint` names *what* is wrong
(kind + enterprise + device + point) and the :func:`alert_id` names *one occurrence* of
it (fingerprint + start time).  A replay of the same recording therefore produces the
same ids as the live run, and an upsert by id is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerting.timefmt import format_ts, parse_ts, to_ms

LEVEL_COLORS: dict[int, str] = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}
"""Chinese warning grades (红橙黄蓝); 1 is the most severe."""

ALERT_STATES: tuple[str, ...] = ("firing", "acknowledged", "resolved", "closed")
OPEN_STATES: tuple[str, ...] = ("firing", "acknowledged")
"""States in which an alert still deduplicates new conditions of its fingerprint."""

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""CONTRACT.md: sites live here unless the registry says otherwise."""

_ID_NAMESPACE = uuid.UUID("5d1f4c1e-8f0b-4b7e-9a51-7269736b7761")
"""Fixed uuid5 namespace of alert ids; changing it would change every id ever issued."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who and what an alert is about, filled in by the pipeline from the registry.

    Device and point fields are ``None`` for enterprise-level alerts (hidden operation)
    and point fields for device-level ones (device offline).
    """

    enterprise_id: str
    enterprise_name: str
    industry: str
    """``"dust"`` or ``"metallurgy"``."""
    region: tuple[str, ...]
    """Administrative codes from province down to town, e.g. ``("370000", "370800")``."""
    timezone: str
    """IANA zone of the site, used to render alert times in JSON."""
    device_id: str | None = None
    device_kind: str | None = None
    point: str | None = None
    point_kind: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A detector verdict change, as handed to :class:`alerting.manager.AlertManager`.

    ``active=True`` means firing: either a new anomaly or a new level/evidence for one
    already firing.  ``active=False`` means the anomaly cleared; ``level`` is then
    ignored.  Times are event times in epoch seconds.
    """

    kind: str
    """Alert kind of CONTRACT.md §4: ``"threshold"``, ``"device_offline"``, ..."""
    subject: Subject
    active: bool
    level: int
    """1 red (most severe), 2 orange, 3 yellow, 4 blue; ignored when not active."""
    started_at: float
    """Event time of the first anomalous sample, epoch seconds."""
    at: float
    """Event time of this decision (detected_at when firing, resolved_at when not)."""
    evidence: dict[str, Any]
    """JSON-serialisable rule, limits and data window, kept with the alert."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Values for the title template, e.g. ``{"band": "hi", "value": 1650.0}``."""

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("condition kind must not be empty")
        if self.active and self.level not in LEVEL_COLORS:
            raise ValueError(f"condition level must be 1..4, got {self.level!r}")


@dataclass(slots=True)
class Alert:
    """One occurrence of an anomaly, from firing to resolved (and later closed).

    Mutable because its lifecycle is; :class:`~alerting.manager.AlertManager` hands out
    copies so a caller never sees an alert change under its feet.
    """

    id: str
    fingerprint: str
    kind: str
    subject: Subject
    level: int
    state: str
    """One of :data:`ALERT_STATES`."""
    started_at: float
    detected_at: float
    resolved_at: float | None
    updated_at: float
    """Event time of the last change (creation, level or evidence change, resolution)."""
    title: str
    evidence: dict[str, Any]
    stage: str = "pending"
    """Handling stage (:data:`alerting.workflow.STAGES`), driven by people."""
    assignee: str | None = None
    flapping: bool = False
    """The condition came and went often (:class:`~alerting.manager.AlertManager`)."""
    reopen_count: int = 0
    """How often the condition re-fired within the reopen window after resolving."""
    acknowledged_at: float | None = None
    """Wall time of the first response (acknowledge or dispatch)."""
    closed_at: float | None = None

    @property
    def is_open(self) -> bool:
        """Still deduplicating: firing or acknowledged."""
        return self.state in OPEN_STATES

    def to_json(self) -> dict[str, Any]:
        """The CONTRACT.md §4 object plus optional extension keys.

        Extension keys (allowed because the contract grows only by optional fields):
        ``fingerprint``, ``region``, ``enterprise_name``, ``industry``, ``level_color``,
        ``updated_at``, and ``timezone``, ``device_kind``, ``point_kind``, ``unit`` so
        that :meth:`from_json` can rebuild the full :class:`Subject`; the handling
        workflow's ``stage``, ``assignee``, ``acknowledged_at``, ``closed_at``, and the
        condition's ``flapping`` and ``reopen_count``.
        """
        subject = self.subject
        tz = subject.timezone
        return {
            "id": self.id,
            "enterprise_id": subject.enterprise_id,
            "device_id": subject.device_id,
            "point": subject.point,
            "kind": self.kind,
            "level": self.level,
            "state": self.state,
            "started_at": format_ts(self.started_at, tz),
            "detected_at": format_ts(self.detected_at, tz),
            "resolved_at": None if self.resolved_at is None else format_ts(self.resolved_at, tz),
            "title": self.title,
            "evidence": self.evidence,
            "fingerprint": self.fingerprint,
            "region": list(subject.region),
            "enterprise_name": subject.enterprise_name,
            "industry": subject.industry,
            "level_color": LEVEL_COLORS.get(self.level),
            "updated_at": format_ts(self.updated_at, tz),
            "timezone": tz,
            "device_kind": subject.device_kind,
            "point_kind": subject.point_kind,
            "unit": subject.unit,
            "stage": self.stage,
            "assignee": self.assignee,
            "acknowledged_at": _opt_ts(self.acknowledged_at, tz),
            "closed_at": _opt_ts(self.closed_at, tz),
            "flapping": self.flapping,
            "reopen_count": self.reopen_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """Inverse of :meth:`to_json`, at its millisecond resolution.

        Only the contract keys are required, so contract-only objects (an expected
        alert written by a tester) load too: a missing fingerprint is recomputed,
        a missing time zone is the contract default, a missing ``updated_at`` is the
        latest of detection and resolution.
        """
        try:
            subject = Subject(
                enterprise_id=str(data["enterprise_id"]),
                enterprise_name=str(data.get("enterprise_name") or ""),
                industry=str(data.get("industry") or ""),
                region=tuple(str(code) for code in data.get("region") or ()),
                timezone=str(data.get("timezone") or DEFAULT_TIMEZONE),
                device_id=_opt_str(data["device_id"]),
                device_kind=_opt_str(data.get("device_kind")),
                point=_opt_str(data["point"]),
                point_kind=_opt_str(data.get("point_kind")),
                unit=_opt_str(data.get("unit")),
            )
            kind = str(data["kind"])
            detected_at = parse_ts(data["detected_at"])
            resolved_raw = data["resolved_at"]
            resolved_at = None if resolved_raw is None else parse_ts(resolved_raw)
            updated_raw = data.get("updated_at")
            alert = cls(
                id=str(data["id"]),
                fingerprint=str(data.get("fingerprint") or fingerprint(
                    kind, subject.enterprise_id, subject.device_id, subject.point)),
                kind=kind,
                subject=subject,
                level=int(data["level"]),
                state=str(data["state"]),
                started_at=parse_ts(data["started_at"]),
                detected_at=detected_at,
                resolved_at=resolved_at,
                updated_at=(parse_ts(updated_raw) if updated_raw is not None
                            else max(detected_at, resolved_at or detected_at)),
                title=str(data["title"]),
                evidence=dict(data["evidence"] or {}),
                stage=str(data.get("stage") or _stage_of(str(data["state"]))),
                assignee=_opt_str(data.get("assignee")),
                flapping=bool(data.get("flapping", False)),
                reopen_count=int(data.get("reopen_count") or 0),
                acknowledged_at=_opt_parse(data.get("acknowledged_at")),
                closed_at=_opt_parse(data.get("closed_at")),
            )
        except KeyError as exc:
            raise ValueError(f"alert JSON lacks required key {exc.args[0]!r}") from exc
        if alert.state not in ALERT_STATES:
            raise ValueError(f"alert state must be one of {ALERT_STATES}, got {alert.state!r}")
        return alert


def fingerprint(kind: str, enterprise_id: str, device_id: str | None, point: str | None) -> str:
    """Stable identity of *what* is wrong: 16 hex digits of SHA-256.

    Hashes a JSON array, so ``None`` and ``""`` differ and no separator can collide;
    the value is the same in every process and Python version (no ``hash()``).

    >>> fingerprint("threshold", "E370829001", "DC1", "dp")
    '994e66b74cbdf543'
    >>> len(fingerprint("hidden_operation", "E370829001", None, None))
    16
    """
    canonical = json.dumps([kind, enterprise_id, device_id, point], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def alert_id(fp: str, started_at: float, seq: int = 0) -> str:
    """Deterministic id of one occurrence: uuid5 over fingerprint and start (ms).

    ``seq`` disambiguates the rare re-fire of a fingerprint with the very same start
    time as its previous, resolved occurrence; it is left out of the hash when zero, so
    ordinary ids depend on the fingerprint and start time alone.

    >>> alert_id("994e66b74cbdf543", 1795478400.0) == alert_id("994e66b74cbdf543", 1795478400.0004)
    True
    """
    name = f"{fp}:{to_ms(started_at)}" + (f":{seq}" if seq else "")
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def level_color(level: int) -> str:
    """Colour word of a level; raises for levels outside 1..4."""
    try:
        return LEVEL_COLORS[level]
    except KeyError:
        raise ValueError(f"level must be 1..4, got {level!r}") from None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_ts(ts: float | None, tz: str) -> str | None:
    return None if ts is None else format_ts(ts, tz)


def _opt_parse(value: Any) -> float | None:
    return None if value is None else parse_ts(value)


def _stage_of(state: str) -> str:
    """The handling stage a contract-only object implies: closed, responded, or not."""
    return {"closed": "closed", "acknowledged": "acknowledged"}.get(state, "pending")
