"""Detector throughput: the vectorized core against the plain-Python reference.

A simulator suite of ``--sites`` enterprises is rendered into contract messages and
decoded the way ``riskwatch replay`` decodes a recording (batches cut at the 5 s sweep
grid of event time), until ``--points`` samples; decoding is not timed.  Then, on the
same batches and sweep instants:

* the vectorized core: every detector of :class:`~gateway.pipeline.Pipeline`, called in
  the order ``Pipeline.process``/``Pipeline.advance`` call them, without the evidence
  window and alert building (:class:`VectorCore`);
* the reference: :class:`bench.reference_core.ReferenceCore`, one sample at a time, with
  the tamper rule from the test reference when the tests are importable.

It prints points/s of both, their ratio, bytes of detector state (numpy arrays of all
detectors, the tamper replay history included) per registry point and per processed
point, and the same figures for a larger batch (``--large-sweep-s`` of event time per
batch).  Targets (issue): >= 2,000,000 points/s per core vectorized, >= 50x the
reference.  Run on one core, from the repository root::

    taskset -c 0 python -m bench.detectors

The same module is the oracle's harness (``tests/bench/test_reference_oracle.py``):
:func:`record_steps` turns messages into batches and sweep instants,
:func:`run_vectorized` and :func:`run_reference` run them and return the condition
changes per rule, :func:`differences` compares them.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

if __package__ in (None, ""):  # run as a file: bench/ would shadow the detectors package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from alerting import Alert
from bench.reference_core import RULES, ReferenceCore, Row, tamper_reference
from detectors.base import ConditionChanges, SampleBatch
from detectors.plant_state import PlantStateDetector
from detectors.tamper import TamperDetector
from gateway.clock import DataClock, SweepGrid
from gateway.ingest.decode import Decoded, MessageDecoder
from gateway.pipeline import SPARK_EVENTS, Pipeline
from gateway.registry import Registry
from gateway.replay import FLUSH_SAMPLES


class EndOfRecording:
    """The last step: what the bulk-judged rules still hold is judged (``drain``)."""

    def __repr__(self) -> str:
        return "END"


END = EndOfRecording()

Step = Decoded | float | EndOfRecording
"""A decoded batch for ``process``, a sweep instant (epoch s) for ``advance``, or
:data:`END` for ``drain``."""

StepRow = tuple[int, int, float, float, int, float, float]
"""(step index, subject, ts, since, severity, value, limit)."""


# -- the harness -------------------------------------------------------------------------


def record_steps(
    registry: Registry,
    messages: Iterable[tuple[str, Any]],
    *,
    sweep_interval_s: float = 5.0,
    max_samples: int | None = None,
    max_future_s: float = 86_400.0,
) -> list[Step]:
    """Batches and sweep instants exactly as :func:`gateway.replay.replay_recording`
    cuts them: everything decoded before a message that passes the next sweep instant
    is one batch, followed by the instants passed; a batch is also cut every
    ``FLUSH_SAMPLES`` samples.  With ``max_samples``, decoding stops there (the last
    batch is trimmed to exactly that many samples).  Empty batches are left out, as
    ``Pipeline.process`` ignores them.  The last step is :data:`END`, where replay
    calls ``Pipeline.drain``: without it, the samples of the last minute that the
    bulk-judged rules hold would be neither judged nor timed."""
    decoder = MessageDecoder(registry.index, max_future_s=max_future_s)
    clock, grid = DataClock(), SweepGrid(sweep_interval_s)
    steps: list[Step] = []
    taken = 0

    def take(decoded: Decoded) -> None:
        nonlocal taken
        if max_samples is not None and taken + len(decoded.samples) > max_samples:
            decoded.samples = _head(decoded.samples, max_samples - taken)
        taken += len(decoded.samples)
        s = decoded.samples
        if len(s) or len(s.heartbeat_device) or decoded.events:
            steps.append(decoded)

    watermark = -math.inf
    for topic, payload in messages:
        latest = decoder.feed(topic, payload, watermark if watermark > -math.inf else math.inf)
        if latest > watermark:
            if latest > grid.next_due or watermark == -math.inf:
                take(decoder.take(upto=decoder.before_last_message))
                clock.observe(latest)
                steps.extend(grid.passed(clock.now()))
            else:
                clock.observe(latest)
            watermark = clock.now()
        if decoder.pending_samples >= FLUSH_SAMPLES:
            take(decoder.take())
        if max_samples is not None and taken + decoder.pending_samples >= max_samples:
            break
    take(decoder.take())
    steps.append(END)
    return steps


def _head(samples: SampleBatch, n: int) -> SampleBatch:
    return SampleBatch(samples.point[:n], samples.ts[:n], samples.value[:n],
                       samples.quality[:n], samples.heartbeat_device, samples.heartbeat_ts)


def sparks_of(decoded: Decoded) -> list[tuple[int, float]]:
    """(device, ts) of the spark events in a batch, in arrival order."""
    return [(e.device, e.ts) for e in decoded.events if e.type in SPARK_EVENTS]


class VectorCore:
    """The detectors of a :class:`~gateway.pipeline.Pipeline` (built by it, so with its
    parameters), called in the order its ``process``/``advance`` call them, returning
    every detector's changes, the intermediate ones (plant state, tamper) included.
    Not done here: the evidence window, alert building, statistics.  ``tamper=False``
    leaves the tamper rule out (the fake-data rule then sees no signal), for a
    comparison with the reference without it."""

    def __init__(self, registry: Registry, *, sweep_interval_s: float = 5.0,
                 tamper: bool = True) -> None:
        self.pipeline = Pipeline(registry, sweep_interval_s=sweep_interval_s)
        self.with_tamper = tamper
        p = self.pipeline
        self.detectors: dict[str, object] = {
            "threshold": p.threshold, "silence": p.silence, "plant_state": p.plant,
            "hidden_operation": p.hidden, "interlock_violation": p.interlock,
            "fake_offline": p.fake, "tamper": p.tamper, "rate_of_change": p.rate,
            "deviation": p.deviation, "event_burst": p.sparks}

    def process(self, decoded: Decoded) -> list[ConditionChanges]:
        p = self.pipeline
        samples = decoded.samples
        changes = [p.threshold.update(samples), p.silence.update(samples),
                   p.interlock.update(samples), p.rate.update(samples),
                   p.deviation.update(samples), p.plant.update(samples)]
        changes.append(p.hidden.update_readings(p.plant.readings))
        p.fake.observe_readings(p.plant.readings)
        if self.with_tamper:
            tamper = p.tamper.update(samples)
            p.fake.observe_tamper(tamper)
            changes.append(tamper)
        sparks = [e for e in decoded.events if e.type in SPARK_EVENTS]
        if sparks:
            changes.append(p.sparks.update_events([e.device for e in sparks],
                                                  [e.ts for e in sparks]))
        return changes

    def sweep(self, now: float) -> list[ConditionChanges]:
        p = self.pipeline
        changes = [p.plant.sweep(now)]
        if len(p.plant.readings.meter):
            changes.append(p.hidden.update_readings(p.plant.readings))
            p.fake.observe_readings(p.plant.readings)
        changes += [p.threshold.sweep(now), p.silence.sweep(now), p.hidden.sweep(now),
                   p.interlock.sweep(now), p.sparks.sweep(now), p.rate.sweep(now),
                   p.deviation.sweep(now),
                   p.fake.sweep_site(now, p.silence.silent, p.silence.last_seen)]
        if self.with_tamper:
            tamper = p.tamper.sweep(now)
            p.fake.observe_tamper(tamper)
            changes.append(tamper)
        changes.append(p.fake.sweep_points(now))
        return changes

    def drain(self) -> list[ConditionChanges]:
        """What the bulk-judged rules hold, judged as ``Pipeline.drain`` does."""
        p = self.pipeline
        changes = [p.plant.judge_held()]
        if len(p.plant.readings.meter):
            changes.append(p.hidden.update_readings(p.plant.readings))
            p.fake.observe_readings(p.plant.readings)
        changes += [p.rate.judge_held(), p.deviation.judge_held()]
        if self.with_tamper:
            tamper = p.tamper.judge_held()
            p.fake.observe_tamper(tamper)
            changes.append(tamper)
        return changes

    def step(self, step: Step) -> list[ConditionChanges]:
        """One step of :func:`record_steps`."""
        if isinstance(step, EndOfRecording):
            return self.drain()
        return self.sweep(step) if isinstance(step, float) else self.process(step)

    def state_bytes(self) -> dict[str, int]:
        """Bytes of numpy state per detector (arrays shared with the registry included
        once, views counted through their base)."""
        seen: set[int] = set()
        return {name: _array_bytes(d, seen, depth=0) for name, d in self.detectors.items()}


def run_vectorized(registry: Registry, steps: list[Step], *, sweep_interval_s: float = 5.0
                   ) -> dict[str, list[StepRow]]:
    """:class:`VectorCore`'s changes of every rule, each row tagged with its step."""
    core = VectorCore(registry, sweep_interval_s=sweep_interval_s)
    out: dict[str, list[StepRow]] = {rule: [] for rule in RULES}
    for i, step in enumerate(steps):
        changes = core.step(step)
        for c in changes:
            out.setdefault(c.rule, []).extend((i, *row) for row in rows_of(c))
    return out


