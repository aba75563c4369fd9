"""TamperDetector against a record-at-a-time reference, on random unsorted batches.

The reference is written for clarity, not speed: dicts and one record at a time, in
(device, ts) order, exactly as the docstrings specify.  The vectorized detector must
give the same rows, counters and codes whatever the batching, the arrival order, the
duplicates and the bad rows.  Parameters are shrunk (seconds instead of hours) so that
every signal fires and clears many times on a few hundred records.  The reference
shares the detector's hash constants (``mix64``, salts, window multipliers): the hash
is not under test, what is done with it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from detectors.base import SampleBatch
from detectors.tamper import TamperDetector
from detectors.tamper_records import mix64
from detectors.tamper_replay import _DEVICE_SALT, _MULT
from tests.detectors.change_rows import Row, rows

NAN = math.nan
M64 = 1 << 64

SMALL: dict[str, Any] = {
    "close_after_s": 10.0,
    "judge_every_s": 0.0,
    "min_frozen_s": 40.0,
    "frozen_factor": 1.5,
    "frozen_half_life_s": 400.0,
    "frozen_max_gap_s": 25.0,
    "frozen_min_points": 2,
    "replay_window": 2,
    "replay_stride": 2,
    "replay_history_s": 900.0,
    "replay_min_lag_s": 60.0,
    "replay_min_hits": 2,
    "replay_clear_misses": 2,
    "replay_tolerance_s": 4.0,
    "replay_max_repeats": 2,
    "replay_min_changes": 1,
    "clone_min_samples": 3,
    "clone_alpha": 0.2,
    "clone_min_changes": 1,
}




@dataclass
class Pair:
    a: int
    b: int
    run: int = 0
    run_start: float = NAN
    moves: int = 0
    last_a: float | None = None
    moved: int = 0
    agreed: int = 0
    active: bool = False


@dataclass
class Device:
    run_start: float = NAN
    last_ts: float = NAN
    learned_z: float = -math.inf
    over: bool = False
    window: list[tuple[int, int, bool, float]] = field(default_factory=list)
    lag: float = NAN
    hits: int = 0
    misses: int = 0
    since: float = NAN
    active: bool = False
    hit_end: float = -math.inf
    code: int = 0


class Reference:
    """One record at a time, exactly as documented."""

    def __init__(self, point_device: list[int], watched: list[bool], groups: list[int],
                 p: dict[str, Any]) -> None:
        self.p = p
        self.dev_of = point_device
        self.watched = watched
        n_dev = max(point_device) + 1
        self.n_watched = [sum(1 for q, d in enumerate(point_device) if d == k and watched[q])
                          for k in range(n_dev)]
        self.subject = [min((q for q, d in enumerate(point_device) if d == k and watched[q]),
                            default=-1) for k in range(n_dev)]
        n = len(point_device)
        self.salt = [int(x) for x in mix64(np.arange(n, dtype=np.uint64)
                                           + np.uint64(0x9E3779B97F4A7C15))]
        self.dsalt = mix64(np.arange(n_dev, dtype=np.uint64) ^ _DEVICE_SALT)
        self.devices = [Device() for _ in range(n_dev)]
        self.closed_ts = [-math.inf] * n_dev
        self.open: dict[int, tuple[float, dict[int, float]]] = {}
        self.last_value: list[float | None] = [None] * n
        self.table: dict[int, list[int]] = {}
        members = sorted((point_device[q], groups[q], q) for q in range(n)
                         if watched[q] and groups[q] >= 0)
        self.pairs = [Pair(a, b) for i, (da, ga, a) in enumerate(members)
                      for (db, gb, b) in members[i + 1:] if (da, ga) == (db, gb)]
        self.cloned = [0] * n
        self.late = 0
        self.skipped = 0

    def update(self, batch: SampleBatch) -> list[Row]:
        usable = []
        for i in range(len(batch)):
            q, t, v = int(batch.point[i]), float(batch.ts[i]), float(batch.value[i])
            if not (math.isfinite(t) and math.isfinite(v) and batch.quality[i] == 0):
                self.skipped += 1
            elif self.watched[q]:
                usable.append((q, t, v))
        fresh = [r for r in usable if r[1] > self.closed_ts[self.dev_of[r[0]]]]
        touched = sorted({self.dev_of[q] for q, _, _ in fresh})
        held = [(q, self.open[d][0], v) for d in touched if d in self.open
                for q, v in sorted(self.open[d][1].items())]
        kept: dict[tuple[int, float], float] = {}
        for q, t, v in held + fresh:
            kept.setdefault((q, t), v)
        self.late += len(usable) - (len(kept) - len(held))
        by_device: dict[int, dict[float, dict[int, float]]] = {}
        for (q, t), v in kept.items():
            by_device.setdefault(self.dev_of[q], {}).setdefault(t, {})[q] = v
        closed = []
        for d in sorted(by_device):
            times = sorted(by_device[d])
            self.open[d] = (times[-1], by_device[d][times[-1]])
            closed += [(d, t, by_device[d][t]) for t in times[:-1]]
        return self._judge(closed)

    def sweep(self, now: float) -> list[Row]:
        due = [d for d in sorted(self.open) if self.open[d][0] <= now - self.p["close_after_s"]]
        closed = [(d, *self.open.pop(d)) for d in due]
        return self._judge(closed)

    def _judge(self, closed: list[tuple[int, float, dict[int, float]]]) -> list[Row]:
        out: list[Row] = []
        for d, t, values in closed:
            self.closed_ts[d] = t
            out += self._record(d, t, values)
        return sorted(out, key=lambda r: (r[1], r[0]))

    def _record(self, d: int, t: float, values: dict[int, float]) -> list[Row]:
        p, dv = self.p, self.devices[d]
        points = sorted(values)
        changes = sum(1 for q in points if self.last_value[q] is None
                      or values[q] != self.last_value[q])
        for q in points:
            self.last_value[q] = values[q]
        rest = 2 * sum(1 for q in points if values[q] + 0.0 != 0.0) < self.n_watched[d]
        digest = 0
        for q in points:
            bits = int(np.array([values[q] + 0.0]).view(np.uint64)[0])
            digest += int(mix64(np.array([bits ^ self.salt[q]], dtype=np.uint64))[0])
        digest %= M64
        # Frozen.
        half = p["frozen_half_life_s"]
        brk = changes > 0 or not (t - dv.last_ts <= p["frozen_max_gap_s"]) or rest
        if brk:
            ended = dv.last_ts - dv.run_start
            if ended > 0 and not dv.over:
                z = float(np.log2(np.float64(ended))) + dv.last_ts / half
                dv.learned_z = max(dv.learned_z, z)
            dv.run_start = t
        elapsed = t - dv.run_start
        limit = max(p["min_frozen_s"],
                    p["frozen_factor"] * float(np.exp2(np.float64(dv.learned_z - t / half))))
        dv.over = elapsed >= limit
        frozen = dv.over and len(points) >= p["frozen_min_points"]
        dv.last_ts = t
        # Exact replay.
        w = p["replay_window"]
        entries = [*dv.window, (digest, changes, rest, t)]
        dv.window = entries[len(entries) - (w - 1):] if w > 1 else []
        if len(entries) >= w:
            win = entries[-w:]
            key = sum(win[-1 - k][0] * int(_MULT[k]) for k in range(w)) % M64
            inner = sum(win[-1 - k][1] for k in range(w - 1)) if w > 1 else win[-1][1]
            key = int(mix64(np.array([key], dtype=np.uint64) ^ self.dsalt[d])[0])
            if (inner >= p["replay_min_changes"] and not all(e[2] for e in win)
                    and key % p["replay_stride"] == 0):
                self._anchor(dv, key, t, win[0][3])
        # One code per device.
        code = 1 if frozen else 2 if dv.active else 0
        out: list[Row] = []
        if code != dv.code:
            since, value, lim = ((dv.run_start, elapsed, limit) if code == 1 else
                                 (dv.since, dv.lag, p["replay_min_lag_s"]) if code == 2 else
                                 (t, -999.0, -999.0))
            out.append((self.subject[d], t, since, code, value, lim))
            dv.code = code
        return out + self._clone(d, t, values)

    def _anchor(self, dv: Device, key: int, t: float, start: float) -> None:
        p = self.p
        sec = math.floor(t)
        entry = self.table.get(key)
        if entry is not None and entry[0] >= sec - p["replay_history_s"]:
            age = sec - entry[0]
            hit = age >= p["replay_min_lag_s"] and entry[1] <= p["replay_max_repeats"]
            entry[1] = min(entry[1] + 1, 255)
            kind, lag = (1, float(age)) if hit else (0, NAN)
        else:
            self.table[key] = [sec, 1]
            kind, lag = 2, NAN
        if kind == 0:
            return
        agrees = kind == 1 and abs(lag - dv.lag) <= p["replay_tolerance_s"]
        fresh = agrees and start > dv.hit_end
        restart = kind == 1 and not agrees and not dv.active
        miss = kind == 2 or (kind == 1 and not agrees and dv.active)
        dv.hits = dv.hits + 1 if fresh else 1 if restart else dv.hits
        dv.misses = 0 if agrees or restart else dv.misses + miss
        if restart:
            dv.lag, dv.since = lag, start
        if fresh or restart:
            dv.hit_end = t
        if dv.misses >= p["replay_clear_misses"]:
            dv.hits, dv.misses, dv.lag, dv.since = 0, 0, NAN, NAN
        dv.active = dv.hits >= p["replay_min_hits"]

    def _clone(self, d: int, t: float, values: dict[int, float]) -> list[Row]:
        p = self.p
        flips: dict[int, list[tuple[Pair, bool, float]]] = {}
        for pair in self.pairs:
            if self.dev_of[pair.a] != d or pair.a not in values or pair.b not in values:
                continue
            va, vb = values[pair.a], values[pair.b]
            moved = pair.last_a is None or va != pair.last_a
            if va == vb:
                if pair.run == 0:
                    pair.run_start, pair.moves = t, 0
                else:
                    pair.moves += moved
                pair.run += 1
            else:
                pair.run, pair.moves, pair.run_start = 0, 0, NAN
            pair.moved += moved
            pair.agreed += moved and va == vb
            share = min((pair.agreed - pair.moves + 1) / (pair.moved - pair.moves + 2), 0.99)
            need = max(p["clone_min_changes"],
                       float(np.ceil(math.log(p["clone_alpha"]) / np.log(np.float64(share)))))
            on = va == vb and pair.run >= p["clone_min_samples"] and pair.moves >= need
            pair.last_a = va
            if on != pair.active:
                pair.active = on
                flips.setdefault(pair.b, []).append((pair, on, need))
        out: list[Row] = []
        for b, events in sorted(flips.items()):
            before = self.cloned[b]
            self.cloned[b] += sum(1 if on else -1 for _, on, _ in events)
            if (before > 0) == (self.cloned[b] > 0):
                continue
            if self.cloned[b] > 0:
                pair, _, need = next(e for e in events if e[1])
                out.append((b, t, pair.run_start, 3, float(pair.a), need))
            else:
                out.append((b, t, t, 0, -999.0, -999.0))
        return out


# --- random data --------------------------------------------------------------------------

LAYOUT = ([0, 0, 0, 1, 1, 1, 1, 2, 2],  # point -> device
          [True, True, True, True, True, True, False, True, True],
          [-1, -1, -1, 0, 0, 0, -1, -1, -1])
"""Device 0: three plain points; device 1: a clone group of three and an unwatched
point; device 2: two points."""


def device_series(rng: np.random.Generator, n_points: int, n: int, t0: float) -> tuple[
    np.ndarray, np.ndarray
]:
    """Records every 5 s (some missing) with noisy, frozen, replayed and cloned stretches."""
    ts = t0 + 5.0 * np.flatnonzero(rng.random(int(n * 1.1)) > 0.08)[:n]
    n = ts.shape[0]
    values = rng.integers(0, 4, (n, n_points)).astype(float)
    i = 0
    while i < n:
        length = int(rng.integers(5, 40))
        mode = rng.choice(["noise", "frozen", "replay", "clone", "zero"])
        stop = min(n, i + length)
        if mode == "frozen" and i:
            values[i:stop] = values[i - 1]
        elif mode == "replay" and i > 30:
            src = int(rng.integers(0, i - length)) if i - length > 0 else 0
            values[i:stop] = values[src:src + stop - i]
        elif mode == "clone" and n_points > 1:
            values[i:stop, 1] = values[i:stop, 0]
        elif mode == "zero":
            values[i:stop] = 0.0
        i = stop
    return ts, values


def random_stream(rng: np.random.Generator) -> tuple[list[SampleBatch], list[float | None]]:
    """Batches in arrival order (latency jitter, duplicates, bad rows) and the sweep
    instant after each batch (None: no sweep)."""
    point_device = LAYOUT[0]
    parts = []
    for d in range(3):
        points = [q for q, dd in enumerate(point_device) if dd == d]
        ts, values = device_series(rng, len(points), 300, float(rng.integers(0, 4)))
        for j, q in enumerate(points):
            parts.append((np.full(ts.shape[0], q), ts, values[:, j]))
    point = np.concatenate([x[0] for x in parts])
    ts = np.concatenate([x[1] for x in parts])
    value = np.concatenate([x[2] for x in parts])
    quality = np.where(rng.random(point.shape[0]) < 0.03, 4, 0)
    value[rng.random(point.shape[0]) < 0.02] = NAN
    again = rng.random(point.shape[0]) < 0.05  # redelivered, with another value
    point = np.r_[point, point[again]]
    value = np.r_[value, value[again] + rng.integers(0, 2, int(again.sum()))]
    quality = np.r_[quality, quality[again]]
    arrival = np.r_[ts, ts[again] + 30.0] + rng.exponential(2.0, point.shape[0])
    ts = np.r_[ts, ts[again]]
    ts[rng.random(ts.shape[0]) < 0.01] = NAN
    order = np.argsort(arrival, kind="stable")
    cuts = np.sort(rng.choice(order.shape[0], int(rng.integers(5, 120)), replace=False))
    batches, sweeps = [], []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, order.shape[0]], strict=True):
        o = order[lo:hi]
        batches.append(SampleBatch.from_arrays(point[o], ts[o], value[o], quality[o]))
        sweeps.append(float(arrival[o].max()) if hi > lo and rng.random() < 0.3 else None)
    return batches, sweeps


VARIANTS: list[dict[str, Any]] = [
    {},
    {"replay_window": 1, "replay_min_changes": 0, "frozen_min_points": 1},
    {"replay_window": 3, "replay_stride": 1, "replay_max_repeats": 1, "clone_min_samples": 1},
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
@pytest.mark.parametrize("seed", range(8))
def test_matches_record_at_a_time_reference(seed: int, variant: int) -> None:
    rng = np.random.default_rng(seed)
    batches, sweeps = random_stream(rng)
    params = {**SMALL, **VARIANTS[variant]}
    det = TamperDetector(*LAYOUT, **params)
    ref = Reference(*LAYOUT, params)

    for batch, now in zip(batches, sweeps, strict=True):
        assert rows(det.update(batch)) == ref.update(batch)
        if now is not None:
            assert rows(det.sweep(now)) == ref.sweep(now)
    assert rows(det.sweep(1e12)) == ref.sweep(1e12)

    assert (det.late_samples, det.skipped_samples) == (ref.late, ref.skipped)
    assert det.severity.tolist() == [
        ref.devices[LAYOUT[0][q]].code if q in ref.subject else 3 * (ref.cloned[q] > 0)
        for q in range(len(LAYOUT[0]))]


def test_the_random_streams_exercise_every_signal() -> None:
    seen: set[int] = set()
    for seed in range(12):
        batches, sweeps = random_stream(np.random.default_rng(seed))
        ref = Reference(*LAYOUT, SMALL)
        for batch, now in zip(batches, sweeps, strict=True):
            seen |= {r[3] for r in ref.update(batch)}
            if now is not None:
                seen |= {r[3] for r in ref.sweep(now)}

    assert seen == {0, 1, 2, 3}
