"""The senders of every channel the routing file names, built once at start-up.

A missing secret or a channel that needs a resource the service does not have (e-mail
without an ``smtp`` section) must stop the service at start-up with the receiver and
channel named, not fail the first warning at 3 a.m.; so every sender is built here,
before anything is received.  The dispatcher then finds a sender by (receiver, channel)
name, the two names every notification carries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from alerting.channels.config import channel_name
from alerting.channels.factory import build_channel
from alerting.channels.mqtt import Publisher
from alerting.notification import Channel
from alerting.routing import RoutingConfig


class ChannelSetupError(ValueError):
    """A channel of the routing file cannot be built; the message names which and why."""


class ChannelBook:
    """``book(receiver, channel)`` -> the sender, or ``None`` for names it does not know
    (a notification written by an older routing file; the dispatcher gives it up)."""

    def __init__(self, config: RoutingConfig, *, publish: Publisher | None,
                 http: httpx.AsyncClient | None = None,
                 env: Mapping[str, str] = os.environ) -> None:
        self._senders: dict[tuple[str, str], Channel] = {}
        problems = []
        for name, receiver in config.receivers.items():
            for channel in receiver.channels:
                try:
                    sender = build_channel(channel, smtp=config.smtp,
                                           sms_gateway=config.sms_gateway,
                                           mqtt_publish=publish, http=http, env=env)
                except ValueError as exc:
                    problems.append(f"receiver {name!r}, channel "
                                    f"{channel_name(channel)!r}: {exc}")
                    continue
                self._senders[(name, channel_name(channel))] = sender
        if problems:
            raise ChannelSetupError("; ".join(problems))

    def __call__(self, receiver: str, channel: str) -> Channel | None:
        return self._senders.get((receiver, channel))

    def __len__(self) -> int:
        return len(self._senders)
