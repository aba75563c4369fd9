"""Cloned points for the ``tamper`` rule: one sensor reporting another sensor's values.

Points of one clone group on one device (``flow_in``/``flow_out`` of a cooling loop)
measure nearly the same thing, so they are compared pairwise on their *paired samples*
(both present in one record).  A pair is cloned while its values are exactly equal on
at least ``min_samples`` paired samples in a row *and* the value moved ``k`` times
within that run, both points together.

Equality alone is weak evidence: two honest meters of a steady flow at 0.1 m³/h
resolution read the same value most of the time (``negative.steady_flat``), and at a
small flow they agree on half their samples.  What noise cannot do is move both points
to the same new value again and again.  With ``q`` the pair's own share, outside the
current run, of the samples where the first point moved and the second agreed
(Laplace-smoothed, ``(agreed + 1) / (moved + 2)``, capped at 0.99),

    k = max(min_changes, ceil(log(alpha) / log(q)))

so an honest pair makes ``k`` joint moves in a row with probability about ``alpha``.
``q`` is about 0.2-0.4 for the simulator's flow meters in production, so a clone is
reported after 10-15 co-moves, a few minutes; in a steady process the first point
rarely moves and the second rarely follows, so ``k`` joint moves never happen.  The
counts exclude the current run, so ``k`` is fixed for the length of a run.

The subject is the higher-indexed point of a pair and ``value`` the lower one (which of
the two copies the other cannot be told from data); a point in several pairs is cloned
while any of them is.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from detectors._segments import (
    ffill_positions,
    segment_ends,
    segment_starts,
    shift_from_state,
)
from detectors.tamper_records import Records


class CloneJudge:
    """Pairwise clone verdicts; parameters are documented on ``TamperDetector``."""

    def __init__(self, point_device: NDArray[np.int32], watched: NDArray[np.bool_],
                 clone_groups: NDArray[np.int32], *, min_samples: int, alpha: float,
                 min_changes: int) -> None:
        if not (min_samples >= 1 and 0 < alpha < 1 and min_changes >= 1):
            raise ValueError("clone parameters out of range")
        self.min_samples, self.alpha, self.min_changes = min_samples, alpha, min_changes
        n_points = point_device.shape[0]
        self.n_points = n_points
        members = np.flatnonzero(watched & (clone_groups >= 0)).astype(np.int32)
        order = np.lexsort((members, clone_groups[members], point_device[members]))
        members = members[order]
        group_key = np.stack((point_device[members], clone_groups[members]), axis=1)
        pairs_a: list[int] = []
        pairs_b: list[int] = []
        # Construction only: groups are small (2-3 points); pairs are all combinations.
        bounds = np.flatnonzero(np.any(group_key[1:] != group_key[:-1], axis=1)) + 1
        for group in np.split(members, bounds):
            ids = group.tolist()
            for i, a in enumerate(ids):
                for b in ids[i + 1:]:
                    pairs_a.append(a)
                    pairs_b.append(b)
        self.pair_a = np.array(pairs_a, dtype=np.intp)
        self.pair_b = np.array(pairs_b, dtype=np.intp)
        k = self.pair_a.shape[0]
        by_a = np.argsort(self.pair_a, kind="stable")
        self._a_ptr = np.zeros(n_points + 1, dtype=np.intp)
        np.cumsum(np.bincount(self.pair_a, minlength=n_points), out=self._a_ptr[1:])
        self._a_pairs = by_a
        self._is_a = np.diff(self._a_ptr) > 0
        self._paired_point = self._is_a.copy()
        self._paired_point[self.pair_b] = True
        self._run = np.zeros(k, dtype=np.int64)
        """Equal paired samples in a row, up to the newest."""
        self._run_start = np.full(k, np.nan)
        self._run_moves = np.zeros(k, dtype=np.int64)
        self._last_a = np.full(k, np.nan)
        self._moved = np.zeros(k, dtype=np.int64)
        """Paired samples on which a's value moved."""
        self._agreed = np.zeros(k, dtype=np.int64)
        """... and b's value equalled it."""
        self._active = np.zeros(k, dtype=np.bool_)
        self.cloned = np.zeros(n_points, dtype=np.int32)
        """Cloned pairs per subject point (cloned while > 0)."""

    def nbytes(self) -> int:
        state = (self.pair_a, self.pair_b, self._a_ptr, self._a_pairs, self._is_a,
                 self._paired_point, self._run,
                 self._run_start, self._run_moves, self._last_a, self._moved, self._agreed,
                 self._active, self.cloned)
        return int(sum(a.nbytes for a in state))

    def judge(self, rec: Records) -> tuple[NDArray[np.int32], NDArray[np.float64],
                                           NDArray[np.float64], NDArray[np.bool_],
                                           NDArray[np.float64], NDArray[np.float64]]:
        """Subject changes: (subject, ts, since, on, source point, required run)."""
        none = (np.empty(0, dtype=np.int32), np.empty(0), np.empty(0),
                np.empty(0, dtype=np.bool_), np.empty(0), np.empty(0))
        if self.pair_a.shape[0] == 0 or len(rec) == 0:
            return none
        pair, va, vb, ts = self._paired(rec)
        if pair.shape[0] == 0:
            return none
        on, since, need = self._runs(pair, va, vb, ts)
        first = segment_starts(pair)
        flips = np.flatnonzero(on != shift_from_state(on, first, self._active, pair))
        last = segment_ends(first)
        self._active[pair[last]] = on[last]
        if flips.shape[0] == 0:
            return none
        return self._subjects(pair[flips], ts[flips], since[flips], on[flips], need[flips])

    def _paired(self, rec: Records) -> tuple[NDArray[np.int32], NDArray[np.float64],
                                             NDArray[np.float64], NDArray[np.float64]]:
        """Paired samples (pair, value a, value b, ts) in (pair, ts) order."""
        # Only rows of paired points matter: the search runs on those alone.
        mine = np.flatnonzero(self._paired_point.take(rec.row_point))
        point, record = rec.row_point[mine], rec.row_record[mine]
        rows = np.flatnonzero(self._is_a[point])
        pa = point[rows]
        starts = self._a_ptr[pa]
        counts = self._a_ptr[pa + 1] - starts
        total = int(counts.sum())
        ends = np.cumsum(counts)
        pair = self._a_pairs[np.repeat(starts - (ends - counts), counts) + np.arange(total)]
        row_a = np.repeat(rows, counts)
        # Rows are sorted by (record, point): find b's sample in a's record.
        n = self.n_points
        row_key = record.astype(np.int64) * n + point
        want = record[row_a].astype(np.int64) * n + self.pair_b[pair]
        row_b = np.minimum(np.searchsorted(row_key, want), row_key.shape[0] - 1)
        both = row_key[row_b] == want
        pair, row_a, row_b = pair[both], row_a[both], row_b[both]
        order = np.argsort(pair, kind="stable")  # one device per pair: ts stays sorted
        pair, row_a, row_b = pair[order], row_a[order], row_b[order]
        value = rec.row_value[mine]
        return pair, value[row_a], value[row_b], rec.ts[record[row_a]]

    def _runs(self, pair: NDArray[np.int32], va: NDArray[np.float64],
              vb: NDArray[np.float64], ts: NDArray[np.float64]) -> tuple[
        NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]
    ]:
        m = pair.shape[0]
        idx = np.arange(m)
        first = segment_starts(pair)
        seg_start = idx[ffill_positions(first, idx)]
        equal = va == vb
        # Runs of equal samples: the newest unequal row (or the segment start).
        brk = ffill_positions(~equal | first, idx)
        carried = equal[brk] & (brk == seg_start)  # no unequal row yet in this batch
        carry_run = self._run[pair]
        run = np.where(equal, np.where(carried, carry_run + idx - seg_start + 1, idx - brk), 0)
        # First row of the run: after the break, or the carried start.
        opens = np.where(carried, seg_start, np.minimum(brk + 1, m - 1))
        run_start = np.where(carried & (carry_run > 0), self._run_start[pair],
                             ts[opens])
        # Moves of a's value inside the run (the run's first row is its baseline).
        moved = va != shift_from_state(va, first, self._last_a, pair)
        run_first = equal & (((idx == seg_start) & (carry_run == 0))
                             | ((idx == brk + 1) & ~carried))
        counted = moved & equal & ~run_first
        csum = np.cumsum(counted)
        before = csum[opens] - counted[opens]
        moves = np.where(equal, np.where(carried, self._run_moves[pair], 0) + csum - before, 0)
        # How often b agreed when a moved, outside the current run (all of its moves
        # are agreements).
        moved_n = self._moved[pair] + _within(moved, seg_start)
        agreed_n = self._agreed[pair] + _within(moved & equal, seg_start)
        q = np.minimum((agreed_n - moves + 1) / (moved_n - moves + 2), 0.99)
        need = np.maximum(self.min_changes, np.ceil(math.log(self.alpha) / np.log(q)))
        on = equal & (run >= self.min_samples) & (moves >= need)
        last = segment_ends(first)
        k = pair[last]
        self._run[k] = run[last]
        self._run_start[k] = np.where(equal[last], run_start[last], np.nan)
        self._run_moves[k] = moves[last]
        self._last_a[k] = va[last]
        self._moved[k] = moved_n[last]
        self._agreed[k] = agreed_n[last]
        return on, np.where(equal, run_start, np.nan), need

    def _subjects(self, pair: NDArray[np.int32], ts: NDArray[np.float64],
                  since: NDArray[np.float64], on: NDArray[np.bool_],
                  need: NDArray[np.float64]) -> tuple[
        NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_],
        NDArray[np.float64], NDArray[np.float64]
    ]:
        """Pair flips to subject changes: a subject is cloned while any pair is."""
        subject = self.pair_b[pair]
        order = np.lexsort((pair, ts, subject))
        subject, ts, since, on, need, pair = (
            subject[order], ts[order], since[order], on[order], need[order], pair[order])
        step = np.where(on, 1, -1).astype(np.int32)
        new_group = np.empty(subject.shape[0], dtype=np.bool_)
        new_group[0] = True
        new_group[1:] = (subject[1:] != subject[:-1]) | (ts[1:] != ts[:-1])
        subj_first = segment_starts(subject)
        seg_start = ffill_positions(subj_first)
        csum = np.cumsum(step)
        count = self.cloned[subject] + csum - (csum[seg_start] - step[seg_start])
        group_end = segment_ends(new_group)
        group_start = np.flatnonzero(new_group)
        after = count[group_end]
        before = after - np.add.reduceat(step, group_start)
        changed = (before > 0) != (after > 0)
        # The turning-on row: the group's first pair that turned on.
        first_on = np.where(on, np.arange(on.shape[0]), on.shape[0])
        pick = np.minimum.reduceat(first_on, group_start)
        pick = np.where(pick < on.shape[0], pick, group_start)
        s_end = segment_ends(subj_first)
        self.cloned[subject[s_end]] = count[s_end]
        g = changed
        rows = pick[g]
        turned_on = after[g] > 0
        return (subject[rows], ts[rows], np.where(turned_on, since[rows], ts[rows]), turned_on,
                np.where(turned_on, self.pair_a[pair[rows]].astype(np.float64), np.nan),
                np.where(turned_on, need[rows], np.nan))


def _within(flags: NDArray[np.bool_], seg_start: NDArray[np.intp]) -> NDArray[np.int64]:
    """Running count of ``flags`` restarted at each segment start."""
    c = np.cumsum(flags, dtype=np.int64)
    out: NDArray[np.int64] = c - (c[seg_start] - flags[seg_start])
    return out
