"""WeCom group robot (企业微信群机器人): a Markdown message to a group chat.

The robot's webhook URL carries its ``key``; there is no signing.  The robot answers
``{"errcode": 0, "errmsg": "ok"}`` on success.  Retried: ``45009`` "api freq out of
limit" (a robot may post 20 messages a minute; the hint is one minute) and ``-1``
system busy.  Everything else (``93000`` invalid webhook key, a malformed message...)
needs a person.

WeCom limits Markdown ``content`` to 4096 bytes of UTF-8, so a long digest is cut at a
character boundary with an ellipsis instead of being refused.  WeCom documents
@-mentions by phone for ``text`` messages only; the configured phones are passed as
``mentioned_mobile_list`` in the Markdown message too, which WeCom may ignore.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import orjson

from alerting.channels.config import WeComChannel, channel_name
from alerting.channels.http_delivery import check_url, endpoint_label, robot_errcode, send_http
from alerting.notification import Notification

MARKDOWN_MAX_BYTES = 4096
"""WeCom's limit on ``markdown.content``, in bytes of UTF-8."""

RATE_LIMIT_RETRY_S = 60.0
"""WeCom's robot limit is 20 messages per rolling minute."""

TEMPORARY_ERRCODES: Mapping[int, float | None] = {45009: RATE_LIMIT_RETRY_S, -1: None}
"""Robot error codes worth retrying, with their retry hint in seconds."""


def truncate_utf8(text: str, max_bytes: int, ellipsis: str = "…") -> str:
    """``text`` cut so that its UTF-8 encoding fits ``max_bytes``, never inside a
    character, ending in ``ellipsis`` when something was cut.

    >>> truncate_utf8("压差超上限", 10)
    '压差…'
    >>> len(truncate_utf8("压差超上限", 10).encode())
    9
    >>> truncate_utf8("ok", 10)
    'ok'
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(ellipsis.encode("utf-8"))
    if room <= 0:
        return ""
    # errors="ignore" drops the partial character a byte cut may leave at the end.
    return encoded[:room].decode("utf-8", errors="ignore") + ellipsis


def wecom_message(notification: Notification, mentioned_mobiles: Sequence[str]
                  ) -> dict[str, Any]:
    """The robot's ``markdown`` message: subject as heading, then the body, at most
    :data:`MARKDOWN_MAX_BYTES`."""
    content = truncate_utf8(f"### {notification.subject}\n\n{notification.body}",
                            MARKDOWN_MAX_BYTES)
    markdown: dict[str, Any] = {"content": content}
    if mentioned_mobiles:
        markdown["mentioned_mobile_list"] = list(mentioned_mobiles)
    return {"msgtype": "markdown", "markdown": markdown}


class WeComSender:
    """Sends notifications of one :class:`~alerting.channels.config.WeComChannel`."""

    __slots__ = ("_clock", "_config", "_http", "_url", "_what")

    def __init__(self, config: WeComChannel, *, http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        name = f"wecom {channel_name(config)!r}"
        if config.url is None:
            raise ValueError(f"{name}: the webhook URL was not resolved (url_env)")
        check_url(config.url, name)
        self._what = f"{name} ({endpoint_label(config.url)})"
        self._config = config
        self._url: str = config.url
        self._http = http
        self._clock = clock

    @property
    def kind(self) -> str:
        return "wecom"

    async def send(self, notification: Notification) -> None:
        """Post the message once; :class:`DeliveryError` says whether to retry."""
        body = orjson.dumps(wecom_message(notification, self._config.mentioned_mobiles))
        response = await send_http(
            self._http, "POST", self._url, content=body,
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Idempotency-Key": notification.key},
            what=self._what, timeout_s=self._config.timeout_s, clock=self._clock)
        robot_errcode(response, what=self._what, temporary=TEMPORARY_ERRCODES)

    def __repr__(self) -> str:
        return f"WeComSender({self._what})"
