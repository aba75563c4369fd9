"""Build a sending :class:`~alerting.notification.Channel` from its configuration.

The one place that reads secrets: every ``*_env`` field of the configuration names an
environment variable, read here at start-up so that a missing secret stops the service
with a clear message (naming the variable, never a value) instead of failing on the
first alert at night.  The shared resources a channel needs (the SMTP relay, the SMS
gateway, the MQTT publisher, the pooled HTTP client) are passed in, not created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import httpx

from alerting.channels.config import (
    ChannelConfig,
    DingTalkChannel,
    EmailChannel,
    MqttChannel,
    SmsChannel,
    SmsGateway,
    SmtpServer,
    WebhookChannel,
    WeComChannel,
    channel_name,
)
from alerting.channels.dingtalk import DingTalkSender
from alerting.channels.email import EmailSender
from alerting.channels.mqtt import MqttSender, Publisher
from alerting.channels.sms import SmsSender
from alerting.channels.webhook import WebhookSender
from alerting.channels.wecom import WeComSender
from alerting.notification import Channel


def build_channel(
    config: ChannelConfig, *, smtp: SmtpServer | None, sms_gateway: SmsGateway | None,
    mqtt_publish: Publisher | None, http: httpx.AsyncClient | None = None,
    env: Mapping[str, str] = os.environ,
) -> Channel:
    """The sender of ``config``.

    Raises ``ValueError`` when a secret variable named in the configuration is unset or
    empty, or when the channel needs a shared resource that was not given (an e-mail
    channel without ``smtp``, SMS without ``sms_gateway``, MQTT without a publisher).
    """
    what = f"{config.type} channel {channel_name(config)!r}"
    if isinstance(config, WebhookChannel):
        return WebhookSender(config, secret=_secret(env, config.secret_env, what), http=http)
    if isinstance(config, DingTalkChannel):
        return DingTalkSender(_robot_url(config, env, what),
                              secret=_secret(env, config.secret_env, what), http=http)
    if isinstance(config, WeComChannel):
        return WeComSender(_robot_url(config, env, what), http=http)
    if isinstance(config, EmailChannel):
        if smtp is None:
            raise ValueError(f"{what}: no smtp server is configured")
        if (smtp.username is None) != (smtp.password_env is None):
            raise ValueError(f"{what}: smtp username and password_env must be set together")
        return EmailSender(config, smtp,
                           password=_secret(env, smtp.password_env, f"{what} (smtp)"))
    if isinstance(config, SmsChannel):
        if sms_gateway is None:
            raise ValueError(f"{what}: no sms_gateway is configured")
        return SmsSender(config, sms_gateway, http=http,
                         token=_secret(env, sms_gateway.token_env, f"{what} (sms_gateway)"))
    if isinstance(config, MqttChannel):
        if mqtt_publish is None:
            raise ValueError(f"{what}: no MQTT publisher was given")
        return MqttSender(config, mqtt_publish)
    raise ValueError(f"unknown channel type {type(config).__name__}")


_Robot = TypeVar("_Robot", DingTalkChannel, WeComChannel)


def _robot_url(config: _Robot, env: Mapping[str, str], what: str) -> _Robot:
    """The robot's configuration with its URL read from ``url_env`` when it names one."""
    if config.url_env is None:
        return config
    return config.model_copy(update={"url": _secret(env, config.url_env, what),
                                     "url_env": None})


def _secret(env: Mapping[str, str], name: str | None, what: str) -> str | None:
    """The value of the variable ``name``; ``None`` when the configuration names none."""
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise ValueError(f"{what}: environment variable {name} is not set "
                         "(it must hold the secret)")
    return value
