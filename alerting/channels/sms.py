"""SMS through the provider's HTTP gateway, described in configuration.

Providers differ in field names, so the request is a template
(:class:`~alerting.channels.config.SmsGateway`): every string of its JSON body may use
``{phone}``, ``{text}`` and ``{key}``.  One request goes out per phone number, each
with its own idempotency key (the notification key and a digest of the number), so a
provider that deduplicates by key never swallows the second recipient, and a retry
after a partial failure does not text the first recipient twice.

The text is :func:`alerting.messages.short_text` bounded by ``max_chars``.  HTTP
statuses are classified like every HTTP channel (:mod:`.http_delivery`).  A failure for
one number does not stop the others; the error raised afterwards is retryable if any
failure was, since a retry repeats only what the provider has not already accepted.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping

import httpx
import orjson

from alerting.channels.config import SmsChannel, SmsGateway, channel_name
from alerting.channels.http_delivery import check_url, endpoint_label, send_http
from alerting.messages import short_text
from alerting.notification import DeliveryError, Notification

_SLOT = re.compile(r"\{(phone|text|key)\}")


def phone_key(key: str, phone: str) -> str:
    """The idempotency key of ``key`` sent to ``phone``: same for every retry, different
    per number, and without the number itself (keys end up in provider logs).

    >>> phone_key("89e75a3d03b448d0e2622fae01f97191", "+8613800138000")
    '89e75a3d03b448d0e2622fae01f97191-ec61f3c6'
    """
    return f"{key}-{hashlib.sha256(phone.encode('utf-8')).hexdigest()[:8]}"


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{phone}``, ``{text}`` and ``{key}`` in one pass, leaving any other
    braces alone: an alert text containing ``{key}`` is not substituted again, and a
    provider's own ``{...}`` placeholders survive.

    >>> fill_template('{"to":"{phone}"} {text} {other}', {"phone": "1", "text": "{key}",
    ...                                                   "key": "k"})
    '{"to":"1"} {key} {other}'
    """
    return _SLOT.sub(lambda match: values[match.group(1)], template)


def mask_phone(phone: str) -> str:
    """A phone number as it may appear in an error: ``138****8000`` (personal data).

    >>> mask_phone("+8613800138000"), mask_phone("12345")
    ('+86138****8000', '1***5')
    """
    if len(phone) >= 9:
        return phone[:-8] + "****" + phone[-4:]
    return phone[:1] + "*" * (len(phone) - 2) + phone[-1:]


class SmsSender:
    """Sends notifications of one :class:`~alerting.channels.config.SmsChannel` through
    ``gateway``.

    ``token`` is the value of the gateway's ``token_env`` variable (the factory reads
    it), sent as ``Authorization: Bearer``.
    """

    __slots__ = ("_clock", "_config", "_gateway", "_http", "_token", "_what")

    def __init__(self, config: SmsChannel, gateway: SmsGateway, *, token: str | None = None,
                 http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        name = f"sms {channel_name(config)!r}"
        check_url(gateway.url, name)
        self._what = f"{name} ({endpoint_label(gateway.url)})"
        if gateway.token_env is not None and not token:
            raise ValueError(f"{self._what}: token_env {gateway.token_env} is set but no "
                             "token was given")
        self._config = config
        self._gateway = gateway
        self._token = token
        self._http = http
        self._clock = clock

    @property
    def kind(self) -> str:
        return "sms"

    def request_body(self, notification: Notification, phone: str) -> dict[str, str]:
        """The gateway's JSON body for ``phone``."""
        values = {"phone": phone, "text": short_text(notification, self._gateway.max_chars),
                  "key": phone_key(notification.key, phone)}
        return {name: fill_template(template, values)
                for name, template in self._gateway.body.items()}

    async def send(self, notification: Notification) -> None:
        """One request per phone number; raise once, after trying them all."""
        errors: list[DeliveryError] = []
        for phone in self._config.to:
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Idempotency-Key": phone_key(notification.key, phone)}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                await send_http(
                    self._http, self._gateway.method, self._gateway.url,
                    content=orjson.dumps(self.request_body(notification, phone)),
                    headers=headers, what=f"{self._what} to {mask_phone(phone)}",
                    timeout_s=self._gateway.timeout_s, clock=self._clock)
            except DeliveryError as exc:
                errors.append(exc)
        if errors:
            raise _combined(errors, len(self._config.to))

    def __repr__(self) -> str:
        return f"SmsSender({self._what}, to={len(self._config.to)} numbers)"


def _combined(errors: list[DeliveryError], total: int) -> DeliveryError:
    if len(errors) == 1 and total == 1:
        return errors[0]
    hints = [e.retry_after for e in errors if e.retryable and e.retry_after is not None]
    return DeliveryError(
        f"{len(errors)} of {total} SMS failed: " + "; ".join(str(e) for e in errors),
        retryable=any(e.retryable for e in errors),
        retry_after=max(hints) if hints else None)
