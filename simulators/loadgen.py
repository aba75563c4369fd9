"""Load generator: a fleet of enterprises publishing at their configured intervals.

Every device of the registry (default :func:`simulators.fleet.synthetic_registry`)
publishes a valid contract message (CONTRACT.md §1, timestamps = now, in the
enterprise's UTC offset) every ``expected_interval_s / interval_scale`` wall seconds,
with a random phase so the fleet does not publish in lock-step.  With
``records_per_message`` r > 1 each message is a batch of r records sampled evenly over
the interval, as edge gateways batch to save per-message cost; the cadence stays the
registry's.  Values hover near the middle of each point's normal band (run states 1,
meters near 70 % of rated power with a cumulative energy counter).

Devices are spread round-robin over ``connections`` MQTT clients.  Each client sends
in due-time order by *absolute* times (start + phase + k·period), so a slow moment is
caught up instead of accumulating drift; a client that cannot keep up sends as fast as
the broker acknowledges, which is how the benchmark finds the ceiling, and at the end
the overdue backlog is dropped and counted (``behind``) so the run stays bounded.  QoS 1
with a window of publishes in flight (:class:`~simulators.mqtt_client.PublishWindow`);
a message counts as sent when its PUBACK arrives.  Stops by itself after
``duration_s`` (plus at most ``drain_s`` waiting for the last acknowledgements; what is
still unacknowledged then counts as an error).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from gateway.config import BrokerAddress
from gateway.ingest.mqtt_source import Backoff
from gateway.registry.models import DeviceSpec, RegistrySpec
from simulators.basic import nominal_value
from simulators.fleet import synthetic_registry
from simulators.mqtt_client import (
    DEFAULT_WINDOW,
    BrokerUnavailable,
    MqttConnector,
    PublishWindow,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadStats:
    """What :func:`run_load` achieved.

    ``messages``/``points``: acknowledged by the broker; ``seconds``: from the start of
    sending to the last acknowledgement; ``errors``: messages lost to failed publishes
    or never acknowledged; ``per_second``: acknowledged messages in each wall second
    since the start (late acknowledgements fall in the last second, so the list sums
    to ``messages``); ``target_per_s``: the fleet's nominal message rate; ``behind``:
    see below.
    """

    messages: int = 0
    points: int = 0
    seconds: float = 0.0
    errors: int = 0
    per_second: list[int] = field(default_factory=list)
    target_per_s: float = 0.0
    behind: int = 0
    """Messages due before the end that were never sent because publishing could not
    keep up with the target rate (0 when the broker and this process keep up)."""

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


class LoadDevice:
    """One simulated device: its topic, cadence and a cheap value model."""

    def __init__(self, enterprise_id: str, zone: str, device: DeviceSpec, *,
                 interval_scale: float, records_per_message: int, rng: random.Random) -> None:
        kind = "meter" if device.kind == "meter" else "telemetry"
        self.topic = f"rw/v1/{enterprise_id}/{device.id}/{kind}"
        self.period = device.expected_interval_s / interval_scale
        """Wall seconds between messages."""
        self._sample_step_s = device.expected_interval_s / records_per_message
        """Event-time seconds between the records of one batch."""
        self._records = records_per_message
        self._tz = timezone(datetime(2026, 1, 1, tzinfo=ZoneInfo(zone)).utcoffset()
                            or timedelta(0))
        self._rated = device.rated_kw or 100.0
        self._points = [(name, point.kind, nominal_value(point)) for name, point
                        in device.points.items()]
        self.points_per_message = len(self._points) * records_per_message
        self._rng = rng
        self._seq = 0
        self._energy = rng.uniform(1_000.0, 100_000.0)

    def message(self, now: float) -> bytes:
        """The next payload, stamped ``now`` (epoch s; a batch ends at ``now``)."""
        if self._records == 1:
            self._seq += 1
            return orjson.dumps({"ts": self._ts(now), "seq": self._seq,
                                 "values": self._values()})
        step = self._sample_step_s
        last = self._records - 1
        return orjson.dumps({"records": [
            {"ts": self._ts(now - (last - j) * step), "values": self._values()}
            for j in range(self._records)
        ]})

    def _ts(self, epoch_s: float) -> str:
        return datetime.fromtimestamp(epoch_s, self._tz).isoformat(timespec="milliseconds")

    def _values(self) -> dict[str, float]:
        gauss = self._rng.gauss
        values: dict[str, float] = {}
        for name, kind, typical in self._points:
            if kind == "run_state":
                values[name] = 1
            elif kind == "power":
                power = round(self._rated * 0.7 * (1 + gauss(0, 0.03)), 1)
                self._energy += power * self._sample_step_s / 3600.0
                values[name] = power
            elif kind == "energy":
                values[name] = round(self._energy, 2)
            else:
                values[name] = round(typical + gauss(0, abs(typical) * 0.01 + 0.01), 2)
        return values


def fleet_devices(registry: RegistrySpec, *, interval_scale: float = 1.0,
                  records_per_message: int = 1, seed: int = 0) -> list[LoadDevice]:
    """Every device of ``registry`` as a :class:`LoadDevice` (deterministic per seed)."""
    if not interval_scale > 0:
        raise ValueError("interval_scale must be positive")
    if records_per_message < 1:
        raise ValueError("records_per_message must be at least 1")
    rng = random.Random(seed)
    return [
        LoadDevice(enterprise.id, enterprise.timezone, device, interval_scale=interval_scale,
                   records_per_message=records_per_message, rng=rng)
        for enterprise in registry.enterprises for device in enterprise.devices
    ]


async def run_load(
    address: BrokerAddress,
    enterprises: int,
    *,
    duration_s: float,
    interval_scale: float = 1.0,
    records_per_message: int = 1,
    connections: int = 4,
    client_prefix: str = "rw-load",
    report: Callable[[str], None] | None = None,
    registry: RegistrySpec | None = None,
    window: int = DEFAULT_WINDOW,
    drain_s: float = 5.0,
    protocol: str = "auto",
    seed: int = 0,
) -> LoadStats:
    """Publish the fleet's traffic for ``duration_s`` seconds and return what got through.

    ``registry``: the fleet (default ``synthetic_registry(enterprises)``; give your own
    to use unique ids on a shared broker).  ``report`` receives one rate line per
    second, e.g. ``t=5s sent 12,345 msg/s (37,000 points/s), target 12,000 msg/s,
    errors 0``.  Raises :class:`~simulators.mqtt_client.BrokerUnavailable` if a
    client cannot connect at the start; cancellable.
    """
    if not duration_s > 0:
        raise ValueError("duration_s must be positive")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    fleet = registry if registry is not None else synthetic_registry(enterprises)
    devices = fleet_devices(fleet, interval_scale=interval_scale,
                            records_per_message=records_per_message, seed=seed)
    stats = LoadStats(target_per_s=sum(1.0 / d.period for d in devices))
    meter = _RateMeter(stats, buckets=max(1, math.ceil(duration_s)))
    groups = [devices[k::connections] for k in range(connections)]
    senders = [
        _Sender(MqttConnector(address, f"{client_prefix}-{k}", protocol=protocol,
                              max_inflight=max(window, 20)),
                group, meter, window=window, drain_s=drain_s, seed=seed + k)
        for k, group in enumerate(groups) if group
    ]
    loop = asyncio.get_running_loop()
    go: asyncio.Future[float] = loop.create_future()
    tasks = [asyncio.create_task(s.run(go, duration_s)) for s in senders]
    all_ready = asyncio.create_task(_all_set([s.ready for s in senders]))
    helpers: list[asyncio.Task[None]] = [all_ready]
    try:
        await asyncio.wait({all_ready, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()  # a client could not connect: BrokerUnavailable
        start = loop.time()
        meter.start = start
        go.set_result(start)
        if report is not None:
            helpers.append(asyncio.create_task(_report_every_second(meter, report)))
        await asyncio.gather(*tasks)
        stats.seconds = loop.time() - start
    finally:
        # Await everything we started: an abandoned future logs from its finalizer.
        for task in (*tasks, *helpers):
            task.cancel()
        await asyncio.gather(*tasks, *helpers, return_exceptions=True)
    if report is not None:
        while meter.reported < len(stats.per_second):
            report(meter.line(meter.reported))
            meter.reported += 1
    return stats


class _RateMeter:
    """Counts acknowledgements into per-second buckets and formats the rate line."""

    def __init__(self, stats: LoadStats, buckets: int) -> None:
        self.stats = stats
        stats.per_second = [0] * buckets
        self.points = [0] * buckets
        self.start = math.inf
        self.reported = 0
        self._time = asyncio.get_running_loop().time

    def confirmed(self, points: int) -> None:
        bucket = int(self._time() - self.start)
        bucket = min(max(bucket, 0), len(self.points) - 1)
        stats = self.stats
        stats.messages += 1
        stats.points += points
        stats.per_second[bucket] += 1
        self.points[bucket] += points

    def line(self, bucket: int) -> str:
        stats = self.stats
        return (f"t={bucket + 1}s sent {stats.per_second[bucket]:,} msg/s "
                f"({self.points[bucket]:,} points/s), target {stats.target_per_s:,.0f} msg/s, "
                f"errors {stats.errors}")


async def _all_set(events: list[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


async def _report_every_second(meter: _RateMeter, report: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    # The last bucket is reported after the final acknowledgements (by run_load).
    while meter.reported < len(meter.points) - 1:
        await asyncio.sleep(max(0.0, meter.start + meter.reported + 1 - loop.time()))
        report(meter.line(meter.reported))
        meter.reported += 1


class _Sender:
    """One MQTT client publishing for its share of the fleet."""

    def __init__(self, connector: MqttConnector, devices: list[LoadDevice], meter: _RateMeter,
                 *, window: int, drain_s: float, seed: int) -> None:
        self._connector = connector
        self._devices = devices
        self._meter = meter
        self._window = window
        self._drain_s = drain_s
        self._rng = random.Random(seed)
        self.ready = asyncio.Event()

    async def run(self, go: asyncio.Future[float], duration_s: float) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        queue: list[tuple[float, int]] = []
        end = math.inf
        outbox: PublishWindow | None = None
        while True:
            try:
                async with self._connector.connect() as client, PublishWindow(
                    client, window=self._window, on_confirmed=self._meter.confirmed
                ) as outbox:
                    backoff.reset()
                    if not queue:
                        self.ready.set()
                        start = await go
                        end = start + duration_s
                        queue = [(start + self._rng.random() * d.period, n)
                                 for n, d in enumerate(self._devices)]
                        heapq.heapify(queue)
                    await self._send_until(end, queue, outbox, loop)
                    try:
                        await asyncio.wait_for(outbox.drain(), self._drain_s)
                    except TimeoutError:
                        self._meter.stats.errors += len(outbox.unconfirmed())
                    return
            except aiomqtt.MqttError as exc:
                if self._connector.connections == 0:
                    raise BrokerUnavailable(
                        f"load generator cannot connect to {self._connector.address!r}: {exc}"
                    ) from exc
                if outbox is not None:
                    self._meter.stats.errors += len(outbox.unconfirmed())
                    outbox = None
                if loop.time() >= end:
                    return
                delay = min(backoff.next_delay(), max(0.0, end - loop.time()))
                log.warning("load client %s lost the broker (%s); retrying in %.1f s",
                            self._connector.client_id, exc, delay)
                await asyncio.sleep(delay)

    async def _send_until(self, end: float, queue: list[tuple[float, int]],
                          outbox: PublishWindow, loop: asyncio.AbstractEventLoop) -> None:
        devices = self._devices
        wall = time.time
        while queue:
            due, number = queue[0]
            now = loop.time()
            if due >= end or now >= end:
                if now >= end:  # fell behind: what is overdue is never sent
                    self._meter.stats.behind += sum(
                        math.ceil((end - t) / devices[n].period) for t, n in queue if t < end)
                return
            if due - now > 0.001:
                await asyncio.sleep(due - now)
            device = devices[number]
            heapq.heapreplace(queue, (due + device.period, number))
            await outbox.publish(device.topic, device.message(wall()),
                                 device.points_per_message)