def run_pipeline(registry: Registry, steps: list[Step], *, sweep_interval_s: float = 5.0
                 ) -> dict[str, list[StepRow]]:
    """The changes a real :class:`~gateway.pipeline.Pipeline` hands to alerting (its
    ``_emit``), plus the plant-state and tamper changes it passes between detectors;
    no alert is built.  ``steps`` must hold every sweep instant of the grid (as
    :func:`record_steps` makes them), so ``advance(instant)`` sweeps exactly there."""
    pipeline = _RecordingPipeline(registry, sweep_interval_s=sweep_interval_s)
    out: dict[str, list[StepRow]] = {rule: [] for rule in RULES}
    for i, step in enumerate(steps):
        if isinstance(step, EndOfRecording):
            pipeline.drain()
        elif isinstance(step, float):
            pipeline.advance(step)
        else:
            pipeline.process(step)
        for c in pipeline.recorded:
            out.setdefault(c.rule, []).extend((i, *row) for row in rows_of(c))
        pipeline.recorded.clear()
    return out


class _Recorder:
    """Forwards everything to a detector, recording what ``update``/``sweep`` return."""

    def __init__(self, inner: object, sink: list[ConditionChanges]) -> None:
        self._inner, self._sink = inner, sink

    def update(self, batch: SampleBatch) -> ConditionChanges:
        changes: ConditionChanges = self._inner.update(batch)  # type: ignore[attr-defined]
        self._sink.append(changes)
        return changes

    def sweep(self, now: float) -> ConditionChanges:
        changes: ConditionChanges = self._inner.sweep(now)  # type: ignore[attr-defined]
        self._sink.append(changes)
        return changes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RecordingPipeline(Pipeline):
    """A pipeline whose changes are recorded instead of becoming alerts."""

    def __init__(self, registry: Registry, *, sweep_interval_s: float) -> None:
        super().__init__(registry, sweep_interval_s=sweep_interval_s)
        self.recorded: list[ConditionChanges] = []
        self.plant = cast(PlantStateDetector, _Recorder(self.plant, self.recorded))
        self.tamper = cast(TamperDetector, _Recorder(self.tamper, self.recorded))

    def _emit(self, changes: list[ConditionChanges]) -> list[Alert]:
        self.recorded.extend(changes)
        return []


