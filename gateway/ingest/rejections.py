"""Why a message (or part of it) was refused: the quarantine's vocabulary.

Reasons are a closed set so that counters, the API and operators speak one language;
the free-text ``detail`` says exactly which record, point or value was wrong.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    BAD_TOPIC = "bad_topic"
    BAD_JSON = "bad_json"
    BAD_PAYLOAD = "bad_payload"
    UNKNOWN_ENTERPRISE = "unknown_enterprise"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_ENTERPRISE_MISMATCH = "device_enterprise_mismatch"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_POINT = "unknown_point"
    BAD_VALUE = "bad_value"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One quarantined message or part of one.  ``payload`` keeps the raw bytes
    (truncated to :data:`MAX_KEPT_PAYLOAD`) so an integrator can see what was sent."""

    reason: Reason
    detail: str
    topic: str
    payload: bytes
    received_at: float
    """Wall-clock (live) or watermark (replay) time, epoch seconds."""
    enterprise_id: str | None = None
    device_id: str | None = None


MAX_KEPT_PAYLOAD = 16_384
"""Bytes of a rejected payload kept in the quarantine; the rest is cut, not lost silently
(the detail says so)."""


def rejection_to_json(rejection: Rejection) -> dict[str, object]:
    """The quarantine record as served by the API and written by replay.

    The payload is shown as text when it is UTF-8 (the normal case, even for bad JSON)
    and as base64 otherwise, so a binary blob is still inspectable.
    """
    try:
        payload: str = rejection.payload.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        payload = base64.b64encode(rejection.payload).decode("ascii")
        encoding = "base64"
    return {
        "reason": rejection.reason.value,
        "detail": rejection.detail,
        "topic": rejection.topic,
        "enterprise_id": rejection.enterprise_id,
        "device_id": rejection.device_id,
        "received_at": rejection.received_at,
        "payload": payload,
        "payload_encoding": encoding,
    }
