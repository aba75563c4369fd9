"""Publish a recording (CONTRACT.md §3) to a broker at X times real time.

Pacing is by **event time**, so a replay at any speed reproduces the data's own rhythm:
the event time of a line is the latest ``ts`` in its payload (a single record, every
record of a ``records`` batch, an event or a status; RFC 3339 with offset or epoch
milliseconds).  At ``speed`` X, X seconds of event time are sent per wall second,
measured from the first line that has a readable ``ts``; ``speed=None`` sends as fast
as the broker acknowledges.  File order is always kept: a line whose ``ts`` is earlier
than one already sent (out of order, a device clock behind) or that has no readable
``ts`` goes immediately after the previous line.  The pacing is the pure
:class:`Pacer` / :func:`schedule`, testable without a broker.

Lines that are not JSON, not an object, or lack a usable ``topic`` (empty, wildcards)
are skipped and counted, never fatal.  A line carrying ``payload_raw`` (base64; written
by :mod:`simulators.recorder` for payloads that were not JSON) is published as those
raw bytes, so a recording of bad input replays the same bad input.  Extra fields
(``received_at``, ``retained``) are ignored; nothing is published with the retain flag,
so a replay leaves no retained state behind on the broker.

Throughput (measured here, 2 cores, Mosquitto 2.0.11, aiomqtt 2.5 + paho 2.2, small
single-record messages, QoS 1): awaiting each PUBACK in turn gives about 2,500 msg/s;
keeping a window of about 20 publishes in flight (:class:`PublishWindow`) gives about
6,000-7,500 msg/s.  Larger windows are slower, not faster: aiomqtt scans its pending
calls on every publish, so the cost grows with the window.  The client process, not
the broker, is the limit (PUBACK property decoding, two tasks per publish).

A broker lost mid-way is reconnected with backoff and every message not yet
acknowledged is sent again (QoS 1 is at-least-once: a few duplicates are possible
after a reconnect, nothing is lost).  The first connection failing raises
:class:`BrokerUnavailable` at once, so a mistyped URL fails fast.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiomqtt
import orjson

from gateway.config import BrokerAddress
from gateway.ingest.mqtt_source import Backoff
from gateway.ingest.timestamps import TimestampError, TimestampParser
from simulators.mqtt_client import (
    DEFAULT_WINDOW,
    MAX_PAYLOAD,
    BrokerUnavailable,
    MqttConnector,
    PublishWindow,
    every,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_WINDOW",
    "BrokerUnavailable",
    "PublishStats",
    "publish_lines",
    "publish_recording",
]


@dataclass(slots=True)
class PublishStats:
    """What :func:`publish_recording` did.

    ``messages``: published and acknowledged (QoS 1) or written (QoS 0);
    ``skipped``: lines that could not be published (not JSON, no topic, bad base64);
    ``seconds``: wall time; ``event_span_s``: latest minus first event time sent.
    """

    messages: int = 0
    skipped: int = 0
    seconds: float = 0.0
    event_span_s: float = 0.0

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- pacing


class Pacer:
    """Wall-clock offsets (seconds from the start) for lines in file order.

    ``speed``: seconds of event time per wall second (> 0); ``None``: no pacing.
    Offsets never decrease, so file order is kept whatever the timestamps do.

    >>> pacer = Pacer(2.0)
    >>> [pacer.offset(t) for t in (None, 100.0, 104.0, 101.0, None, 110.0)]
    [0.0, 0.0, 2.0, 2.0, 2.0, 5.0]
    """

    def __init__(self, speed: float | None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive or None, not {speed!r}")
        self._speed = speed
        self.first: float | None = None
        """Event time of the first line with a readable ``ts`` (epoch s)."""
        self.latest: float | None = None
        """Latest event time seen so far (epoch s)."""

    def offset(self, event_time: float | None) -> float:
        if event_time is not None:
            if self.first is None:
                self.first = self.latest = event_time
            elif self.latest is None or event_time > self.latest:
                self.latest = event_time
        if self._speed is None or self.first is None or self.latest is None:
            return 0.0
        return (self.latest - self.first) / self._speed

    @property
    def event_span_s(self) -> float:
        if self.first is None or self.latest is None:
            return 0.0
        return self.latest - self.first


def schedule(event_times: Iterable[float | None], speed: float | None) -> list[float]:
    """Wall offsets (s from the start) at which to send lines with these event times.

    >>> schedule([0.0, 10.0, 5.0, None, 20.0], 10.0)
    [0.0, 1.0, 1.0, 1.0, 2.0]
    >>> schedule([0.0, 10.0], None)
    [0.0, 0.0]
    """
    pacer = Pacer(speed)
    return [pacer.offset(t) for t in event_times]


def event_time(payload: Any, parser: TimestampParser | None = None) -> float | None:
    """The latest readable ``ts`` of a contract payload (epoch s), or ``None``.

    >>> event_time({"records": [{"ts": 1_800_000_000_000}, {"ts": "x"}]})
    1800000000.0
    >>> event_time({"ts": "2026-11-24T08:00:00+08:00", "online": True})
    1795478400.0
    >>> event_time([1, 2]) is None
    True
    """
    if type(payload) is not dict:
        return None
    parse = (parser or TimestampParser()).parse
    records = payload.get("records")
    candidates = records if type(records) is list else [payload]
    latest: float | None = None
    for record in candidates:
        if type(record) is not dict or "ts" not in record:
            continue
        try:
            ts = parse(record["ts"])
        except TimestampError:
            continue
        if latest is None or ts > latest:
            latest = ts
    return latest


# ------------------------------------------------------------------ recording lines


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One publishable line of a recording."""

    topic: str
    body: bytes
    event_time: float | None


