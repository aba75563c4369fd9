"""Payload validation: what is accepted into batches and what goes to quarantine."""

from __future__ import annotations

import math

import orjson
import pytest

from detectors.base import QUALITY_CODES
from gateway.ingest.decode import MessageDecoder
from gateway.ingest.rejections import Reason
from gateway.registry import Registry

NOW = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
TS = "2026-11-24T08:00:00+08:00"
DC1 = "rw/v1/E370829001/DC1/telemetry"


@pytest.fixture
def decoder(small_registry: Registry) -> MessageDecoder:
    return MessageDecoder(small_registry.index, max_future_s=300)


def send(decoder: MessageDecoder, topic: str, body: object) -> float:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return decoder.feed(topic, payload, NOW)


def reasons(decoder: MessageDecoder) -> list[str]:
    return [r.reason.value for r in decoder.take().rejections]


def test_single_record_becomes_samples_at_dense_indices(
    decoder: MessageDecoder, small_registry: Registry
) -> None:
    latest = send(decoder, DC1, {"ts": TS, "seq": 1,
                                 "values": {"dp": 812.5, "hopper_temp": 41, "fan_run": True}})
    batch = decoder.take().samples
    points = small_registry.index.device_points[small_registry.index.device_index["DC1"]]
    assert latest == NOW
    assert batch.point.tolist() == [points["dp"], points["hopper_temp"], points["fan_run"]]
    assert batch.value.tolist() == [812.5, 41.0, 1.0]
    assert batch.ts.tolist() == [NOW] * 3
    assert batch.quality.tolist() == [0, 0, 0]


def test_batch_of_records_and_epoch_milliseconds(decoder: MessageDecoder) -> None:
    records = [{"ts": int(NOW * 1000) - 10_000 * i, "values": {"dp": 800 + i}} for i in range(3)]
    latest = send(decoder, DC1, {"records": records})
    batch = decoder.take().samples
    assert latest == NOW
    assert batch.ts.tolist() == [NOW, NOW - 10, NOW - 20]
    assert batch.value.tolist() == [800, 801, 802]


def test_quality_flag_is_carried(decoder: MessageDecoder) -> None:
    send(decoder, DC1, {"ts": TS, "values": {"dp": {"v": 0, "q": "D"}, "hopper_temp": {"v": 40}}})
    batch = decoder.take().samples
    assert batch.quality.tolist() == [QUALITY_CODES["D"], QUALITY_CODES["N"]]


@pytest.mark.parametrize(
    ("topic", "body", "reason"),
    [
        ("rw/v1/E370829001/DC1", {"ts": TS, "values": {"dp": 1}}, Reason.BAD_TOPIC),
        ("rw/v2/E370829001/DC1/telemetry", {"ts": TS, "values": {"dp": 1}}, Reason.BAD_TOPIC),
        ("rw/v1/E370829001/DC1/config", {"ts": TS, "values": {"dp": 1}}, Reason.BAD_TOPIC),
        ("rw/v1/NOPE/DC1/telemetry", {"ts": TS, "values": {"dp": 1}}, Reason.UNKNOWN_ENTERPRISE),
        ("rw/v1/E370829001/NOPE/telemetry", {"ts": TS, "values": {"dp": 1}}, Reason.UNKNOWN_DEVICE),
        ("rw/v1/E320583002/DC1/telemetry", {"ts": TS, "values": {"dp": 1}},
         Reason.DEVICE_ENTERPRISE_MISMATCH),
        (DC1, b"{not json", Reason.BAD_JSON),
        (DC1, b"\xff\xfe", Reason.BAD_JSON),
        (DC1, [1, 2], Reason.BAD_PAYLOAD),
        (DC1, {"ts": TS}, Reason.BAD_PAYLOAD),
        (DC1, {"ts": TS, "values": {}}, Reason.BAD_PAYLOAD),
        (DC1, {"records": []}, Reason.BAD_PAYLOAD),
        (DC1, {"records": "x"}, Reason.BAD_PAYLOAD),
        (DC1, {"values": {"dp": 1}}, Reason.BAD_TIMESTAMP),
        (DC1, {"ts": "2026-11-24T08:00:00", "values": {"dp": 1}}, Reason.BAD_TIMESTAMP),
        (DC1, {"ts": "yesterday", "values": {"dp": 1}}, Reason.BAD_TIMESTAMP),
        (DC1, {"ts": 12345, "values": {"dp": 1}}, Reason.BAD_TIMESTAMP),
        (DC1, {"ts": True, "values": {"dp": 1}}, Reason.BAD_TIMESTAMP),
        (DC1, {"ts": "2026-11-24T09:00:00+08:00", "values": {"dp": 1}}, Reason.FUTURE_TIMESTAMP),
        (DC1, {"ts": TS, "values": {"dp": "812"}}, Reason.BAD_VALUE),
        (DC1, {"ts": TS, "values": {"dp": None}}, Reason.BAD_VALUE),
        (DC1, {"ts": TS, "values": {"dp": {"v": 1, "q": "X"}}}, Reason.BAD_VALUE),
        (DC1, {"ts": TS, "values": {"dp": {"q": "N"}}}, Reason.BAD_VALUE),
        (DC1, {"ts": TS, "values": {"nonsense": 1}}, Reason.UNKNOWN_POINT),
        ("rw/v1/E370829001/DC1/event", {"ts": TS}, Reason.BAD_PAYLOAD),
        ("rw/v1/E370829001/DC1/status", {"ts": TS, "online": "yes"}, Reason.BAD_PAYLOAD),
    ],
)
def test_invalid_input_is_quarantined_with_its_reason(
    decoder: MessageDecoder, topic: str, body: object, reason: Reason
) -> None:
    latest = send(decoder, topic, body)
    decoded = decoder.take()
    assert latest == -math.inf
    assert len(decoded.samples) == 0
    assert [r.reason for r in decoded.rejections] == [reason]
    assert decoded.rejections[0].detail
    assert decoded.messages == 1


