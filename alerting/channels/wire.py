"""The machine-readable payload on the wire: the same bytes for webhook and MQTT.

Both channels carry :attr:`Notification.payload` (key, reason, tier, receiver, texts
and the alerts' CONTRACT.md §4 objects) as compact UTF-8 JSON, so a receiver that
handles one handles the other.
"""

from __future__ import annotations

import orjson

from alerting.notification import DeliveryError, Notification


def payload_bytes(notification: Notification, what: str) -> bytes:
    """The payload as UTF-8 JSON.  A payload that cannot be serialised is a bug in what
    produced it, not a temporary failure, so it is not retryable."""
    try:
        return orjson.dumps(dict(notification.payload))
    except TypeError as exc:
        raise DeliveryError(f"{what}: payload is not JSON-serialisable: {exc}",
                            retryable=False) from exc
