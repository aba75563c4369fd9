"""Record → replay round trips over a real Mosquitto.

The shared broker on 1883 carries other tests' traffic too, so every test uses its own
enterprise id (``T<hex>``) or a topic root outside ``rw/v1`` and its own client ids,
and persistent sessions expire within seconds.  The reconnect test runs a private
Mosquitto it can restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from gateway.config import BrokerAddress
from gateway.registry.models import RegistrySpec
from simulators.basic import BasicSimulator
from simulators.recorder import RecordStats, record
from simulators.replay_publisher import BrokerUnavailable, PublishStats, publish_recording
from tests.helpers import PrivateBroker, eventually, free_port

pytestmark = pytest.mark.integration

START = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00, a Tuesday


def tiny_registry(enterprise_id: str) -> RegistrySpec:
    return RegistrySpec.model_validate({"enterprises": [{
        "id": enterprise_id, "name": "测试金属制品有限公司", "industry": "dust",
        "region": ["370000", "370800", "370829"],
        "devices": [
            {"id": "DC1", "kind": "dust_collector", "expected_interval_s": 10,
             "points": {"dp": {"kind": "differential_pressure", "unit": "Pa",
                               "lo": 300, "hi": 1500},
                        "fan_run": {"kind": "run_state"}}},
            {"id": "M1", "kind": "meter", "role": "total", "expected_interval_s": 60,
             "rated_kw": 200,
             "points": {"p_kw": {"kind": "power", "unit": "kW"},
                        "e_kwh": {"kind": "energy", "unit": "kWh"}}},
        ],
    }]})


def write_recording(path: Path, lines: list[dict[str, Any] | bytes]) -> None:
    with path.open("wb") as out:
        for line in lines:
            out.write((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def tag() -> str:
    return uuid.uuid4().hex[:8].upper()


@pytest.fixture
def address(mosquitto: tuple[str, int]) -> BrokerAddress:
    return BrokerAddress(mosquitto[0], mosquitto[1], False, None, None)


async def start_recorder(address: BrokerAddress, out: Path, topics: list[str],
                         **options: Any) -> asyncio.Task[RecordStats]:
    subscribed = asyncio.Event()
    options.setdefault("session_expiry_s", 5)
    task = asyncio.create_task(record(
        address, out, client_id=f"rw-rec-{tag()}", topics=topics, subscribed=subscribed,
        **options))
    waiting = asyncio.ensure_future(subscribed.wait())
    await asyncio.wait({task, waiting}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    assert subscribed.is_set(), "the recorder did not subscribe within 15 s"
    return task


async def test_round_trip_records_exactly_what_was_replayed(
    tmp_path: Path, address: BrokerAddress
) -> None:
    eid = f"T{tag()}"
    simulator = BasicSimulator(tiny_registry(eid), seed=3)
    published: list[dict[str, Any]] = [
        {"topic": topic, "payload": payload}
        for topic, payload in simulator.messages(START, START + 300)
    ]
    batch = BasicSimulator(tiny_registry(eid), seed=4, records_per_message=3)
    published += [{"topic": t, "payload": p} for t, p in batch.messages(START + 300,
                                                                        START + 330)]
    published += [
        {"topic": f"rw/v1/{eid}/DC1/event",
         "payload": {"ts": "2026-11-24T08:06:00+08:00", "type": "spark_detected", "value": 3,
                     "zone": "grinding-1"}},
        {"topic": f"rw/v1/{eid}/DC1/status",
         "payload": {"ts": 1_795_478_770_000, "online": False, "reason": "power cut"}},
        {"topic": f"rw/v1/{eid}/DC1/telemetry",
         "payload_raw": base64.b64encode(b"\x00{not json").decode()},
    ]
    recording = tmp_path / "in.jsonl"
    write_recording(recording, [*published[:5], b"{garbage", {"payload": {}},
                                *published[5:]])
    out = tmp_path / "out.jsonl"

    recorder = await start_recorder(address, out, [f"rw/v1/{eid}/#"],
                                    max_messages=len(published))
    stats = await publish_recording(recording, address, speed=None,
                                    client_id=f"rw-replay-{tag()}")
    recorded_stats = await asyncio.wait_for(recorder, 15)

    assert (stats.messages, stats.skipped) == (len(published), 2)
    assert 360.0 < stats.event_span_s <= 370.0  # first message at START + a random phase
    recorded = read_lines(out)
    assert [{k: v for k, v in line.items() if k in ("topic", "payload", "payload_raw")}
            for line in recorded] == published
    assert all(isinstance(line["received_at"], int) for line in recorded)
    assert recorded_stats.messages == len(published)
    assert recorded_stats.bytes == out.stat().st_size
    kinds = [line["topic"].rsplit("/", 1)[1] for line in published]
    assert recorded_stats.by_kind == {kind: kinds.count(kind) for kind in set(kinds)}


async def test_paced_replay_follows_event_time(tmp_path: Path, address: BrokerAddress) -> None:
    eid = f"T{tag()}"
    recording = tmp_path / "paced.jsonl"
    write_recording(recording, [
        {"topic": f"rw/v1/{eid}/DC1/telemetry",
         "payload": {"ts": int((START + s) * 1000), "values": {"dp": 800 + s}}}
        for s in range(11)  # 10 s of event time
    ])
    out = tmp_path / "out.jsonl"
    recorder = await start_recorder(address, out, [f"rw/v1/{eid}/#"], max_messages=11)
    reports: list[PublishStats] = []

    stats = await publish_recording(recording, address, speed=50,
                                    client_id=f"rw-replay-{tag()}", progress=reports.append)
    await asyncio.wait_for(recorder, 15)

    assert stats.messages == 11
    assert stats.event_span_s == 10.0
    assert 0.1 <= stats.seconds <= 2.0  # 10 s at 50x is 0.2 s
    arrivals = [line["received_at"] for line in read_lines(out)]
    assert arrivals[-1] - arrivals[0] >= 100  # ms: spread out, not sent in one burst
    assert reports
    assert reports[-1].messages == 11


async def test_non_json_and_retained_messages_are_recorded(
    tmp_path: Path, address: BrokerAddress
) -> None:
    # A root outside rw/v1, so services under test elsewhere do not count our junk.
    root = f"rwtest/{tag()}"
    async with aiomqtt.Client(address.host, address.port,
                              identifier=f"rw-pub-{tag()}") as client:
        await client.publish(f"{root}/E1/D1/status", b'{"ts": 1795478400000, "online": true}',
                             qos=1, retain=True)
        out = tmp_path / "out.jsonl"
        recorder = await start_recorder(address, out, [f"{root}/#"], max_messages=3)
        await client.publish(f"{root}/E1/D1/telemetry", b"\xff\x00 binary", qos=1)
        await client.publish(f"{root}/E1/D1/telemetry", b'{"ts": 1795478400000,', qos=1)
        stats = await asyncio.wait_for(recorder, 15)
        await client.publish(f"{root}/E1/D1/status", b"", qos=1, retain=True)  # clean up

    lines = read_lines(out)
    assert lines[0]["retained"] is True
    assert lines[0]["payload"] == {"ts": 1795478400000, "online": True}
    assert [base64.b64decode(line["payload_raw"]) for line in lines[1:]] == [
        b"\xff\x00 binary", b'{"ts": 1795478400000,']
    assert all("payload" not in line and "retained" not in line for line in lines[1:])
    assert stats.by_kind == {"other": 3}


async def test_recorder_flushes_while_running_and_stops_on_request(
    tmp_path: Path, address: BrokerAddress
) -> None:
    eid = f"T{tag()}"
    out = tmp_path / "out.jsonl"
    stop = asyncio.Event()
    recorder = await start_recorder(address, out, [f"rw/v1/{eid}/#"], stop=stop)
    async with aiomqtt.Client(address.host, address.port,
                              identifier=f"rw-pub-{tag()}") as client:
        await client.publish(f"rw/v1/{eid}/DC1/telemetry",
                             b'{"ts": 1795478400000, "values": {"dp": 1}}', qos=1)

        async def on_disk() -> bytes:
            return out.read_bytes()

        await eventually(on_disk, within_s=5)  # before the recorder stops
    assert len(read_lines(out)) == 1
    stop.set()
    stats = await asyncio.wait_for(recorder, 5)
    assert stats.messages == 1


async def test_recorder_stops_after_its_duration_and_on_cancel(
    tmp_path: Path, address: BrokerAddress
) -> None:
    started = time.monotonic()
    stats = await record(address, tmp_path / "quiet.jsonl", client_id=f"rw-rec-{tag()}",
                         topics=[f"rw/v1/T{tag()}/#"], duration_s=0.5, session_expiry_s=5)
    assert stats.messages == 0
    assert 0.4 <= time.monotonic() - started < 10
    assert (tmp_path / "quiet.jsonl").read_bytes() == b""

    task = asyncio.create_task(record(address, tmp_path / "cancelled.jsonl",
                                      client_id=f"rw-rec-{tag()}",
                                      topics=[f"rw/v1/T{tag()}/#"], session_expiry_s=5))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_an_unreachable_broker_fails_fast_with_a_typed_error(tmp_path: Path) -> None:
    nowhere = BrokerAddress("127.0.0.1", free_port(), False, "user", "secret")
    recording = tmp_path / "one.jsonl"
    write_recording(recording, [{"topic": "rw/v1/E1/D1/telemetry", "payload": {}}])
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1") as raised:
        await asyncio.wait_for(publish_recording(recording, nowhere), 15)
    assert "secret" not in str(raised.value)
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(record(nowhere, tmp_path / "out.jsonl", duration_s=5), 15)


async def test_a_missing_recording_is_an_os_error(tmp_path: Path,
                                                  address: BrokerAddress) -> None:
    with pytest.raises(FileNotFoundError):
        await publish_recording(tmp_path / "missing.jsonl", address)


# ------------------------------------------------ broker restart (private Mosquitto)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """Persistent, so the recorder's session and its queued messages survive a restart."""
    broker = PrivateBroker(tmp_path / "broker", free_port(), persistence=True)
    broker.start()
    yield broker
    broker.stop()


