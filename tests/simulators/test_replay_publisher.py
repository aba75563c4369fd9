"""Pacing, event-time extraction and line parsing of the replay publisher (no broker),
and the recorder's line format."""

from __future__ import annotations

import base64
import io

import orjson
import pytest

from simulators.recorder import recording_line
from simulators.replay_publisher import (
    Pacer,
    event_time,
    parse_line,
    read_recording,
    schedule,
    valid_topic,
)

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00


# ------------------------------------------------------------------ schedule / Pacer


def test_speed_divides_event_time_into_wall_time() -> None:
    assert schedule([T0, T0 + 10, T0 + 30], 10.0) == [0.0, 1.0, 3.0]
    assert schedule([T0, T0 + 10, T0 + 30], 1.0) == [0.0, 10.0, 30.0]
    assert schedule([T0, T0 + 1], 0.5) == [0.0, 2.0]


def test_no_speed_sends_everything_at_once() -> None:
    assert schedule([T0, T0 + 3600, None, T0 - 5], None) == [0.0, 0.0, 0.0, 0.0]


def test_lines_without_ts_go_right_after_the_previous_line() -> None:
    assert schedule([None, T0, T0 + 4, None, None, T0 + 8], 2.0) == [0, 0, 2, 2, 2, 4]


def test_out_of_order_ts_keeps_file_order_and_never_goes_back() -> None:
    offsets = schedule([T0, T0 + 20, T0 + 5, T0 + 21, T0 - 100], 1.0)
    assert offsets == [0.0, 20.0, 20.0, 21.0, 21.0]
    assert offsets == sorted(offsets)


def test_the_first_readable_ts_is_the_origin_even_if_a_later_one_is_earlier() -> None:
    pacer = Pacer(1.0)
    assert [pacer.offset(t) for t in (T0 + 50, T0, T0 + 60)] == [0.0, 0.0, 10.0]
    assert pacer.event_span_s == 10.0


def test_empty_and_undated_recordings() -> None:
    assert schedule([], 1.0) == []
    assert schedule([None, None], 1.0) == [0.0, 0.0]
    assert Pacer(1.0).event_span_s == 0.0


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan")])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed)


# ------------------------------------------------------------------------ event time


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"ts": "2026-11-24T08:00:00+08:00", "values": {"dp": 1}}, T0),
        ({"ts": "2026-11-24T00:00:00.250Z", "values": {"dp": 1}}, T0 + 0.25),
        ({"ts": 1_795_478_400_500, "seq": 3, "values": {"dp": 1}}, T0 + 0.5),
        ({"records": [{"ts": "2026-11-24T08:00:10+08:00", "values": {}},
                      {"ts": "2026-11-24T08:00:30+08:00", "values": {}},
                      {"ts": "2026-11-24T08:00:20+08:00", "values": {}}]}, T0 + 30),
        ({"records": [{"ts": "garbage"}, {"ts": 1_795_478_401_000}, "x"]}, T0 + 1),
        ({"ts": "2026-11-24T08:00:05+08:00", "type": "spark_detected", "value": 3}, T0 + 5),
        ({"ts": "2026-11-24T08:00:07+08:00", "online": False, "reason": "lwt"}, T0 + 7),
    ],
    ids=["single", "utc", "epoch-ms", "batch-max", "batch-partly-bad", "event", "status"],
)
def test_event_time_of_each_payload_shape(payload: object, expected: float) -> None:
    assert event_time(payload) == pytest.approx(expected)


@pytest.mark.parametrize(
    "payload",
    [{"values": {"dp": 1}}, {"ts": "yesterday"}, {"ts": "2026-11-24T08:00:00"},
     {"ts": True}, {"ts": 12}, {"records": []}, {"records": [{"values": {}}]},
     [1, 2], "text", None, 42],
    ids=["no-ts", "words", "no-offset", "bool", "before-2000", "empty-batch", "batch-no-ts",
         "array", "string", "null", "number"],
)
def test_no_readable_event_time(payload: object) -> None:
    assert event_time(payload) is None


