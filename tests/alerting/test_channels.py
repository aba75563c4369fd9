"""Notification channels against real servers on loopback.

- HTTP (webhook, DingTalk, WeCom, SMS gateway): a Starlette app under uvicorn on an
  ephemeral port, recording every request and answering as told (fail the next N with
  a status, answer a robot ``errcode``, be slow).  Signatures are checked on the
  receiver's side with hmac written out here, not with the code under test.
- E-mail: an aiosmtpd server (``tests/smtp_server.py``); the received bytes are parsed
  back with the standard library to see the Chinese subject and body as a mail client
  would.
- MQTT: the machine's Mosquitto on 127.0.0.1:1883 (``mosquitto`` fixture), with aiomqtt
  on both sides.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerting.channels.config import (
    DingTalkChannel,
    EmailChannel,
    MqttChannel,
    SmsChannel,
    SmsGateway,
    SmtpServer,
    WebhookChannel,
    WeComChannel,
)
from alerting.channels.dingtalk import DingTalkSender
from alerting.channels.factory import build_channel
from alerting.channels.http_delivery import parse_retry_after
from alerting.channels.mqtt import MqttSender
from alerting.channels.sms import phone_key
from alerting.channels.webhook import WebhookSender
from alerting.channels.wecom import MARKDOWN_MAX_BYTES
from alerting.manager import AlertManager
from alerting.messages import build_notification, short_text
from alerting.models import Condition, Subject
from alerting.notification import Channel, DeliveryError, Notification, Reason, Tier
from tests.helpers import free_port
from tests.http_receiver import Receiver, running_receiver
from tests.smtp_server import Mailbox, parse, running_smtp

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
NOW = 1_795_478_460.0  # the senders' clock in tests: fixed, so signatures can be checked
WEBHOOK_SECRET = "whsec-Zq8r7Kx2"
DINGTALK_SECRET = "SEC3f1e0c9b8a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0"
SMS_TOKEN = "sms-token-Lp4w9Nq1"
SMTP_PASSWORD = "smtp-pass-Hv6t3Yb8"
SECRETS = (WEBHOOK_SECRET, DINGTALK_SECRET, SMS_TOKEN, SMTP_PASSWORD)
ENV = {"RW_WEBHOOK_SECRET": WEBHOOK_SECRET, "RW_DINGTALK_SECRET": DINGTALK_SECRET,
       "RW_SMS_TOKEN": SMS_TOKEN, "RW_SMTP_PASSWORD": SMTP_PASSWORD}


def clock() -> float:
    return NOW


# --- the notification sent in these tests ---------------------------------------------------

def notification(enterprise_id: str = "E370829001", reason: Reason = "firing",
                 tier: Tier = "enterprise", channel: str = "ops") -> Notification:
    subject = Subject(
        enterprise_id=enterprise_id, enterprise_name="某某金属制品有限公司", industry="dust",
        region=("370000", "370800", "370829", "370829101"), timezone="Asia/Shanghai",
        device_id="DC1", device_kind="dust_collector", point="dp",
        point_kind="differential_pressure", unit="Pa")
    [alert] = AlertManager().apply([Condition(
        kind="threshold", subject=subject, active=True, level=2, started_at=T0, at=T0 + 30,
        evidence={"rule": "threshold", "band": "hihi", "value": 2150.0, "limit": 2000.0},
        detail={"band": "hihi", "value": 2150.0, "limit": 2000.0})])
    return build_notification([alert], receiver="E370829001-duty", tier=tier,
                              channel=channel, reason=reason, created_at=T0 + 60)


# --- the HTTP receiver ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def http_receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(http_receiver: Receiver) -> Receiver:
    http_receiver.reset()
    return http_receiver


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def closed_port_url(path: str = "/") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


async def failure(channel: Channel, message: Notification | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message or notification())
    return caught.value


# --- webhook --------------------------------------------------------------------------------

def webhook(receiver: Receiver, *, secret_env: str | None = "RW_WEBHOOK_SECRET",
            **extra: Any) -> WebhookChannel:
    return WebhookChannel(type="webhook", name="ops", url=receiver.url("/hook"),
                          secret_env=secret_env, **extra)


async def test_webhook_posts_the_payload_signed_with_idempotency_key(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    config = webhook(receiver, headers={"X-Tenant": "370829", "content-type": "text/plain"})
    channel = WebhookSender(config, secret=WEBHOOK_SECRET, http=http, clock=clock)
    message = notification()

    await channel.send(message)

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["idempotency-key"] == message.key
    assert request.headers["x-tenant"] == "370829"
    timestamp = request.headers["x-riskwatch-timestamp"]
    assert timestamp == str(int(NOW))
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + request.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-riskwatch-signature"], f"sha256={expected}")
    payload = request.json()
    assert payload["key"] == message.key
    assert payload["subject"].startswith("【橙色预警】")
    assert payload["alerts"][0]["enterprise_id"] == "E370829001"
    assert payload == orjson.loads(orjson.dumps(dict(message.payload)))


async def test_webhook_without_secret_is_unsigned_and_retries_keep_the_key(
        receiver: Receiver) -> None:
    channel = build_channel(webhook(receiver, secret_env=None), smtp=None, sms_gateway=None,
                            mqtt_publish=None)  # no shared client: one per request
    message = notification()

    await channel.send(message)
    await channel.send(message)

    assert [r.headers["idempotency-key"] for r in receiver.requests] == [message.key] * 2
    assert all("x-riskwatch-signature" not in r.headers for r in receiver.requests)


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (500, {}, True, None),
        (502, {}, True, None),
        (503, {"Retry-After": "7"}, True, 7.0),
        (429, {"Retry-After": "120"}, True, 120.0),
        (429, {"Retry-After": formatdate(NOW + 30, usegmt=True)}, True, 30.0),
        (408, {}, True, None),
        (400, {}, False, None),
        (401, {}, False, None),
        (404, {"Retry-After": "5"}, False, None),
        (410, {}, False, None),
    ],
)
async def test_webhook_classifies_http_errors(
        receiver: Receiver, http: httpx.AsyncClient, status: int, headers: dict[str, str],
        retryable: bool, retry_after: float | None) -> None:
    channel = WebhookSender(webhook(receiver), secret=WEBHOOK_SECRET, http=http, clock=clock)
    receiver.fail_next(1, status, headers)

    error = await failure(channel)

    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert f"HTTP {status}" in str(error)
    assert "webhook 'ops' (127.0.0.1:" in str(error)


async def test_webhook_transport_errors_are_retryable(receiver: Receiver,
                                                      http: httpx.AsyncClient) -> None:
    refused = build_channel(
        WebhookChannel(type="webhook", url=closed_port_url("/hook")),
        smtp=None, sms_gateway=None, mqtt_publish=None, http=http)
    slow = build_channel(webhook(receiver, secret_env=None, timeout_s=0.2), smtp=None,
                         sms_gateway=None, mqtt_publish=None, http=http)
    receiver.slow_next(1.0)

    refused_error = await failure(refused)
    timeout_error = await failure(slow)

    assert refused_error.retryable
    assert refused_error.retry_after is None
    assert "ConnectError" in str(refused_error)
    assert timeout_error.retryable
    assert "Timeout" in str(timeout_error)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("0", NOW) == 0.0
    assert parse_retry_after(" 30 ", NOW) == 30.0
    assert parse_retry_after(formatdate(NOW + 90, usegmt=True), NOW) == 90.0
    assert parse_retry_after(formatdate(NOW - 90, usegmt=True), NOW) == 0.0
    assert parse_retry_after("-5", NOW) is None
    assert parse_retry_after("tomorrow", NOW) is None
    assert parse_retry_after(None, NOW) is None


# --- DingTalk -------------------------------------------------------------------------------

def dingtalk(receiver: Receiver, secret_env: str | None = "RW_DINGTALK_SECRET"
             ) -> DingTalkChannel:
    return DingTalkChannel(type="dingtalk", name="duty-group",
                           url=receiver.url("/robot/send?access_token=tok-abc123"),
                           secret_env=secret_env, at_mobiles=["13800138000"])


async def test_dingtalk_posts_markdown_signed_as_dingtalk_checks_it(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = DingTalkSender(dingtalk(receiver), secret=DINGTALK_SECRET, http=http, clock=clock)
    message = notification()

    await channel.send(message)

    [request] = receiver.requests
    params = request.params()
    assert params["access_token"] == "tok-abc123"
    assert params["timestamp"] == str(int(NOW * 1000))
    # The receiver's check, as DingTalk documents it: base64(HMAC-SHA256(secret,
    # "timestamp\nsecret")), URL-encoded in the query.
    string_to_sign = f"{params['timestamp']}\n{DINGTALK_SECRET}".encode()
    expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), string_to_sign,
                                         hashlib.sha256).digest()).decode()
    assert params["sign"] == expected
    assert "+" not in request.query  # a raw '+' would decode to a space
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == message.subject
    assert body["markdown"]["text"].startswith(f"#### {message.subject}\n\n- 企业：")
    assert body["markdown"]["text"].endswith("\n\n@13800138000")
    assert body["at"] == {"atMobiles": ["13800138000"], "isAtAll": False}


async def test_dingtalk_without_secret_sends_no_signature(receiver: Receiver) -> None:
    channel = build_channel(dingtalk(receiver, secret_env=None), smtp=None, sms_gateway=None,
                            mqtt_publish=None)

    await channel.send(notification())

    assert set(receiver.requests[0].params()) == {"access_token"}


async def test_robot_urls_with_their_credential_come_from_the_environment(
        receiver: Receiver) -> None:
    url = receiver.url("/robot/send?access_token=tok-from-env")
    config = DingTalkChannel(type="dingtalk", url_env="RW_DINGTALK_URL")
    channel = build_channel(config, smtp=None, sms_gateway=None, mqtt_publish=None,
                            env={"RW_DINGTALK_URL": url})

    await channel.send(notification())

    assert receiver.requests[0].params() == {"access_token": "tok-from-env"}
    assert "tok-from-env" not in repr(channel)
    with pytest.raises(ValueError, match="RW_WECOM_URL") as missing:
        build_channel(WeComChannel(type="wecom", url_env="RW_WECOM_URL"), smtp=None,
                      sms_gateway=None, mqtt_publish=None, env={})
    assert "http" not in str(missing.value)
    with pytest.raises(ValueError, match="exactly one of url and url_env"):
        WeComChannel(type="wecom", url="http://127.0.0.1/x", url_env="RW_WECOM_URL")


@pytest.mark.parametrize(
    ("errcode", "retryable", "retry_after"),
    [
        (130101, True, 600.0),   # send too fast, exceed 20 times per minute
        (410100, True, 600.0),   # the same throttle in DingTalk's newer error table
        (-1, True, None),        # system busy
        (310000, False, None),   # keywords / sign / IP whitelist mismatch
        (300001, False, None),   # token does not exist
        (400102, False, None),   # robot disabled
    ],
)
async def test_dingtalk_classifies_robot_errcodes(
        receiver: Receiver, http: httpx.AsyncClient, errcode: int, retryable: bool,
        retry_after: float | None) -> None:
    channel = DingTalkSender(dingtalk(receiver), secret=DINGTALK_SECRET, http=http, clock=clock)
    receiver.errcode_next(1, errcode, "robot says no")

    error = await failure(channel)

    assert (error.retryable, error.retry_after) == (retryable, retry_after)
    assert f"errcode {errcode} robot says no" in str(error)


async def test_dingtalk_http_errors_and_garbage_are_classified_like_webhooks(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = DingTalkSender(dingtalk(receiver), secret=DINGTALK_SECRET, http=http, clock=clock)

    receiver.fail_next(1, 503, {"Retry-After": "3"})
    busy = await failure(channel)
    receiver.fail_next(1, 403)
    forbidden = await failure(channel)
    receiver.fail_next(1, 200)  # 200 with "{}": no errcode
    unreadable = await failure(channel)

    assert (busy.retryable, busy.retry_after) == (True, 3.0)
    assert forbidden.retryable is False
    assert unreadable.retryable is True
    assert all("tok-abc123" not in str(e) for e in (busy, forbidden, unreadable))


# --- WeCom ----------------------------------------------------------------------------------

def wecom(receiver: Receiver) -> WeComChannel:
    return WeComChannel(type="wecom", name="wecom-duty",
                        url=receiver.url("/cgi-bin/webhook/send?key=wk-0f9e8d"),
                        mentioned_mobiles=["13900139000"])


async def test_wecom_posts_markdown_content(receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = build_channel(wecom(receiver), smtp=None, sms_gateway=None, mqtt_publish=None,
                            http=http)
    message = notification()

    await channel.send(message)

    [request] = receiver.requests
    assert request.params() == {"key": "wk-0f9e8d"}
    assert request.headers["idempotency-key"] == message.key
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"] == f"### {message.subject}\n\n{message.body}"
    assert body["markdown"]["mentioned_mobile_list"] == ["13900139000"]


async def test_wecom_cuts_long_content_at_a_character_boundary(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = build_channel(wecom(receiver), smtp=None, sms_gateway=None, mqtt_publish=None,
                            http=http)
    long = replace(notification(), body="压差超上限。" * 1000)  # 18 000 bytes of UTF-8

    await channel.send(long)

    content = receiver.requests[0].json()["markdown"]["content"]
    encoded = content.encode("utf-8")
    assert MARKDOWN_MAX_BYTES - 4 < len(encoded) <= MARKDOWN_MAX_BYTES
    assert content.endswith("…")
    assert "\ufffd" not in content


@pytest.mark.parametrize(
    ("errcode", "retryable", "retry_after"),
    [(45009, True, 60.0), (-1, True, None), (93000, False, None), (40008, False, None)],
)
async def test_wecom_classifies_robot_errcodes(
        receiver: Receiver, http: httpx.AsyncClient, errcode: int, retryable: bool,
        retry_after: float | None) -> None:
    channel = build_channel(wecom(receiver), smtp=None, sms_gateway=None, mqtt_publish=None,
                            http=http)
    receiver.errcode_next(1, errcode, "api freq out of limit")

    error = await failure(channel)

    assert (error.retryable, error.retry_after) == (retryable, retry_after)
    assert "wk-0f9e8d" not in str(error)


# --- SMS ------------------------------------------------------------------------------------

def sms_gateway(receiver: Receiver, **extra: Any) -> SmsGateway:
    return SmsGateway(url=receiver.url("/sms/send"), token_env="RW_SMS_TOKEN",
                      body={"mobile": "{phone}", "content": "{text}", "requestId": "{key}",
                            "signName": "应急监测", "note": "{unknown} stays"},
                      max_chars=60, **extra)


SMS_TO = ["13800138000", "+8613900139000"]


async def test_sms_sends_one_request_per_phone_with_its_own_key(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = build_channel(SmsChannel(type="sms", to=SMS_TO), smtp=None,
                            sms_gateway=sms_gateway(receiver), mqtt_publish=None, http=http,
                            env=ENV)
    message = notification(reason="escalated", tier="county")

    await channel.send(message)

    assert [r.json()["mobile"] for r in receiver.requests] == SMS_TO
    for phone, request in zip(SMS_TO, receiver.requests, strict=True):
        body = request.json()
        assert body["content"] == short_text(message, 60)
        assert len(body["content"]) <= 60
        assert body["content"].endswith("，企业未响应，已升级至县应急局")
        assert body["requestId"] == phone_key(message.key, phone)
        assert body["signName"] == "应急监测"
        assert body["note"] == "{unknown} stays"
        assert request.headers["idempotency-key"] == body["requestId"]
        assert request.headers["authorization"] == f"Bearer {SMS_TOKEN}"
        assert request.path == "/sms/send"
    keys = {r.json()["requestId"] for r in receiver.requests}
    assert len(keys) == 2
    assert all(k.startswith(message.key + "-") for k in keys)


async def test_sms_tries_every_phone_and_reports_failures_masked(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    channel = build_channel(SmsChannel(type="sms", to=SMS_TO), smtp=None,
                            sms_gateway=sms_gateway(receiver, method="PUT"), mqtt_publish=None,
                            http=http, env=ENV)
    receiver.fail_next(1, 429, {"Retry-After": "20"})

    error = await failure(channel)

    assert len(receiver.requests) == 2  # the second phone was still texted
    assert receiver.requests[1].method == "PUT"
    assert error.retryable
    assert error.retry_after == 20.0
    assert "1 of 2 SMS failed" in str(error)
    assert "138****8000" in str(error)
    assert "13800138000" not in str(error)


async def test_sms_client_errors_are_not_retryable(receiver: Receiver,
                                                   http: httpx.AsyncClient) -> None:
    one = build_channel(SmsChannel(type="sms", to=["13800138000"]), smtp=None,
                        sms_gateway=sms_gateway(receiver), mqtt_publish=None, http=http,
                        env=ENV)
    both = build_channel(SmsChannel(type="sms", to=SMS_TO), smtp=None,
                         sms_gateway=sms_gateway(receiver), mqtt_publish=None, http=http,
                         env=ENV)
    receiver.fail_next(1, 400)
    single = await failure(one)
    receiver.fail_next(2, 401)
    double = await failure(both)

    assert single.retryable is False
    assert "HTTP 400" in str(single)
    assert double.retryable is False
    assert "2 of 2 SMS failed" in str(double)


# --- e-mail ---------------------------------------------------------------------------------

@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, SmtpServer]]:
    mailbox = Mailbox()
    with running_smtp(mailbox) as smtp:
        yield mailbox, smtp


@pytest.fixture
def smtp_auth_server() -> Iterator[tuple[Mailbox, SmtpServer]]:
    """A relay that requires AUTH (plain text on loopback, as some internal relays do)."""
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"riskwatch"
              and auth_data.password == SMTP_PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    with running_smtp(mailbox, authenticator=authenticate, auth_required=True,
                      auth_require_tls=False) as smtp:
        yield mailbox, smtp.model_copy(update={"username": "riskwatch",
                                               "password_env": "RW_SMTP_PASSWORD"})


def received_mail(mailbox: Mailbox) -> EmailMessage:
    [envelope] = mailbox.envelopes
    return parse(envelope)


async def test_email_arrives_with_chinese_subject_body_and_message_id(
        smtp_server: tuple[Mailbox, SmtpServer]) -> None:
    mailbox, smtp = smtp_server
    channel = build_channel(EmailChannel(type="email", to=["duty@370829.example.cn",
                                                          "chief@370829.example.cn"]),
                            smtp=smtp, sms_gateway=None, mqtt_publish=None)
    message = notification()

    await channel.send(message)

    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "riskwatch@370829.example.cn"
    assert envelope.rcpt_tos == ["duty@370829.example.cn", "chief@370829.example.cn"]
    raw_headers = envelope.original_content.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_headers.lower()  # RFC 2047: no raw UTF-8 in headers
    mail = received_mail(mailbox)
    assert mail["Subject"] == message.subject
    assert mail["Message-ID"] == f"<{message.key}@riskwatch>"
    assert mail["From"] == "riskwatch@370829.example.cn"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().rstrip("\n") == message.body
    assert "请核实处置并反馈" in mail.get_content()


AUTH_WITHOUT_TLS = "ignore:Requiring AUTH while not requiring TLS:UserWarning"
"""aiosmtpd warns on every connection of the AUTH relay: intended, loopback only."""


@pytest.mark.filterwarnings(AUTH_WITHOUT_TLS)
async def test_email_logs_in_with_the_password_from_the_environment(
        smtp_auth_server: tuple[Mailbox, SmtpServer]) -> None:
    mailbox, smtp = smtp_auth_server
    config = EmailChannel(type="email", to=["duty@370829.example.cn"])
    good = build_channel(config, smtp=smtp, sms_gateway=None, mqtt_publish=None, env=ENV)
    bad = build_channel(config, smtp=smtp, sms_gateway=None, mqtt_publish=None,
                        env={"RW_SMTP_PASSWORD": "wrong-" + SMTP_PASSWORD})

    await good.send(notification())
    error = await failure(bad)

    assert len(mailbox.envelopes) == 1
    assert error.retryable is False  # 535: credentials, a person must fix them
    assert "535" in str(error)
    assert SMTP_PASSWORD not in str(error)


async def test_email_recipient_refusals_are_classified_by_reply_code(
        smtp_server: tuple[Mailbox, SmtpServer]) -> None:
    mailbox, smtp = smtp_server

    def channel(*to: str) -> Channel:
        return build_channel(EmailChannel(type="email", to=list(to)), smtp=smtp,
                             sms_gateway=None, mqtt_publish=None)

    unknown = await failure(channel("nobody@370829.example.cn"))
    busy = await failure(channel("busy@370829.example.cn"))
    partial = await failure(channel("duty@370829.example.cn", "nobody@370829.example.cn"))

    assert unknown.retryable is False
    assert "550" in str(unknown)
    assert busy.retryable is True
    assert "450" in str(busy)
    assert partial.retryable is False
    assert "nobody@370829.example.cn: 550" in str(partial)
    assert len(mailbox.envelopes) == 1  # the valid recipient of the partial send got it


async def test_email_connection_errors_are_retryable() -> None:
    channel = build_channel(EmailChannel(type="email", to=["duty@370829.example.cn"]),
                            smtp=SmtpServer(host="127.0.0.1", port=free_port(), timeout_s=2),
                            sms_gateway=None, mqtt_publish=None)

    error = await failure(channel)

    assert error.retryable is True


async def test_email_starttls_not_offered_is_a_configuration_error(
        smtp_server: tuple[Mailbox, SmtpServer]) -> None:
    _, smtp = smtp_server
    starttls = smtp.model_copy(update={"security": "starttls"})
    channel = build_channel(EmailChannel(type="email", to=["duty@370829.example.cn"]),
                            smtp=starttls, sms_gateway=None, mqtt_publish=None)

    error = await failure(channel)

    assert error.retryable is False


# --- MQTT -----------------------------------------------------------------------------------

async def test_mqtt_publishes_the_payload_on_the_enterprise_alerts_topic(
        mosquitto: tuple[str, int]) -> None:
    host, port = mosquitto
    enterprise = f"E{uuid.uuid4().hex[:12]}"
    message = notification(enterprise_id=enterprise)
    async with aiomqtt.Client(host, port, identifier=f"screen-{enterprise}") as screen, \
            aiomqtt.Client(host, port, identifier=f"rw-{enterprise}") as gateway:
        await screen.subscribe(f"rw/v1/{enterprise}/alerts", qos=1)

        async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            await gateway.publish(topic, payload, qos=qos, retain=retain)

        channel = build_channel(MqttChannel(type="mqtt"), smtp=None, sms_gateway=None,
                                mqtt_publish=publish)
        await channel.send(message)
        async with asyncio.timeout(10):
            received = await anext(aiter(screen.messages))

    assert str(received.topic) == f"rw/v1/{enterprise}/alerts"
    assert received.qos == 1
    assert isinstance(received.payload, bytes)
    payload = orjson.loads(received.payload)
    assert payload["key"] == message.key
    assert payload == orjson.loads(orjson.dumps(dict(message.payload)))


async def test_mqtt_publish_on_a_lost_connection_is_retryable(
        mosquitto: tuple[str, int]) -> None:
    host, port = mosquitto
    client = aiomqtt.Client(host, port, identifier=f"rw-{uuid.uuid4().hex[:8]}")
    async with client:
        pass  # connected, then disconnected: what a publisher holds after a broker loss

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        await client.publish(topic, payload, qos=qos, retain=retain)

    error = await failure(MqttSender(MqttChannel(type="mqtt"), publish))

    assert error.retryable is True
    assert "rw/v1/E370829001/alerts" in str(error)


async def test_mqtt_refuses_ids_that_would_inject_topic_levels() -> None:
    published: list[str] = []

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        published.append(topic)

    channel = MqttSender(MqttChannel(type="mqtt"), publish)
    error = await failure(channel, replace(notification(), enterprise_id="E1/+/#"))

    assert error.retryable is False
    assert published == []
    with pytest.raises(ValueError, match="enterprise_id"):
        MqttSender(MqttChannel(type="mqtt", topic="rw/v1/{site}/alerts"), publish)


# --- factory and secrets --------------------------------------------------------------------

def test_factory_names_a_missing_secret_variable_and_missing_resources(
        receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="environment variable RW_WEBHOOK_SECRET is not set"):
        build_channel(webhook(receiver), smtp=None, sms_gateway=None, mqtt_publish=None,
                      env={})
    with pytest.raises(ValueError, match="RW_DINGTALK_SECRET"):
        build_channel(dingtalk(receiver), smtp=None, sms_gateway=None, mqtt_publish=None,
                      env={"RW_DINGTALK_SECRET": ""})
    with pytest.raises(ValueError, match="RW_SMS_TOKEN"):
        build_channel(SmsChannel(type="sms", to=SMS_TO), smtp=None,
                      sms_gateway=sms_gateway(receiver), mqtt_publish=None, env={})
    with pytest.raises(ValueError, match="RW_SMTP_PASSWORD"):
        build_channel(EmailChannel(type="email", to=["a@b.cn"]),
                      smtp=SmtpServer(username="u", password_env="RW_SMTP_PASSWORD"),
                      sms_gateway=None, mqtt_publish=None, env={})
    with pytest.raises(ValueError, match="no smtp server"):
        build_channel(EmailChannel(type="email", to=["a@b.cn"]), smtp=None,
                      sms_gateway=None, mqtt_publish=None)
    with pytest.raises(ValueError, match="no sms_gateway"):
        build_channel(SmsChannel(type="sms", to=SMS_TO), smtp=None, sms_gateway=None,
                      mqtt_publish=None)
    with pytest.raises(ValueError, match="no MQTT publisher"):
        build_channel(MqttChannel(type="mqtt"), smtp=None, sms_gateway=None,
                      mqtt_publish=None)
    with pytest.raises(ValueError, match="http:// or https://"):
        build_channel(WebhookChannel(type="webhook", url="ftp://x/hook"), smtp=None,
                      sms_gateway=None, mqtt_publish=None)


def test_channels_report_their_kind(receiver: Receiver, smtp_server: Any) -> None:
    _, smtp = smtp_server

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        return None

    configs: list[Any] = [webhook(receiver), dingtalk(receiver), wecom(receiver),
                          EmailChannel(type="email", to=["a@b.cn"]),
                          SmsChannel(type="sms", to=SMS_TO), MqttChannel(type="mqtt")]
    kinds = [build_channel(c, smtp=smtp, sms_gateway=sms_gateway(receiver),
                           mqtt_publish=publish, env=ENV).kind for c in configs]

    assert kinds == ["webhook", "dingtalk", "wecom", "email", "sms", "mqtt"]


@pytest.mark.filterwarnings(AUTH_WITHOUT_TLS)
async def test_secrets_never_reach_reprs_errors_or_logs(
        receiver: Receiver, smtp_auth_server: tuple[Mailbox, SmtpServer],
        caplog: pytest.LogCaptureFixture) -> None:
    _, smtp = smtp_auth_server
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, aiosmtplib, asyncio: everything

    def make(config: Any, gateway: SmsGateway | None = None, *, to: SmtpServer | None = None,
             env: dict[str, str] = ENV) -> Channel:
        return build_channel(config, smtp=to, sms_gateway=gateway, mqtt_publish=None, env=env)

    answering = [make(webhook(receiver)), make(dingtalk(receiver)),
                 make(SmsChannel(type="sms", to=SMS_TO), sms_gateway(receiver))]
    unreachable = [
        make(WebhookChannel(type="webhook", url=closed_port_url("/hook"),
                            secret_env="RW_WEBHOOK_SECRET")),
        make(DingTalkChannel(type="dingtalk", url=closed_port_url("/robot/send?access_token=t"),
                             secret_env="RW_DINGTALK_SECRET")),
        make(SmsChannel(type="sms", to=SMS_TO),
             SmsGateway(url=closed_port_url("/sms"), token_env="RW_SMS_TOKEN")),
    ]
    refused_login = make(EmailChannel(type="email", to=["duty@370829.example.cn"]), to=smtp,
                         env={"RW_SMTP_PASSWORD": SMTP_PASSWORD + "-wrong"})
    texts = [repr(c) for c in (*answering, *unreachable, refused_login)]
    for channel in answering:
        for status in (500, 401):
            receiver.fail_next(2, status)
            texts += _exception_texts(await failure(channel))
    for channel in (*unreachable, refused_login):
        texts += _exception_texts(await failure(channel))
    for env in ({}, {"RW_WEBHOOK_SECRET": ""}):
        with pytest.raises(ValueError, match="RW_WEBHOOK_SECRET") as caught:
            make(webhook(receiver), env=env)
        texts += _exception_texts(caught.value)
    texts.append(caplog.text)

    assert len(receiver.requests) == 8, "the failures must have reached the receiver"
    assert "HTTP Request: POST" in caplog.text  # httpx's own log was captured too
    assert "Authorization" not in caplog.text
    leaked = [(secret, text) for text in texts for secret in SECRETS if secret in text]
    assert leaked == []


def _exception_texts(error: BaseException) -> list[str]:
    """str and repr of an exception and of everything it was caused by."""
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts
