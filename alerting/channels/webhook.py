"""Generic webhook: the notification payload as a signed JSON POST.

For integrators' own systems (a provincial platform, a duty-desk ticket system).  The
body is the notification payload (key, reason, tier, receiver, texts and the alerts'
CONTRACT.md §4 objects), sent with

- ``Idempotency-Key``: the notification key, identical on every retry, so the receiver
  can drop a copy re-sent after a crash between "sent" and "marked sent";
- ``X-Riskwatch-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Riskwatch-Signature: sha256=<hex>`` when the channel has a secret: HMAC-SHA256
  keyed by the secret over ``"<timestamp>.<raw body>"``.  Signing the timestamp with the
  body lets the receiver reject replays of an old request (docs/notifications.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from alerting.channels.config import WebhookChannel, channel_name
from alerting.channels.http_delivery import check_url, endpoint_label, send_http
from alerting.channels.wire import payload_bytes
from alerting.notification import Notification


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Riskwatch-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 keyed by
    ``secret`` (UTF-8) over ``timestamp``, a dot and the raw body.

    >>> webhook_signature("s3cret", "1795478400", b'{"key":"k"}')[:15]
    'sha256=2232f82c'
    """
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """Sends notifications of one :class:`~alerting.channels.config.WebhookChannel`.

    ``secret`` is the value of the channel's ``secret_env`` variable (the factory reads
    it); ``http`` the service's shared client; ``clock`` gives Unix seconds (tests fix
    it to check signatures).
    """

    __slots__ = ("_clock", "_config", "_http", "_secret", "_what")

    def __init__(self, config: WebhookChannel, *, secret: str | None = None,
                 http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        name = f"webhook {channel_name(config)!r}"
        check_url(config.url, name)
        self._what = f"{name} ({endpoint_label(config.url)})"
        if config.secret_env is not None and not secret:
            raise ValueError(f"{self._what}: secret_env {config.secret_env} is set but no "
                             "secret was given")
        self._config = config
        self._secret = secret
        self._http = http
        self._clock = clock

    @property
    def kind(self) -> str:
        return "webhook"

    async def send(self, notification: Notification) -> None:
        """POST the payload once; :class:`DeliveryError` says whether to retry."""
        body = payload_bytes(notification, self._what)
        timestamp = str(int(self._clock()))
        headers = httpx.Headers(self._config.headers)
        headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Idempotency-Key"] = notification.key
        headers["X-Riskwatch-Timestamp"] = timestamp
        if self._secret:
            headers["X-Riskwatch-Signature"] = webhook_signature(self._secret, timestamp, body)
        await send_http(self._http, "POST", self._config.url, content=body, headers=headers,
                        what=self._what, timeout_s=self._config.timeout_s, clock=self._clock)

    def __repr__(self) -> str:
        return f"WebhookSender({self._what}, signed={self._secret is not None})"
