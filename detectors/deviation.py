"""Analog points off their own running baseline: the ``deviation`` rule.

Some analog points have no alarm limits because what is normal differs by machine and
drifts with the season: a dust collector's fan current (a slipping belt or a blinded
filter moves it by tens of percent), a cooling loop's inlet temperature.  This rule
judges each sample by a *robust z-score* against the point's own recent history, and
only while the equipment runs: every watched point may name the run-state point (0/1)
of its device, its *gate*.  A sample is judged, and learned from, only when the gate
has read "running" for a settle time, so a fan stopped at night (0 A) or a start-up
transient neither fires nor pollutes the baseline.

The baseline is kept in event-time *buckets* (10 min by default): in-regime samples add
to the current bucket's count, sum and sum of squares; a finished bucket is pushed into
a ring of the last ``buckets`` bucket summaries (mean, variance), and centre and scale
are recomputed from the ring at that push only, so a batch costs a few whole-array
passes whatever its size.  All per-point sequential logic is written as forward fills
over rows sorted by (point, ts) (:mod:`detectors._segments`), and the bucket sums are
added in sample order (column-wise ``np.add.accumulate``), so the changes and their
values are bit-identical however a stream is split into batches, and equal to a
one-sample-at-a-time implementation (``bench/reference_deviation.py``, the test oracle).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import (
    ffill_positions,
    gather_csr,
    group_csr,
    judgeable_rows,
    read_only,
    segment_ends,
    segment_starts,
    shift_from_state,
    shift_within,
)
from detectors.base import ConditionChanges, SampleBatch
from detectors.cadence import BulkJudged, Cadence

MAD_TO_SIGMA = 1.4826
"""Median absolute deviation to standard deviation, for normally distributed data."""

RUNNING_AT = 0.5
"""A gate sample reads "running" when its value is at least this (run-state points are 0/1)."""


class DeviationDetector(BulkJudged):
    """Per-point robust z-score against the point's own baseline, gated by run state.

    Parameters (per-point arrays have length ``n_points`` and are indexed by the
    registry's dense point ids; "scalar or per point" ones broadcast):

    * ``watched``: bool, the points judged.  Samples of other points are ignored and not
      counted, except those of gate points.
    * ``gate_point``: int, per point, the run-state point (0/1) of the same device, -1 for
      none (default: none anywhere).  Only the watched points' entries are read.  A gate
      must not be watched itself; several watched points may share one gate.  A watched
      point without a gate is judged always.
    * ``bucket_s``: seconds of event time, default 600.  Buckets are aligned to multiples
      of ``bucket_s`` since the epoch.
    * ``buckets``: completed bucket summaries kept per point, default 144 (24 h of
      running time at 600 s): a whole day, so the scale includes what the day does to
      the point (a cooling loop's supply water follows the weather by several kelvin, a
      fan's current swings by a tenth with every filter-cleaning cycle), and a
      deviation must stand out from that.  Six hours were tried: every morning's warm-up
      of the supply water then stood at 6 to 8 sigma.
    * ``min_buckets``: default 72, in ``[1, buckets]``.  No verdict before the ring holds
      that many buckets (12 h of in-regime history at the defaults): a half-filled ring
      has not seen a day's swing.
    * ``min_bucket_samples``: default 3, >= 2.  A finished bucket with fewer in-regime
      samples is dropped, not pushed.
    * ``settle_s``: seconds of event time, >= 0, scalar or per point, default 900.  A
      sample counts only if its gate has read running (value >= 0.5) continuously for at
      least this long: ``ts - running_since >= settle_s``, where ``running_since`` is the
      first gate sample of the current running run.
    * ``z_on``, ``z_off``: dimensionless, ``0 < z_off <= z_on``, default 4 and 3 (against
      a day's scale, a slipping fan belt stands at 4 to 5, a failed cooling tower at 4.5
      to 8).
    * ``on_delay_s``: seconds of event time, >= 0, scalar or per point (NaN is read as
      0), default 600: a real fault lasts (a belt slips for hours), a night's cold
      spell on the supply water passes.
    * ``scale_floor``: in the point's unit, >= 0, scalar or per point, default 0;
      ``scale_floor_rel``: dimensionless, >= 0, default 0.01.  The scale is at least
      ``max(scale_floor, scale_floor_rel * |centre|)``, so a signal that has been
      perfectly steady (a quantised reading stuck on one step) does not turn its first
      step into an infinite z.  The default 1 % of the level asks for a 4 % move of a
      steady fan current at ``z_on = 4``; the registry should set ``scale_floor`` to
      the sensor's resolution (0.1 A, 0.2 K), which is unit-safe where the relative
      floor is not (a temperature near 0 °C).  A scale of 0 gives no verdict.
    * ``direction``: -1, 0 or 1, scalar or per point, default 0: which side may fire (1:
      only above the baseline, -1: only below, 0: both).  A cooling loop's supply water
      running colder than usual endangers nothing (a cold night does it), a fan's
      current is a fault either way.
    * ``judge_every_s``: seconds of event time, default 0 (every batch).  Above 0 the
      samples of watched and gate points are held and judged together once that much
      event time has passed (:mod:`detectors.cadence`): the same changes, later.

    Memory (:meth:`state_nbytes`): ``16 * buckets + 126`` bytes per watched point
    (2.4 kB at the defaults), 25 bytes per gate, 5 bytes per registry point.

    **Regime.**  Samples of all watched and gate points are visited in event-time order,
    a gate sample before a watched sample of the same ts (a device sends all points of
    one timestamp in one message; batches must not split a message).  A watched sample
    is *in regime* when the point has no gate, or its gate's latest visited sample
    reads running and the run is ``settle_s`` old.  A gate never read is not running.
    Within a batch "latest" means the latest gate sample at or before the watched
    sample's ts, else the state carried from earlier batches.  Samples out of regime
    change nothing but the point's last ts.

    **Baseline.**  An in-regime sample at ``ts`` falls in bucket
    ``floor(ts / bucket_s)``.  When it falls in a later bucket than the point's current
    one, the current bucket is finished: with at least ``min_bucket_samples`` samples
    and a finite mean and variance it is pushed into the ring (the oldest drops out) and
    centre and scale are recomputed.  A bucket's mean and variance (``n - 1`` in the
    denominator) come from sums of ``x - x0`` and its square, ``x0`` the bucket's first
    sample, which keeps the variance accurate on large levels.  Then
    ``centre = median(bucket means)`` and
    ``scale = sqrt(median(bucket variances) + (1.4826 * MAD(bucket means))**2)``: the
    noise within a bucket plus the wander between buckets, floored as above.  The
    sample is judged against that baseline (the buckets completed before its own) and
    then added to its bucket.  Every in-regime sample is learned, anomalous or not: a
    shift that persists becomes the new normal once it holds about half the ring (about
    12 h of running at the defaults) and the alarm then clears; a shorter excursion barely moves the
    medians.  Stopped periods are not learned, so the ring holds running time only.

    **Alarm.**  ``z = (x - centre) / scale`` for every in-regime sample with a baseline
    (the verdict rows).  Two hysteresis bands, as in ``threshold``: *high* enters at
    ``z >= z_on`` and leaves at ``z < z_off``; *low* enters at ``z <= -z_on`` and leaves
    at ``z > -z_off``; in between each keeps its state, across batches too (the two are
    never active together: a jump from +z_on to -z_on leaves high and enters low).  A
    band fires at the first verdict row with ``ts - run_start >= on_delay_s``
    (``run_start``: the first row of its current raw run).  Severity is +1 (high, above
    the baseline), -1 (low) or 0.  A row is emitted when the severity changes: ``value``
    is z at that sample, ``limit`` is ``z_on`` (NaN when clearing), ``since`` the band's
    run start (a clearing row's own ts).  Rows without a verdict (out of regime, too
    little history) move nothing.

    **Stop.**  When a gate sample reads stopped (< 0.5) after running, both bands of the
    points it gates are reset; a firing alarm clears with a row at that gate sample's ts
    (``since`` = ts, ``value`` NaN, no sample of the point decided it).  A stopped
    machine is not abnormal, and after a restart a deviation must show again, settled
    and for ``on_delay_s``, before it fires again.  The baseline is kept over the stop.

    Bad input is handled as in ``threshold``, for watched and gate points alike:
    non-finite value or ts, or quality other than
    :data:`~detectors.base.QUALITY_NORMAL`, change no state (``skipped_samples``);
    samples at or before the point's last judged ts, and all but the first arrival of
    duplicates of one (point, ts), change no state (``late_samples``).

    >>> det = DeviationDetector([True, False], [1, -1], bucket_s=60.0, buckets=6,
    ...                         min_buckets=3, settle_s=60.0, on_delay_s=20.0)
    >>> ts = np.arange(0.0, 480.0, 10.0)  # every 10 s: point 1 the gate, point 0 in A
    >>> amps = 50.0 + np.where(np.arange(48) % 2, 0.5, -0.5)
    >>> amps[ts >= 400.0] = 30.0  # a belt slips
    >>> batch = SampleBatch.from_arrays([1] * 48 + [0] * 48, np.r_[ts, ts],
    ...                                 np.r_[np.ones(48), amps])
    >>> changes = det.update(batch)
    >>> changes.severity.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([-1], [420.0], [400.0])
    >>> round(float(changes.value[0]), 2), changes.limit.tolist()  # (30 - 50) / 0.548
    (-36.51, [4.0])
    >>> stop = det.update(SampleBatch.from_arrays([1, 0], [480.0, 480.0], [0.0, 0.0]))
    >>> stop.severity.tolist(), stop.ts.tolist(), det.severity.tolist()
    ([0], [480.0], [0, 0])
    """

    rule = "deviation"

    def __init__(
        self,
        watched: ArrayLike,
        gate_point: ArrayLike | None = None,
        *,
        bucket_s: float = 600.0,
        buckets: int = 144,
        min_buckets: int = 72,
        min_bucket_samples: int = 3,
        settle_s: ArrayLike = 900.0,
        z_on: float = 4.0,
        z_off: float = 3.0,
        on_delay_s: ArrayLike = 600.0,
        scale_floor: ArrayLike = 0.0,
        scale_floor_rel: float = 0.01,
        direction: ArrayLike = 0,
        judge_every_s: float = 0.0,
    ) -> None:
        is_watched = np.asarray(watched)
        if is_watched.ndim != 1 or is_watched.dtype != np.bool_:
            raise ValueError("watched must be a 1-D bool array of length n_points")
        n_points = is_watched.shape[0]
        gate = (np.full(n_points, -1, dtype=np.int64) if gate_point is None
                else np.asarray(gate_point))
        if gate.shape != (n_points,) or not np.issubdtype(gate.dtype, np.integer):
            raise ValueError("gate_point must be a 1-D int array of length n_points")
        watched_point = np.flatnonzero(is_watched).astype(np.int32)
        gate_of_point = gate[watched_point].astype(np.int64)
        if ((gate_of_point < -1) | (gate_of_point >= n_points)).any():
            raise ValueError(f"gate_point must be -1 or in 0..{n_points - 1}")
        has_gate = gate_of_point >= 0
        if is_watched[gate_of_point[has_gate]].any():
            raise ValueError("a gate point must not be watched itself")
        if not (math.isfinite(bucket_s) and bucket_s > 0):
            raise ValueError("bucket_s must be finite and > 0")
        if not 1 <= min_buckets <= buckets:
            raise ValueError("min_buckets must be in [1, buckets]")
        if min_bucket_samples < 2:
            raise ValueError("min_bucket_samples must be at least 2 (a variance needs two)")
        if not (math.isfinite(z_on) and 0 < z_off <= z_on):
            raise ValueError("need 0 < z_off <= z_on, finite")
        if not (math.isfinite(scale_floor_rel) and scale_floor_rel >= 0):
            raise ValueError("scale_floor_rel must be finite and >= 0")

        self.n_points = n_points
        self.bucket_s = float(bucket_s)
        self.buckets = int(buckets)
        self.min_buckets = int(min_buckets)
        self.min_bucket_samples = int(min_bucket_samples)
        self.z_on, self.z_off = float(z_on), float(z_off)
        self.scale_floor_rel = float(scale_floor_rel)
        self._cadence = Cadence(judge_every_s)

        # Compact keys: watched points 0..W-1, then gate points W..W+G-1.
        gate_points = np.unique(gate_of_point[has_gate]).astype(np.int32)
        n_watched, n_gates = watched_point.shape[0], gate_points.shape[0]
        self._n_watched = n_watched
        self._key = np.full(n_points, -1, dtype=np.intp)
        self._key[watched_point] = np.arange(n_watched, dtype=np.int32)
        self._key[gate_points] = n_watched + np.arange(n_gates, dtype=np.int32)
        self._watched_point = watched_point
        self._gate_of = np.where(has_gate, np.searchsorted(gate_points, gate_of_point),
                                 -1).astype(np.intp)
        """Gate index (0..G-1) of each watched key, -1 for none (native ints: it
        indexes the per-gate state, and an int32 index costs numpy a cast)."""
        self._gate_ptr, members = group_csr(self._gate_of[has_gate], n_gates)
        self._gate_members = np.flatnonzero(has_gate)[members]
        """Watched keys of gate ``g``: ``_gate_members[_gate_ptr[g]:_gate_ptr[g + 1]]``."""

        self._settle = _per_point(settle_s, "settle_s", n_points)[watched_point]
        self._on_delay = _per_point(on_delay_s, "on_delay_s", n_points, nan_as=0.0)[
            watched_point]
        self._floor = _per_point(scale_floor, "scale_floor", n_points)[watched_point]
        sides = np.broadcast_to(np.asarray(direction), (n_points,))
        if not np.isin(sides, (-1, 0, 1)).all():
            raise ValueError("direction must be -1, 0 or 1 (scalar or per point)")
        self._direction = sides[watched_point].astype(np.int8)

        # -- state ------------------------------------------------------------------------
        self._last_ts = np.full(n_watched + n_gates, -np.inf, dtype=np.float64)
        """Last judged ts of each key (watched and gate points)."""
        self._gate_running = np.zeros(n_gates, dtype=np.bool_)
        self._gate_since = np.full(n_gates, np.nan, dtype=np.float64)
        """ts of the first sample of the gate's current running run (NaN: stopped)."""

        self._bucket = np.full(n_watched, -np.inf, dtype=np.float64)
        """Current bucket, ``floor(ts / bucket_s)`` (a float: huge ts stay exact)."""
        self._count = np.zeros(n_watched, dtype=np.int64)
        self._x0 = np.zeros(n_watched, dtype=np.float64)
        """First sample of the current bucket: the sums are of ``x - x0``."""
        self._sum = np.zeros(n_watched, dtype=np.float64)
        self._sum_sq = np.zeros(n_watched, dtype=np.float64)
        self._ring_mean = np.full((n_watched, self.buckets), np.nan, dtype=np.float64)
        self._ring_var = np.full((n_watched, self.buckets), np.nan, dtype=np.float64)
        self._pushed = np.zeros(n_watched, dtype=np.int64)
        """Buckets ever pushed per point; the next ring column is ``pushed % buckets``."""
        self._centre = np.full(n_watched, np.nan, dtype=np.float64)
        self._scale = np.full(n_watched, np.nan, dtype=np.float64)
        """Baseline as of the last push (NaN: fewer than ``min_buckets`` buckets)."""

        self._high = np.zeros(n_watched, dtype=np.bool_)
        self._low = np.zeros(n_watched, dtype=np.bool_)
        """Raw (not yet debounced) state of the two bands."""
        self._high_start = np.full(n_watched, np.nan, dtype=np.float64)
        self._low_start = np.full(n_watched, np.nan, dtype=np.float64)
        self._code = np.zeros(n_points, dtype=np.int8)

        self.late_samples = 0
        """Samples of watched or gate points at or before the point's last judged ts
        (incl. duplicates)."""
        self.skipped_samples = 0
        """Samples of watched or gate points with a non-finite value or ts, or a
        non-normal flag."""

    @property
    def severity(self) -> NDArray[np.int8]:
        """Current alarm of every point (read-only view): +1 above, -1 below, 0."""
        return read_only(self._code)

    def baseline(self, point: int) -> tuple[float, float]:
        """(centre, scale) a watched point is judged against now, in its unit (NaN while
        it has too little history, or for a point not watched); for evidence."""
        key = int(self._key[point])
        if not 0 <= key < self._n_watched:
            return math.nan, math.nan
        return float(self._centre[key]), float(self._scale[key])

    def state_nbytes(self) -> int:
        """Memory held by the detector's state and parameters (bytes)."""
        arrays = (self._key, self._watched_point, self._gate_of, self._gate_ptr,
                  self._gate_members, self._settle, self._on_delay, self._floor,
                  self._direction,
                  self._last_ts, self._gate_running, self._gate_since, self._bucket,
                  self._count, self._x0, self._sum, self._sum_sq, self._ring_mean,
                  self._ring_var, self._pushed, self._centre, self._scale, self._high,
                  self._low, self._high_start, self._low_start, self._code)
        return int(sum(a.nbytes for a in arrays))

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Judge a batch of samples; return the alarm changes sorted by ts (ties by point)."""
        point = batch.point
        if point.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        if int(point.min()) < 0 or int(point.max()) >= self.n_points:
            raise ValueError(f"point index out of range 0..{self.n_points - 1}")
        if self._n_watched == 0:
            return ConditionChanges.none(self.rule)
        return self._hold(batch, self._key.take(point) >= 0)

    # -- internals ---------------------------------------------------------------------

    def _take(self, batch: SampleBatch) -> ConditionChanges:
        key = self._key.take(batch.point)
        mine = key >= 0
        k, t, v, skipped, late = judgeable_rows(key, batch.ts, batch.value, batch.quality,
                                                self._last_ts, self._last_ts.shape[0],
                                                None if mine.all() else mine)
        self.skipped_samples += skipped
        self.late_samples += late
        if k.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        last = segment_ends(segment_starts(k))
        self._last_ts[k[last]] = t[last]
        n_watched = self._n_watched
        split = int(np.searchsorted(k, n_watched))  # watched keys sort before gate keys
        w, wt, wv = k[:split], t[:split], v[:split]
        running, since, stop_gate, stop_ts = self._gates(
            k[split:] - n_watched, t[split:], v[split:], self._gate_of[w], wt)
        with np.errstate(invalid="ignore"):
            regime = (self._gate_of[w] < 0) | (running & (wt - since >= self._settle[w]))
        rows = np.flatnonzero(regime)
        z = self._z_scores(w[rows], wt[rows], wv[rows])
        verdict = np.flatnonzero(~np.isnan(z))
        judged = rows[verdict]
        ew, et, ez = w[judged], wt[judged], z[verdict]
        reset = np.zeros(ew.shape[0], dtype=np.bool_)
        if stop_gate.shape[0]:
            # Every watched point of a stopping gate gets a reset row at the gate's ts,
            # before its own sample of that ts (the gate is known first).
            counts = self._gate_ptr[stop_gate + 1] - self._gate_ptr[stop_gate]
            rw = gather_csr(self._gate_ptr, self._gate_members, stop_gate)
            ew, et = np.concatenate((ew, rw)), np.concatenate((et, np.repeat(stop_ts, counts)))
            ez = np.concatenate((ez, np.full(rw.shape[0], np.nan)))
            reset = np.concatenate((reset, np.ones(rw.shape[0], dtype=np.bool_)))
            order = np.lexsort((~reset, et, ew))
            ew, et, ez, reset = ew[order], et[order], ez[order], reset[order]
        if ew.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._alarm(ew, et, ez, reset)

    def _gates(
        self,
        g: NDArray[np.intp],
        t: NDArray[np.float64],
        v: NDArray[np.float64],
        query_gate: NDArray[np.intp],
        query_ts: NDArray[np.float64],
    ) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.intp], NDArray[np.float64]]:
        """Run the gates over their rows (sorted by (gate, ts)); answer for each query
        (a watched row's gate and ts, gate -1 for none) the gate's running state and run
        start as of that ts; also return the stops (gate, ts: running to stopped)."""
        carried_running, carried_since = self._gate_running, self._gate_since
        has = query_gate >= 0
        if g.shape[0] == 0:
            no_stop, no_ts = np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
            if not has.any():
                return has, np.full(has.shape[0], np.nan), no_stop, no_ts
            qg = np.where(has, query_gate, 0)
            return (has & carried_running[qg], np.where(has, carried_since[qg], np.nan),
                    no_stop, no_ts)
        positions = np.arange(g.shape[0], dtype=np.intp)
        first = segment_starts(g)
        last = segment_ends(first)
        running = v >= RUNNING_AT
        was = shift_within(running, first, carried_running.take(g))
        rising = running & ~was
        since = np.where(rising, t, carried_since.take(g))[
            ffill_positions(rising | first, positions)]
        since = np.where(running, since, np.nan)
        stop = np.flatnonzero(was & ~running)

        # Each query takes the latest gate row of its gate at or before its ts (a gate
        # row first at equal ts), or the carried state when there is none.
        q = np.flatnonzero(has)
        q_running = np.zeros(query_gate.shape[0], dtype=np.bool_)
        q_since = np.full(query_gate.shape[0], np.nan)
        qg, qt = query_gate[q], query_ts[q]
        row = _latest_at_or_before(g, t, qg, qt)
        found = row >= 0
        src = np.where(found, row, 0)
        q_running[q] = np.where(found, running[src], carried_running[qg])
        q_since[q] = np.where(found, since[src], carried_since[qg])

        gates = g[last]
        self._gate_running[gates] = running[last]
        self._gate_since[gates] = since[last]
        return q_running, q_since, g[stop], t[stop]

    def _z_scores(
        self, w: NDArray[np.intp], t: NDArray[np.float64], x: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """z of in-regime rows (sorted by (point, ts)), NaN without a baseline; learns
        the rows into their buckets and pushes the buckets they finish."""
        n = w.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.float64)
        positions = np.arange(n, dtype=np.intp)
        bucket = np.floor(t / self.bucket_s)
        opens = segment_starts(w)
        seg_mark = opens.copy()
        seg_mark[1:] |= bucket[1:] != bucket[:-1]
        seg_first = np.flatnonzero(seg_mark)
        seg_last = segment_ends(seg_mark)
        seg_of_row = np.cumsum(seg_mark, dtype=np.intp) - 1
        seg_w, seg_bucket = w[seg_first], bucket[seg_first]
        seg_len = seg_last - seg_first + 1
        point_first_seg = opens[seg_first]
        closing = np.zeros(seg_first.shape[0], dtype=np.bool_)
        closing[segment_ends(point_first_seg)] = True  # a point's last: its bucket stays open

        # Bucket sums: a point's first segment continues the carried bucket if it is
        # the same bucket; otherwise it opens a new one and the carried bucket finishes.
        continuing = point_first_seg & (self._bucket[seg_w] == seg_bucket)
        x0 = np.where(continuing, self._x0[seg_w], x[seg_first])
        d = x - x0[seg_of_row]
        rank = positions - seg_first[seg_of_row]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            sums = _sequential_sums(
                np.stack((d, d * d)), seg_of_row, rank, seg_len,
                np.stack((np.where(continuing, self._sum[seg_w], 0.0),
                          np.where(continuing, self._sum_sq[seg_w], 0.0))))
            count = seg_len + np.where(continuing, self._count[seg_w], 0)
            mean, var = _moments(x0, sums[0], sums[1], count)
            finishing = point_first_seg & ~continuing & (
                self._count[seg_w] >= self.min_bucket_samples)
            fin = np.flatnonzero(finishing)
            fw = seg_w[fin]
            fin_mean, fin_var = _moments(self._x0[fw], self._sum[fw], self._sum_sq[fw],
                                         self._count[fw])
        ok_fin = np.isfinite(fin_mean) & np.isfinite(fin_var)
        post = np.flatnonzero(~closing & (count >= self.min_bucket_samples)
                              & np.isfinite(mean) & np.isfinite(var))
        # Pushes in time order: a carried bucket at its point's first segment (key 2s),
        # a segment's own bucket at the start of the next segment (key 2s + 1).
        push_key = np.concatenate((2 * fin[ok_fin], 2 * post + 1))
        by_key = np.argsort(push_key)
        push_key = push_key[by_key]
        push_mean = np.concatenate((fin_mean[ok_fin], mean[post]))[by_key]
        push_var = np.concatenate((fin_var[ok_fin], var[post]))[by_key]
        centre, scale = self._centre[w], self._scale[w]
        if push_key.shape[0]:
            push_w = seg_w[push_key // 2]
            push_centre, push_scale = self._push(push_w, push_mean, push_var)
            # Rows of segment s see the pushes with key <= 2s made for their point.
            seen = np.searchsorted(push_key, 2 * seg_of_row, side="right")
            first_of_point = np.searchsorted(
                push_key, 2 * seg_of_row[ffill_positions(opens, positions)], side="left")
            pushed = seen > first_of_point
            latest = np.maximum(seen - 1, 0)
            centre = np.where(pushed, push_centre[latest], centre)
            scale = np.where(pushed, push_scale[latest], scale)

        open_seg = np.flatnonzero(closing)
        ow = seg_w[open_seg]
        self._bucket[ow] = seg_bucket[open_seg]
        self._count[ow] = count[open_seg]
        self._x0[ow] = x0[open_seg]
        self._sum[ow] = sums[0][open_seg]
        self._sum_sq[ow] = sums[1][open_seg]

        judged = np.isfinite(centre) & np.isfinite(scale) & (scale > 0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = (x - centre) / scale
        return np.where(judged, z, np.nan)

    def _push(
        self, pw: NDArray[np.intp], mean: NDArray[np.float64], var: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Push finished buckets (grouped by point, in time order) into the rings;
        return the baseline (centre, scale) after each push (NaN: too few buckets)."""
        n_buckets = self.buckets
        n_push = pw.shape[0]
        index = np.arange(n_push, dtype=np.intp)
        first = segment_starts(pw)
        j = index - ffill_positions(first, index)  # rank of the push within its point
        before = self._pushed[pw]
        ordinal = before + j
        # The window after push i: ordinals ordinal - B + 1 .. ordinal; older than this
        # batch's pushes come from the ring, the others from this batch's pushes.
        lag = np.arange(n_buckets - 1, -1, -1, dtype=np.int64)
        o = ordinal[:, None] - lag[None, :]
        from_batch = o >= before[:, None]
        from_ring = (o >= 0) & ~from_batch
        batch_at = np.maximum(index[:, None] - lag[None, :], 0)
        cell = pw.astype(np.intp)[:, None] * n_buckets + o % n_buckets
        ring_mean = self._ring_mean.reshape(-1)[cell]
        ring_var = self._ring_var.reshape(-1)[cell]
        means = np.where(from_batch, mean[batch_at], np.where(from_ring, ring_mean, np.nan))
        variances = np.where(from_batch, var[batch_at], np.where(from_ring, ring_var, np.nan))
        held = np.minimum(ordinal + 1, n_buckets)
        with np.errstate(over="ignore", invalid="ignore"):
            centre = _median(means, held)
            mad = _median(np.abs(means - centre[:, None]), held)
            spread = MAD_TO_SIGMA * mad
            scale = np.sqrt(_median(variances, held) + spread * spread)
            scale = np.maximum(np.maximum(scale, self._floor[pw]),
                               self.scale_floor_rel * np.abs(centre))
        enough = held >= self.min_buckets

        # Into the rings: only the last B pushes of a point survive.
        last = segment_ends(first)
        n_of_point = (last - np.flatnonzero(first) + 1)
        keep = np.flatnonzero(j >= n_of_point[np.cumsum(first) - 1] - n_buckets)
        at = pw[keep].astype(np.intp) * n_buckets + ordinal[keep] % n_buckets
        self._ring_mean.reshape(-1)[at] = mean[keep]
        self._ring_var.reshape(-1)[at] = var[keep]
        points = pw[last]
        self._pushed[points] = ordinal[last] + 1
        centre = np.where(enough, centre, np.nan)
        scale = np.where(enough, scale, np.nan)
        self._centre[points] = centre[last]
        self._scale[points] = scale[last]
        return centre, scale

    def _alarm(
        self,
        ew: NDArray[np.intp],
        et: NDArray[np.float64],
        ez: NDArray[np.float64],
        reset: NDArray[np.bool_],
    ) -> ConditionChanges:
        """The two bands over verdict and reset rows sorted by (point, ts, reset first)."""
        positions = np.arange(ew.shape[0], dtype=np.intp)
        first = segment_starts(ew)
        last = segment_ends(first)
        seg_w = ew[last]
        on_delay = self._on_delay[ew]
        direction = self._direction[ew]
        code = np.zeros(ew.shape[0], dtype=np.int8)
        since = np.full(ew.shape[0], np.nan)
        for sign, active, start in ((-1, self._low, self._low_start),
                                    (1, self._high, self._high_start)):
            signed = sign * ez  # NaN on reset rows: neither enters nor leaves by itself
            enter = (signed >= self.z_on) & (direction != -sign)
            leave = reset | (signed < self.z_off)
            carried = active[ew]
            event = enter | leave
            raw = np.where(event, enter, carried)[ffill_positions(event | first, positions)]
            rising = raw & ~shift_within(raw, first, carried)
            run_start = np.where(rising, et, start[ew])[
                ffill_positions(rising | first, positions)]
            firing = raw & (et - run_start >= on_delay)
            code = np.where(firing, np.int8(sign), code)
            since = np.where(firing, run_start, since)
            raw_last = raw[last]
            active[seg_w] = raw_last
            start[seg_w] = np.where(raw_last, run_start[last], np.nan)
        point = self._watched_point[ew]
        changed = np.flatnonzero(code != shift_from_state(code, first, self._code, point))
        self._code[self._watched_point[seg_w]] = code[last]
        if changed.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        order = changed[np.lexsort((point[changed], et[changed]))]
        severity = code[order]
        alarm = severity != 0
        row_ts = et[order]
        return ConditionChanges(
            rule=self.rule,
            subject=point[order],
            ts=row_ts,
            since=np.where(alarm, since[order], row_ts),
            severity=severity,
            value=ez[order],
            limit=np.where(alarm, self.z_on, np.nan),
        )


def _latest_at_or_before(
    g: NDArray[np.integer[Any]], t: NDArray[np.float64], qg: NDArray[np.integer[Any]],
    qt: NDArray[np.float64],
) -> NDArray[np.intp]:
    """For each query (gate ``qg``, ts ``qt``), the row of ``(g, t)`` (sorted by gate,
    then ts) of the same gate with the latest ts at or before ``qt``; -1 for none.

    One binary search on a combined key ``gate * span + (ts - t0)`` when that key is
    exact to well under a millisecond (it orders and ties exactly as (gate, ts) do),
    else a lexsort of both sets.

    >>> _latest_at_or_before(np.array([0, 0, 1], np.int32), np.array([5.0, 9.0, 7.0]),
    ...                      np.array([0, 0, 1, 1], np.int32),
    ...                      np.array([9.0, 4.0, 8.0, 6.0])).tolist()
    [1, -1, 2, -1]
    """
    if qg.shape[0] == 0:
        return np.empty(0, dtype=np.intp)
    t0 = min(float(t.min()), float(qt.min()))
    span = max(float(t.max()), float(qt.max())) - t0 + 1.0
    n_keys = max(int(g.max()), int(qg.max())) + 1
    if span * n_keys < 2.0**40:  # 2**-12 s resolution or finer at the largest key
        key = g * span + (t - t0)
        pos = np.searchsorted(key, qg * span + (qt - t0), side="right") - 1
    else:
        both_g = np.concatenate((g, qg))
        is_query = np.arange(both_g.shape[0]) >= g.shape[0]
        order = np.lexsort((is_query, np.concatenate((t, qt)), both_g))
        gate_rank = np.cumsum(~is_query[order]) - 1  # rows of g are already sorted
        pos = np.empty(qg.shape[0], dtype=np.intp)
        pos[order[is_query[order]] - g.shape[0]] = gate_rank[is_query[order]]
    safe = np.maximum(pos, 0)  # pos <= len(g) - 1 already: one bound to apply
    hit = (pos >= 0) & (g[safe] == qg)
    out: NDArray[np.intp] = np.where(hit, pos, -1)
    return out


def _moments(
    x0: NDArray[np.float64], total: NDArray[np.float64], total_sq: NDArray[np.float64],
    count: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and variance (``n - 1``, negative rounding clipped to 0) from shifted sums."""
    n = count.astype(np.float64)
    mean = x0 + total / n
    var = (total_sq - total * total / n) / (n - 1.0)
    return mean, np.where(var < 0, 0.0, var)


def _median(window: NDArray[np.float64], held: NDArray[np.int64]) -> NDArray[np.float64]:
    """Median of each row's ``held`` values (the other slots are NaN), as
    ``(s[(held - 1) // 2] + s[held // 2]) / 2`` of the sorted values."""
    ordered = np.sort(window, axis=1)  # NaN (empty slots) last
    lo = ((held - 1) // 2)[:, None]
    hi = (held // 2)[:, None]
    pair = np.take_along_axis(ordered, lo, 1) + np.take_along_axis(ordered, hi, 1)
    out: NDArray[np.float64] = pair[:, 0] / 2.0
    return out


def _sequential_sums(
    values: NDArray[np.float64],
    seg_of_row: NDArray[np.intp],
    rank: NDArray[np.intp],
    seg_len: NDArray[np.intp],
    seed: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per segment and per row of ``values`` (shape (k, n)), ``seed + v0 + v1 + ...``
    added left to right, as a loop over samples adds them.

    ``np.add.reduceat`` sums pairwise, so a bucket split over two batches would round
    differently from one batch.  Here each segment is a column of a zero-padded grid
    (rows: seed, then samples by rank) summed with ``np.add.accumulate`` down the
    columns, which is sequential by definition (adding 0.0 is exact).  Segments are
    grouped by length class (powers of two), so the padding at most doubles the grid.

    >>> _sequential_sums(np.array([[1.0, 2.0, 3.0]]), np.array([0, 0, 1]),
    ...                  np.array([0, 1, 0]), np.array([2, 1]), np.array([[10.0, 0.0]]))
    array([[13.,  3.]])
    """
    n_seg = seg_len.shape[0]
    depth = seg_len + 1
    _, length_class = np.frexp(depth.astype(np.float64))
    totals = np.empty((values.shape[0], n_seg), dtype=np.float64)
    classes = np.unique(length_class)
    for c in classes:  # at most log2(rows) + 1 classes, usually one or two
        segs = np.flatnonzero(length_class == c) if classes.shape[0] > 1 else np.arange(n_seg)
        column = np.full(n_seg, -1, dtype=np.intp)
        column[segs] = np.arange(segs.shape[0])
        rows = (np.flatnonzero(column[seg_of_row] >= 0) if classes.shape[0] > 1
                else np.arange(seg_of_row.shape[0]))
        grid = np.zeros((values.shape[0], int(depth[segs].max()), segs.shape[0]))
        grid[:, 0, :] = seed[:, segs]
        grid[:, rank[rows] + 1, column[seg_of_row[rows]]] = values[:, rows]
        totals[:, segs] = np.add.accumulate(grid, axis=1)[:, -1, :]
    return totals


def _per_point(
    values: ArrayLike, name: str, n: int, *, nan_as: float | None = None
) -> NDArray[np.float64]:
    """A private float64 copy of a scalar-or-per-point parameter, finite and >= 0."""
    try:
        array = np.array(np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)))
    except ValueError:
        raise ValueError(f"{name} must be a scalar or an array of length n_points") from None
    if nan_as is not None:
        array[np.isnan(array)] = nan_as
    if not (np.isfinite(array) & (array >= 0)).all():
        raise ValueError(f"{name} must be finite and >= 0")
    return array