# ------------------------------------------------------------------------ lines


def test_a_contract_line_is_published_as_its_compact_payload() -> None:
    line = orjson.dumps({"topic": "rw/v1/E1/DC1/telemetry",
                         "payload": {"ts": 1_795_478_400_000, "values": {"dp": 812.5}},
                         "received_at": 1, "retained": True})
    message = parse_line(line)
    assert message is not None
    assert message.topic == "rw/v1/E1/DC1/telemetry"
    assert orjson.loads(message.body) == {"ts": 1_795_478_400_000, "values": {"dp": 812.5}}
    assert message.event_time == T0


def test_payload_raw_is_published_as_the_raw_bytes_without_pacing() -> None:
    raw = b"\x00\xffnot json{"
    line = orjson.dumps({"topic": "rw/v1/E1/DC1/telemetry",
                         "payload_raw": base64.b64encode(raw).decode()})
    message = parse_line(line)
    assert message is not None
    assert (message.body, message.event_time) == (raw, None)


def test_a_null_payload_is_still_a_payload() -> None:
    message = parse_line(b'{"topic": "a/b", "payload": null}')
    assert message is not None
    assert message.body == b"null"


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[1, 2]", b'"topic"', b'{"payload": {}}', b'{"topic": 5, "payload": {}}',
     b'{"topic": "", "payload": {}}', b'{"topic": "rw/v1/+/D/telemetry", "payload": {}}',
     b'{"topic": "rw/#", "payload": {}}', b'{"topic": "rw/v1/E/D/telemetry"}',
     b'{"topic": "a", "payload_raw": "***"}', b'{"topic": "a", "payload_raw": 5}'],
    ids=["not-json", "array", "string", "no-topic", "topic-number", "empty-topic", "plus",
         "hash", "no-payload", "bad-base64", "raw-not-string"],
)
def test_unusable_lines_are_skipped(line: bytes) -> None:
    assert parse_line(line) is None


def test_reading_a_recording_accounts_for_every_line() -> None:
    source = io.BytesIO(b'{"topic": "a/b", "payload": {"ts": 1795478400000}}\n'
                        b"\n"
                        b"{broken\n"
                        b'{"topic": "a/c", "payload": {}}')
    messages = list(read_recording(source))
    assert [m.topic if m else None for m in messages] == ["a/b", None, None, "a/c"]


def test_valid_topic() -> None:
    assert valid_topic("rw/v1/E1/DC1/telemetry")
    assert not valid_topic("rw/v1/E1/DC1/\x00")
    assert not valid_topic("x" * 65_536)


# ------------------------------------------------------------------- recorder lines


def test_a_json_payload_is_recorded_as_received() -> None:
    line = recording_line("rw/v1/E1/D1/telemetry", b' {"ts": 1, "values": {"a": 1.0}} ', 7)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert orjson.loads(line) == {"topic": "rw/v1/E1/D1/telemetry",
                                  "payload": {"ts": 1, "values": {"a": 1.0}}, "received_at": 7}
    assert b'{"a": 1.0}' in line  # the number keeps its spelling


def test_a_multi_line_payload_is_re_encoded_onto_one_line() -> None:
    line = recording_line("t", b'{\n  "ts": 1,\n  "values": {"a": 2}\n}\n', 7)
    assert line.count(b"\n") == 1
    assert orjson.loads(line)["payload"] == {"ts": 1, "values": {"a": 2}}


@pytest.mark.parametrize("payload", [b"{oops", b"", b"\xff\xfe", b"NaN", b'{"a": 1}{"b": 2}'])
def test_a_payload_that_is_not_json_is_kept_as_base64(payload: bytes) -> None:
    record = orjson.loads(recording_line("t", payload, 7, retained=True))
    assert "payload" not in record
    assert base64.b64decode(record["payload_raw"]) == payload
    assert record["retained"] is True
    message = parse_line(orjson.dumps(record))
    assert message is not None
    assert message.body == payload
