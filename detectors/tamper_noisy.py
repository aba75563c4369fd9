"""Disguised replay for the ``tamper`` rule: old data re-sent with a scale, noise, a shift.

A faker who re-sends the readings of the same hours a day or a week earlier, but
scales them by 0.5-2 %, adds noise below the last decimal and shifts them by one sample
(the simulators' ``fake_offline.replay_noisy``) defeats exact digests
(:mod:`detectors.tamper_replay`).  What the disguise keeps is the *course* of every
reading: the copy rises and falls, fluctuation by fluctuation, as the original did.
This judge correlates the recent changes of each watched point with its changes exactly
one candidate lag earlier, and calls a device replaying when several of its points agree
at one lag, and at no other, evaluation after evaluation.

**Slots.**  Each watched point's samples are averaged into event-time slots of
``slot_s`` seconds (aligned to multiples of ``slot_s``) with triangular weights: a
sample at ``t`` counts ``1 - f`` in slot ``k = floor(t / slot_s)`` and ``f`` in slot
``k + 1``, ``f = t / slot_s - k``.  The triangle makes slot means insensitive to a
shift of one sample: for white noise sampled ``n`` times a slot, the changes of plain
slot means keep a correlation of ``(2n - 3) / (2n)`` with the same changes one sample
later (0.62 for ``n = 4``: 30 s samples in 120 s slots), triangular ones 0.83.
Averaging also absorbs most of the added noise.  A device's slots close on its records:
when a record falls in a later slot than the device's previous one, every slot before
it is final (a slot no sample reached is missing).  The change of mean into each final
slot goes into a per-point ring, as float16 (relative precision 5e-4, plenty for a
correlation; a change beyond float16's range is kept as missing).  The slot work (ring
writes, evaluations) is done only when slots close, never per record.

**Evaluation.**  When a slot divisible by ``every`` closes, each point's ``window``
newest changes (differencing removes the offset and the slow daily course) are
compared with its changes exactly one lag earlier, for every lag of ``lags_s`` (whole
multiples of ``slot_s``).  Each side is winsorised at the median ± ``clip`` robust
standard deviations (1.4826 median absolute deviations) of its present values, and
Pearson's correlation is taken over the pairs present on both sides (at least
``min_valid``): one start-up step, a filter-cleaning drop or a pour would otherwise
dominate a window and correlate with any other step, clipped it weighs like a large
fluctuation; a window in which most changes are exactly zero (a flat or stuck reading)
has a zero MAD, is clipped flat and says nothing.  A scale factor does not change a
correlation.

**Device.**  A lag *agrees* when ``min_points`` watched points correlate at
``>= min_corr`` there *and* at no other lag do ``min_points`` points reach
``control_corr``.  That second condition is the lag verification: a process driven by
a daily schedule (the same steps at the same minutes every day) looks alike at every
lag, a replay only at the lag it copies.  Devices with fewer than ``min_points`` watched
points are not judged at all (no ring either): honest points of one device move
together (inlet and outlet temperature follow one furnace, ΔP and fan current one
filter cake), so two agreeing points are one piece of evidence, and one point (a CO
sensor) none.  A device is replaying once one lag agreed at ``min_hits`` evaluations in
a row, and clears after ``clear_misses`` evaluations in a row without agreement at that
lag.  ``value`` is the lag (s), ``limit`` ``min_corr``.

``since`` estimates when the copy began.  Over a window only partly copied the
correlation is roughly the copied share, so the first agreeing window (``>=
min_corr``) was copied from at most ``(1 - min_corr) x window`` slots after its start,
and the evaluation ``every`` slots earlier, which did not agree, puts the start after
``(1 - min_corr) x window - every`` slots: ``since`` is that lower bound, 4 minutes
after the start of the first agreeing window with the defaults (never before it).
Taking the window's start itself put one suite's alert 6 minutes before the copy.

**Tuning** (the defaults of :class:`~detectors.tamper.TamperDetector`).  Tuned on
simulator suites (50 sites x 14 days, seed 1, and two 30-site x 10-day suites of
replays and hard negatives only, seeds 11 and 12: 12 noisy and 12 exact replays in
all), by the third-best point correlation of each device, sustained:

* 120 s slots, windows of 20 changes (40 minutes), an evaluation every 3 slots (6
  min), 3 agreeing evaluations: honest multi-point devices stayed below 0.64 at
  lags of 1, 2 and 7 days; every replay reached 0.79-1.0.  The detector itself, run
  over the three suites, fires nowhere honest at ``min_corr`` 0.70 (at 0.65 on two
  cooling loops of seed 1), misses 2 of the 12 noisy replays at 0.80, and at 0.75
  finds all 12, 51-134 minutes after they start (median 75): the window must be mostly
  replayed, and the slowest ones begin with a flat hour.  Clearing after 3 evaluations
  without agreement (18 min) holds every replay in one run; after 2, one of the 12
  dipped out and in again.
* Coarser slots fail: at 300 s an hour holds 12 changes, and honest devices reached
  0.95 (a furnace's melt cycles line up with yesterday's for an hour often enough, and
  inlet and outlet temperatures follow them together).  Single-point devices reached
  0.99 and pairs 0.98, hence 3 points.  Without winsorising, start-ups and cleaning
  drops pushed honest devices to 0.99.
* Lags 1, 2 and 7 days: the simulated faker replays a week back when it can, else a
  day; the 2-day lag verifies the 1-day one from a device's third day of history on.
  With only one day of history no other lag is there to compare, and a dense daily
  schedule (load steps every 10 minutes at the same minutes every day) is taken for a
  copy; start-ups at the same minute every day are not (winsorised).

**Memory.**  The ring holds ``max(lag) / slot_s + window`` float16 per watched point
of a judged device: 5,060 slots, 10.1 KB with the defaults (7 days of 120 s slots),
plus 40 bytes of running sums and the last mean per point and 32 bytes per device.

Records arrive in (device, ts) order, each device's after its earlier ones
(:class:`~detectors.tamper_records.RecordBuffer`), and the weighted sums are running
sums in that order, so slot means, and verdicts, do not depend on where batches are
cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from detectors._segments import (
    ffill_positions,
    segment_ends,
    segment_starts,
    shift_from_state,
)
from detectors.tamper_records import Records, Verdict

_NONE = np.iinfo(np.int64).min
"""Slot of a device that has not sent a record yet."""
_MAD_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation of a normal distribution."""

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def _medians(sorted_rows: F64, n: NDArray[np.intp]) -> F64:
    """Median of the first ``n`` values of each sorted row (NaN where ``n`` is 0)."""
    w = sorted_rows.shape[-1]
    flat = sorted_rows.reshape(-1, w)
    count = n.reshape(-1)
    at = np.arange(flat.shape[0])
    a = flat[at, np.maximum((count - 1) // 2, 0)]
    b = flat[at, np.minimum(count // 2, w - 1)]
    out: F64 = np.where(count > 0, (a + b) * 0.5, np.nan).reshape(n.shape)
    return out


def winsorised(v: F64, clip: float) -> F64:
    """Each row (last axis) clipped to its median ± ``clip`` robust standard deviations
    (1.4826 median absolute deviations) of its present values; NaN stays NaN.

    >>> v = winsorised(np.array([0.0, 1.0, -1.0, 2.0, -2.0, 40.0, np.nan]), 2.5)
    >>> v[:5].tolist(), round(float(v[5]), 3), bool(np.isnan(v[6]))
    ([0.0, 1.0, -1.0, 2.0, -2.0], 6.06, True)
    """
    present = ~np.isnan(v)
    n = np.count_nonzero(present, axis=-1)
    med = _medians(np.sort(v, axis=-1), n)[..., None]  # NaN sorts last
    spread = np.sort(np.abs(v - med), axis=-1)
    lim = (clip * _MAD_SIGMA) * _medians(spread, n)[..., None]
    out: F64 = np.minimum(np.maximum(v, med - lim), med + lim)
    return out


def pearson(x: F64, y: F64, *, min_valid: int) -> F64:
    """Pearson's correlation along the last axis over the pairs where both are present;
    NaN where fewer than ``min_valid`` pairs or either side has no spread.  Sums are
    running totals in index order (the record-at-a-time reference adds in the same
    order, so both agree exactly).

    >>> x = np.array([1.0, -2.0, 0.5, 3.0, -1.0, np.nan, 2.0, -0.5])
    >>> float(pearson(x, 2.0 * x + 7.0, min_valid=4)) == 1.0
    True
    >>> float(pearson(x, -x, min_valid=4)), bool(np.isnan(pearson(x, 0 * x, min_valid=4)))
    (-1.0, True)
    """
    x, y = np.broadcast_arrays(x, y)
    valid = ~(np.isnan(x) | np.isnan(y))
    n = np.count_nonzero(valid, axis=-1)
    safe = np.maximum(n, 1)
    # Running totals (cumsum adds strictly in index order), the last one the sum.
    xs, ys = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    dx = np.where(valid, x - (np.cumsum(xs, axis=-1)[..., -1] / safe)[..., None], 0.0)
    dy = np.where(valid, y - (np.cumsum(ys, axis=-1)[..., -1] / safe)[..., None], 0.0)
    sxx = np.cumsum(dx * dx, axis=-1)[..., -1]
    syy = np.cumsum(dy * dy, axis=-1)[..., -1]
    sxy = np.cumsum(dx * dy, axis=-1)[..., -1]
    ok = (n >= min_valid) & (sxx > 0) & (syy > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r: F64 = np.where(ok, sxy / np.sqrt(np.where(ok, sxx * syy, 1.0)), np.nan)
    return r


def _half(change: F64) -> NDArray[np.float16]:
    """A change of slot mean as the ring keeps it: float16 (relative precision 5e-4,
    plenty for a correlation), missing where not finite or beyond float16's range."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = change.astype(np.float16)
    return np.where(np.isfinite(out), out, np.float16(np.nan))


def _expand(start: I64, count: I64) -> I64:
    """``start[i] + 0 .. count[i] - 1`` for every i, concatenated."""
    total = int(count.sum())
    if start.shape[0] and np.array_equal(start[1:], start[:-1] + count[:-1]):
        # Runs back to back (every device of a full set, in ring order): one range.
        first = int(start[0])
        return np.arange(first, first + total, dtype=np.int64)
    out: I64 = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(total)
    return out


@dataclass(frozen=True, slots=True)
class _SlotTable:
    """Weight and weighted sum of the slots a record set touches, per ring row of its
    devices, at cell ``local row * width + slot - base of the device``.  Two flat
    arrays rather than one of pairs: numpy gathers single values by a flat index
    several times faster than rows of a 2-D array."""

    weight: F64
    total: F64
    width: int
    local: I64
    """First local row of each device (indexed by device; valid for the set's)."""
    base: I64
    """First slot of the table of each device."""

    def at(self, d: I64, rows: I64, ring_ptr: I64, slot: I64) -> tuple[F64, F64]:
        """(weight, sum) of slot ``slot`` of ring row ``rows`` (of devices ``d``);
        zeros outside the table."""
        width = self.width
        off = slot - self.base.take(d)
        inside = (off >= 0) & (off < width)
        cell = (self.local.take(d) + rows - ring_ptr.take(d)) * width + np.where(inside, off, 0)
        return (np.where(inside, self.weight.take(cell), 0.0),
                np.where(inside, self.total.take(cell), 0.0))


class NoisyReplayJudge:
    """Per-device disguised-replay verdict; parameters are documented on
    ``TamperDetector`` (``noisy_*``) and the method in the module docstring."""

    def __init__(self, point_device: NDArray[np.int32], watched: NDArray[np.bool_],
                 n_devices: int, *, slot_s: float, window: int, every: int,
                 lags_s: tuple[float, ...], min_corr: float, control_corr: float,
                 min_points: int, min_hits: int, clear_misses: int, clip: float,
                 min_valid: int) -> None:
        lags = np.asarray(lags_s, dtype=np.float64)
        if not (slot_s > 0 and window >= 2 and every >= 1 and lags.ndim == 1
                and lags.shape[0] >= 1 and bool(np.all(lags > 0))
                and -1 <= control_corr <= min_corr <= 1 and min_points >= 1
                and min_hits >= 1 and clear_misses >= 1 and clip > 0
                and 2 <= min_valid <= window):
            raise ValueError("noisy replay parameters out of range")
        lag_slots = np.round(lags / slot_s)
        if not (np.all(lag_slots * slot_s == lags) and np.unique(lag_slots).shape[0]
                == lag_slots.shape[0] and bool(np.all(lag_slots > window))):
            raise ValueError("noisy replay lags must be distinct multiples of slot_s, "
                             "each longer than the window")
        self.slot_s, self.window, self.every, self.lags_s = float(slot_s), window, every, lags
        self.min_corr, self.control_corr = float(min_corr), float(control_corr)
        self.min_points, self.min_hits, self.clear_misses = min_points, min_hits, clear_misses
        self.clip, self.min_valid = float(clip), int(min_valid)
        self._lag_slots = lag_slots.astype(np.int64)
        self._lead_s = max(0.0, (1.0 - self.min_corr) * window - every) * self.slot_s
        """From the first agreeing window's earliest sample to ``since``."""
        self.ring_slots = int(self._lag_slots.max()) + window
        n_watched = np.bincount(point_device[watched], minlength=n_devices)
        self._judged = n_watched >= min_points
        """Devices with enough watched points to be judged."""
        members = np.flatnonzero(watched & self._judged[point_device])
        members = members[np.argsort(point_device[members], kind="stable")]
        self._row_of = np.full(point_device.shape[0], -1, dtype=np.int64)
        self._row_of[members] = np.arange(members.shape[0])
        """Ring row of each point (-1: not judged); a device's rows are contiguous."""
        self._ptr = np.zeros(n_devices + 1, dtype=np.int64)
        np.cumsum(np.bincount(point_device[members], minlength=n_devices), out=self._ptr[1:])
        self._ring = np.full((self.ring_slots, members.shape[0]), np.nan, dtype=np.float16)
        """Per slot (modulo ring_slots) and row: the change of slot mean into the slot.
        Slot-major: a set of records closes one slot for most devices at once, and an
        evaluation reads the same slots of most rows, so both walk memory in order
        instead of touching one cache line per row of a 10 KB row."""
        self._last = np.full(members.shape[0], np.nan)
        """Per row: the mean of the device's newest final slot (NaN: missing)."""
        self._acc = np.zeros((4, members.shape[0]), dtype=np.float64)
        """Per row (column): weight and weighted sum of the device's current slot, then
        of the next; one row of this array per quantity, so each is a flat gather."""
        self._slot = np.full(n_devices, _NONE, dtype=np.int64)
        """Slot of each device's newest record."""
        self._lag = np.full(n_devices, -1, dtype=np.int8)
        """Index into ``lags_s`` of the lag held (-1: none)."""
        self._hits = np.zeros(n_devices, dtype=np.int32)
        self._misses = np.zeros(n_devices, dtype=np.int32)
        self._since = np.full(n_devices, np.nan, dtype=np.float64)
        self._active = np.zeros(n_devices, dtype=np.bool_)
        self._local = np.zeros(n_devices, dtype=np.int64)
        self._base = np.zeros(n_devices, dtype=np.int64)

    def nbytes(self) -> int:
        state = (self._judged, self._row_of, self._ptr, self._ring, self._last, self._acc,
                 self._slot,
                 self._lag, self._hits, self._misses, self._since, self._active,
                 self._local, self._base)
        return int(sum(a.nbytes for a in state))

    def judge(self, rec: Records) -> Verdict:
        n = len(rec)
        dev, first = rec.device, rec.first
        judged = self._judged.take(dev)
        if n == 0 or not judged.any():
            return Verdict.idle(n)
        seed_active, seed_since = self._active.take(dev), self._since.take(dev)
        seed_lag = self._lag.take(dev)
        u = rec.ts / self.slot_s
        k_float = np.floor(u)
        slot = k_float.astype(np.int64)
        prev = shift_from_state(slot, first, self._slot, dev)
        events = np.flatnonzero(judged & (slot > prev) & (prev != _NONE))
        table = self._slot_table(rec, slot, u - k_float, judged)
        at: list[NDArray[np.intp]] = []
        post: list[tuple[NDArray[np.bool_], F64, NDArray[np.int8]]] = []

        def change(e: NDArray[np.intp]) -> None:
            """Slot changes of distinct devices (records ``e``)."""
            d = dev[e].astype(np.int64)
            self._close_slots(d, prev[e], slot[e], table)
            # Evaluated when a slot divisible by ``every`` became final.
            due = (slot[e] - 1) // self.every > (prev[e] - 1) // self.every
            if due.any():
                d, e = d[due], e[due]
                self._step(d, *self._evaluate(d, slot[e] - 1))
                at.append(e)
                post.append((self._active[d], self._since[d], self._lag[d]))

        if events.shape[0]:
            ev_first = segment_starts(dev[events])
            if ev_first.all():  # one slot change per device: the usual set
                change(events)
            else:
                starts = np.flatnonzero(ev_first)
                rank = np.arange(events.shape[0]) - starts[np.cumsum(ev_first) - 1]
                by_rank = np.argsort(rank, kind="stable")
                bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
                # In time order per device: a later change overwrites ring slots that an
                # earlier one still reads.
                for r in range(int(rank.max()) + 1):
                    change(events[by_rank[bounds[r]:bounds[r + 1]]])
        self._carry(rec, slot, judged, table)
        if not at and not seed_active.any():
            return Verdict.idle(n)
        # Each record: the device's state before the set, replaced by the state after
        # each evaluation from its record on.
        active, since, lag = seed_active, seed_since, seed_lag
        mark = first.copy()
        if at:
            e = np.concatenate(at)
            mark[e] = True
            active = active.copy()
            active[e] = np.concatenate([p[0] for p in post])
            since[e] = np.concatenate([p[1] for p in post])
            lag[e] = np.concatenate([p[2] for p in post])
        fill = ffill_positions(mark)
        active, since, lag = active[fill], since[fill], lag[fill]
        return Verdict(active, np.where(active, since, np.nan),
                       np.where(active, self.lags_s[np.maximum(lag, 0)], np.nan),
                       np.full(n, self.min_corr))

    # -- slot means -------------------------------------------------------------------

    def _slot_table(self, rec: Records, slot: I64, frac: F64, judged: NDArray[np.bool_]
                    ) -> _SlotTable:
        """Sum the samples of the set into the slots of their devices' rows."""
        heads = np.flatnonzero(rec.first & judged)
        d = rec.device[heads].astype(np.int64)
        stored = self._slot[d]
        # A table per device from its current slot (the carried sums), or from its
        # first record's slot when it has none or when that is older than the ring.
        carried = (stored != _NONE) & (stored >= slot[heads] - self.ring_slots)
        base = np.where(carried, stored, slot[heads])
        ends = segment_ends(rec.first)
        width = int((slot[ends[judged[ends]]] - base).max()) + 2
        count = self._ptr[d + 1] - self._ptr[d]
        local = np.cumsum(count) - count
        self._local[d], self._base[d] = local, base
        # Cell of each sample: its ring row's local row * width + its slot's offset,
        # the part shared by a record's samples computed once per record (rows of
        # other devices get garbage there and are dropped: only points of judged
        # devices have a ring row, and every sample's point is watched).
        dev = rec.device
        record_cell = ((self._local.take(dev) - self._ptr.take(dev)) * width + slot
                       - self._base.take(dev))
        ring_row = self._row_of.take(rec.row_point)
        keep = np.flatnonzero(ring_row >= 0)
        rr = rec.row_record.take(keep)
        cell = ring_row.take(keep) * width + record_cell.take(rr)
        f, v = frac.take(rr), rec.row_value.take(keep)
        # The carried sums go first, then each sample's two shares, sample after sample.
        c_rows = _expand(self._ptr[d[carried]], count[carried])
        c_cell = _expand(local[carried], count[carried]) * width
        nc, ns = c_rows.shape[0], cell.shape[0]
        acc = np.take(self._acc, c_rows, axis=1)
        cells = np.empty(2 * (nc + ns), dtype=np.int64)
        weight, total = np.empty(cells.shape[0]), np.empty(cells.shape[0])
        cells[:nc], cells[nc:2 * nc] = c_cell, c_cell + 1
        weight[:nc], weight[nc:2 * nc] = acc[0], acc[2]
        total[:nc], total[nc:2 * nc] = acc[1], acc[3]
        share = 1.0 - f
        cells[2 * nc::2], cells[2 * nc + 1::2] = cell, cell + 1
        weight[2 * nc::2], weight[2 * nc + 1::2] = share, f
        total[2 * nc::2], total[2 * nc + 1::2] = share * v, f * v
        # bincount adds the weights of a bin in input order: running sums, as the
        # record-at-a-time reference keeps them, whatever the batching.
        size = int(count.sum()) * width
        # (with weights, bincount sums float64; numpy's stubs say int)
        return _SlotTable(cast(F64, np.bincount(cells, weight, size)),
                          cast(F64, np.bincount(cells, total, size)),
                          width, self._local, self._base)

    def _close_slots(self, d: I64, old: I64, new: I64, table: _SlotTable) -> None:
        """Slots ``old .. new - 1`` of devices ``d`` (one change each) became final: put
        their changes of mean into the ring (missing where either mean is), and keep
        the newest mean."""
        count = self._ptr[d + 1] - self._ptr[d]
        rows = _expand(self._ptr[d], count)
        rd = np.repeat(d, count)
        old_r = np.repeat(old, count)
        span = np.repeat(new - old, count)
        w, s = table.at(rd, rows, self._ptr, old_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(w > 0, s / np.where(w > 0, w, 1.0), np.nan)
        self._put(rows, old_r, _half(mean - self._last[rows]))
        self._last[rows] = mean
        if (span > 1).any():  # a gap: the next slot held shares only, later ones nothing
            two = span > 1
            rows, rd, old_r, span, mean = rows[two], rd[two], old_r[two], span[two], mean[two]
            w, s = table.at(rd, rows, self._ptr, old_r + 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                after = np.where(w > 0, s / np.where(w > 0, w, 1.0), np.nan)
            self._put(rows, old_r + 1, _half(after - mean))
            self._last[rows] = np.where(span > 2, np.nan, after)
            # Slots old + 2 .. new - 1: missing (at most a whole ring of them).
            gap = np.minimum(span - 2, self.ring_slots)
            if gap.any():
                first = old_r + span - gap
                self._put(np.repeat(rows, gap), _expand(first, gap), np.float16(np.nan))

    def _put(self, rows: I64, slots: I64, change: NDArray[np.float16] | np.float16) -> None:
        """``ring[slots % ring_slots, rows] = change``, through the flat ring."""
        flat = (slots % self.ring_slots) * self._ring.shape[1] + rows
        self._ring.reshape(-1)[flat] = change

    def _carry(self, rec: Records, slot: I64, judged: NDArray[np.bool_],
               table: _SlotTable) -> None:
        """Keep each device's newest slot and the running sums of it and the next."""
        last = segment_ends(rec.first)
        last = last[judged[last]]
        d = rec.device[last].astype(np.int64)
        count = self._ptr[d + 1] - self._ptr[d]
        rows = _expand(self._ptr[d], count)
        width = table.width
        # Local row * width + offset of the newest slot; the next slot is the cell after.
        cell = _expand(table.local[d], count) * width + np.repeat(slot[last] - table.base[d],
                                                                   count)
        after = cell + 1
        acc = self._acc
        acc[0, rows], acc[1, rows] = table.weight.take(cell), table.total.take(cell)
        acc[2, rows], acc[3, rows] = table.weight.take(after), table.total.take(after)
        self._slot[d] = slot[last]

    # -- evaluation ---------------------------------------------------------------------

    def _evaluate(self, d: I64, newest: I64) -> tuple[NDArray[np.int8], F64]:
        """The agreeing lag (index, -1: none) of each device at its newest final slot,
        and the estimated start of a copy (``since``) if the window agrees."""
        w = self.window
        window_start = (newest - w - 1).astype(np.float64) * self.slot_s + self._lead_s
        lag = np.full(d.shape[0], -1, dtype=np.int8)
        count = self._ptr[d + 1] - self._ptr[d]
        rows = _expand(self._ptr[d], count)
        end = np.repeat(newest, count)
        x = self._windows(rows, end)
        # A point whose own window is short or flat correlates with nothing: a device
        # with fewer than min_points others (at rest, at night) is settled here.
        present = ~np.isnan(x)
        enough = np.count_nonzero(present, axis=-1) >= self.min_valid
        moving = enough.copy()
        if enough.any():  # only these can move; winsorising is the costly part
            xe, pe = winsorised(x[enough], self.clip), present[enough]
            x[enough] = xe
            moving[enough] = (np.where(pe, xe, -np.inf).max(axis=-1)
                              > np.where(pe, xe, np.inf).min(axis=-1))
        live = np.add.reduceat(moving.astype(np.int32), np.cumsum(count) - count) \
            >= self.min_points
        if not live.any():
            return lag, window_start
        pick = np.repeat(live, count)
        x, rows, end, count = x[pick], rows[pick], end[pick], count[live]
        y = self._windows(rows[:, None], end[:, None] - self._lag_slots)
        # Pearson's r needs min_valid pairs: a side with fewer present values than
        # that is NaN whatever its values, so only the others are winsorised.
        ready = enough[pick][:, None] & (
            np.count_nonzero(~np.isnan(y), axis=-1) >= self.min_valid)
        y[ready] = winsorised(y[ready], self.clip)
        r = pearson(x[:, None, :], y, min_valid=self.min_valid)
        starts = np.cumsum(count) - count
        high = np.add.reduceat((r >= self.min_corr).astype(np.int32), starts, axis=0)
        low = np.add.reduceat((r >= self.control_corr).astype(np.int32), starts, axis=0)
        specific = (high >= self.min_points) & (
            (low >= self.min_points).sum(axis=1) == 1)[:, None]
        lag[live] = np.where(specific.any(axis=1), np.argmax(specific, axis=1), -1)
        return lag, window_start

    def _windows(self, rows: I64, end: I64) -> F64:
        """The ``window`` slots of ring rows ``rows`` up to slot ``end`` (same shape;
        the window along a new last axis), as float64.  One gather from the flat ring
        (numpy's two-array fancy indexing costs several times more), and one modulo per
        window: a window wraps the ring at most once, as the ring is longer, so a slot
        past the ring's end is a flat index past its end by whole rings, which ``take``
        wraps back (``mode="wrap"``) without a pass of its own."""
        size, n_rows = self._ring.shape
        if end.ndim == 1 and end.shape[0] and not (end != end[0]).any():
            # One newest slot for all (the usual evaluation: the fleet's devices close
            # their slots together): the window's ring rows as one block, then its
            # columns, instead of one wrapped index per element.
            block = self._ring.take((int(end[0]) - (self.window - 1)
                                     + np.arange(self.window)) % size, axis=0)
            same: F64 = np.ascontiguousarray(block.take(rows, axis=1).T, dtype=np.float64)
            return same
        slots = ((end - (self.window - 1)) % size)[..., None] + np.arange(self.window)
        out: F64 = self._ring.reshape(-1).take(slots * n_rows + rows[..., None],
                                                 mode="wrap").astype(np.float64)
        return out

    def _step(self, d: I64, lag: NDArray[np.int8], window_start: F64) -> None:
        """One evaluation per device in ``d``: the hit / miss state machine."""
        held, active = self._lag[d], self._active[d]
        agrees = (lag >= 0) & (lag == held)
        restart = (lag >= 0) & ~agrees & ~active
        hits = np.where(agrees, self._hits[d] + 1,
                        np.where(restart, 1, np.where(active, self._hits[d], 0)))
        misses = np.where(active & ~agrees, self._misses[d] + 1, 0)
        clear = misses >= self.clear_misses
        idle = clear | (~active & ~agrees & ~restart)
        self._lag[d] = np.where(idle, -1, np.where(restart, lag, held)).astype(np.int8)
        self._hits[d] = np.where(idle, 0, hits)
        self._misses[d] = np.where(clear, 0, misses)
        self._since[d] = np.where(idle, np.nan,
                                  np.where(restart, window_start, self._since[d]))
        self._active[d] = ~clear & (active | (hits >= self.min_hits))
