"""Configuration of notification channels, as written in the routing YAML.

A receiver (a person or a duty desk, see :mod:`alerting.routing`) lists its channels;
each entry is one of the models below, told apart by ``type``.  Secrets (HMAC keys,
robot signing secrets, SMTP and SMS passwords) are never written in the YAML: a field
ending in ``_env`` names the environment variable that holds them, so the routing file
can be committed and shown, and nothing secret reaches a log or an error message.

Server-wide settings that many receivers share (the SMTP relay, the SMS gateway) are
:class:`SmtpServer` and :class:`SmsGateway`, top-level sections of the same file.
Text fields that name a destination may use ``{enterprise_id}`` to reach the
enterprise the alert is about (the MQTT topic's default does).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    """Unknown keys are an error (a typo in a routing file must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Strict):
    """JSON POST of the notification payload, HMAC-SHA256 signed when ``secret_env`` is
    set."""

    type: Literal["webhook"]
    name: str | None = None
    url: str
    secret_env: Annotated[str | None, Field(pattern=_ENV_NAME)] = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class EmailChannel(_Strict):
    """Plain-text e-mail through the file's ``smtp`` server."""

    type: Literal["email"]
    name: str | None = None
    to: Annotated[list[str], Field(min_length=1)]


class _RobotUrl(_Strict):
    """A robot's webhook URL carries its credential (``access_token``, ``key``) in the
    query, so it may come from the environment (``url_env``) instead of the file."""

    url: str | None = None
    url_env: Annotated[str | None, Field(pattern=_ENV_NAME)] = None

    @model_validator(mode="after")
    def _one_url(self) -> _RobotUrl:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class DingTalkChannel(_RobotUrl):
    """DingTalk custom robot (自定义机器人): Markdown message to its webhook URL (with
    ``access_token``), signed with the robot's secret when ``secret_env`` is set."""

    type: Literal["dingtalk"]
    name: str | None = None
    secret_env: Annotated[str | None, Field(pattern=_ENV_NAME)] = None
    at_mobiles: list[str] = Field(default_factory=list)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class WeComChannel(_RobotUrl):
    """WeCom group robot (企业微信群机器人): Markdown message to its webhook URL (with
    ``key``)."""

    type: Literal["wecom"]
    name: str | None = None
    mentioned_mobiles: list[str] = Field(default_factory=list)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class MqttChannel(_Strict):
    """The notification payload published back to the enterprise's screen."""

    type: Literal["mqtt"]
    name: str | None = None
    topic: str = "rw/v1/{enterprise_id}/alerts"
    qos: Annotated[int, Field(ge=0, le=2)] = 1
    retain: bool = False


class SmsChannel(_Strict):
    """Short text through the file's ``sms_gateway``."""

    type: Literal["sms"]
    name: str | None = None
    to: Annotated[list[Annotated[str, Field(pattern=r"^\+?[0-9]{5,20}$")]],
                  Field(min_length=1)]


ChannelConfig = Annotated[
    WebhookChannel | EmailChannel | DingTalkChannel | WeComChannel | MqttChannel
    | SmsChannel,
    Field(discriminator="type"),
]
"""One channel of a receiver, chosen by its ``type``."""


def channel_name(channel: ChannelConfig) -> str:
    """The channel's ``name``, or its ``type`` when unnamed (unique names within a
    receiver are checked by the routing loader)."""
    return channel.name or channel.type


class SmtpServer(_Strict):
    """The relay every e-mail channel sends through."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    sender: str = "riskwatch@localhost"
    """``From:`` address."""
    username: str | None = None
    password_env: Annotated[str | None, Field(pattern=_ENV_NAME)] = None
    security: Literal["none", "starttls", "tls"] = "none"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0


class SmsGateway(_Strict):
    """A provider's HTTP API for SMS, described rather than coded: the request is
    ``method url`` with a JSON body in which every string is a template over
    ``{phone}``, ``{text}`` and ``{key}`` (the idempotency key)."""

    url: str
    method: Literal["POST", "PUT"] = "POST"
    body: dict[str, str] = Field(default_factory=lambda: {"phone": "{phone}",
                                                          "text": "{text}"})
    token_env: Annotated[str | None, Field(pattern=_ENV_NAME)] = None
    """Sent as ``Authorization: Bearer <token>`` when set."""
    max_chars: Annotated[int, Field(ge=20, le=1000)] = 300
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
