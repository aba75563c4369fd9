"""What travels from the alerting engine to a channel: one message to one receiver.

The engine (lifecycle, routing, escalation, grouping) decides *that* somebody must be
told something; it writes a :class:`Notification` to the outbox before anything is sent
(DESIGN.md: nothing lost).  A dispatcher later hands it to a :class:`Channel`, retrying
with backoff while :class:`DeliveryError` says the failure is temporary.  The
notification's :attr:`~Notification.key` is its idempotency key: derived, never
allocated, so a restart that re-decides the same notification writes the same row, and
every channel passes the key on (an HTTP header, an e-mail Message-ID, a field of the
MQTT payload) so a receiver can drop a copy sent again after a crash between "sent" and
"marked sent".

This module is the contract between those stages and holds no logic beyond the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Tier = Literal["enterprise", "town", "county"]
"""Who is told, in escalation order: the enterprise itself, the town safety station
(乡镇/街道安监站), the county emergency-management bureau (县应急局)."""

TIERS: tuple[Tier, ...] = ("enterprise", "town", "county")

Reason = Literal["firing", "repeat", "escalated", "flapping", "reopened", "resolved",
                 "closed", "group"]
"""Why a notification is sent.  ``group`` is a digest of several alerts of one
enterprise collected during a group window."""


def notification_key(*parts: object) -> str:
    """Idempotency key: 32 hex digits of SHA-256 over the JSON array of ``parts``.

    Callers pass what makes the message unique, e.g. ``(alert_id, receiver, channel,
    reason, sequence)``; JSON keeps ``None`` apart from ``""`` and no separator can
    collide.

    >>> notification_key("a1", "town-370829101", "dingtalk", "escalated", 1)
    '89e75a3d03b448d0e2622fae01f97191'
    """
    canonical = json.dumps(parts, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel of one receiver, rendered and ready to send."""

    key: str
    """Idempotency key (:func:`notification_key`); the outbox's primary key."""
    alert_ids: tuple[str, ...]
    """The alerts this message is about (one, or several for a ``group`` digest)."""
    enterprise_id: str
    receiver: str
    """Receiver name from the routing configuration."""
    tier: Tier
    channel: str
    """Name of the channel within the receiver, e.g. ``"dingtalk"`` or ``"ops-hook"``."""
    reason: Reason
    locale: str
    """``"zh"`` (default) or ``"en"``."""
    subject: str
    """One line: e-mail subject, robot message title, SMS prefix."""
    body: str
    """Plain text with light Markdown (robots render it; e-mail sends it as text)."""
    payload: Mapping[str, Any]
    """Machine-readable form for webhook and MQTT: the alerts' CONTRACT.md §4 JSON
    under ``"alerts"`` plus the fields above."""
    created_at: float
    """Event time (epoch s) at which the engine decided to send it."""
    extra: Mapping[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A send failed.  ``retryable`` is False when trying again cannot help (HTTP 4xx
    other than 408/429, a rejected recipient, a malformed configuration).
    ``retry_after`` (seconds) is the receiver's own hint, e.g. HTTP ``Retry-After``."""

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Channel(Protocol):
    """Sends notifications of one configured channel (a webhook URL, an SMTP relay...)."""

    @property
    def kind(self) -> str:
        """``"webhook"``, ``"email"``, ``"dingtalk"``, ``"wecom"``, ``"mqtt"`` or
        ``"sms"``."""
        ...

    async def send(self, notification: Notification) -> None:
        """Deliver once; raise :class:`DeliveryError` on failure.  Must not log secrets."""
        ...
