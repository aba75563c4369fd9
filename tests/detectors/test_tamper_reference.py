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
    "noisy_replay": True,
    "noisy_slot_s": 10.0,
    "noisy_window": 6,
    "noisy_every": 2,
    "noisy_lags_s": (80.0, 200.0),
    "noisy_min_corr": 0.8,
    "noisy_control_corr": 0.5,
    "noisy_min_points": 2,
    "noisy_min_hits": 2,
    "noisy_clear_misses": 2,
    "noisy_clip": 2.5,
    "noisy_min_valid": 4,
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
    slot: int | None = None
    n_lag: int = -1
    n_hits: int = 0
    n_misses: int = 0
    n_since: float = NAN
    n_active: bool = False
    last_exact: float = -math.inf


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
        self.noisy_points = [
            [q for q in range(n) if point_device[q] == k and watched[q]]
            if p["noisy_replay"] and self.n_watched[k] >= p["noisy_min_points"] else []
            for k in range(n_dev)]
        self.acc = {q: [0.0, 0.0, 0.0, 0.0] for pts in self.noisy_points for q in pts}
        self.last_mean = dict.fromkeys(self.acc, NAN)
        self.changes: dict[int, dict[int, float]] = {q: {} for q in self.acc}
        """Per point: slot -> change of slot mean into it (float16 as the ring keeps it)."""

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
        # Noisy replay.
        self._noisy(d, t, values)
        # One code per device; a noisy run that began before the last exact replay is
        # its shadow.
        if dv.active:
            dv.last_exact = t
        noisy = dv.n_active and dv.n_since > dv.last_exact
        code = 1 if frozen else 2 if dv.active else 4 if noisy else 0
        out: list[Row] = []
        if code != dv.code:
            since, value, lim = ((dv.run_start, elapsed, limit) if code == 1 else
                                 (dv.since, dv.lag, p["replay_min_lag_s"]) if code == 2 else
                                 (dv.n_since, float(p["noisy_lags_s"][dv.n_lag]),
                                  p["noisy_min_corr"]) if code == 4 else
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

    def _noisy(self, d: int, t: float, values: dict[int, float]) -> None:
        p, dv, points = self.p, self.devices[d], self.noisy_points[d]
        if not points:
            return
        size = p["noisy_slot_s"]
        u = t / size
        k = math.floor(u)
        f = u - float(k)
        if dv.slot is not None and k > dv.slot:
            old = dv.slot
            for q in points:
                w0, x0, w1, x1 = self.acc[q]
                mean = slot_mean(w0, x0)
                self.changes[q][old] = half(mean - self.last_mean[q])
                self.last_mean[q] = mean
                if k >= old + 2:  # slots old + 2 .. k - 1 had no sample: absent, NaN
                    after = slot_mean(w1, x1)
                    self.changes[q][old + 1] = half(after - mean)
                    self.last_mean[q] = after if k == old + 2 else NAN
                self.acc[q] = [w1, x1, 0.0, 0.0] if k == old + 1 else [0.0, 0.0, 0.0, 0.0]
            every = p["noisy_every"]
            if (k - 1) // every > (old - 1) // every:
                self._noisy_step(dv, *self._noisy_evaluate(points, k - 1))
        dv.slot = k
        for q in points:
            if q in values:
                acc, v = self.acc[q], values[q]
                acc[0] += 1.0 - f
                acc[1] += (1.0 - f) * v
                acc[2] += f
                acc[3] += f * v

    def _noisy_evaluate(self, points: list[int], j: int) -> tuple[int, float]:
        p = self.p
        w = p["noisy_window"]
        lags = [round(lag / p["noisy_slot_s"]) for lag in p["noisy_lags_s"]]
        high, low = [0] * len(lags), [0] * len(lags)
        for q in points:
            changes = self.changes[q]
            x = [changes.get(j - w + 1 + i, NAN) for i in range(w)]
            for li, lag in enumerate(lags):
                y = [changes.get(j - lag - w + 1 + i, NAN) for i in range(w)]
                r = correlation(x, y, p["noisy_clip"], p["noisy_min_valid"])
                high[li] += r >= p["noisy_min_corr"]
                low[li] += r >= p["noisy_control_corr"]
        need = p["noisy_min_points"]
        agree = [li for li in range(len(lags)) if high[li] >= need]
        specific = sum(1 for c in low if c >= need) == 1
        lead = max(0.0, (1.0 - p["noisy_min_corr"]) * w - p["noisy_every"])
        since = float(j - w - 1) * p["noisy_slot_s"] + lead * p["noisy_slot_s"]
        return (agree[0] if agree and specific else -1), since

    def _noisy_step(self, dv: Device, lag: int, window_start: float) -> None:
        p = self.p
        agrees = lag >= 0 and lag == dv.n_lag
        restart = lag >= 0 and not agrees and not dv.n_active
        if agrees:
            dv.n_hits += 1
        elif restart:
            dv.n_hits, dv.n_lag, dv.n_since = 1, lag, window_start
        elif not dv.n_active:
            dv.n_hits, dv.n_lag, dv.n_since = 0, -1, NAN
        dv.n_misses = dv.n_misses + 1 if dv.n_active and not agrees else 0
        if dv.n_misses >= p["noisy_clear_misses"]:
            dv.n_hits, dv.n_misses, dv.n_lag, dv.n_since, dv.n_active = 0, 0, -1, NAN, False
        else:
            dv.n_active = dv.n_active or dv.n_hits >= p["noisy_min_hits"]

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


def slot_mean(weight: float, total: float) -> float:
    """A finished slot's weighted mean, NaN when no sample reached the slot."""
    return total / weight if weight > 0 else NAN


def half(change: float) -> float:
    """A change of slot mean as the ring keeps it: float16, NaN beyond its range."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = float(np.float16(change))
    return out if math.isfinite(out) else NAN


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) * 0.5 if n else NAN


def running_sum(values: list[float]) -> float:
    total = values[0]
    for v in values[1:]:
        total += v
    return total


def winsorised(values: list[float], clip: float) -> list[float]:
    """Clipped to the median ± clip robust standard deviations of the present values."""
    present = [v for v in values if not math.isnan(v)]
    med = median(present)
    lim = (clip * 1.4826) * median([abs(v - med) for v in present])
    return [v if math.isnan(v) else min(max(v, med - lim), med + lim) for v in values]


def correlation(x: list[float], y: list[float], clip: float, min_valid: int) -> float:
    """Winsorised (each side on its own) Pearson correlation over the pairs where both
    are present."""
    x, y = winsorised(x, clip), winsorised(y, clip)
    valid = [not (math.isnan(a) or math.isnan(b)) for a, b in zip(x, y, strict=True)]
    n = sum(valid)
    devs = []
    for side in (x, y):
        mean = running_sum([v if ok else 0.0 for v, ok in zip(side, valid, strict=True)]) \
            / max(n, 1)
        devs.append([v - mean if ok else 0.0 for v, ok in zip(side, valid, strict=True)])
    dx, dy = devs
    sxx = running_sum([a * a for a in dx])
    syy = running_sum([b * b for b in dy])
    sxy = running_sum([a * b for a, b in zip(dx, dy, strict=True)])
    if n < min_valid or not (sxx > 0 and syy > 0):
        return NAN
    return sxy / math.sqrt(sxx * syy)


# --- random data --------------------------------------------------------------------------

LAYOUT = ([0, 0, 0, 1, 1, 1, 1, 2, 2],  # point -> device
          [True, True, True, True, True, True, False, True, True],
          [-1, -1, -1, 0, 0, 0, -1, -1, -1])
"""Device 0: three plain points; device 1: a clone group of three and an unwatched
point; device 2: two points."""


def device_series(rng: np.random.Generator, n_points: int, n: int, t0: float) -> tuple[
    np.ndarray, np.ndarray
]:
    """Records every 5 s (some missing) with noisy, frozen, replayed, cloned stretches and
    disguised replays (the values of 80 or 200 s earlier, scaled, offset, some shifted
    by one record)."""
    ts = t0 + 5.0 * np.flatnonzero(rng.random(int(n * 1.1)) > 0.08)[:n]
    n = ts.shape[0]
    values = rng.integers(0, 4, (n, n_points)).astype(float)
    i = 0
    while i < n:
        length = int(rng.integers(5, 40))
        mode = rng.choice(["noise", "frozen", "replay", "clone", "zero", "disguised",
                           "disguised"])
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
        elif mode == "disguised":
            back = float(rng.choice([80.0, 200.0])) + 5.0 * int(rng.integers(-1, 2))
            src = np.searchsorted(ts, ts[i:stop] - back)
            found = (src < n) & (ts[np.minimum(src, n - 1)] == ts[i:stop] - back)
            copy = values[np.minimum(src, n - 1)] * 1.02 + 0.25
            values[i:stop] = np.where(found[:, None], copy, values[i:stop])
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
    {"replay_window": 1, "replay_min_changes": 0, "frozen_min_points": 1,
     "noisy_every": 1, "noisy_min_hits": 1, "noisy_clear_misses": 1, "noisy_min_points": 3},
    {"replay_window": 3, "replay_stride": 1, "replay_max_repeats": 1, "clone_min_samples": 1,
     "noisy_slot_s": 20.0, "noisy_window": 4, "noisy_lags_s": (200.0,), "noisy_min_valid": 3,
     "noisy_control_corr": 0.8},
    {"noisy_replay": False},
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
    assert det.state_nbytes()["noisy_replay"] > 0


def test_the_random_streams_exercise_every_signal() -> None:
    seen: set[int] = set()
    for seed in range(12):
        batches, sweeps = random_stream(np.random.default_rng(seed))
        ref = Reference(*LAYOUT, SMALL)
        for batch, now in zip(batches, sweeps, strict=True):
            seen |= {r[3] for r in ref.update(batch)}
            if now is not None:
                seen |= {r[3] for r in ref.sweep(now)}

    assert seen == {0, 1, 2, 3, 4}