def run_reference(registry: Registry, steps: list[Step], *, with_tamper: bool = True
                  ) -> dict[str, list[StepRow]]:
    """The reference's changes, in the same shape as :func:`run_vectorized`."""
    tamper = tamper_reference(registry) if with_tamper else None
    core = ReferenceCore(registry, tamper=tamper)
    out: dict[str, list[StepRow]] = {rule: [] for rule in RULES}
    for i, step in enumerate(steps):
        result = (core.drain() if isinstance(step, EndOfRecording)
                  else core.sweep(step) if isinstance(step, float)
                  else core.process(step.samples, sparks_of(step)))
        for rule, rows in result.items():
            out[rule].extend((i, *row) for row in rows)
    return out


def rows_of(c: ConditionChanges) -> Iterator[Row]:
    yield from zip(c.subject.tolist(), c.ts.tolist(), c.since.tolist(), c.severity.tolist(),
                   c.value.tolist(), c.limit.tolist(), strict=True)


def differences(got: list[StepRow], want: list[StepRow], *, rel: float = 1e-9,
                limit: int = 20) -> list[str]:
    """Rows that differ (up to ``limit``), compared in (step, ts, subject) order: ints
    and times exactly, values and limits within ``rel`` (NaN equals NaN)."""
    def key(r: StepRow) -> tuple[int, float, int]:
        return r[0], r[2], r[1]

    a, b = sorted(got, key=key), sorted(want, key=key)
    out: list[str] = []
    if len(a) != len(b):
        out.append(f"{len(a)} rows against {len(b)}")
    for x, y in zip(a, b, strict=False):
        same = x[:5] == y[:5] and all(_close(u, v, rel) for u, v in zip(x[5:], y[5:],
                                                                        strict=True))
        if not same:
            out.append(f"vectorized {x} != reference {y}")
        if len(out) >= limit:
            break
    if len(a) != len(b) and len(out) < limit:
        extra = a[len(b):] if len(a) > len(b) else b[len(a):]
        out += [f"unmatched {r}" for r in extra[: limit - len(out)]]
    return out


