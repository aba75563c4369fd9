"""Frozen data for the ``tamper`` rule: a device whose readings stopped changing at all.

Judged per device on closed records (:mod:`detectors.tamper_records`).  The *joint run*
of a device is the stretch of records since any of its watched points last changed
value; the device is frozen once that run is long compared with what it has shown
before:

    run >= max(min_frozen_s, factor * learned)

``learned`` is the longest joint run the device has completed, forgotten exponentially:
a run of ``L`` seconds that ended at ``t_end`` counts ``L * 2 ** (-(t - t_end) /
half_life_s)`` at time ``t``, and ``learned`` is the largest of these.  In the log
domain that is a running maximum of ``log2(L) + t_end / half_life_s``, computed without
a loop and exactly.  A run that reached its threshold was reported as tampering and
teaches nothing, so a faker freezing every day is caught every day.

Runs restart at every change, after a silence longer than ``max_gap_s`` (the first
record after an outage repeating the last one before it is no freeze; silence has its
own rule) and at every record of a plant at rest (readings at zero or flagged stopped
stand still legitimately, so they neither build a run nor teach one).

Why the joint run and not each point's own longest run: a fan current reads exactly
0 A all night, a CO sensor at its zero or a setpoint holds one value for hours, so
per-point history teaches "hours unchanged is normal" for some point of nearly every
device, and as all points must stand still, that point's threshold blinds the device.
What a faker cannot fake cheaply is *every* reading standing still at once, which is
what the joint run measures; a genuinely steady process (``negative.steady_flat``)
still flickers in one point or another.
"""

from __future__ import annotations

import numpy as np

from detectors._segments import ffill_positions, segment_ends, shift_from_state, shift_within
from detectors.tamper_records import Records, Verdict, segment_cummax


class FrozenJudge:
    """Per-device frozen verdict; parameters are documented on ``TamperDetector``."""

    def __init__(self, n_devices: int, *, min_s: float, factor: float, half_life_s: float,
                 max_gap_s: float, min_points: int) -> None:
        if not (min_s > 0 and factor >= 0 and half_life_s > 0 and max_gap_s > 0
                and min_points >= 1):
            raise ValueError("frozen parameters out of range")
        self.min_s, self.factor, self.half_life_s = min_s, factor, half_life_s
        self.max_gap_s, self.min_points = max_gap_s, min_points
        self._run_start = np.full(n_devices, np.nan, dtype=np.float64)
        """ts of the first record of the current joint run."""
        self._last_ts = np.full(n_devices, np.nan, dtype=np.float64)
        self._learned_z = np.full(n_devices, -np.inf, dtype=np.float64)
        """max over completed runs of log2(length_s) + end_ts / half_life_s."""
        self._over = np.zeros(n_devices, dtype=np.bool_)
        """The newest record's run had reached its threshold."""

    def nbytes(self) -> int:
        return int(self._run_start.nbytes + self._last_ts.nbytes + self._learned_z.nbytes
                   + self._over.nbytes)

    def judge(self, rec: Records) -> Verdict:
        dev, ts, first = rec.device, rec.ts, rec.first
        if dev.shape[0] == 0:
            return Verdict.idle(0)
        prev_ts = shift_from_state(ts, first, self._last_ts, dev)
        brk = (rec.changes > 0) | ~(ts - prev_ts <= self.max_gap_s) | rec.rest
        run_start = np.where(brk, ts, self._run_start.take(dev))[ffill_positions(brk | first)]
        elapsed = ts - run_start
        prev_elapsed = shift_from_state(elapsed, first, self._last_ts - self._run_start,
                                        dev)
        ended = brk & (prev_elapsed > 0)
        safe = np.where(ended, prev_elapsed, 1.0)
        z_ended = np.log2(safe) + prev_ts / self.half_life_s
        # Whether a run was reported depends on what earlier runs taught: iterate from
        # "every run teaches" until the set of reported runs stops growing (it only
        # grows, and its least fixed point is the record-by-record answer; one pass
        # when nothing was reported, two when something was).
        over_seed = self._over.take(dev)
        reported = np.zeros(dev.shape[0], dtype=np.bool_)
        while True:
            z = np.where(ended & ~reported, z_ended, -np.inf)
            learned_z = segment_cummax(z, first, self._learned_z.take(dev))
            limit = np.maximum(self.min_s,
                               self.factor * np.exp2(learned_z - ts / self.half_life_s))
            over = elapsed >= limit
            now_reported = ended & shift_within(over, first, over_seed)
            if np.array_equal(now_reported, reported):
                break
            reported = now_reported
        active = over & (rec.size >= self.min_points)
        last = segment_ends(first)
        d = dev[last]
        self._run_start[d] = run_start[last]
        self._last_ts[d] = ts[last]
        self._learned_z[d] = learned_z[last]
        self._over[d] = over[last]
        return Verdict(active, run_start, elapsed, limit)
