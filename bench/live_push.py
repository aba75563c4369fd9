"""Live push latency: from a reading published on the broker to the dashboard's stream.

The dashboard issue asks that the board update within 1 s of an alert being raised.
This measures the whole path a browser sees: an edge device publishes an over-limit
reading (MQTT, QoS 1) to Mosquitto → the service's MQTT source, decoder, pipeline and
alert manager → the store writer (the alert is committed to SQLite first) → the live
hub → ``GET /api/v1/stream`` (Server-Sent Events over HTTP) read by a client logged in
as an administrator.  Latency = arrival of the ``alert`` event minus the publish call,
both on ``time.perf_counter`` in this one process.

``--enterprises`` sites each have one dust-collector ΔP point (on-delay 0); each round
publishes one over-limit reading per site at ``--interval-ms`` spacing, then one normal
reading each to clear them (those "resolved" events are not timed), and waits
``--pause-s``.  Needs Mosquitto on ``--broker`` (127.0.0.1:1883 by default).

Run from the repository root::

    python -m bench.live_push                # 50 sites x 5 rounds, about half a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from gateway.auth.passwords import FAST, Passwords
from gateway.config import Settings
from gateway.service import Service

PASSWORD = "bench-password-1"


def registry_yaml(tag: str, enterprises: int) -> str:
    lines = ["enterprises:"]
    for i in range(enterprises):
        lines += [
            f"  - id: {tag}{i:04d}",
            f"    name: 基准企业{i}",
            "    industry: dust",
            '    region: ["370000", "370800", "370829", "370829101"]',
            "    devices:",
            f"      - id: {tag}{i:04d}-DC1",
            "        kind: dust_collector",
            "        expected_interval_s: 3600",
            "        points:",
            "          dp: { kind: differential_pressure, unit: Pa, lo: 300, hi: 1500, "
            "hihi: 2000, on_delay_s: 0, deadband: 20 }",
        ]
    return "\n".join(lines) + "\n"


class Round:
    """Arrivals of one round's ``firing`` events, first per enterprise."""

    def __init__(self, expected: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.expected = expected
        self.done = asyncio.Event()

    def note(self, enterprise: str) -> None:
        if enterprise not in self.arrivals:
            self.arrivals[enterprise] = time.perf_counter()
            if len(self.arrivals) >= self.expected:
                self.done.set()


async def read_events(response: httpx.Response, current: list[Round]) -> None:
    """Hand every ``firing`` alert event to the round under way (``current[0]``)."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "alert":
            alert = orjson.loads(line[6:])
            if alert["state"] == "firing":
                current[0].note(alert["enterprise_id"])


async def run(args: argparse.Namespace) -> list[float]:
    host, _, port = args.broker.partition(":")
    tag = f"B{uuid.uuid4().hex[:5].upper()}"
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rw_live_") as folder:
        registry = Path(folder) / "registry.yaml"
        registry.write_text(registry_yaml(tag, args.enterprises), encoding="utf-8")
        settings = Settings(registry=registry, broker_url=f"mqtt://{args.broker}",
                            mqtt_client_id=f"rw-bench-{tag}", mqtt_session_expiry_s=30,
                            db_url=f"sqlite+aiosqlite:///{folder}/rw.sqlite3", api_port=0,
                            sweep_interval_s=1.0)
        service = Service(settings, passwords=Passwords(FAST))
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.ready.wait(), 30)
        assert service.users is not None
        await service.users.create("bench", PASSWORD, "admin")
        session = await service.users.login("bench", PASSWORD)
        assert session is not None
        mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{tag}")
        mqtt.connect(host, int(port or 1883))
        mqtt.loop_start()
        try:
            async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{service.api_port}", timeout=None,
                    headers={"Authorization": f"Bearer {session.token}"}) as http, \
                    http.stream("GET", "/api/v1/stream") as stream:
                current = [Round(args.enterprises)]
                reader = asyncio.create_task(read_events(stream, current))
                for round_no in range(args.rounds):
                    current[0] = this = Round(args.enterprises)
                    sent: dict[str, float] = {}
                    for i in range(args.enterprises):
                        enterprise = f"{tag}{i:04d}"
                        body = orjson.dumps({"ts": int(time.time() * 1000),
                                             "values": {"dp": 2150.0 + round_no}})
                        sent[enterprise] = time.perf_counter()
                        mqtt.publish(f"rw/v1/{enterprise}/{enterprise}-DC1/telemetry", body,
                                     qos=1)
                        await asyncio.sleep(args.interval_ms / 1000)
                    await asyncio.wait_for(this.done.wait(), 30)
                    latencies += [this.arrivals[e] - sent[e] for e in sent]
                    for i in range(args.enterprises):  # clear them for the next round
                        enterprise = f"{tag}{i:04d}"
                        mqtt.publish(f"rw/v1/{enterprise}/{enterprise}-DC1/telemetry",
                                     orjson.dumps({"ts": int(time.time() * 1000),
                                                   "values": {"dp": 900.0}}), qos=1)
                    await asyncio.sleep(args.pause_s)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            mqtt.loop_stop()
            mqtt.disconnect()
            service.stop()
            await task
    return latencies


def report(latencies: Sequence[float], args: argparse.Namespace) -> None:
    ms = np.asarray(latencies) * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"live push, broker {args.broker}: {len(ms)} alerts ({args.enterprises} sites x "
          f"{args.rounds} rounds, one reading every {args.interval_ms} ms)")
    print(f"  publish -> SSE event: p50 {np.percentile(ms, 50):.1f} ms, p95 "
          f"{np.percentile(ms, 95):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max "
          f"{ms.max():.1f} ms; within 1 s: {np.mean(ms <= 1000):.1%}")
    print(f"  peak RSS {peak:.0f} MiB (service, client and publisher in one process)")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--broker", default="127.0.0.1:1883")
    p.add_argument("--enterprises", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--pause-s", type=float, default=2.0)
    args = p.parse_args(argv)
    report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