def read_recording(source: Iterable[bytes]) -> Iterator[RecordedMessage | None]:
    """Lines of an open recording in file order; ``None`` for a line that cannot be
    published (blank lines included, so every line is accounted for)."""
    parser = TimestampParser()
    for line in source:
        yield parse_line(line, parser) if line.strip() else None


def parse_line(line: bytes, parser: TimestampParser | None = None) -> RecordedMessage | None:
    """A recording line as a message to publish, or ``None`` when it is unusable.

    >>> parse_line(b'{"topic": "rw/v1/E1/D1/event", "payload": {"ts": 1800000000000}}')
    RecordedMessage(topic='rw/v1/E1/D1/event', body=b'{"ts":1800000000000}', \
event_time=1800000000.0)
    >>> parse_line(b'{"topic": "rw/v1/E1/D1/status", "payload_raw": "bm90IGpzb24="}').body
    b'not json'
    >>> parse_line(b'{"payload": {}}') is None
    True
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(record) is not dict:
        return None
    topic = record.get("topic")
    if type(topic) is not str or not valid_topic(topic):
        return None
    if "payload" in record:
        payload = record["payload"]
        body = orjson.dumps(payload)
        if len(body) > MAX_PAYLOAD:
            return None
        return RecordedMessage(topic, body, event_time(payload, parser))
    raw = record.get("payload_raw")
    if type(raw) is not str:
        return None
    try:
        body = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(body) > MAX_PAYLOAD:
        return None
    return RecordedMessage(topic, body, None)


def valid_topic(topic: str) -> bool:
    """A topic one may publish to (MQTT: non-empty, no wildcards, no NUL, <= 65535 B)."""
    return (bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic
            and len(topic.encode("utf-8", "surrogatepass")) <= 65_535)


# ------------------------------------------------------------------------ the command


async def publish_recording(
    path: Path,
    address: BrokerAddress,
    *,
    speed: float | None = 1.0,
    client_id: str = "riskwatch-replayer",
    qos: int = 1,
    progress: Callable[[PublishStats], None] | None = None,
    window: int = DEFAULT_WINDOW,
    protocol: str = "auto",
) -> PublishStats:
    """Publish every usable line of ``path`` in file order, paced by event time.

    ``speed``: seconds of event time per wall second, ``None`` for as fast as possible.
    ``progress`` is called once per second and at the end (with a copy).
    Raises :class:`BrokerUnavailable` if the first connection fails, ``OSError`` if the
    file cannot be read; cancellable (in-flight publishes are abandoned).
    """
    Pacer(speed)  # validates speed before anything is opened
    with _open(path) as source:
        return await publish_lines(source, address, speed=speed, client_id=client_id, qos=qos,
                                   progress=progress, window=window, protocol=protocol)


def _open(path: Path) -> BinaryIO:
    return path.open("rb")  # local file: opening does not block the loop noticeably


async def publish_lines(
    source: Iterable[bytes],
    address: BrokerAddress,
    *,
    speed: float | None = 1.0,
    client_id: str = "riskwatch-replayer",
    qos: int = 1,
    progress: Callable[[PublishStats], None] | None = None,
    window: int = DEFAULT_WINDOW,
    protocol: str = "auto",
) -> PublishStats:
    """:func:`publish_recording` for recording lines from any iterable, e.g. a
    simulation rendered lazily, so a live run needs no file on disk.

    The iterable is consumed on the event loop: keep each step short.
    """
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
    pacer = Pacer(speed)
    stats = PublishStats()
    connector = MqttConnector(address, client_id, protocol=protocol,
                              max_inflight=max(window, 20))
    backoff = Backoff()
    lines = read_recording(source)
    resend: deque[tuple[str, bytes, int]] = deque()
    outbox: PublishWindow | None = None
    started = time.monotonic()
    origin = started
    lost_at: float | None = None

    def report() -> None:
        stats.seconds = time.monotonic() - started
        stats.event_span_s = pacer.event_span_s
        if progress is not None:
            progress(PublishStats(stats.messages, stats.skipped, stats.seconds,
                                  stats.event_span_s))

    def confirmed(_weight: int) -> None:
        stats.messages += 1

    ticker = asyncio.create_task(every(1.0, report))
    try:
        while True:
            try:
                async with connector.connect() as client, PublishWindow(
                    client, window=window, qos=qos, on_confirmed=confirmed
                ) as outbox:
                    if lost_at is not None:
                        # Pacing resumes where the replay stood, it does not catch up.
                        origin += time.monotonic() - lost_at
                        lost_at = None
                    backoff.reset()
                    while resend:
                        # publish() registers the message before it can fail.
                        await outbox.publish(*resend.popleft())
                    for message in lines:
                        if message is None:
                            stats.skipped += 1
                            continue
                        wait = origin + pacer.offset(message.event_time) - time.monotonic()
                        if wait > 0.001:
                            await asyncio.sleep(wait)
                        await outbox.publish(message.topic, message.body)
                    await outbox.drain()
                    break
            except aiomqtt.MqttError as exc:
                if connector.connections == 0:
                    raise BrokerUnavailable(
                        f"cannot publish to the broker at {address!r}: {exc}") from exc
                if outbox is not None:
                    resend = deque([*outbox.unconfirmed(), *resend])
                    outbox = None
                if lost_at is None:
                    lost_at = time.monotonic()
                delay = backoff.next_delay()
                log.warning("lost the broker %s after %d messages (%s); %d to send again, "
                            "retrying in %.1f s", address, stats.messages, exc, len(resend),
                            delay)
                await asyncio.sleep(delay)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        report()
    return stats


