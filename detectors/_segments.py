"""Vectorized helpers for rows grouped by point and ordered by ts inside each point.

A *segment* is the run of consecutive rows of one point after sorting.  Per-point
sequential logic ("the state after the last event", "the start of the current run") is
expressed as a forward fill of row positions inside each segment, seeded at the
segment's first row with the state carried over from earlier batches.  This replaces a
Python loop over samples by a handful of whole-array passes.

Boolean-mask indexing (``a[mask]``) costs several times a plain elementwise pass on
random masks, so the helpers prefer ``np.where`` and integer gathers.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from detectors.base import QUALITY_NORMAL

_T = TypeVar("_T", bound=np.generic)
_I = TypeVar("_I", bound=np.integer[Any])

_RADIX_KEYS = 1 << 16
"""numpy's stable argsort is a radix sort for 16-bit keys, about 3x faster than timsort."""


def sorted_unique_rows(
    point: NDArray[np.integer[Any]], ts: NDArray[np.float64], n_points: int
) -> NDArray[np.intp]:
    """Positions of the rows to judge, ordered by (point, ts), one per (point, ts).

    Of rows sharing a (point, ts), the first in arrival order is kept (a QoS 1
    redelivery must not replace what was already judged).  ``ts`` must be free of NaN.
    Batches from devices are usually in time order per point already, so the rows are
    first grouped by point alone (a stable radix sort) and sorted by ts only if a
    point's rows turn out to be out of order.

    >>> point = np.array([1, 0, 1, 1], dtype=np.int32)
    >>> sorted_unique_rows(point, np.array([5.0, 7.0, 2.0, 5.0]), 2).tolist()
    [1, 2, 0]
    """
    return sorted_unique(point, ts, n_points)[0]


def sorted_unique(
    point: NDArray[_I], ts: NDArray[np.float64], n_points: int
) -> tuple[NDArray[np.intp], NDArray[_I], NDArray[np.float64]]:
    """:func:`sorted_unique_rows` and the points and ts at those positions, which it
    has gathered anyway: a caller saves two gathers per row.

    >>> order, p, t = sorted_unique(np.array([1, 0, 1, 1]), np.array([5.0, 7.0, 2.0, 5.0]), 2)
    >>> order.tolist(), p.tolist(), t.tolist()
    ([1, 2, 0], [0, 1, 1], [7.0, 2.0, 5.0])
    """
    key = point.astype(np.uint16) if n_points <= _RADIX_KEYS else point
    order = np.argsort(key, kind="stable")
    p, t = point.take(order), ts.take(order)
    same_point = p[1:] == p[:-1]
    if (same_point & (t[1:] < t[:-1])).any():
        # Out of order inside some point: ts first (ties in any order, they are
        # either different points or duplicates resolved below), then point, stably.
        order = np.argsort(ts)
        order = order[np.argsort(key[order], kind="stable")]
        p, t = point[order], ts[order]
        same_point = p[1:] == p[:-1]
    duplicate = same_point & (t[1:] == t[:-1])
    if duplicate.any():
        group_start = np.flatnonzero(np.concatenate(([True], ~duplicate)))
        # The earliest arrival of each (point, ts) group is its smallest row position.
        order = np.minimum.reduceat(order, group_start)
        p, t = p[group_start], t[group_start]
    return order, p, t


def judgeable_rows(
    key: NDArray[_I],
    ts: NDArray[np.float64],
    value: NDArray[np.float64],
    quality: NDArray[np.uint8],
    last_ts: NDArray[np.float64],
    n_keys: int,
    considered: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[_I], NDArray[np.float64], NDArray[np.float64], int, int]:
    """The rows a sample-driven rule judges, as ``(key, ts, value, skipped, late)``.

    Rows come back ordered by (key, ts), one per (key, ts) (see
    :func:`sorted_unique_rows`).  Among the ``considered`` rows (all by default; the
    others may hold any key, -1 included): ``skipped`` counts those that cannot be
    judged (non-finite value or ts, a quality flag other than normal), ``late`` those at
    or before their key's ``last_ts`` and in-batch duplicates.  The shared rules for bad,
    late and duplicate input of the threshold, rate and plant-state detectors.

    >>> k, t, v, skipped, late = judgeable_rows(
    ...     np.array([0, 0, 1, 0], np.int32), np.array([2.0, 1.0, 5.0, 1.0]),
    ...     np.array([1.0, 2.0, np.nan, 3.0]), np.zeros(4, np.uint8), np.array([1.5, 0.0]), 2)
    >>> k.tolist(), t.tolist(), skipped, late
    ([0], [2.0], 1, 2)
    """
    if considered is not None:
        # Compact first: a rule often looks at a small share of the batch.
        rows = np.flatnonzero(considered)
        key, ts = key.take(rows), ts.take(rows)
        value, quality = value.take(rows), quality.take(rows)
    n_considered = key.shape[0]
    judged = np.isfinite(value) & np.isfinite(ts) & (quality == QUALITY_NORMAL)
    fresh = judged & (ts > last_ts.take(key))
    n_judged = int(np.count_nonzero(judged))
    if not fresh.all():
        rows = np.flatnonzero(fresh)
        key, ts, value = key.take(rows), ts.take(rows), value.take(rows)
    keep, key, ts = sorted_unique(key, ts, n_keys)
    return key, ts, value.take(keep), n_considered - n_judged, n_judged - keep.shape[0]


