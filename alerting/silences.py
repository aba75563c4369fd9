"""Silences: a maintenance window or a known situation during which notifications of
matching alerts are muted.

A silence mutes *notifications*, never alerts: alerts are still raised, stored and
shown, and the muted notifications are recorded in the outbox as ``muted`` so the audit
trail shows who would have been told (a regulator must be able to see that a warning
was raised during a maintenance window).  Silences are created by people through the
API with an expiry; one can be ended early (expired) but is never deleted.

Matchers work like routing matchers: every key given must hold, any listed value will
do; ``region`` holds when any code of the enterprise's region path is listed.  A
silence without any matcher would mute everything and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerting.models import Alert

MATCHER_KEYS: tuple[str, ...] = ("enterprise", "region", "industry", "kind", "device",
                                 "point", "level")


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes notifications of matching alerts from ``starts_at`` until ``ends_at``."""

    id: str
    matchers: Mapping[str, tuple[str, ...]]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_by: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.matchers) - set(MATCHER_KEYS)
        if unknown:
            raise ValueError(f"unknown silence matcher {sorted(unknown)}; "
                             f"use {', '.join(MATCHER_KEYS)}")
        if not any(self.matchers.values()):
            raise ValueError("a silence needs at least one matcher (it would mute "
                             "every notification)")
        if not self.ends_at > self.starts_at:
            raise ValueError("a silence must end after it starts")
        if not self.created_by.strip():
            raise ValueError("a silence needs the name of who creates it")
        if not self.comment.strip():
            raise ValueError("a silence needs a comment saying why")

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        s = alert.subject
        values: Mapping[str, tuple[str | None, ...]] = {
            "enterprise": (s.enterprise_id,), "region": s.region, "industry": (s.industry,),
            "kind": (alert.kind,), "device": (s.device_id,), "point": (s.point,),
            "level": (str(alert.level),),
        }
        return all(not wanted or any(v in wanted for v in values[key])
                   for key, wanted in self.matchers.items())


def silenced_by(alert: Alert, silences: Sequence[Silence], now: float) -> Silence | None:
    """The first silence active at ``now`` that matches ``alert``, if any."""
    for silence in silences:
        if silence.active(now) and silence.matches(alert):
            return silence
    return None