def _close(u: float, v: float, rel: float) -> bool:
    if math.isnan(u) or math.isnan(v):
        return math.isnan(u) and math.isnan(v)
    return u == v or abs(u - v) <= rel * max(abs(u), abs(v))


def _array_bytes(obj: object, seen: set[int], depth: int) -> int:
    """numpy bytes reachable from ``obj`` through attributes, lists, tuples and dicts."""
    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) in seen:
            return 0
        seen.add(id(root))
        return int(root.nbytes)
    if id(obj) in seen or depth > 6 or isinstance(obj, (str, bytes, int, float, type)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, dict):
        children: Iterable[object] = obj.values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    else:
        slots = [getattr(obj, s) for k in type(obj).__mro__
                 for s in getattr(k, "__slots__", ()) if hasattr(obj, s)]
        children = [*getattr(obj, "__dict__", {}).values(), *slots]
    return sum(_array_bytes(child, seen, depth + 1) for child in children)


# -- the benchmark -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    registry: Registry
    steps: list[Step]
    points: int
    batches: int
    sweeps: int


def workload(sites: int, points: int, *, seed: int, sweep_interval_s: float) -> Workload:
    """A clean suite (no scenarios) of ``sites`` enterprises, decoded to ``points``."""
    from simulators.suite import SuiteOptions, build_suite

    suite = build_suite(SuiteOptions(sites=sites, days=0.25, seed=seed, scenarios=()))
    registry = Registry(suite.registry, source="<bench suite>")
    steps = record_steps(registry, suite.messages(), sweep_interval_s=sweep_interval_s,
                         max_samples=points)
    batches = [s for s in steps if isinstance(s, Decoded)]
    return Workload(registry, steps, sum(len(b.samples) for b in batches), len(batches),
                    sum(isinstance(s, float) for s in steps))


def _run_vectorized_once(w: Workload, sweep_interval_s: float, *, tamper: bool
                         ) -> tuple[float, VectorCore]:
    core = VectorCore(w.registry, sweep_interval_s=sweep_interval_s, tamper=tamper)
    gc.collect()
    began = time.perf_counter()
    for step in w.steps:
        core.step(step)
    return time.perf_counter() - began, core