def segment_starts(keys: NDArray[np.integer[Any]]) -> NDArray[np.bool_]:
    """True at the first row of each run of equal ``keys`` (``keys`` already grouped).

    >>> segment_starts(np.array([3, 3, 5, 7, 7], dtype=np.int32)).tolist()
    [True, False, True, True, False]
    """
    first = np.empty(keys.shape[0], dtype=np.bool_)
    if keys.shape[0]:
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return first


def segment_ends(first: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Row positions of the last row of each segment, given :func:`segment_starts`.

    >>> segment_ends(np.array([True, False, True, True, False])).tolist()
    [1, 2, 4]
    """
    last = np.empty(first.shape[0], dtype=np.bool_)
    if first.shape[0]:
        last[:-1] = first[1:]
        last[-1] = True
    return np.flatnonzero(last)


def ffill_positions(
    mark: NDArray[np.bool_], positions: NDArray[np.intp] | None = None
) -> NDArray[np.intp]:
    """For each row, the position of the latest marked row at or before it.

    ``mark`` must be True at row 0 (callers mark every segment start), so every row
    has an answer and, when segment starts are marked, the answer never leaves the
    row's own segment.  ``positions`` is ``np.arange(len(mark))``, if the caller has it.

    >>> ffill_positions(np.array([True, False, True, False, False])).tolist()
    [0, 0, 2, 2, 2]
    """
    if positions is None:
        positions = np.arange(mark.shape[0], dtype=np.intp)
    return np.maximum.accumulate(np.where(mark, positions, 0))


def shift_within(
    rows: NDArray[_T], first: NDArray[np.bool_], seed: NDArray[_T]
) -> NDArray[_T]:
    """The previous row's value in the same segment, ``seed`` (row-aligned) at starts.

    >>> first = np.array([True, False, True])
    >>> shift_within(np.array([1, 2, 3]), first, np.array([0, 8, 9])).tolist()
    [0, 1, 9]
    """
    prev = np.empty_like(rows)
    if rows.shape[0]:
        prev[0] = seed[0]
        prev[1:] = rows[:-1]
    return np.where(first, seed, prev)


def shift_from_state(
    rows: NDArray[_T], first: NDArray[np.bool_], state: NDArray[_T],
    keys: NDArray[np.integer[Any]]
) -> NDArray[_T]:
    """:func:`shift_within` seeded from per-key ``state`` (``state[keys]`` at starts).

    Only segment starts read the carried state, so only they gather it: one gather per
    segment instead of a gather and a select over every row (rules run this on every
    judged row, and segments are points or devices with many rows each).

    >>> first = np.array([True, False, True])
    >>> shift_from_state(np.array([1, 2, 3]), first, np.array([7, 0, 9]),
    ...                  np.array([0, 0, 2])).tolist()
    [7, 1, 9]
    """
    prev = np.empty_like(rows)
    if rows.shape[0]:
        prev[1:] = rows[:-1]
        starts = first.nonzero()[0]
        prev[starts] = state.take(keys.take(starts))
    return prev


def segment_sums(x: NDArray[Any], start: NDArray[np.intp]) -> NDArray[Any]:
    """Sum of ``x`` over each segment ``[start[i], start[i + 1])`` (the last to the end).

    Integers only (booleans are counted as int64): a difference of running sums, exact,
    and for uint64 exact modulo 2**64 as a wrapping sum should be.  ``np.add.reduceat``
    gives the same for non-empty segments at several times the cost.

    >>> segment_sums(np.array([1, 2, 3, 4], dtype=np.int64), np.array([0, 1, 3])).tolist()
    [1, 5, 4]
    """
    if x.dtype == np.bool_:
        x = x.astype(np.int64)
    if start.shape[0] == 0:
        return np.zeros(0, dtype=x.dtype)
    running: NDArray[Any] = np.cumsum(x)
    ends = np.empty_like(start)
    ends[:-1] = start[1:] - 1
    ends[-1] = x.shape[0] - 1
    total: NDArray[Any] = running.take(ends)
    total[1:] -= running.take(start[1:] - 1)
    return total


def group_csr(group_of: NDArray[np.integer[Any]], n_groups: int) -> tuple[
    NDArray[np.intp], NDArray[np.intp]
]:
    """CSR of the members of each group: ``members[ptr[g]:ptr[g + 1]]``, ascending
    (native indices: they are gathered by).

    >>> ptr, members = group_csr(np.array([1, 0, 1], dtype=np.int32), 3)
    >>> ptr.tolist(), members.tolist()
    ([0, 1, 3, 3], [1, 0, 2])
    """
    members = np.argsort(group_of, kind="stable")
    counts = np.bincount(group_of, minlength=n_groups)
    ptr = np.zeros(n_groups + 1, dtype=np.intp)
    np.cumsum(counts, out=ptr[1:])
    return ptr, members


def gather_csr(ptr: NDArray[np.intp], members: NDArray[_I],
               groups: NDArray[np.integer[Any]]) -> NDArray[_I]:
    """All members of the given groups, group after group.

    >>> ptr, members = group_csr(np.array([1, 0, 1], dtype=np.int32), 3)
    >>> gather_csr(ptr, members, np.array([1, 2, 0], dtype=np.int32)).tolist()
    [0, 2, 1]
    """
    starts = ptr[groups]
    counts = ptr[groups + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return members[:0]
    ends = np.cumsum(counts)
    offset = np.repeat(starts - (ends - counts), counts)
    out: NDArray[_I] = members[offset + np.arange(total)]
    return out


def read_only(array: NDArray[_T]) -> NDArray[_T]:
    """A view of detector state that callers (the API layer) cannot write through.

    >>> read_only(np.zeros(2)).flags.writeable
    False
    """
    view = array.view()
    view.flags.writeable = False
    return view
