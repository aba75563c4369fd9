"""Values rising too fast: the ``rate_of_change`` rule.

A hopper or bag-house temperature that climbs several kelvin per minute announces a
smouldering nest long before it crosses any fixed limit.  The rate is the least-squares
slope of a point's recent normal samples over a rolling window of event time, judged at
every sample, with the same hysteresis and on-delay habits as ``threshold``.

Only points with a limit keep state: each gets a *slot* (a compact index) and a ring
buffer of its last ``capacity`` samples, so memory grows with the ruled points, not
with the registry.  A batch is judged in one pass over its rows sorted by (point, ts):
each row's window is the tail of the ring plus the earlier rows of the same point in
the batch, laid out side by side in one combined array.  The window sums are taken lag
by lag over all rows at once (at most ``capacity`` whole-array steps, usually the
~10 samples a window holds) with times and values centred on the row's own sample.
That centring removes the cancellation a running-sum formula suffers on epoch
timestamps, and makes every slope a function of its window alone: the verdicts and
values are bit-identical however the samples are split into batches.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import (
    ffill_positions,
    judgeable_rows,
    segment_ends,
    segment_starts,
    shift_within,
)
from detectors.base import ConditionChanges, SampleBatch
from detectors.cadence import BulkJudged, Cadence


class RateOfChangeDetector(BulkJudged):
    """Per-point "rising faster than ``rate_hi_per_min``" on event time.

    Parameters (per-point arrays have length ``n_points`` and are indexed by the
    registry's dense point ids):

    * ``rate_hi_per_min``: per-point limit in the point's unit per minute (K/min for a
      temperature), finite and > 0; ``NaN`` means the point has no rule and keeps no
      state (its samples are ignored, not even counted).
    * ``window_s``: seconds of event time, default 300.  The slope of a sample at ``ts``
      is fitted to the point's normal samples in ``(ts - window_s, ts]``.
    * ``min_samples``: default 4, >= 2.  A window with fewer samples gives no verdict.
    * ``min_span_s``: seconds, default 180, in ``[0, window_s)``.  A window whose
      samples span less (newest ts - oldest ts) gives no verdict.  This is what keeps
      spikes out: one sample ``h`` off the line moves the least-squares slope by at most
      about ``1.2 * h / span`` per second whatever the sampling (the worst case has one
      sample at the old end and the others bunched at 29 % of the span; at a regular
      interval ``dt`` it is ``6 * h / (dt * n * (n + 1))`` for ``n`` samples).  With
      180 s a spike moves the slope by at most 0.4 K/min per K: a 3 K spike on a
      0.3 K/min drift stays under a 2 K/min limit (1.5 K/min) for any sampling, a 4 K
      one too (1.9 K/min); at a regular 30 s a 5 K spike reaches 1.1 K/min in the first
      judged window and 0.5 K/min in a full one.  A 120 s span would let a 3 K spike on
      that drift reach 2.1 K/min.
    * ``on_delay_s``: seconds of event time, >= 0, scalar or per point (``NaN`` is read
      as 0), default 0.  As in ``threshold``, the alarm fires at the first judged sample
      with ``ts - run_start >= on_delay_s``, where ``run_start`` is the first sample of
      the current raw run.
    * ``clear_ratio``: dimensionless in ``[0, 1]``, default 0.5.  The raw state enters
      when ``slope > limit`` and leaves when ``slope < limit * clear_ratio``; in between
      it keeps its state, across batches too.
    * ``capacity``: samples kept per ruled point, default 64, >= ``min_samples``.  It
      must cover ``window_s`` at the point's fastest interval (64 covers 300 s down to
      one sample every 4.8 s); when a window holds more samples, the oldest beyond
      ``capacity`` are dropped, which shortens the span (and may fall under
      ``min_span_s``).  Memory: 16 bytes x ``capacity`` per ruled point.

    * ``judge_every_s``: seconds of event time, default 0 (every batch).  Above 0 the
      ruled samples are held and judged together once that much event time has passed
      (:mod:`detectors.cadence`): the same changes, emitted up to that much later, at a
      fraction of the per-call cost when batches are small.

    A sample without a verdict (too few samples or too short a span, e.g. after a
    start or a gap) changes neither the raw state nor the alarm: a firing alarm holds
    until samples can judge it again.  Severity is 1 while firing and 0 when cleared.
    A row is emitted when the alarm changes: ``value`` is the slope in unit per minute
    at that sample, ``limit`` the point's ``rate_hi_per_min`` (NaN when clearing),
    ``since`` the first sample of the raw run where the slope exceeded the limit (a
    clearing row's own ``ts``).  With an on-delay the firing slope may lie between the
    two thresholds: the run it belongs to started above the limit.

    Bad input is handled as in ``threshold``: non-finite value or ts, or quality other
    than :data:`~detectors.base.QUALITY_NORMAL`, change no state (``skipped_samples``);
    samples at or before the point's last judged ts, and all but the first arrival of
    duplicates of one (point, ts) in a batch, change no state (``late_samples``).

    >>> det = RateOfChangeDetector(rate_hi_per_min=[2.0])  # K/min, samples every 30 s
    >>> ts = [30.0 * i for i in range(24)]
    >>> temp = [60.0] * 12 + [60.0 + 1.5 * k for k in range(1, 13)]  # 3 K/min from 330 s
    >>> changes = det.update(SampleBatch.from_arrays([0] * 24, ts, temp))
    >>> changes.severity.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([1], [510.0], [510.0])
    >>> round(float(changes.value[0]), 2), changes.limit.tolist()
    (2.16, [2.0])
    >>> flat = det.update(SampleBatch.from_arrays([0] * 8, [720.0 + 30 * i for i in range(8)],
    ...                                           [78.0] * 8))
    >>> flat.severity.tolist(), flat.ts.tolist(), round(float(flat.value[0]), 2)
    ([0], [870.0], 0.84)
    """

    rule = "rate_of_change"

    def __init__(
        self,
        rate_hi_per_min: ArrayLike,
        window_s: float = 300.0,
        min_samples: int = 4,
        min_span_s: float = 180.0,
        on_delay_s: ArrayLike = 0.0,
        clear_ratio: float = 0.5,
        capacity: int = 64,
        judge_every_s: float = 0.0,
    ) -> None:
        limit = np.array(rate_hi_per_min, dtype=np.float64)
        if limit.ndim != 1:
            raise ValueError("rate_hi_per_min must be a 1-D array of length n_points")
        ruled = ~np.isnan(limit)
        if not (np.isfinite(limit[ruled]) & (limit[ruled] > 0)).all():
            raise ValueError("rate_hi_per_min must be NaN (no rule) or finite and > 0")
        n_points = limit.shape[0]
        on_delay = np.array(np.broadcast_to(np.asarray(on_delay_s, dtype=np.float64),
                                            (n_points,)))
        on_delay[np.isnan(on_delay)] = 0.0
        if (on_delay < 0).any() or np.isinf(on_delay).any():
            raise ValueError("on_delay_s must be finite and >= 0")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError("window_s must be finite and > 0")
        if not 0 <= min_span_s < window_s:
            raise ValueError("min_span_s must be in [0, window_s)")
        if min_samples < 2:
            raise ValueError("min_samples must be at least 2 (a slope needs two samples)")
        if capacity < min_samples:
            raise ValueError("capacity must be at least min_samples")
        if not 0 <= clear_ratio <= 1:
            raise ValueError("clear_ratio must be in [0, 1]")

        self.n_points = n_points
        self.window_s = float(window_s)
        self.min_samples = int(min_samples)
        self.min_span_s = float(min_span_s)
        self.clear_ratio = float(clear_ratio)
        self.capacity = int(capacity)
        self._cadence = Cadence(judge_every_s)

        slot_point = np.flatnonzero(ruled).astype(np.int32)
        n_slots = slot_point.shape[0]
        self._slot = np.full(n_points, -1, dtype=np.intp)
        """Slot of each point, -1 for points without a rule (native ints: every
        per-slot gather indexes with them, and an int32 index costs numpy a cast)."""
        self._slot[slot_point] = np.arange(n_slots, dtype=np.intp)
        self._slot_point = slot_point
        self._limit = limit[slot_point]
        self._clear_below = self._limit * self.clear_ratio
        self._on_delay = on_delay[slot_point]

        self._ring_t = np.full((n_slots, self.capacity), np.nan, dtype=np.float64)
        # float64 values: slopes are differences of nearby values, float32 would be noise.
        self._ring_v = np.full((n_slots, self.capacity), np.nan, dtype=np.float64)
        self._written = np.zeros(n_slots, dtype=np.int64)
        """Samples ever written per slot; the next ring column is ``written % capacity``."""
        self._last_ts = np.full(n_slots, -np.inf, dtype=np.float64)
        self._active = np.zeros(n_slots, dtype=np.bool_)
        """Raw (not yet debounced) hysteresis state."""
        self._run_start = np.full(n_slots, np.nan, dtype=np.float64)
        """ts of the first sample of the current raw run."""
        self._code = np.zeros(n_slots, dtype=np.int8)

        self.late_samples = 0
        """Samples of ruled points at or before the point's last judged ts (incl. duplicates)."""
        self.skipped_samples = 0
        """Samples of ruled points with a non-finite value or ts, or a non-normal flag."""

    @property
    def severity(self) -> NDArray[np.int8]:
        """Current alarm of every point (a fresh array): 1 firing, 0 otherwise."""
        out = np.zeros(self.n_points, dtype=np.int8)
        out[self._slot_point] = self._code
        return out

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Judge a batch of samples; return the alarm changes sorted by ts (ties by point)."""
        point = batch.point
        if point.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        if int(point.min()) < 0 or int(point.max()) >= self.n_points:
            raise ValueError(f"point index out of range 0..{self.n_points - 1}")
        if self._slot_point.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._hold(batch, self._slot.take(point) >= 0)

    def _take(self, batch: SampleBatch) -> ConditionChanges:
        slot = self._slot[batch.point]
        # Slot -1 (no rule) reads the last slot's ts; it is not considered, so unjudged.
        s, t, v, skipped, late = judgeable_rows(slot, batch.ts, batch.value, batch.quality,
                                                self._last_ts, self._slot_point.shape[0],
                                                slot >= 0)
        self.skipped_samples += skipped
        self.late_samples += late
        if s.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._judge(s, t, v)

    def _judge(
        self, s: NDArray[np.intp], t: NDArray[np.float64], v: NDArray[np.float64]
    ) -> ConditionChanges:
        """Run the rule over rows sorted by (slot, ts), strictly increasing ts per slot."""
        positions = np.arange(s.shape[0], dtype=np.intp)
        first = segment_starts(s)
        last = segment_ends(first)
        seg_slots = s[last]
        slope, verdict = self._slopes(s, t, v, first, last, positions)

        limit = self._limit[s]
        enter = verdict & (slope > limit)
        leave = verdict & (slope < self._clear_below[s])
        # Hysteresis and on-delay exactly as in threshold.py; rows without a verdict
        # are neither enter nor leave events, so they keep the raw state.
        carried = self._active[s]
        event = enter | leave
        raw = np.where(event, enter, carried)[ffill_positions(event | first, positions)]
        rising = raw & ~shift_within(raw, first, carried)
        run_start = np.where(rising, t, self._run_start.take(s))[
            ffill_positions(rising | first, positions)
        ]
        debounced = (raw & (t - run_start >= self._on_delay[s])).astype(np.int8)
        # The alarm moves only on rows with a verdict.
        carried_code = self._code[s]
        code = np.where(verdict, debounced, carried_code)[
            ffill_positions(verdict | first, positions)
        ]
        changed = np.flatnonzero(code != shift_within(code, first, carried_code))

        raw_last = raw[last]
        self._active[seg_slots] = raw_last
        self._run_start[seg_slots] = np.where(raw_last, run_start[last], np.nan)
        self._code[seg_slots] = code[last]
        self._last_ts[seg_slots] = t[last]
        if changed.shape[0] == 0:
            return ConditionChanges.none(self.rule)

        order = changed[np.argsort(t[changed], kind="stable")]
        severity = code[order]
        firing = severity != 0
        row_ts = t[order]
        return ConditionChanges(
            rule=self.rule,
            subject=self._slot_point[s[order]],
            ts=row_ts,
            since=np.where(firing, run_start[order], row_ts),
            severity=severity,
            value=slope[order],
            limit=np.where(firing, limit[order], np.nan),
        )

    def _slopes(
        self,
        s: NDArray[np.intp],
        t: NDArray[np.float64],
        v: NDArray[np.float64],
        first: NDArray[np.bool_],
        last: NDArray[np.intp],
        positions: NDArray[np.intp],
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Window slope (unit/min) of every row and whether it gives a verdict.

        Also appends the rows to the ring buffers, after reading what they need.
        """
        cap, window = self.capacity, self.window_s
        seg_slots = s[last]
        seg_first = np.flatnonzero(first)
        seg_len = last - seg_first + 1
        seg_of_row = np.cumsum(first, dtype=np.intp) - 1
        pos_in_seg = positions - seg_first[seg_of_row]
        written = self._written[seg_slots]

        # Ring samples a window of this batch can reach: those within window_s of the
        # segment's first row, at most capacity - 1 (the ring is in time order and
        # older than every row here; unwritten columns are NaN and never count).
        ring_t = self._ring_t.take(seg_slots, axis=0)
        reach = np.count_nonzero(ring_t > (t[seg_first] - window)[:, None], axis=1)
        m = np.minimum(reach, cap - 1)

        # Combined layout per segment: its m ring samples, then its rows.
        m_before = np.cumsum(m) - m
        row_at = positions + np.cumsum(m)[seg_of_row]
        n_ring = int(m.sum())
        comb_t = np.empty(s.shape[0] + n_ring, dtype=np.float64)
        comb_v = np.empty_like(comb_t)
        comb_t[row_at] = t
        comb_v[row_at] = v
        if n_ring:
            ring_seg = np.repeat(np.arange(seg_slots.shape[0]), m)
            offset = np.arange(n_ring) - m_before.take(ring_seg)
            m_ring = m.take(ring_seg)
            column = (written.take(ring_seg) - m_ring + offset) % cap
            at = row_at.take(seg_first.take(ring_seg)) - m_ring + offset
            # Flat indices: a 1-D gather is about twice as fast as a 2-D fancy index.
            cell = seg_slots.take(ring_seg) * cap + column
            comb_t[at] = self._ring_t.reshape(-1).take(cell)
            comb_v[at] = self._ring_v.reshape(-1).take(cell)
        self._append(seg_slots, written, seg_len, seg_of_row, pos_in_seg, t, v)

        # Window length: 1 + the largest lag k <= reachable whose sample is inside
        # (ts - window_s, ts]; ts increase within a segment, so a binary search holds.
        cutoff = t - window
        lo = np.zeros(s.shape[0], dtype=np.intp)
        hi = np.minimum(m[seg_of_row] + pos_in_seg, cap - 1)
        while True:
            open_rows = lo < hi
            if not open_rows.any():
                break
            mid = (lo + hi + 1) // 2
            inside = comb_t.take(row_at - mid) > cutoff  # closed rows: mid == lo, inside
            lo = np.where(open_rows & inside, mid, lo)
            hi = np.where(open_rows & ~inside, mid - 1, hi)
        count = lo + 1

        # Centred sums lag by lag: sequential, so a slope never depends on the batch.
        sum_t = np.zeros(s.shape[0], dtype=np.float64)
        sum_v = np.zeros_like(sum_t)
        sum_tt = np.zeros_like(sum_t)
        sum_tv = np.zeros_like(sum_t)
        # Absurd values (1e300 with a normal flag) may overflow: the slope is then
        # +-inf (judged) or NaN (no verdict), never an exception or a warning.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for k in range(1, int(count.max())):
                src = np.where(k < count, row_at - k, row_at)  # self: adds exact zeros
                dt = comb_t.take(src) - t
                dv = comb_v.take(src) - v
                sum_t += dt
                sum_v += dv
                sum_tt += dt * dt
                sum_tv += dt * dv
            n = count.astype(np.float64)
            denominator = n * sum_tt - sum_t * sum_t
            numerator = n * sum_tv - sum_t * sum_v
            slope = 60.0 * numerator / denominator
        span = t - comb_t[row_at - lo]
        verdict = (count >= self.min_samples) & (span >= self.min_span_s) & ~np.isnan(slope)
        return np.where(verdict, slope, np.nan), verdict

    def _append(
        self,
        seg_slots: NDArray[np.intp],
        written: NDArray[np.int64],
        seg_len: NDArray[np.intp],
        seg_of_row: NDArray[np.intp],
        pos_in_seg: NDArray[np.intp],
        t: NDArray[np.float64],
        v: NDArray[np.float64],
    ) -> None:
        """Write the rows into the rings; only a segment's last ``capacity`` survive."""
        survives = pos_in_seg >= seg_len[seg_of_row] - self.capacity
        rows = np.flatnonzero(survives)
        seg = seg_of_row[rows]
        column = (written.take(seg) + pos_in_seg.take(rows)) % self.capacity
        cell = seg_slots[seg] * self.capacity + column
        self._ring_t.reshape(-1)[cell] = t[rows]  # rings are C-contiguous: views
        self._ring_v.reshape(-1)[cell] = v[rows]
        self._written[seg_slots] += seg_len
