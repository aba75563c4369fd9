"""Subscribe to the contract topics on a real broker and hand messages on in batches.

Reliability choices, each for "nothing lost":

* QoS 1 subscriptions and a persistent session (fixed client id, ``clean_start=False``
  plus a session expiry under MQTT 5, ``clean_session=False`` under 3.1.1), so the
  broker queues what arrives while we reconnect.
* MQTT 5 first; a broker that refuses it (the embedded amqtt speaks 3.1.1 only) is
  retried with 3.1.1 at once, and the protocol that worked is kept for reconnects.
  Nothing essential depends on MQTT 5 features.
* Reconnect forever with capped exponential backoff and jitter, so a broker restart
  does not synchronise every gateway's reconnect.

Batching is natural: messages are handed to ``on_message`` one by one and ``flush`` is
awaited whenever the client's queue is empty or ``max_pending`` is reached, so under
load batches grow and when idle each message is processed at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import BrokerAddress
from gateway.ingest.decode import TOPIC_KINDS

log = logging.getLogger(__name__)

SUBSCRIPTIONS = [f"rw/v1/+/+/{kind}" for kind in TOPIC_KINDS]
_UNSUPPORTED_PROTOCOL = {1, 132}
"""CONNACK codes for "unsupported protocol version" in MQTT 3.1.1 and MQTT 5."""


class Backoff:
    """Capped exponential backoff with full jitter (seconds)."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, *, rng: random.Random | None = None):
        self._first, self._cap = first, cap
        self._attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._first * (2 ** self._attempt))
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)


class MqttSource:
    """Runs until cancelled, reconnecting as needed.

    ``on_message(topic, payload)`` is called for every message (synchronously, cheap);
    ``flush()`` is awaited when a batch is complete.
    """

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        on_message: Callable[[str, bytes], int],
        flush: Callable[[], Awaitable[None]],
        session_expiry_s: int = 86_400,
        max_pending: int = 20_000,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 5.0,
        protocol: str = "auto",
    ) -> None:
        self._address = address
        self._client_id = client_id
        self._on_message = on_message
        self._flush = flush
        self._session_expiry_s = session_expiry_s
        self._max_pending = max_pending
        self._backoff = backoff or Backoff()
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be auto, 5 or 3.1.1, not {protocol!r}")
        self._protocol = (aiomqtt.ProtocolVersion.V311 if protocol == "3.1.1"
                          else aiomqtt.ProtocolVersion.V5)
        # A pinned protocol is never switched.
        self._protocol_confirmed = protocol != "auto"
        self._connect_timeout_s = connect_timeout_s
        self.connected = asyncio.Event()
        self.connections = 0
        self.last_error: str | None = None
        self._session_client: aiomqtt.Client | None = None

    @property
    def protocol(self) -> str:
        return "5" if self._protocol == aiomqtt.ProtocolVersion.V5 else "3.1.1"

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if self._should_try_311(exc):
                    log.info("broker %s did not accept MQTT 5 (%s); trying 3.1.1",
                             self._address, exc)
                    self._protocol = aiomqtt.ProtocolVersion.V311
                    continue
                if not self._protocol_confirmed:
                    # Neither protocol has worked yet: the next attempt tries MQTT 5 again.
                    self._protocol = aiomqtt.ProtocolVersion.V5
                await self._pause(exc)

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish on the ingest connection: notifications back to enterprise screens
        ride the session (and its TLS and credentials) that ingest keeps alive.

        Raises ``aiomqtt.MqttError`` while disconnected; the notification outbox
        retries, so nothing waits here for a reconnect.
        """
        client = self._session_client
        if client is None or not self.connected.is_set():
            raise aiomqtt.MqttError(f"not connected to the broker {self._address}")
        await client.publish(topic, payload, qos=qos, retain=retain)

    def _should_try_311(self, exc: aiomqtt.MqttError) -> bool:
        """MQTT 5 failed before it ever worked with this broker.

        A 3.1.1 broker should answer "unsupported protocol version", but some (amqtt)
        choke on the MQTT 5 CONNECT properties and let the connect time out instead.
        """
        if self._protocol != aiomqtt.ProtocolVersion.V5 or self._protocol_confirmed:
            return False
        if isinstance(exc, aiomqtt.MqttCodeError):
            code = getattr(exc.rc, "value", exc.rc)
            return code in _UNSUPPORTED_PROTOCOL
        return "timed out" in str(exc).lower()

    async def _pause(self, exc: Exception) -> None:
        self.last_error = str(exc)
        delay = self._backoff.next_delay()
        log.warning("MQTT connection to %s lost or refused (%s); retrying in %.1f s",
                    self._address, exc, delay)
        await asyncio.sleep(delay)

    async def _session(self) -> None:
        async with self._client() as client:
            try:
                await self._subscribed(client)
            finally:
                self._session_client = None

    async def _subscribed(self, client: aiomqtt.Client) -> None:
        await client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS])
        self._session_client = client
        self.connections += 1
        self._protocol_confirmed = True
        self.last_error = None
        self.connected.set()
        self._backoff.reset()
        log.info("subscribed to %s on %s (MQTT %s)", ", ".join(SUBSCRIPTIONS),
                 self._address, self.protocol)
        pending = 0
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            pending += self._on_message(message.topic.value, bytes(payload))
            if pending >= self._max_pending or len(client.messages) == 0:
                await self._flush()
                pending = 0

    def _client(self) -> aiomqtt.Client:
        address = self._address
        tls = ssl.create_default_context() if address.tls else None
        if self._protocol == aiomqtt.ProtocolVersion.V5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
            return aiomqtt.Client(
                address.host, address.port, identifier=self._client_id,
                username=address.username, password=address.password,
                protocol=self._protocol, clean_start=False, properties=properties,
                tls_context=tls, keepalive=30, max_queued_incoming_messages=0,
                timeout=self._connect_timeout_s,
            )
        return aiomqtt.Client(
            address.host, address.port, identifier=self._client_id,
            username=address.username, password=address.password,
            protocol=self._protocol, clean_session=False,
            tls_context=tls, keepalive=30, max_queued_incoming_messages=0,
            timeout=self._connect_timeout_s,
        )
