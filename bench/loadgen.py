"""Load generator benchmark: msgs/s and points/s a fleet gets through a broker (QoS 1).

Runs :func:`simulators.loadgen.run_load` against ``--broker`` (default the local
Mosquitto) once per ``--records`` setting, splitting ``--duration`` (default 20 s)
between them, and prints the per-second rate lines and a summary table.  The default
fleet (2,000 synthetic enterprises, intervals compressed 100x: about 33,000 msg/s
asked for) is far above what one Python publisher can send, so the achieved rate is
the ceiling of this publisher process and the broker together, not the target;
``behind`` counts what was due but never sent.  ``--private-broker`` starts a Mosquitto
of its own on a free port instead, so a shared broker is left alone.

    python bench/loadgen.py
    python bench/loadgen.py --broker mqtt://10.0.0.5:1883 --duration 60 --records 1 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a file: bench/detectors.py would shadow the package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from gateway.config import BrokerAddress
from simulators.loadgen import LoadStats, run_load
from simulators.mqtt_client import BrokerUnavailable


def broker_address(url: str) -> BrokerAddress:
    try:
        return BrokerAddress.from_url(url)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


@contextlib.contextmanager
def private_mosquitto() -> Iterator[str]:
    """A throwaway Mosquitto on a free loopback port; yields its URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("error: mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="rw-bench-") as folder:
        config = Path(folder) / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                          "persistence false\n", encoding="utf-8")
        process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", port), timeout=0.2):
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("error: the private mosquitto did not start")
                time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883",
                        help="mqtt://[user:password@]host:port (default: %(default)s)")
    parser.add_argument("--private-broker", action="store_true",
                        help="start a private Mosquitto instead of using --broker")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="total seconds, split between the --records runs")
    parser.add_argument("--enterprises", type=int, default=2000)
    parser.add_argument("--interval-scale", type=float, default=100.0,
                        help="divide every device interval by this (compress time)")
    parser.add_argument("--records", type=int, nargs="+", default=[1, 10],
                        help="records per message, one run each (default: 1 10)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=20,
                        help="QoS 1 publishes in flight per connection")
    parser.add_argument("--quiet", action="store_true", help="no per-second lines")
    args = parser.parse_args()
    if args.duration <= 0 or not args.records:
        parser.error("--duration must be positive and --records non-empty")

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(private_mosquitto()) if args.private_broker else args.broker
        address = broker_address(url)
        per_run = args.duration / len(args.records)
        results: list[tuple[int, LoadStats]] = []
        for records in args.records:
            print(f"# {args.enterprises:,} enterprises, intervals /{args.interval_scale:g}, "
                  f"{records} record(s)/message, {args.connections} connections, window "
                  f"{args.window}, {per_run:.0f} s against {address!r}", flush=True)
            try:
                stats = asyncio.run(run_load(
                    address, args.enterprises, duration_s=per_run,
                    interval_scale=args.interval_scale, records_per_message=records,
                    connections=args.connections, client_prefix=f"rw-bench-{os.getpid()}-{records}",
                    window=args.window,
                    report=None if args.quiet else lambda line: print(line, flush=True)))
            except BrokerUnavailable as exc:
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            results.append((records, stats))

    print()
    print(f"{'records/msg':>11} {'seconds':>8} {'target msg/s':>13} {'msgs/s':>9} "
          f"{'median msg/s':>13} {'points/s':>11} {'errors':>7} {'behind':>9}")
    for records, stats in results:
        median = statistics.median(stats.per_second) if stats.per_second else 0
        print(f"{records:>11} {stats.seconds:>8.1f} {stats.target_per_s:>13,.0f} "
              f"{stats.messages_per_s:>9,.0f} {median:>13,.0f} {stats.points_per_s:>11,.0f} "
              f"{stats.errors:>7} {stats.behind:>9,}")


if __name__ == "__main__":
    main()
