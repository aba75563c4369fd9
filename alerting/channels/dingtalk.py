"""DingTalk custom robot (钉钉自定义机器人): a Markdown message to a group chat.

The robot's webhook URL carries its ``access_token``; a robot with the "加签" security
setting also needs ``timestamp`` (Unix milliseconds) and ``sign`` query parameters,
where ``sign`` is the base64 HMAC-SHA256, keyed by the robot's secret, of
``"<timestamp>\\n<secret>"`` (URL-encoded in the query).  DingTalk rejects a timestamp
more than an hour off, so the signature is made per attempt, never stored.

The robot answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` on success and a
non-zero ``errcode`` otherwise.  Only throttling and "system busy" are worth retrying:

- ``130101`` "send too fast, exceed 20 times per minute" (and ``410100``, the same
  limit in DingTalk's newer error table): a robot may post 20 messages a minute and is
  throttled for 10 minutes beyond that, hence the 600 s retry hint;
- ``-1`` system busy.

Everything else (``310000`` keyword, signature or IP whitelist mismatch, ``300001``
/``400101`` bad token, ``400102`` robot disabled...) needs a person to fix the robot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import orjson

from alerting.channels.config import DingTalkChannel, channel_name
from alerting.channels.http_delivery import check_url, endpoint_label, robot_errcode, send_http
from alerting.notification import Notification

RATE_LIMIT_RETRY_S = 600.0
"""DingTalk throttles a robot for 10 minutes after more than 20 messages a minute."""

TEMPORARY_ERRCODES: Mapping[int, float | None] = {
    130101: RATE_LIMIT_RETRY_S, 410100: RATE_LIMIT_RETRY_S, -1: None}
"""Robot error codes worth retrying, with their retry hint in seconds."""


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """The robot signature: base64 of HMAC-SHA256 keyed by ``secret`` over
    ``"<timestamp_ms>\\n<secret>"`` (not yet URL-encoded; the query encoding does it).

    >>> dingtalk_sign("SECabc", "1795478400000")
    'fri8xrRdXKy2MugzaUfgU0CyGO9/Lz/JyU1gsZN1VaM='
    """
    key = secret.encode("utf-8")
    mac = hmac.new(key, f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def dingtalk_message(notification: Notification, at_mobiles: Sequence[str]) -> dict[str, Any]:
    """The robot's ``markdown`` message: the subject as title (the chat preview) and as
    heading, then the body; mentioned phones must also appear in the text as
    ``@<phone>`` for DingTalk to highlight them."""
    text = f"#### {notification.subject}\n\n{notification.body}"
    if at_mobiles:
        text += "\n\n" + " ".join(f"@{mobile}" for mobile in at_mobiles)
    return {
        "msgtype": "markdown",
        "markdown": {"title": notification.subject, "text": text},
        "at": {"atMobiles": list(at_mobiles), "isAtAll": False},
    }


class DingTalkSender:
    """Sends notifications of one :class:`~alerting.channels.config.DingTalkChannel`.

    ``secret`` is the value of the channel's ``secret_env`` variable (the factory reads
    it); ``clock`` gives Unix seconds.
    """

    __slots__ = ("_clock", "_config", "_http", "_secret", "_url", "_what")

    def __init__(self, config: DingTalkChannel, *, secret: str | None = None,
                 http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        name = f"dingtalk {channel_name(config)!r}"
        if config.url is None:
            raise ValueError(f"{name}: the webhook URL was not resolved (url_env)")
        check_url(config.url, name)
        self._what = f"{name} ({endpoint_label(config.url)})"
        if config.secret_env is not None and not secret:
            raise ValueError(f"{self._what}: secret_env {config.secret_env} is set but no "
                             "secret was given")
        self._config = config
        self._url: str = config.url
        self._secret = secret
        self._http = http
        self._clock = clock

    @property
    def kind(self) -> str:
        return "dingtalk"

    async def send(self, notification: Notification) -> None:
        """Post the message once; :class:`DeliveryError` says whether to retry."""
        body = orjson.dumps(dingtalk_message(notification, self._config.at_mobiles))
        params: dict[str, str] | None = None
        if self._secret:
            timestamp = str(int(self._clock() * 1000))
            params = {"timestamp": timestamp, "sign": dingtalk_sign(self._secret, timestamp)}
        response = await send_http(
            self._http, "POST", self._url, content=body, params=params,
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Idempotency-Key": notification.key},
            what=self._what, timeout_s=self._config.timeout_s, clock=self._clock)
        robot_errcode(response, what=self._what, temporary=TEMPORARY_ERRCODES)

    def __repr__(self) -> str:
        return f"DingTalkSender({self._what}, signed={self._secret is not None})"
