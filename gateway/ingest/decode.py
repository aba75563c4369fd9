"""Decode and validate contract messages (CONTRACT.md §1) straight into column buffers.

This is the ingest hot path: per-message overhead dominates throughput (DESIGN.md), so
validation is hand-written on the orjson-decoded dicts instead of a model per message,
and accepted samples are appended to flat lists that :meth:`MessageDecoder.take` turns
into one :class:`~detectors.base.SampleBatch` for the detectors.

Policy: nothing reaches detection unless its topic, enterprise, device, timestamp and
value are valid; everything refused becomes a :class:`Rejection` for the quarantine.
Refusal is as narrow as possible: an unknown point or a bad value in an otherwise good
record quarantines that part only, so one misconfigured point does not blind the
detectors to the rest of the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from detectors.base import QUALITY_CODES, SampleBatch
from gateway.ingest.rejections import MAX_KEPT_PAYLOAD, Reason, Rejection
from gateway.ingest.timestamps import TimestampError, TimestampParser
from gateway.registry import RegistryIndex

TOPIC_KINDS = ("telemetry", "meter", "event", "status")
MAX_RECORDS_PER_MESSAGE = 10_000


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A discrete ``event`` message (spark detected, extinguisher fired, ...)."""

    device: int
    ts: float
    type: str
    value: float | None
    zone: str | None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A ``status`` message: the device's own claim of being online or offline."""

    device: int
    ts: float
    online: bool
    reason: str | None


@dataclass(slots=True)
class Decoded:
    """Everything decoded since the last :meth:`MessageDecoder.take`."""

    samples: SampleBatch
    events: list[DeviceEvent] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    messages: int = 0


class Mark(NamedTuple):
    """Buffer lengths at a moment, so a caller can take only what came before it."""

    samples: int
    heartbeats: int
    events: int
    statuses: int
    rejections: int
    messages: int


