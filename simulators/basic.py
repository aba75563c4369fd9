"""A simple, deterministic telemetry source for every device of a registry.

Good enough for the demo, the replay benchmark and end-to-end tests: each point hovers
near the middle of its normal band with small noise, meters follow the enterprise's
working hours, and injected incidents (a forced excursion, an outage) make alerts
happen on cue.  The realistic site models with labelled scenarios are a later issue;
they will produce the same message stream shape.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gateway.registry.models import DeviceSpec, EnterpriseSpec, PointSpec, RegistrySpec
from gateway.registry.point_defaults import defaults_for

Message = tuple[str, dict[str, Any]]
"""(topic, payload) exactly as CONTRACT.md §1 puts them on the wire."""


@dataclass(frozen=True, slots=True)
class Excursion:
    """Force ``point`` of ``device_id`` to ``value`` during [start, end) (epoch s)."""

    device_id: str
    point: str
    start: float
    end: float
    value: float


@dataclass(frozen=True, slots=True)
class Outage:
    """``device_id`` sends nothing during [start, end) (epoch s)."""

    device_id: str
    start: float
    end: float


Incident = Excursion | Outage


@dataclass(frozen=True, slots=True)
class _Device:
    enterprise: EnterpriseSpec
    spec: DeviceSpec
    offset: timedelta
    topic: str


class BasicSimulator:
    """Yields contract messages in event-time order for ``[start, end)``.

    ``records_per_message`` > 1 makes each device sample that many times per
    ``expected_interval_s`` and publish them as one batch message (``{"records": [...]}``)
    once per interval, as edge gateways do to save per-message cost; the registry's
    interval stays the publishing cadence that silence detection relies on.
    """

    def __init__(
        self,
        registry: RegistrySpec,
        *,
        seed: int = 0,
        incidents: Sequence[Incident] = (),
        records_per_message: int = 1,
    ) -> None:
        if records_per_message < 1:
            raise ValueError("records_per_message must be at least 1")
        self._rng = random.Random(seed)
        self._incidents = list(incidents)
        self._records = records_per_message
        self._devices: list[_Device] = []
        for enterprise in registry.enterprises:
            zone = ZoneInfo(enterprise.timezone)
            offset = datetime(2026, 1, 1, tzinfo=zone).utcoffset() or timedelta(0)
            for device in enterprise.devices:
                kind = "meter" if device.kind == "meter" else "telemetry"
                topic = f"rw/v1/{enterprise.id}/{device.id}/{kind}"
                self._devices.append(_Device(enterprise, device, offset, topic))
        self._energy = [0.0] * len(self._devices)

    def messages(self, start: float, end: float = math.inf) -> Iterator[Message]:
        queue: list[tuple[float, int]] = []
        for number, device in enumerate(self._devices):
            phase = self._rng.random() * self._step(device)
            heapq.heappush(queue, (start + phase, number))
        pending: dict[int, list[dict[str, Any]]] = {}
        while queue:
            ts, number = heapq.heappop(queue)
            if ts >= end:
                break
            device = self._devices[number]
            heapq.heappush(queue, (ts + self._step(device), number))
            if self._silenced(device.spec.id, ts):
                continue
            record: dict[str, Any] = {
                "ts": _rfc3339(ts, device.offset), "values": self._values(number, ts),
            }
            if self._records == 1:
                yield device.topic, record
                continue
            batch = pending.setdefault(number, [])
            batch.append(record)
            if len(batch) >= self._records:
                yield device.topic, {"records": batch}
                pending[number] = []
        for number, batch in pending.items():
            if batch:
                yield self._devices[number].topic, {"records": batch}

    def _step(self, device: _Device) -> float:
        return device.spec.expected_interval_s / self._records

    def _silenced(self, device_id: str, ts: float) -> bool:
        return any(
            isinstance(i, Outage) and i.device_id == device_id and i.start <= ts < i.end
            for i in self._incidents
        )

    def _values(self, number: int, ts: float) -> dict[str, float]:
        device = self._devices[number]
        working = _working(device.enterprise, ts)
        values: dict[str, float] = {}
        for name, point in device.spec.points.items():
            forced = self._forced(device.spec.id, name, ts)
            if forced is not None:
                values[name] = forced
            elif point.kind == "energy":
                values[name] = round(self._energy[number], 2)
            else:
                values[name] = self._reading(device.spec, point, working)
        if "p_kw" in values and "e_kwh" in device.spec.points:
            self._energy[number] += values["p_kw"] * self._step(device) / 3600.0
        return values

    def _forced(self, device_id: str, point: str, ts: float) -> float | None:
        for incident in self._incidents:
            if (isinstance(incident, Excursion) and incident.device_id == device_id
                    and incident.point == point and incident.start <= ts < incident.end):
                return incident.value
        return None

    def _reading(self, device: DeviceSpec, point: PointSpec, working: bool) -> float:
        if point.kind == "run_state":
            return 1.0 if working else 0.0
        if point.kind == "power":
            rated = device.rated_kw or 100.0
            level = 0.7 if working else 0.05
            return round(rated * level * (1 + self._rng.gauss(0, 0.03)), 1)
        nominal = nominal_value(point)
        noisy = nominal + self._rng.gauss(0, abs(nominal) * 0.01 + 0.01)
        return round(noisy, 2)


def nominal_value(point: PointSpec) -> float:
    """A value safely inside the normal band (between lo and hi when both exist),
    using the per-kind default limits where the point has none of its own."""
    lo, hi = point.lo, point.hi
    if all(v is None for v in (point.lolo, lo, hi, point.hihi)):
        defaults = defaults_for(point.kind)
        if defaults.limits_apply_to(point.unit):
            lo, hi = defaults.lo, defaults.hi
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    if hi is not None:
        return hi * 0.6 if hi > 0 else hi - 10
    if lo is not None:
        return lo * 1.5 if lo > 0 else lo + 10
    return 50.0


def _working(enterprise: EnterpriseSpec, ts: float) -> bool:
    """Whether the enterprise produces at ``ts``: inside its schedule and outside its
    declared stops (an honest site; hidden operation is the realistic simulator's job)."""
    for period in enterprise.declared:
        if period.state == "stopped" and period.from_.timestamp() <= ts < period.to.timestamp():
            return False
    schedule = enterprise.schedule
    if schedule is None:
        return True
    local = datetime.fromtimestamp(ts, ZoneInfo(enterprise.timezone))
    if local.isoweekday() not in schedule.workdays:
        return False
    minute = local.hour * 60 + local.minute
    for span in schedule.hours:
        begin, finish = span.split("-")
        if _minutes(begin) <= minute < _minutes(finish):
            return True
    return False


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _rfc3339(ts: float, offset: timedelta) -> str:
    moment = datetime.fromtimestamp(round(ts, 3), timezone(offset))
    text = moment.isoformat(timespec="milliseconds")
    return text.replace(".000", "")
