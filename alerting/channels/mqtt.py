"""MQTT back to the enterprise: the notification payload on its alerts topic.

Enterprises show warnings on a screen in the plant; the screen subscribes to
``rw/v1/{enterprise_id}/alerts`` on the same broker its devices publish to.  The channel
does not own a connection: the gateway hands in a :data:`Publisher` bound to its broker
client, so notifications ride the connection (and the TLS and ACL setup) that ingest
already maintains, and tests can hand in a client of their own.

Any publish failure is retried: the broker being away is the usual cause, and the
payload's ``key`` lets the screen drop a copy it has already shown.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from alerting.channels.config import MqttChannel, channel_name
from alerting.channels.wire import payload_bytes
from alerting.notification import DeliveryError, Notification

Publisher = Callable[[str, bytes, int, bool], Awaitable[None]]
"""``publish(topic, payload, qos, retain)``, e.g. ``lambda t, p, q, r:
client.publish(t, p, qos=q, retain=r)`` over an ``aiomqtt.Client``."""

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""CONTRACT.md §1 ids; anything else could inject topic levels or wildcards."""


class MqttSender:
    """Publishes notifications of one :class:`~alerting.channels.config.MqttChannel`."""

    __slots__ = ("_config", "_publish", "_what")

    def __init__(self, config: MqttChannel, publish: Publisher) -> None:
        self._what = f"mqtt {channel_name(config)!r}"
        try:
            config.topic.format(enterprise_id="E0")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"{self._what}: topic {config.topic!r} may only use "
                             "{enterprise_id}") from None
        self._config = config
        self._publish = publish

    @property
    def kind(self) -> str:
        return "mqtt"

    def topic(self, notification: Notification) -> str:
        """The topic for ``notification``; refuses an enterprise id outside the contract."""
        if not _ID.fullmatch(notification.enterprise_id):
            raise DeliveryError(f"{self._what}: enterprise id {notification.enterprise_id!r} "
                                "is not a valid topic level", retryable=False)
        return self._config.topic.format(enterprise_id=notification.enterprise_id)

    async def send(self, notification: Notification) -> None:
        """Publish the payload once; every publish failure is retryable."""
        topic = self.topic(notification)
        payload = payload_bytes(notification, self._what)
        try:
            await self._publish(topic, payload, self._config.qos, self._config.retain)
        except Exception as exc:  # the publisher is opaque: any failure is the broker's
            raise DeliveryError(f"{self._what}: publish to {topic} failed: "
                                f"{type(exc).__name__}: {exc}", retryable=True) from exc

    def __repr__(self) -> str:
        return f"MqttSender({self._what}, topic={self._config.topic!r})"
