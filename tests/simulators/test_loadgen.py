"""The load generator: valid contract payloads, cadence, and a short run on Mosquitto."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiomqtt
import orjson
import pytest

from gateway.config import BrokerAddress
from gateway.ingest.decode import MessageDecoder
from gateway.registry import Registry
from gateway.registry.models import RegistrySpec
from simulators.fleet import synthetic_registry
from simulators.loadgen import fleet_devices, run_load
from simulators.replay_publisher import BrokerUnavailable, event_time
from tests.helpers import eventually, free_port


def unique_fleet(enterprises: int, prefix: str) -> RegistrySpec:
    """``synthetic_registry`` with every id prefixed, for a shared broker."""
    data: dict[str, Any] = synthetic_registry(enterprises).model_dump(
        mode="json", by_alias=True, exclude_none=True)
    for enterprise in data["enterprises"]:
        enterprise["id"] = prefix + enterprise["id"]
        for device in enterprise["devices"]:
            device["id"] = prefix + device["id"]
    return RegistrySpec.model_validate(data)


@pytest.mark.parametrize("records", [1, 5])
def test_every_payload_is_a_valid_contract_message_for_the_registry(records: int) -> None:
    spec = synthetic_registry(6)
    decoder = MessageDecoder(Registry(spec).index)
    now = time.time()
    devices = fleet_devices(spec, records_per_message=records)
    for _ in range(3):
        for device in devices:
            body = device.message(now)
            decoder.feed(device.topic, body, now)
            assert event_time(orjson.loads(body)) == pytest.approx(now, abs=0.001)
    decoded = decoder.take()
    assert decoded.rejections == []
    assert len(decoded.samples) == 3 * sum(d.points_per_message for d in devices)


def test_batches_spread_their_records_over_the_interval() -> None:
    device = next(d for d in fleet_devices(synthetic_registry(1), records_per_message=5)
                  if d.topic.endswith("DC1/telemetry"))
    payload = orjson.loads(device.message(1_795_478_400.0))
    stamps = [event_time(record) for record in payload["records"]]
    assert stamps == [1_795_478_392.0, 1_795_478_394.0, 1_795_478_396.0,
                      1_795_478_398.0, 1_795_478_400.0]  # 10 s interval, 5 samples


def test_interval_scale_compresses_the_cadence() -> None:
    periods = {d.topic.split("/")[3]: d.period
               for d in fleet_devices(synthetic_registry(2), interval_scale=10)}
    assert periods == {"E000001-DC1": 1.0, "E000001-M1": 6.0, "E000002-CW1": 1.0,
                       "E000002-GAS1": 1.0, "E000002-MF1": 6.0}


def test_meter_energy_only_goes_up() -> None:
    meter = next(d for d in fleet_devices(synthetic_registry(1)) if "/meter" in d.topic)
    readings = [orjson.loads(meter.message(1_795_478_400.0 + 60 * k))["values"]
                for k in range(5)]
    energy = [r["e_kwh"] for r in readings]
    assert energy == sorted(energy)
    assert energy[0] < energy[-1]
    assert all(150 < r["p_kw"] < 200 for r in readings)  # ~70 % of 250 kW rated


@pytest.mark.integration
async def test_a_short_run_delivers_every_message_and_reports_each_second(
    mosquitto: tuple[str, int],
) -> None:
    prefix = f"L{uuid.uuid4().hex[:6].upper()}"
    fleet = unique_fleet(20, prefix)
    address = BrokerAddress(*mosquitto, False, None, None)
    decoder = MessageDecoder(Registry(fleet).index)
    received = 0
    lines: list[str] = []

    async with aiomqtt.Client(*mosquitto, identifier=f"rw-count-{prefix}") as counter:
        await counter.subscribe([(f"rw/v1/{e.id}/#", 1) for e in fleet.enterprises])

        async def count() -> None:
            nonlocal received
            async for message in counter.messages:
                assert isinstance(message.payload, bytes)
                decoder.feed(message.topic.value, message.payload, time.time())
                received += 1

        counting = asyncio.create_task(count())
        stats = await run_load(address, 20, registry=fleet, duration_s=2.0, interval_scale=10,
                               client_prefix=f"rw-load-{prefix}", report=lines.append)
        async def all_received() -> bool:
            return received >= stats.messages

        await eventually(all_received, within_s=10)
        await asyncio.sleep(0.2)  # anything beyond what was acknowledged would show now
        counting.cancel()

    # 10 dust sites at 1.17 msg/s and 10 metallurgy sites at 2.17 msg/s, compressed 10x.
    assert stats.target_per_s == pytest.approx(33.33, abs=0.01)
    assert 50 <= stats.messages <= 80  # ~67 in 2 s, phases are random
    assert received == stats.messages
    assert (stats.errors, stats.behind) == (0, 0)
    assert sum(stats.per_second) == stats.messages
    assert len(stats.per_second) == 2
    decoded = decoder.take()  # what arrived is valid for the fleet, point for point
    assert decoded.rejections == []
    assert len(decoded.samples) == stats.points
    assert 1.9 <= stats.seconds < 5
    assert [line.split()[0] for line in lines] == ["t=1s", "t=2s"]
    assert lines[0].endswith("target 33 msg/s, errors 0")


@pytest.mark.integration
async def test_an_unreachable_broker_fails_fast() -> None:
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(run_load(BrokerAddress("127.0.0.1", free_port(), False, None,
                                                      None), 2, duration_s=1), 15)
