"""Limit alarms with deadband and on-delay: the ``threshold`` rule.

Each point has up to four limits (``lolo < lo < hi < hihi`` in the usual case, any may
be missing).  Every limit is an independent binary hysteresis band so that a value
hovering at a limit does not chatter (ISA-18.2); the bands are combined into one signed
code per sample and only the *changes* of that code leave the detector.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import (
    ffill_positions,
    judgeable_rows,
    read_only,
    segment_ends,
    segment_starts,
    segment_sums,
    shift_from_state,
    shift_within,
)
from detectors.base import ConditionChanges, SampleBatch

#: Bands in priority order (the first debounced one decides the code): name, code,
#: direction (+1: active above the limit, -1: active below it).
_BANDS: tuple[tuple[str, int, int], ...] = (
    ("hihi", 2, +1),
    ("hi", 1, +1),
    ("lolo", -2, -1),
    ("lo", -1, -1),
)


class ThresholdDetector:
    """Per-point hi/hihi/lo/lolo limit alarms on event time.

    Parameters (arrays of length ``n_points``, indexed by the registry's dense point
    ids, in the point's own unit unless stated):

    * ``lo``, ``hi``, ``lolo``, ``hihi``: limits; ``NaN`` means the point has no such
      limit and that band is never active.
    * ``deadband``: hysteresis width, >= 0 (``NaN`` is read as 0).  A high band enters
      when ``value > limit`` and leaves when ``value < limit - deadband``; a low band
      enters when ``value < limit`` and leaves when ``value > limit + deadband``; in
      between it keeps its state, across batches too.
    * ``on_delay_s``: seconds of event time, >= 0 (``NaN`` is read as 0).  A band counts
      only once its raw state has been continuously active for at least this long,
      judged on samples: it fires at the first sample with
      ``ts - run_start >= on_delay_s``.

    The code of a sample is +2 (hihi), +1 (hi), -2 (lolo), -1 (lo) or 0, the first
    debounced band in that order.  A row is emitted whenever a point's code changes:
    ``since`` is the first sample of the excursion (the run of samples where any band
    was raw-active), so an escalation hi → hihi keeps the hi's start; a clearing row
    (severity 0) has ``since`` = its own ``ts`` and ``limit`` NaN.

    Samples that cannot be judged change no state: non-finite value or ts, or quality
    other than :data:`~detectors.base.QUALITY_NORMAL` (counted in ``skipped_samples``);
    ts at or before the last processed ts of the point, including duplicates of one
    (point, ts) within a batch, of which the first in arrival order wins (counted in
    ``late_samples``).  The two counters are disjoint and cumulative.  Samples of points
    without any limit are ignored and not counted.

    >>> nan = float("nan")
    >>> det = ThresholdDetector(lo=[nan], hi=[100.0], lolo=[nan], hihi=[120.0],
    ...                         deadband=[5.0], on_delay_s=[0.0])
    >>> batch = SampleBatch.from_arrays(
    ...     point=[0, 0, 0, 0, 0], ts=[0.0, 10.0, 20.0, 30.0, 40.0],
    ...     value=[90.0, 101.0, 125.0, 97.0, 94.0])
    >>> changes = det.update(batch)
    >>> changes.severity.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([1, 2, 1, 0], [10.0, 20.0, 30.0, 40.0], [10.0, 10.0, 10.0, 40.0])
    >>> changes.limit.tolist()[:3]
    [100.0, 120.0, 100.0]
    """

    rule = "threshold"

    def __init__(
        self,
        lo: ArrayLike,
        hi: ArrayLike,
        lolo: ArrayLike,
        hihi: ArrayLike,
        deadband: ArrayLike,
        on_delay_s: ArrayLike,
    ) -> None:
        limits = {"lo": lo, "hi": hi, "lolo": lolo, "hihi": hihi}
        n_points = _vector(hi, "hi").shape[0]
        self._limits = np.stack([_vector(limits[name], name, n_points) for name, _, _ in _BANDS])
        """Limits, one row per band in :data:`_BANDS` order."""
        self._deadband = _vector(deadband, "deadband", n_points, nan_as=0.0)
        self._on_delay = _vector(on_delay_s, "on_delay_s", n_points, nan_as=0.0)
        if (self._deadband < 0).any() or (self._on_delay < 0).any():
            raise ValueError("deadband and on_delay_s must be >= 0")
        # Enter/leave thresholds per band, precomputed: high bands leave below
        # limit - deadband, low bands leave above limit + deadband.
        signs = np.array([direction for _, _, direction in _BANDS], dtype=np.float64)
        self._leave_at = self._limits - signs[:, None] * self._deadband[None, :]
        self._limited = np.asarray(np.isfinite(self._limits).any(axis=0), dtype=np.bool_)
        """Points with at least one limit: the only ones this rule looks at."""
        high = [b for b, (_, _, direction) in enumerate(_BANDS) if direction > 0]
        low = [b for b, (_, _, direction) in enumerate(_BANDS) if direction < 0]
        self._enter_above = np.fmin.reduce(self._limits[high], axis=0)
        """Lowest high limit of each point (NaN: none): above it some band enters."""
        self._enter_below = np.fmax.reduce(self._limits[low], axis=0)
        self._engaged = np.zeros(n_points, dtype=np.bool_)
        """Some band of the point is raw-active: its samples must all be judged."""
        self.n_points = n_points

        self._active = np.zeros((len(_BANDS), n_points), dtype=np.bool_)
        """Raw (not yet debounced) state of each band."""
        self._run_start = np.full((len(_BANDS), n_points), np.nan, dtype=np.float64)
        """ts of the first sample of each band's current raw-active run."""
        self._excursion_start = np.full(n_points, np.nan, dtype=np.float64)
        """ts of the first sample of the current run where any band is raw-active."""
        self._code = np.zeros(n_points, dtype=np.int8)
        self._last_ts = np.full(n_points, -np.inf, dtype=np.float64)

        self.late_samples = 0
        """Samples at or before the point's last processed ts (incl. in-batch duplicates)."""
        self.skipped_samples = 0
        """Samples with a non-finite value or ts, or a quality flag other than normal."""

    @property
    def severity(self) -> NDArray[np.int8]:
        """Current code of every point (read-only view): +2, +1, 0, -1, -2."""
        return read_only(self._code)

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Judge a batch of samples; return the code changes sorted by ts (ties by point)."""
        point, ts, value = batch.point, batch.ts, batch.value
        n_rows = point.shape[0]
        if n_rows == 0:
            return ConditionChanges.none(self.rule)
        if int(point.min()) < 0 or int(point.max()) >= self.n_points:
            raise ValueError(f"point index out of range 0..{self.n_points - 1}")

        limited = self._limited.take(point)
        p, t, v, skipped, late = judgeable_rows(point, ts, value, batch.quality,
                                                self._last_ts, self.n_points,
                                                None if limited.all() else limited)
        self.skipped_samples += skipped
        self.late_samples += late
        if p.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        p, t, v = self._drop_calm_points(p, t, v)
        if p.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._judge(p, t, v)

    def sweep(self, now: float) -> ConditionChanges:
        """Nothing to do on the clock: the on-delay is judged on samples."""
        return ConditionChanges.none(self.rule)

    def _drop_calm_points(
        self, p: NDArray[np.intp], t: NDArray[np.float64], v: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        """Rows of points that may change, sorted as given; the others are done here.

        A point with no band raw-active whose every sample stays within its limits
        (not above a high one, not below a low one) ends exactly as it started, all
        bands off: only its last ts moves.  In normal operation that is nearly every
        point, and the band-by-band state machine runs on the few others.
        """
        calm = ~((v > self._enter_above.take(p)) | (v < self._enter_below.take(p))
                 | self._engaged.take(p))
        if not calm.any():
            return p, t, v
        first = segment_starts(p)
        seg_start = np.flatnonzero(first)
        seg_calm = segment_sums(~calm, seg_start) == 0
        last = segment_ends(first)
        self._last_ts[p[last[seg_calm]]] = t[last[seg_calm]]
        if seg_calm.all():
            return p[:0], t[:0], v[:0]
        keep = np.flatnonzero(~seg_calm[np.cumsum(first) - 1])
        return p.take(keep), t.take(keep), v.take(keep)

    def _judge(
        self, p: NDArray[np.intp], t: NDArray[np.float64], v: NDArray[np.float64]
    ) -> ConditionChanges:
        """Run the state machine over rows sorted by (point, ts), strictly increasing ts.

        Carried state is gathered per row (``state[p]``) rather than per segment: a
        gather is cheaper than the boolean-mask assignments a per-segment seed needs,
        and only segment starts ever read it.
        """
        positions = np.arange(p.shape[0], dtype=np.intp)
        first = segment_starts(p)
        last = segment_ends(first)
        seg_points = p[last]
        on_delay = self._on_delay[p]

        carried_any = np.zeros(p.shape[0], dtype=np.bool_)
        any_raw = np.zeros(p.shape[0], dtype=np.bool_)
        code = np.zeros(p.shape[0], dtype=np.int8)
        # Reverse priority, so the more important band overwrites the code.
        for b in reversed(range(len(_BANDS))):
            _, band_code, direction = _BANDS[b]
            active, run_start_state = self._active[b], self._run_start[b]
            limit = self._limits[b][p]
            if not np.isfinite(limit).any():
                continue  # no row's point has this band: nothing enters, nothing held
            leave_at = self._leave_at[b][p]
            if direction > 0:
                enter, leave = v > limit, v < leave_at
            else:
                enter, leave = v < limit, v > leave_at
            # Hysteresis: the state is that of the latest enter/leave event in the
            # segment; rows before any event keep the carried state.
            carried = active[p]
            carried_any |= carried
            event = enter | leave
            raw = np.where(event, enter, carried)[ffill_positions(event | first, positions)]
            # Start of the current raw run: the latest rising edge, or the carried
            # start when the run continues from an earlier batch.
            rising = raw & ~shift_within(raw, first, carried)
            run_start = np.where(rising, t, run_start_state[p])[
                ffill_positions(rising | first, positions)
            ]
            debounced = raw & (t - run_start >= on_delay)
            code = np.where(debounced, np.int8(band_code), code)
            any_raw |= raw
            raw_last = raw[last]
            active[seg_points] = raw_last
            run_start_state[seg_points] = np.where(raw_last, run_start[last], np.nan)

        # The excursion: the run of rows where any band is raw-active.
        excursion_rising = any_raw & ~shift_within(any_raw, first, carried_any)
        excursion_start = np.where(excursion_rising, t, self._excursion_start[p])[
            ffill_positions(excursion_rising | first, positions)
        ]
        changed = np.flatnonzero(code != shift_from_state(code, first, self._code, p))
        self._excursion_start[seg_points] = np.where(
            any_raw[last], excursion_start[last], np.nan
        )
        self._code[seg_points] = code[last]
        self._engaged[seg_points] = any_raw[last]
        self._last_ts[seg_points] = t[last]
        if changed.shape[0] == 0:
            return ConditionChanges.none(self.rule)
        return self._rows(changed, p, t, v, code, excursion_start)

    def _rows(
        self,
        changed: NDArray[np.intp],
        p: NDArray[np.intp],
        t: NDArray[np.float64],
        v: NDArray[np.float64],
        code: NDArray[np.int8],
        excursion_start: NDArray[np.float64],
    ) -> ConditionChanges:
        order = changed[np.argsort(t[changed], kind="stable")]
        severity = code[order]
        subject = p[order]
        # Row b of _limits is band b; map each code to its band row (unused for 0).
        band_row = np.select(
            [severity == c for _, c, _ in _BANDS], list(range(len(_BANDS))), default=0
        )
        limit = np.where(severity != 0, self._limits[band_row, subject], np.nan)
        ts = t[order]
        since = np.where(severity != 0, excursion_start[order], ts)
        return ConditionChanges(
            rule=self.rule,
            subject=subject.astype(np.int32),
            ts=ts,
            since=since,
            severity=severity,
            value=v[order],
            limit=limit,
        )


def _vector(
    values: ArrayLike, name: str, n: int | None = None, *, nan_as: float | None = None
) -> NDArray[np.float64]:
    """A private float64 copy of a per-point parameter, checked for shape."""
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1 or (n is not None and array.shape[0] != n):
        raise ValueError(f"{name} must be a 1-D array of length n_points")
    if nan_as is not None:
        array[np.isnan(array)] = nan_as
    return array
