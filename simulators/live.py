"""Publish a simulator's stream to a broker in (scaled) real time.

Used by ``riskwatch demo`` and by testers pointing the simulator at their own broker.
Event time is wall time at ``speed`` 1; at ``speed`` X, X seconds of data are sent per
wall second (timestamps stay those of the simulation).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt
import orjson

from simulators.basic import BasicSimulator

log = logging.getLogger(__name__)


async def publish_live(
    simulator: BasicSimulator,
    host: str,
    port: int,
    *,
    start: float | None = None,
    speed: float = 1.0,
    client_id: str = "riskwatch-simulator",
) -> None:
    """Publish until cancelled, reconnecting if the broker goes away."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    origin = time.time() if start is None else start
    wall_origin = time.monotonic()
    stream = simulator.messages(origin)
    pending: tuple[str, dict[str, object]] | None = None
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier=client_id,
                                      protocol=aiomqtt.ProtocolVersion.V311) as client:
                while True:
                    topic, payload = pending or next(stream)
                    pending = (topic, payload)
                    due = _event_time(payload) - origin
                    wait = wall_origin + due / speed - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await client.publish(topic, orjson.dumps(payload), qos=1)
                    pending = None
        except aiomqtt.MqttError as exc:
            log.warning("simulator lost the broker (%s); retrying in 1 s", exc)
            await asyncio.sleep(1.0)


def _event_time(payload: dict[str, object]) -> float:
    from datetime import datetime

    records = payload.get("records")
    record = records[-1] if isinstance(records, list) else payload
    assert isinstance(record, dict)
    return datetime.fromisoformat(str(record["ts"])).timestamp()
