"""Replay throughput: points/s of `riskwatch replay` on a generated recording.

Generates a synthetic fleet (half dust, half metallurgy sites) and a recording of at
least ``--points`` points with a few injected incidents, then times
:func:`gateway.replay.replay_recording` (generation is not timed).  Prints points/s,
messages/s, alerts and peak RSS.  Run on one core:
``taskset -c 0 python bench/replay_throughput.py``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a file: bench/detectors.py would shadow the package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from gateway.registry import load_registry
from gateway.replay import ReplayOptions, replay_recording
from simulators.basic import BasicSimulator, Excursion, Incident, Outage
from simulators.fleet import synthetic_registry, write_registry

START = 1_763_942_400.0  # 2025-11-24T00:00:00Z, a Monday


def generate(folder: Path, enterprises: int, points: int, records: int) -> tuple[Path, Path, int]:
    spec = synthetic_registry(enterprises)
    registry_path = folder / "registry.yaml"
    write_registry(spec, registry_path)
    incidents: list[Incident] = []
    # Early and short enough to fall inside even the batched run's ~4 minutes of data.
    for n, enterprise in enumerate(spec.enterprises[:20]):
        device = enterprise.devices[0]
        t0 = START + 60 + 5 * n
        if enterprise.industry == "dust":
            incidents.append(Excursion(device.id, "dp", t0, t0 + 90, 2300.0))
        else:
            incidents.append(Outage(device.id, t0, t0 + 90))
    simulator = BasicSimulator(spec, seed=7, incidents=incidents, records_per_message=records)
    recording = folder / f"recording-{records}.jsonl"
    written = 0
    with recording.open("wb") as out:
        for topic, payload in simulator.messages(START):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
            batch = payload.get("records")
            rows = batch if isinstance(batch, list) else [payload]
            written += sum(len(row["values"]) for row in rows)
            if written >= points:
                break
    return registry_path, recording, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, nargs="+", default=[1, 10],
                        help="records per message (one run each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-bench-") as tmp:
        folder = Path(tmp)
        for records in args.records:
            t0 = time.perf_counter()
            registry_path, recording, written = generate(
                folder, args.enterprises, args.points, records)
            generated = time.perf_counter() - t0
            registry = load_registry(registry_path)
            report = replay_recording(
                registry, recording, folder / "alerts.jsonl",
                options=ReplayOptions(progress=False),
            )
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            size_mb = recording.stat().st_size / 1e6
            print(
                f"records/message={records:>3}  points={report.samples:,}  "
                f"messages={report.messages:,}  file={size_mb:.0f} MB  "
                f"replay={report.seconds:.2f} s  "
                f"points/s={report.points_per_second:,.0f}  "
                f"msgs/s={report.messages / report.seconds:,.0f}  "
                f"alerts={report.alerts}  refused={report.rejected}  "
                f"peak_rss={rss_mb:.0f} MB  (generated {written:,} points in {generated:.1f} s)",
                flush=True,
            )
            if report.rejected:
                print(f"  refused: {report.rejected_by_reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