class _Refused(Exception):
    """Internal: the whole message is refused for ``reason``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MessageDecoder:
    """Validates messages against the registry and buffers accepted data as columns.

    ``max_future_s``: a ``ts`` later than ``reference_now + max_future_s`` is refused as
    a device clock running ahead (seconds; the caller chooses the reference: wall clock
    live, watermark in replay).
    """

    def __init__(self, index: RegistryIndex, *, max_future_s: float = 300.0) -> None:
        self._device_index = index.device_index
        self._enterprise_index = index.enterprise_index
        self._device_enterprise_id = [
            index.enterprise_ids[int(e)] for e in index.device_enterprise
        ]
        self._device_points = index.device_points
        self._max_future_s = max_future_s
        self._timestamps = TimestampParser()
        self._point: list[int] = []
        self._ts: list[float] = []
        self._value: list[float] = []
        self._quality: list[int] = []
        self._hb_device: list[int] = []
        self._hb_ts: list[float] = []
        self._events: list[DeviceEvent] = []
        self._statuses: list[DeviceStatus] = []
        self._rejections: list[Rejection] = []
        self._messages = 0
        self._last_start = (0, 0, 0, 0, 0, 0)

    @property
    def pending_samples(self) -> int:
        return len(self._point)

    def mark(self) -> Mark:
        """Buffer lengths now; ``take(upto=mark)`` later hands over only what came before."""
        return Mark(
            len(self._point),
            len(self._hb_device),
            len(self._events),
            len(self._statuses),
            len(self._rejections),
            self._messages,
        )

    @property
    def before_last_message(self) -> Mark:
        """The mark taken just before the latest :meth:`feed`, kept without a method
        call per message because replay needs it only when a sweep falls due."""
        return Mark._make(self._last_start)

    def feed(self, topic: str, payload: bytes | Any, reference_now: float) -> float:
        """Validate one message and buffer what is accepted.

        ``payload`` is the raw bytes from the broker, or an already-decoded JSON object
        (a recording line).  Returns the latest accepted event time in the message, or
        ``-inf`` when nothing was accepted.
        """
        self._last_start = (len(self._point), len(self._hb_device), len(self._events),
                            len(self._statuses), len(self._rejections), self._messages)
        self._messages += 1
        enterprise_id: str | None = None
        device_id: str | None = None
        try:
            parts = topic.split("/")
            if len(parts) != 5 or parts[0] != "rw" or parts[1] != "v1":
                raise _Refused(Reason.BAD_TOPIC, "topic must be rw/v1/{enterprise}/{device}/{kind}")
            _, _, enterprise_id, device_id, kind = parts
            device = self._device_index.get(device_id)
            if device is None or self._device_enterprise_id[device] != enterprise_id:
                self._refuse_device(enterprise_id, device_id, device)
            assert device is not None
            if kind not in TOPIC_KINDS:
                raise _Refused(Reason.BAD_TOPIC, f"unknown message kind {kind[:32]!r}")
            body = payload if type(payload) is dict else self._decode_json(payload)
            limit = reference_now + self._max_future_s
            if kind == "telemetry" or kind == "meter":
                return self._feed_readings(topic, payload, body, device, reference_now)
            if kind == "event":
                return self._feed_event(body, device, limit)
            return self._feed_status(body, device, limit)
        except _Refused as refused:
            self._reject(refused.reason, refused.detail, topic, payload, reference_now,
                         enterprise_id, device_id)
            return -math.inf

    def take(self, upto: Mark | None = None) -> Decoded:
        """Hand over the buffered data (all of it, or only what came before ``upto``)."""
        end = upto if upto is not None else self.mark()
        samples = SampleBatch(
            point=np.array(self._point[: end.samples], dtype=np.intp),
            ts=np.array(self._ts[: end.samples], dtype=np.float64),
            value=np.array(self._value[: end.samples], dtype=np.float64),
            quality=np.array(self._quality[: end.samples], dtype=np.uint8),
            heartbeat_device=np.array(self._hb_device[: end.heartbeats], dtype=np.int32),
            heartbeat_ts=np.array(self._hb_ts[: end.heartbeats], dtype=np.float64),
        )
        decoded = Decoded(
            samples=samples,
            events=self._events[: end.events],
            statuses=self._statuses[: end.statuses],
            rejections=self._rejections[: end.rejections],
            messages=end.messages,
        )
        del self._point[: end.samples], self._ts[: end.samples]
        del self._value[: end.samples], self._quality[: end.samples]
        del self._hb_device[: end.heartbeats], self._hb_ts[: end.heartbeats]
        del self._events[: end.events], self._statuses[: end.statuses]
        del self._rejections[: end.rejections]
        self._messages -= end.messages
        return decoded

    # -- message kinds -------------------------------------------------------------

    def _feed_readings(
        self, topic: str, payload: bytes | Any, body: dict[str, Any], device: int,
        reference_now: float,
    ) -> float:
        limit = reference_now + self._max_future_s
        records = body.get("records")
        single = records is None
        if single:
            records = (body,)
        elif type(records) is not list or not records:
            raise _Refused(Reason.BAD_PAYLOAD, "records must be a non-empty list")
        elif len(records) > MAX_RECORDS_PER_MESSAGE:
            raise _Refused(Reason.BAD_PAYLOAD,
                           f"{len(records)} records exceed the limit of {MAX_RECORDS_PER_MESSAGE}")
        points = self._device_points[device]
        parse_ts = self._timestamps.parse
        append_point, append_ts = self._point.append, self._ts.append
        append_value, append_quality = self._value.append, self._quality.append
        latest = -math.inf
        problems: list[tuple[Reason, str]] = []
        for position, record in enumerate(records):
            if type(record) is not dict:
                where = _where(single, position)
                problems.append((Reason.BAD_PAYLOAD, f"{where} is not an object"))
                continue
            values = record.get("values")
            if type(values) is not dict or not values:
                where = _where(single, position)
                problems.append((Reason.BAD_PAYLOAD, f"{where}.values must be a non-empty object"))
                continue
            try:
                ts = parse_ts(record.get("ts"))
            except TimestampError as exc:
                problems.append((Reason.BAD_TIMESTAMP, f"{_where(single, position)}.ts: {exc}"))
                continue
            if ts > limit:
                ahead = ts - reference_now
                problems.append((Reason.FUTURE_TIMESTAMP,
                                 f"{_where(single, position)}.ts is {ahead:.0f} s ahead "
                                 f"of the clock (tolerance {self._max_future_s:.0f} s)"))
                continue
            before = len(self._point)
            for name, raw in values.items():
                index = points.get(name)
                if index is None:
                    problems.append((Reason.UNKNOWN_POINT, f"{_where(single, position)}"
                                     f".values.{name[:64]}: not a point of this device"))
                    continue
                kind = type(raw)
                quality = 0
                if kind is float:
                    value = raw
                elif kind is int:
                    value = float(raw)  # orjson caps ints at 64 bits, so this never overflows
                elif kind is bool:
                    value = 1.0 if raw else 0.0
                elif kind is dict:
                    checked = _flagged_value(raw)
                    if isinstance(checked, str):
                        problems.append((Reason.BAD_VALUE,
                                         f"{_where(single, position)}.values.{name}: {checked}"))
                        continue
                    value, quality = checked
                else:
                    problems.append((Reason.BAD_VALUE, f"{_where(single, position)}.values."
                                     f"{name}: {kind.__name__} is not a number"))
                    continue
                append_point(index)
                append_ts(ts)
                append_value(value)
                append_quality(quality)
            if ts > latest and len(self._point) > before:
                latest = ts
        if problems:
            self._reject_parts(problems, topic, payload, reference_now)
        return latest

    def _feed_event(self, body: dict[str, Any], device: int, limit: float) -> float:
        ts = self._checked_ts(body, limit)
        kind = body.get("type")
        if type(kind) is not str or not kind:
            raise _Refused(Reason.BAD_PAYLOAD, "event needs a non-empty string 'type'")
        raw_value = body.get("value")
        if raw_value is not None and type(raw_value) not in (int, float, bool):
            raise _Refused(Reason.BAD_VALUE, "event 'value' must be a number")
        zone = body.get("zone")
        if zone is not None and type(zone) is not str:
            raise _Refused(Reason.BAD_PAYLOAD, "event 'zone' must be a string")
        self._events.append(DeviceEvent(
            device, ts, kind[:64], None if raw_value is None else float(raw_value), zone
        ))
        self._hb_device.append(device)
        self._hb_ts.append(ts)
        return ts

    def _feed_status(self, body: dict[str, Any], device: int, limit: float) -> float:
        ts = self._checked_ts(body, limit)
        online = body.get("online")
        if type(online) is not bool:
            raise _Refused(Reason.BAD_PAYLOAD, "status needs a boolean 'online'")
        reason = body.get("reason")
        self._statuses.append(DeviceStatus(
            device, ts, online, reason[:256] if type(reason) is str else None
        ))
        if online:
            self._hb_device.append(device)
            self._hb_ts.append(ts)
        return ts

    # -- helpers -------------------------------------------------------------------

    def _refuse_device(self, enterprise_id: str, device_id: str, device: int | None) -> None:
        """Raise the most useful refusal for a topic whose ids do not match."""
        if enterprise_id not in self._enterprise_index:
            raise _Refused(Reason.UNKNOWN_ENTERPRISE,
                           f"enterprise {enterprise_id[:64]!r} is not in the registry")
        if device is None:
            raise _Refused(Reason.UNKNOWN_DEVICE,
                           f"device {device_id[:64]!r} is not in the registry")
        owner = self._device_enterprise_id[device]
        raise _Refused(Reason.DEVICE_ENTERPRISE_MISMATCH,
                       f"device {device_id!r} belongs to enterprise {owner!r}, "
                       f"not {enterprise_id!r}")

    @staticmethod
    def _decode_json(payload: bytes | Any) -> dict[str, Any]:
        if isinstance(payload, bytes | bytearray | memoryview | str):
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise _Refused(Reason.BAD_JSON, f"not valid UTF-8 JSON: {exc}") from None
        else:
            body = payload
        if type(body) is not dict:
            raise _Refused(Reason.BAD_PAYLOAD, "payload must be a JSON object")
        return body

    def _checked_ts(self, body: dict[str, Any], limit: float) -> float:
        try:
            ts = self._timestamps.parse(body.get("ts"))
        except TimestampError as exc:
            raise _Refused(Reason.BAD_TIMESTAMP, f"ts: {exc}") from None
        if ts > limit:
            raise _Refused(Reason.FUTURE_TIMESTAMP,
                           f"ts is ahead of the clock by more than {self._max_future_s:.0f} s")
        return ts

    def _reject_parts(
        self,
        problems: list[tuple[Reason, str]],
        topic: str,
        payload: bytes | Any,
        reference_now: float,
    ) -> None:
        """One quarantine entry per reason, listing every part refused for it."""
        by_reason: dict[Reason, list[str]] = {}
        for reason, detail in problems:
            by_reason.setdefault(reason, []).append(detail)
        parts = topic.split("/")
        for reason, details in by_reason.items():
            shown = "; ".join(details[:10])
            if len(details) > 10:
                shown += f"; and {len(details) - 10} more"
            self._reject(reason, shown, topic, payload, reference_now, parts[2], parts[3])

    def _reject(
        self,
        reason: Reason,
        detail: str,
        topic: str,
        payload: bytes | Any,
        received_at: float,
        enterprise_id: str | None,
        device_id: str | None,
    ) -> None:
        raw = _as_bytes(payload)
        if len(raw) > MAX_KEPT_PAYLOAD:
            detail += f" (payload of {len(raw)} bytes cut to {MAX_KEPT_PAYLOAD})"
            raw = raw[:MAX_KEPT_PAYLOAD]
        self._rejections.append(Rejection(
            reason=reason,
            detail=detail,
            topic=topic[:512],
            payload=raw,
            received_at=received_at,
            enterprise_id=enterprise_id[:64] if enterprise_id else None,
            device_id=device_id[:64] if device_id else None,
        ))


def _where(single: bool, position: int) -> str:
    return "payload" if single else f"records[{position}]"


def _flagged_value(raw: dict[str, Any]) -> tuple[float, int] | str:
    """``{"v": 812.5, "q": "N"}`` → (value, quality code), or an error text."""
    value = raw.get("v")
    if not isinstance(value, int | float):  # bool is an int: 0/1 as the contract says
        return "flagged value needs a number 'v'"
    flag = raw.get("q", "N")
    quality = QUALITY_CODES.get(flag) if type(flag) is str else None
    if quality is None:
        return f"unknown quality flag {str(flag)[:8]!r} (HJ 212: {''.join(QUALITY_CODES)})"
    return float(value), quality


def _as_bytes(payload: bytes | Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "replace")
    try:
        return orjson.dumps(payload)
    except TypeError:
        return repr(payload).encode("utf-8", "replace")