_TIMED = {"threshold": ("update", "sweep"), "silence": ("update", "sweep"),
          "interlock": ("update", "sweep"), "rate": ("update", "sweep", "judge_held"),
          "plant": ("update", "sweep", "judge_held"),
          "deviation": ("update", "sweep", "judge_held"),
          "hidden": ("update_readings", "sweep"),
          "fake": ("observe_readings", "observe_tamper", "sweep_site", "sweep_points"),
          "tamper": ("update", "sweep", "judge_held"), "sparks": ("update_events", "sweep")}
"""Pipeline attribute -> the methods :class:`VectorCore` calls on it."""


def breakdown(w: Workload, sweep_interval_s: float) -> dict[str, float]:
    """Seconds spent in each detector over one run (its methods wrapped in timers)."""
    core = VectorCore(w.registry, sweep_interval_s=sweep_interval_s)
    spent = dict.fromkeys(_TIMED, 0.0)

    def timed(name: str, method: Any) -> Any:
        def call(*args: Any) -> Any:
            began = time.perf_counter()
            result = method(*args)
            spent[name] += time.perf_counter() - began
            return result
        return call

    for name, methods in _TIMED.items():
        detector = getattr(core.pipeline, name)
        for method in methods:
            setattr(detector, method, timed(name, getattr(detector, method)))
    for step in w.steps:
        core.step(step)
    return spent


def time_reference(w: Workload, *, with_tamper: bool) -> float:
    tamper = tamper_reference(w.registry) if with_tamper else None
    core = ReferenceCore(w.registry, tamper=tamper)
    inputs = [s if isinstance(s, float | EndOfRecording) else (s.samples, sparks_of(s))
              for s in w.steps]
    gc.collect()
    began = time.perf_counter()
    for item in inputs:
        if isinstance(item, EndOfRecording):
            core.drain()
        elif isinstance(item, float):
            core.sweep(item)
        else:
            core.process(*item)
    return time.perf_counter() - began


@dataclass
class Timings:
    """Best seconds of each contender over interleaved rounds, and the all-rules ratio
    of every round that timed both (its spread shows how noisy the machine was)."""

    vectorized: float = math.inf
    vectorized_plain: float = math.inf
    reference: float = math.inf
    reference_plain: float = math.inf
    round_ratios: list[float] = field(default_factory=list)


def time_interleaved(w: Workload, sweep_interval_s: float, repeats: int,
                     reference_repeats: int) -> tuple[Timings, VectorCore]:
    """Each round times the vectorized core (with and without tamper) and, in the first
    ``reference_repeats`` rounds, the reference: a slow or busy spell of the machine
    then hits both sides instead of one, and each side is its best run (the reference
    used to run once against the core's best of several, which flattered the ratio)."""
    best = Timings()
    core = None
    for round_ in range(max(repeats, reference_repeats)):
        seconds, core = _run_vectorized_once(w, sweep_interval_s, tamper=True)
        plain, _ = _run_vectorized_once(w, sweep_interval_s, tamper=False)
        best.vectorized = min(best.vectorized, seconds)
        best.vectorized_plain = min(best.vectorized_plain, plain)
        if round_ < reference_repeats:
            ref_full = time_reference(w, with_tamper=True)
            best.reference = min(best.reference, ref_full)
            best.reference_plain = min(best.reference_plain,
                                       time_reference(w, with_tamper=False))
            best.round_ratios.append(ref_full / seconds)
    assert core is not None
    return best, core


