"""Record what a broker carries as a recording (CONTRACT.md §3), for testers.

One JSON line per received message, in arrival order::

    {"topic": "rw/v1/E1/DC1/telemetry", "payload": {...}, "received_at": 1795478400123}

Extensions (optional fields, as CONTRACT.md allows):

* ``received_at``: arrival time, integer epoch milliseconds (wall clock here).
* ``payload_raw``: a payload that is not valid JSON (or not UTF-8) is still recorded,
  base64-encoded, *instead of* ``payload``, so nothing the broker carried is lost.
  ``riskwatch replay`` quarantines such lines; :mod:`simulators.replay_publisher`
  publishes the raw bytes again.
* ``retained: true``: the broker delivered a retained message (typically the last
  ``status`` of each device, sent when we subscribe), i.e. not something that arrived
  while recording.  Absent otherwise.

A valid JSON payload is written exactly as received (not re-encoded, so numbers keep
their spelling), unless it spans several lines, which JSON Lines cannot hold; then it
is re-encoded compactly.

Reliability: QoS 1 subscriptions; MQTT 5 with a fallback to 3.1.1
(:class:`~simulators.mqtt_client.MqttConnector`); after a lost connection we
reconnect with capped, jittered backoff, under MQTT 5 into a persistent session that
the broker keeps for ``session_expiry_s`` so what arrives meanwhile is queued, not
lost.  The file is flushed about once per second, so a crash loses at most about one
second of messages.  The first connection failing raises
:class:`~simulators.mqtt_client.BrokerUnavailable` at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiomqtt
import orjson

from gateway.config import BrokerAddress
from gateway.ingest.mqtt_source import Backoff
from simulators.mqtt_client import BrokerUnavailable, MqttConnector, every

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
"""Seconds between flushes of the recording file (and progress calls)."""


class SubscriptionRefused(ConnectionError):
    """The broker refused a subscription (e.g. an ACL); names the topic and reason."""


@dataclass(slots=True)
class RecordStats:
    """What :func:`record` wrote: ``messages`` lines, ``bytes`` written to the file,
    ``seconds`` of wall time, and messages by topic kind (``telemetry``, ``meter``,
    ``event``, ``status``; ``other`` for topics outside ``rw/v1/{e}/{d}/{kind}``)."""

    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    def copy(self) -> RecordStats:
        return RecordStats(self.messages, self.bytes, self.seconds, dict(self.by_kind))


def recording_line(topic: str, payload: bytes, received_at_ms: int, *,
                   retained: bool = False) -> bytes:
    """One recording line (with its newline) for a received message.

    >>> recording_line("rw/v1/E1/D1/event", b'{"ts": 1, "type": "spark"}', 5)
    b'{"topic":"rw/v1/E1/D1/event","payload":{"ts": 1, "type": "spark"},"received_at":5}\\n'
    >>> recording_line("rw/v1/E1/D1/event", b"\\xff oops", 5, retained=True)
    b'{"topic":"rw/v1/E1/D1/event","payload_raw":"/yBvb3Bz","received_at":5,"retained":true}\\n'
    """
    head = b'{"topic":' + orjson.dumps(topic)
    tail = b',"received_at":' + str(int(received_at_ms)).encode()
    if retained:
        tail += b',"retained":true'
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raw = base64.b64encode(payload)
        return head + b',"payload_raw":"' + raw + b'"' + tail + b"}\n"
    body = payload.strip()
    if b"\n" in body or b"\r" in body:
        body = orjson.dumps(decoded)
    return head + b',"payload":' + body + tail + b"}\n"


async def record(
    address: BrokerAddress,
    out: Path,
    *,
    client_id: str = "riskwatch-recorder",
    topics: Sequence[str] = ("rw/v1/#",),
    stop: asyncio.Event | None = None,
    max_messages: int | None = None,
    duration_s: float | None = None,
    progress: Callable[[RecordStats], None] | None = None,
    subscribed: asyncio.Event | None = None,
    session_expiry_s: int = 60,
    protocol: str = "auto",
) -> RecordStats:
    """Subscribe to ``topics`` (QoS 1) and write every message to ``out`` (overwritten).

    Stops when ``stop`` is set, after ``max_messages`` messages or ``duration_s``
    seconds, whichever comes first (none of them: until cancelled; the file is then
    complete up to the cancellation).  ``subscribed`` is set each time the
    subscription is in place (tests publish after it).  ``progress`` gets a copy of
    the statistics about once per second and at the end.  ``session_expiry_s``: how
    long the broker keeps our session (and queues for us) across a reconnect, MQTT 5.
    """
    if max_messages is not None and max_messages < 1:
        raise ValueError("max_messages must be at least 1")
    if duration_s is not None and duration_s < 0:
        raise ValueError("duration_s must not be negative")
    if not topics:
        raise ValueError("at least one topic filter is needed")
    stats = RecordStats()
    started = time.monotonic()
    connector = MqttConnector(address, client_id, protocol=protocol,
                              session_expiry_s=session_expiry_s)
    with _open(out) as sink:
        def tick() -> None:
            sink.flush()
            stats.seconds = time.monotonic() - started
            if progress is not None:
                progress(stats.copy())

        receiving = _receive(connector, sink, stats, list(topics), max_messages, subscribed)
        ticker = asyncio.create_task(every(FLUSH_INTERVAL_S, tick))
        try:
            await _until_first(receiving, stop, duration_s)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            tick()
    return stats


def _open(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb", buffering=1 << 20)


async def _until_first(main: Awaitable[None], stop: asyncio.Event | None,
                       duration_s: float | None) -> None:
    """Run ``main`` until it returns, ``stop`` is set or ``duration_s`` passes."""
    worker = asyncio.ensure_future(main)
    waiting: set[asyncio.Future[Any]] = {worker}
    if stop is not None:
        waiting.add(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiting, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    if worker.done() and not worker.cancelled():
        worker.result()  # raises what the receiver raised


async def _receive(connector: MqttConnector, sink: BinaryIO, stats: RecordStats,
                   topics: list[str], max_messages: int | None,
                   subscribed: asyncio.Event | None) -> None:
    backoff = Backoff()
    write = sink.write
    by_kind = stats.by_kind
    while True:
        try:
            async with connector.connect() as client:
                await _subscribe(client, topics)
                backoff.reset()
                log.info("recording %s from %s (MQTT %s)", ", ".join(topics),
                         connector.address, connector.protocol)
                if subscribed is not None:
                    subscribed.set()
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        payload = b"" if payload is None else str(payload).encode()
                    topic = message.topic.value
                    line = recording_line(topic, bytes(payload), int(time.time() * 1000),
                                          retained=bool(message.retain))
                    write(line)
                    stats.messages += 1
                    stats.bytes += len(line)
                    kind = _kind(topic)
                    by_kind[kind] = by_kind.get(kind, 0) + 1
                    if max_messages is not None and stats.messages >= max_messages:
                        return
        except aiomqtt.MqttError as exc:
            if subscribed is not None:
                subscribed.clear()
            if connector.connections == 0:
                raise BrokerUnavailable(
                    f"cannot record from the broker at {connector.address!r}: {exc}") from exc
            delay = backoff.next_delay()
            log.warning("recorder lost the broker %s (%s); retrying in %.1f s",
                        connector.address, exc, delay)
            await asyncio.sleep(delay)


async def _subscribe(client: aiomqtt.Client, topics: list[str]) -> None:
    granted = await client.subscribe([(topic, 1) for topic in topics])
    for topic, code in zip(topics, granted or [], strict=False):
        value = getattr(code, "value", code)
        if isinstance(value, int) and value >= 0x80:
            raise SubscriptionRefused(f"the broker refused the subscription to {topic!r} "
                                      f"({code})")


def _kind(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "rw" and parts[1] == "v1":
        return parts[4]
    return "other"