def test_quarantine_keeps_ids_and_payload(decoder: MessageDecoder) -> None:
    send(decoder, "rw/v1/E320583002/DC1/telemetry", {"ts": TS, "values": {"dp": 1}})
    rejection = decoder.take().rejections[0]
    assert (rejection.enterprise_id, rejection.device_id) == ("E320583002", "DC1")
    assert "E370829001" in rejection.detail
    assert orjson.loads(rejection.payload) == {"ts": TS, "values": {"dp": 1}}


def test_good_points_survive_a_bad_neighbour(decoder: MessageDecoder) -> None:
    send(decoder, DC1, {"ts": TS, "values": {"dp": 900, "nonsense": 1, "hopper_temp": "hot"}})
    decoded = decoder.take()
    assert decoded.samples.value.tolist() == [900.0]
    assert sorted(r.reason.value for r in decoded.rejections) == ["bad_value", "unknown_point"]
    assert "hopper_temp" in next(r.detail for r in decoded.rejections if r.reason == "bad_value")


def test_bad_record_in_batch_refuses_only_that_record(decoder: MessageDecoder) -> None:
    send(decoder, DC1, {"records": [{"ts": TS, "values": {"dp": 1}},
                                    {"ts": "soon", "values": {"dp": 2}}]})
    decoded = decoder.take()
    assert decoded.samples.value.tolist() == [1.0]
    assert "records[1].ts" in decoded.rejections[0].detail


def test_events_and_statuses_are_heartbeats(decoder: MessageDecoder) -> None:
    send(decoder, "rw/v1/E370829001/DC1/event",
         {"ts": TS, "type": "spark_detected", "value": 3, "zone": "grinding-1"})
    send(decoder, "rw/v1/E370829001/DC1/status", {"ts": TS, "online": True})
    send(decoder, "rw/v1/E370829001/DC1/status", {"ts": TS, "online": False, "reason": "will"})
    decoded = decoder.take()
    assert [e.type for e in decoded.events] == ["spark_detected"]
    assert [s.online for s in decoded.statuses] == [True, False]
    # An offline claim is not a sign of life; the event and the online claim are.
    assert len(decoded.samples.heartbeat_device) == 2


def test_take_upto_mark_keeps_the_rest(decoder: MessageDecoder) -> None:
    send(decoder, DC1, {"ts": TS, "values": {"dp": 1}})
    mark = decoder.mark()
    send(decoder, DC1, {"ts": TS, "values": {"dp": 2}})
    first = decoder.take(upto=mark)
    second = decoder.take()
    assert first.samples.value.tolist() == [1.0]
    assert first.messages == 1
    assert second.samples.value.tolist() == [2.0]
    assert second.messages == 1


def test_oversized_payload_is_cut_and_says_so(decoder: MessageDecoder) -> None:
    body = b'{"ts": "' + b"x" * 40_000 + b'"}'
    send(decoder, DC1, body)
    rejection = decoder.take().rejections[0]
    assert len(rejection.payload) == 16_384
    assert "cut to 16384" in rejection.detail