def report(w: Workload, label: str, sweep_interval_s: float, repeats: int,
           reference_repeats: int = 3) -> None:
    n = w.points
    timed, core = time_interleaved(w, sweep_interval_s, repeats, reference_repeats)
    seconds, plain = timed.vectorized, timed.vectorized_plain
    ref_full, ref_plain = timed.reference, timed.reference_plain
    has_tamper = tamper_reference(w.registry) is not None
    print(f"\n== {label}: {n:,} points in {w.batches:,} batches "
          f"(mean {n / max(w.batches, 1):,.0f} points/batch), {w.sweeps:,} sweeps, "
          f"{w.registry.index.n_points:,} registry points")
    print("(targets: vectorized >= 2,000,000 points/s per core, >= 50 x the reference; "
          f"best of {max(repeats, reference_repeats)} interleaved rounds, "
          f"the reference in {reference_repeats} of them)")
    print(f"vectorized, all detectors          {n / seconds:>12,.0f} points/s  "
          f"({seconds * 1e3:8.1f} ms)")
    print(f"vectorized, without tamper         {n / plain:>12,.0f} points/s  "
          f"({plain * 1e3:8.1f} ms)")
    if has_tamper:
        print(f"reference, incl. tamper (test ref) {n / ref_full:>12,.0f} points/s  "
              f"({ref_full * 1e3:8.1f} ms)")
    print(f"reference, without tamper          {n / ref_plain:>12,.0f} points/s  "
          f"({ref_plain * 1e3:8.1f} ms)")
    if has_tamper:
        ratios = timed.round_ratios
        print(f"ratio, all rules                   {ref_full / seconds:>12.1f} x"
              + (f"  (single rounds {min(ratios):.1f}-{max(ratios):.1f} x, "
                 f"median {statistics.median(ratios):.1f} x)"
                 if len(ratios) > 1 else ""))
    print(f"ratio, without tamper              {ref_plain / plain:>12.1f} x")
    spent = breakdown(w, sweep_interval_s)
    print("vectorized time by detector (one instrumented run): " + ", ".join(
        f"{k} {v * 1e3:.1f} ms ({n / v / 1e6:.1f} M/s)" if v > 0 else f"{k} 0 ms"
        for k, v in sorted(spent.items(), key=lambda kv: -kv[1])))
    state = core.state_bytes()
    total = sum(state.values())
    print(f"detector state (numpy)             {total:>12,} bytes = "
          f"{total / w.registry.index.n_points:,.0f} bytes per registry point "
          f"({total / n:,.1f} per processed point)")
    print("  by detector: " + ", ".join(f"{k} {v:,}" for k, v in
                                        sorted(state.items(), key=lambda kv: -kv[1])))
    replay = core.pipeline.tamper.state_nbytes()["replay"]
    print(f"  tamper replay history (in tamper): {replay:,} bytes, "
          f"{core.pipeline.tamper.replay_anchors:,} anchors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds timing the vectorized core, at least "
                             "--reference-repeats (the best counts)")
    parser.add_argument("--reference-repeats", type=int, default=3,
                        help="of those rounds, how many also time the reference")
    parser.add_argument("--sweep-s", type=float, default=5.0,
                        help="sweep interval, s of event time (the pipeline's default)")
    parser.add_argument("--large-sweep-s", type=float, default=60.0,
                        help="event time per batch of the larger-batch run (0: skip)")
    args = parser.parse_args()
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, CPUs usable: {cpus}"
          + ("" if cpus == 1 else "  (pin with `taskset -c 0` for per-core figures)"))
    began = time.perf_counter()
    w = workload(args.sites, args.points, seed=args.seed, sweep_interval_s=args.sweep_s)
    print(f"workload: {args.sites} sites, built and decoded in "
          f"{time.perf_counter() - began:.1f} s (not timed)")
    report(w, f"batches of {args.sweep_s:g} s of event time", args.sweep_s, args.repeats,
           args.reference_repeats)
    if args.large_sweep_s > 0:
        big = workload(args.sites, args.points, seed=args.seed,
                       sweep_interval_s=args.large_sweep_s)
        report(big, f"larger batches: {args.large_sweep_s:g} s of event time",
               args.large_sweep_s, args.repeats, args.reference_repeats)


if __name__ == "__main__":
    main()
