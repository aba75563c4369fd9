"""MQTT plumbing shared by the tester tools: connect with protocol fallback, keep a
window of QoS 1 publishes in flight, tick on a fixed schedule.

Used by :mod:`simulators.replay_publisher` (recordings and live simulations),
:mod:`simulators.recorder` and :mod:`simulators.loadgen`.  Why a window of about 20
and not more is measured in :mod:`simulators.replay_publisher`'s docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import BrokerAddress

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 20
"""QoS 1 publishes kept in flight per connection; see the module docstring."""

MAX_PAYLOAD = 268_435_455 - 65_536
"""Bytes: MQTT's packet size limit less room for the topic; larger lines are skipped."""

_UNSUPPORTED_PROTOCOL = {1, 132}
"""CONNACK codes for "unsupported protocol version" in MQTT 3.1.1 and MQTT 5."""


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached or refused us on the first attempt.

    The message names the broker (credentials redacted); ``__cause__`` is the
    underlying :class:`aiomqtt.MqttError`.
    """



class MqttConnector:
    """Opens aiomqtt clients to one broker: MQTT 5 first, 3.1.1 for brokers that
    refuse 5 (amqtt), and remembers the protocol that worked for reconnects.

    ``session_expiry_s``: ``None`` for a clean session; otherwise a persistent session
    the broker keeps that long after we leave (MQTT 5).  Under 3.1.1 a persistent
    session never expires, which would leave queues behind on a shared broker, so a
    3.1.1 session is clean and messages arriving during a reconnect gap are lost.
    """

    def __init__(self, address: BrokerAddress, client_id: str, *, protocol: str = "auto",
                 session_expiry_s: int | None = None, timeout_s: float = 5.0,
                 max_inflight: int | None = None) -> None:
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be auto, 5 or 3.1.1, not {protocol!r}")
        self.address = address
        self.client_id = client_id
        self._version = (aiomqtt.ProtocolVersion.V311 if protocol == "3.1.1"
                         else aiomqtt.ProtocolVersion.V5)
        self._confirmed = protocol != "auto"
        self._session_expiry_s = session_expiry_s
        self._timeout_s = timeout_s
        self._max_inflight = max_inflight
        self.connections = 0

    @property
    def protocol(self) -> str:
        return "5" if self._version == aiomqtt.ProtocolVersion.V5 else "3.1.1"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[aiomqtt.Client]:
        """A connected client; raises :class:`aiomqtt.MqttError` when both protocols fail."""
        async with contextlib.AsyncExitStack() as stack:
            while True:
                try:
                    client = await stack.enter_async_context(self._client())
                except aiomqtt.MqttError as exc:
                    if self._should_try_311(exc):
                        log.info("broker %s did not accept MQTT 5 (%s); trying 3.1.1",
                                 self.address, exc)
                        self._version = aiomqtt.ProtocolVersion.V311
                        continue
                    if not self._confirmed:
                        self._version = aiomqtt.ProtocolVersion.V5
                    raise
                break
            self._confirmed = True
            self.connections += 1
            yield client

    def _should_try_311(self, exc: aiomqtt.MqttError) -> bool:
        """MQTT 5 failed before it ever worked with this broker (see MqttSource)."""
        if self._version != aiomqtt.ProtocolVersion.V5 or self._confirmed:
            return False
        if isinstance(exc, aiomqtt.MqttCodeError):
            return getattr(exc.rc, "value", exc.rc) in _UNSUPPORTED_PROTOCOL
        return "timed out" in str(exc).lower()

    def _client(self) -> aiomqtt.Client:
        address = self.address
        common: dict[str, Any] = {
            "identifier": self.client_id, "username": address.username,
            "password": address.password, "protocol": self._version,
            "tls_context": ssl.create_default_context() if address.tls else None,
            "keepalive": 30, "timeout": self._timeout_s,
            "max_queued_incoming_messages": 0,
        }
        if self._max_inflight is not None:
            common["max_inflight_messages"] = self._max_inflight
        persistent = self._session_expiry_s is not None
        if self._version == aiomqtt.ProtocolVersion.V5:
            properties = None
            if persistent:
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = self._session_expiry_s
            return aiomqtt.Client(address.host, address.port, clean_start=not persistent,
                                  properties=properties, **common)
        return aiomqtt.Client(address.host, address.port, clean_session=True, **common)


class PublishWindow:
    """Keeps up to ``window`` publishes in flight on one client, in order.

    :meth:`publish` returns as soon as the message is handed to the client (waiting
    only for a free slot); acknowledgements are collected in the background.  Every
    message stays in :meth:`unconfirmed` until its PUBACK arrives, so after a lost
    connection the caller can send exactly those again.  The first publishing error
    is raised by the next :meth:`publish` or by :meth:`drain`.  Leaving the context
    cancels whatever is still in flight.

    ``on_confirmed(weight)`` is called for each acknowledged message with the weight
    given to :meth:`publish` (e.g. the number of points it carries).
    """

    def __init__(self, client: aiomqtt.Client, *, window: int = DEFAULT_WINDOW, qos: int = 1,
                 timeout_s: float = 30.0,
                 on_confirmed: Callable[[int], None] | None = None) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._client = client
        # aiomqtt warns above this many pending calls; a full window is intended here.
        client.pending_calls_threshold = max(client.pending_calls_threshold, window + 16)
        self._slots = asyncio.Semaphore(window)
        self._qos = qos
        self._timeout_s = timeout_s
        self._on_confirmed = on_confirmed
        self._tasks: set[asyncio.Task[None]] = set()
        self._unconfirmed: dict[int, tuple[str, bytes, int]] = {}
        self._next = 0
        self._error: Exception | None = None
        self.confirmed = 0

    async def __aenter__(self) -> PublishWindow:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def failed(self) -> bool:
        return self._error is not None

    async def publish(self, topic: str, payload: bytes, weight: int = 0) -> None:
        number = self._next
        self._next += 1
        self._unconfirmed[number] = (topic, payload, weight)
        self._raise_if_failed()
        await self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            self._raise_if_failed()
        task = asyncio.create_task(self._send(number, topic, payload, weight))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every message is acknowledged; raise the first error, if any."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        self._raise_if_failed()

    def unconfirmed(self) -> list[tuple[str, bytes, int]]:
        """(topic, payload, weight) of messages not acknowledged, in publishing order."""
        return list(self._unconfirmed.values())

    async def _send(self, number: int, topic: str, payload: bytes, weight: int) -> None:
        try:
            await self._client.publish(topic, payload, qos=self._qos, timeout=self._timeout_s)
        except Exception as exc:  # recorded here, raised to the caller by publish/drain
            if self._error is None:
                self._error = exc
        else:
            del self._unconfirmed[number]
            self.confirmed += 1
            if self._on_confirmed is not None:
                self._on_confirmed(weight)
        finally:
            self._slots.release()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


async def every(interval_s: float, action: Callable[[], None]) -> None:
    """Call ``action`` every ``interval_s`` seconds (absolute schedule) until cancelled."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += interval_s
        await asyncio.sleep(max(0.0, due - loop.time()))
        action()