async def test_nothing_is_lost_when_the_broker_restarts_mid_replay(
    tmp_path: Path, private_broker: PrivateBroker
) -> None:
    address = BrokerAddress("127.0.0.1", private_broker.port, False, None, None)
    count = 60
    recording = tmp_path / "in.jsonl"
    write_recording(recording, [
        {"topic": "rw/v1/E1/DC1/telemetry",
         "payload": {"ts": int((START + s) * 1000), "seq": s, "values": {"dp": 800}}}
        for s in range(count)
    ])
    out = tmp_path / "out.jsonl"
    recorder = await start_recorder(address, out, ["rw/v1/#"], session_expiry_s=60)
    replay = asyncio.create_task(publish_recording(recording, address, speed=20,
                                                   client_id="rw-replay-restart"))
    await asyncio.sleep(1.0)  # about a third sent
    await asyncio.to_thread(private_broker.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(private_broker.start)
    stats = await asyncio.wait_for(replay, 30)

    def seqs() -> list[int]:
        return [line["payload"]["seq"] for line in read_lines(out)]

    async def all_arrived() -> bool:
        return len(set(seqs())) == count

    await eventually(all_arrived, within_s=20)
    recorder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recorder
    received = seqs()
    assert stats.messages >= count  # at least once: a resent message counts again
    assert list(dict.fromkeys(received)) == list(range(count))  # all, first copies in order
