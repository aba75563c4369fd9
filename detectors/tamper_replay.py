"""Exact replay for the ``tamper`` rule: a device re-sending records it sent days ago.

Each closed record has an exact digest of its (point, value) pairs
(:mod:`detectors.tamper_records`).  A *window* is ``window`` consecutive records of one
device; its key is an order-sensitive combination of their digests, salted with the
device.  Only *anchor* windows are kept (``key % stride == 0``): the choice depends on
content alone, so a replayed window is an anchor exactly when its original was, and the
history holds about ``1 / stride`` of all windows.

Per anchor window, against the device's history of the last ``history_s``:

* key never seen (or expired): stored with its time; a **miss**;
* key seen at most ``max_repeats`` times, the first time at least ``min_lag_s`` ago:
  a **hit** with ``lag = now - first seen``;
* otherwise neutral (a pattern that legitimately recurs, or a recent repeat).

A device is replaying once ``min_hits`` hits from windows that share no record agree
on one lag (within ``tolerance_s`` of the first hit's lag: clock drift and re-stamping
jitter are seconds, coincidences scatter over minutes) without ``clear_misses`` misses
in a row in between; it clears after ``clear_misses`` misses in a row.  Evidence is
counted in hits rather than in one long window because transport loss breaks windows:
with a loss rate ``d`` a window of ``w`` records survives on both days with probability
``(1 - d) ** (2 w)``, 26 % for ``w = 12`` at the simulator's mean loss of 5.5 % but
80 % for ``w = 2``; the hits together play the part of the long window.

Windows that say nothing are not anchors, because what says nothing repeats honestly:

* fewer than ``min_changes`` value changes inside the window: a frozen or flat stretch
  must not "replay" itself (that is the frozen signal's job), and with the default 2
  and windows of 2 records, at least two points must move at once, so a collector at
  night (fan current 0 A, ΔP at its offset, only the temperature following the
  ambient) never qualifies;
* every record of the window at rest (fewer than half of the watched points non-zero;
  flagged samples are absent), e.g. a cooling loop with its pump stopped.

Keys that still recur often (seen more than ``max_repeats`` times) are no evidence.
The history is one global sorted array of keys (uint64) with the first-seen time
(uint32 epoch seconds) and a sighting count (uint8), 13 bytes per anchor, plus a small
sorted delta (at most 1/64 of it) merged in when it fills, when expired entries are
dropped; inserting and merging cost linear copies, never a sort of the history.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from detectors._segments import ffill_positions, segment_ends, segment_starts
from detectors.tamper_records import U64, Records, Verdict, mix64

_MULT = mix64(np.arange(1, 65, dtype=np.uint64)) | np.uint64(1)
"""Odd multipliers that make the window key depend on record order."""
_DEVICE_SALT = np.uint64(0xD1B54A32D192ED03)
_PURGE_MARGIN_S = 86_400.0
"""Entries are dropped this long after they expired, so a device running a little
behind the newest data still sees the same history."""


class AnchorHistory:
    """Sorted (key, first-seen second, count) entries; lookups by binary search."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.ts = np.empty(0, dtype=np.uint32)
        self.count = np.empty(0, dtype=np.uint8)
        self._dkeys = np.empty(0, dtype=np.uint64)
        self._dts = np.empty(0, dtype=np.uint32)
        self._dcount = np.empty(0, dtype=np.uint8)

    def __len__(self) -> int:
        return int(self.keys.shape[0] + self._dkeys.shape[0])

    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.keys, self.ts, self.count, self._dkeys,
                                          self._dts, self._dcount)))

    def lookup(self, keys: U64) -> tuple[NDArray[np.bool_], NDArray[np.float64],
                                         NDArray[np.int64]]:
        """(found, first-seen second, count) of each key (0 where not found)."""
        found = np.zeros(keys.shape[0], dtype=np.bool_)
        ts = np.zeros(keys.shape[0], dtype=np.float64)
        count = np.zeros(keys.shape[0], dtype=np.int64)
        for k, t, c in ((self.keys, self.ts, self.count), (self._dkeys, self._dts, self._dcount)):
            if k.shape[0] == 0:
                continue
            pos = np.minimum(np.searchsorted(k, keys), k.shape[0] - 1)
            hit = k[pos] == keys
            found |= hit
            ts = np.where(hit, t[pos], ts)
            count = np.where(hit, c[pos], count)
        return found, ts, count

    def store(self, keys: U64, ts: NDArray[np.float64], count: NDArray[np.int64],
              purge_before: float) -> None:
        """Write entries (keys unique); existing keys are overwritten in place."""
        ts32 = np.clip(ts, 0, np.iinfo(np.uint32).max).astype(np.uint32)
        c8 = np.minimum(count, 255).astype(np.uint8)
        new = np.ones(keys.shape[0], dtype=np.bool_)
        for k, t, c in ((self.keys, self.ts, self.count), (self._dkeys, self._dts, self._dcount)):
            if k.shape[0] == 0:
                continue
            pos = np.minimum(np.searchsorted(k, keys), k.shape[0] - 1)
            hit = k[pos] == keys
            t[pos[hit]] = ts32[hit]
            c[pos[hit]] = c8[hit]
            new &= ~hit
        if new.any():
            order = np.argsort(keys[new])
            add_keys = keys[new][order]
            at = np.searchsorted(self._dkeys, add_keys)
            self._dkeys = np.insert(self._dkeys, at, add_keys)
            self._dts = np.insert(self._dts, at, ts32[new][order])
            self._dcount = np.insert(self._dcount, at, c8[new][order])
        if self._dkeys.shape[0] > max(8192, self.keys.shape[0] // 64):
            self._merge(purge_before)

    def _merge(self, purge_before: float) -> None:
        pos = np.searchsorted(self.keys, self._dkeys)
        keys = np.insert(self.keys, pos, self._dkeys)
        ts = np.insert(self.ts, pos, self._dts)
        count = np.insert(self.count, pos, self._dcount)
        live = ts >= max(purge_before, 0.0)
        self.keys, self.ts, self.count = keys[live], ts[live], count[live]
        self._dkeys = np.empty(0, dtype=np.uint64)
        self._dts = np.empty(0, dtype=np.uint32)
        self._dcount = np.empty(0, dtype=np.uint8)


class ReplayJudge:
    """Per-device replay verdict; parameters are documented on ``TamperDetector``."""

    def __init__(self, n_devices: int, *, window: int, stride: int, history_s: float,
                 min_lag_s: float, min_hits: int, clear_misses: int, tolerance_s: float,
                 max_repeats: int, min_changes: int) -> None:
        if not (1 <= window <= _MULT.shape[0] and stride >= 1 and history_s > min_lag_s > 0
                and min_hits >= 1 and clear_misses >= 1 and tolerance_s >= 0
                and max_repeats >= 1 and min_changes >= 0):
            raise ValueError("replay parameters out of range")
        self.window, self.stride = window, stride
        self.history_s, self.min_lag_s, self.tolerance_s = history_s, min_lag_s, tolerance_s
        self.min_hits, self.clear_misses = min_hits, clear_misses
        self.max_repeats, self.min_changes = max_repeats, min_changes
        self.history = AnchorHistory()
        self._salt = mix64(np.arange(n_devices, dtype=np.uint64) ^ _DEVICE_SALT)
        carry = max(window - 1, 0)
        # The last window - 1 records of each device (oldest first), for windows that
        # straddle batches.
        self._w_digest = np.zeros((n_devices, carry), dtype=np.uint64)
        self._w_changes = np.zeros((n_devices, carry), dtype=np.int32)
        self._w_rest = np.zeros((n_devices, carry), dtype=np.bool_)
        self._w_ts = np.zeros((n_devices, carry), dtype=np.float64)
        self._w_n = np.zeros(n_devices, dtype=np.int32)
        # The lag state machine.
        self._lag = np.full(n_devices, np.nan, dtype=np.float64)
        self._hits = np.zeros(n_devices, dtype=np.int32)
        self._misses = np.zeros(n_devices, dtype=np.int32)
        self._since = np.full(n_devices, np.nan, dtype=np.float64)
        self._active = np.zeros(n_devices, dtype=np.bool_)
        self._hit_end = np.full(n_devices, -np.inf, dtype=np.float64)
        """ts of the last record of the newest counted hit window."""
        self._watermark = -np.inf

    def nbytes(self) -> int:
        state = (self._salt, self._w_digest, self._w_changes, self._w_rest, self._w_ts,
                 self._w_n, self._lag, self._hits, self._misses, self._since, self._active,
                 self._hit_end)
        return int(sum(a.nbytes for a in state)) + self.history.nbytes()

    def judge(self, rec: Records) -> Verdict:
        n = len(rec)
        if n == 0:
            return Verdict.idle(0)
        self._watermark = max(self._watermark, float(rec.ts.max()))
        key, start_ts, anchor = self._windows(rec)
        kind, lag, where = self._match(rec, key, anchor)
        return self._machine(rec, kind, lag, start_ts[where], where)

    def _windows(self, rec: Records) -> tuple[U64, NDArray[np.float64], NDArray[np.bool_]]:
        """Key, first-record ts and anchor flag of the window ending at each record."""
        w, carry = self.window, self.window - 1
        n = len(rec)
        first = rec.first
        seg = np.cumsum(first) - 1
        seg_start = np.flatnonzero(first)
        seg_dev = rec.device[seg_start]
        # Extended arrays: each device's carried records, then its records of this set.
        pos = np.arange(n) + (seg + 1) * carry
        size = n + seg_start.shape[0] * carry
        digest = np.zeros(size, dtype=np.uint64)
        changes = np.zeros(size, dtype=np.int32)
        rest = np.zeros(size, dtype=np.bool_)
        ts = np.zeros(size, dtype=np.float64)
        valid = np.zeros(size, dtype=np.bool_)
        base = seg_start + np.arange(seg_start.shape[0]) * carry
        held = self._w_n[seg_dev]
        # Column by column, each a 1-D gather (an index array with a scalar beside it
        # takes numpy's slow general path).
        for j in range(carry):
            at = base + j
            digest[at] = self._w_digest[:, j].take(seg_dev)
            changes[at] = self._w_changes[:, j].take(seg_dev)
            rest[at] = self._w_rest[:, j].take(seg_dev)
            ts[at] = self._w_ts[:, j].take(seg_dev)
            valid[at] = j >= carry - held
        digest[pos], changes[pos], rest[pos], ts[pos] = rec.digest, rec.changes, rec.rest, rec.ts
        valid[pos] = True
        # The newest record of each window is the record itself (no gather needed).
        key = rec.digest * _MULT[0]
        # Changes inside the window: of every record but the oldest (of the only one
        # when the window is one record).
        inner = rec.changes.astype(np.int32)
        all_rest = rec.rest.copy()
        for k in range(1, w):
            key += digest.take(pos - k) * _MULT[k]
            all_rest &= rest.take(pos - k)
            if k < carry:
                inner += changes[pos - k]
        key = mix64(key ^ self._salt.take(rec.device))
        eligible = valid.take(pos - carry) & (inner >= self.min_changes) & ~all_rest
        anchor = eligible & (key % np.uint64(self.stride) == 0)
        # Carry the newest window - 1 records of each device.
        if carry:
            end = pos[segment_ends(first)]
            for j in range(carry):
                at = end - (carry - 1) + j
                self._w_digest[:, j][seg_dev] = digest[at]
                self._w_changes[:, j][seg_dev] = changes[at]
                self._w_rest[:, j][seg_dev] = rest[at]
                self._w_ts[:, j][seg_dev] = ts[at]
            counts = np.diff(np.append(seg_start, n)).astype(np.int32)
            self._w_n[seg_dev] = np.minimum(held + counts, carry)
        return key, ts.take(pos - carry), anchor

    def _match(self, rec: Records, key: U64, anchor: NDArray[np.bool_]) -> tuple[
        NDArray[np.int8], NDArray[np.float64], NDArray[np.intp]
    ]:
        """Hit (1), miss (2) or neutral (0) and lag of each anchor window, in record order.

        Windows sharing a key (within this set) are taken in time order, one rank at a
        time, so the outcome is the one a record-by-record scan would give.
        """
        where = np.flatnonzero(anchor)
        m = where.shape[0]
        kind = np.zeros(m, dtype=np.int8)
        lag = np.full(m, np.nan)
        if m == 0:
            return kind, lag, where
        keys = key[where]
        sec = np.floor(rec.ts[where])
        order = np.lexsort((sec, keys))
        group_first = np.empty(m, dtype=np.bool_)
        group_first[0] = True
        group_first[1:] = keys[order][1:] != keys[order][:-1]
        group = np.cumsum(group_first) - 1
        heads = order[group_first]
        exists, seen, count = self.history.lookup(keys[heads])
        rank = np.arange(m) - np.flatnonzero(group_first)[group]
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
        for r in range(int(rank.max()) + 1):
            sel = by_rank[bounds[r]:bounds[r + 1]]
            e, g = order[sel], group[sel]
            now = sec[e]
            valid = exists[g] & (seen[g] >= now - self.history_s)
            age = now - seen[g]
            hit = valid & (age >= self.min_lag_s) & (count[g] <= self.max_repeats)
            kind[e] = np.where(valid, np.where(hit, 1, 0), 2).astype(np.int8)
            lag[e] = np.where(hit, age, np.nan)
            count[g] = np.where(valid, count[g] + 1, 1)
            seen[g] = np.where(valid, seen[g], now)
            exists[g] = True
        purge = self._watermark - self.history_s - _PURGE_MARGIN_S
        self.history.store(keys[heads], seen, count, purge)
        return kind, lag, where

    def _machine(self, rec: Records, kind: NDArray[np.int8], lag: NDArray[np.float64],
                 start: NDArray[np.float64], where: NDArray[np.intp]) -> Verdict:
        """Run the lag state machine over hits and misses; spread the state to records."""
        n = len(rec)
        dev = rec.device
        seed_active, seed_since = self._active.take(dev), self._since.take(dev)
        seed_lag = self._lag.take(dev)
        events = np.flatnonzero(kind != 0)
        if events.shape[0]:
            # A miss of a device holding no lag changes nothing it reports (its miss
            # count only matters once a hit has set a lag, and that hit zeroes it), so
            # unless the device also hits in this set, its misses are left out: most
            # windows are new (misses) and most devices at rest, which spares the
            # rank-by-rank walk below on nearly every set.
            ev_dev = dev[where[events]]
            hit = kind[events] == 1
            hitting = np.zeros(self._lag.shape[0], dtype=np.bool_)
            hitting[ev_dev[hit]] = True
            relevant = hit | ~np.isnan(self._lag[ev_dev]) | hitting[ev_dev]
            if not relevant.all():
                events = events[relevant]
        ev_rec = where[events]
        ev_kind, ev_lag, ev_start = kind[events], lag[events], start[events]
        ev_dev = dev[ev_rec]
        post_active = np.zeros(events.shape[0], dtype=np.bool_)
        post_since = np.full(events.shape[0], np.nan)
        post_lag = np.full(events.shape[0], np.nan)
        if events.shape[0]:
            first = segment_starts(ev_dev)
            starts = np.flatnonzero(first)
            rank = np.arange(events.shape[0]) - starts[np.cumsum(first) - 1]
            by_rank = np.argsort(rank, kind="stable")
            bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
            for r in range(int(rank.max()) + 1):
                e = by_rank[bounds[r]:bounds[r + 1]]
                self._step(ev_dev[e], ev_kind[e], ev_lag[e], ev_start[e], rec.ts[ev_rec[e]])
                d = ev_dev[e]
                post_active[e], post_since[e], post_lag[e] = (
                    self._active[d], self._since[d], self._lag[d])
        mark = rec.first.copy()
        mark[ev_rec] = True
        active = seed_active.copy()
        since, value = seed_since.copy(), seed_lag.copy()
        active[ev_rec], since[ev_rec], value[ev_rec] = post_active, post_since, post_lag
        fill = ffill_positions(mark)
        active, since, value = active.take(fill), since.take(fill), value.take(fill)
        limit = np.full(n, self.min_lag_s)
        return Verdict(active, np.where(active, since, np.nan),
                       np.where(active, value, np.nan), limit)

    def _step(self, d: NDArray[np.intp], kind: NDArray[np.int8], lag: NDArray[np.float64],
              start: NDArray[np.float64], end: NDArray[np.float64]) -> None:
        """One event per device in ``d``."""
        held, active = self._lag[d], self._active[d]
        is_hit = kind == 1
        agrees = is_hit & (np.abs(lag - held) <= self.tolerance_s)  # NaN held: False
        # Overlapping windows share records: one coincidence, not two pieces of evidence.
        fresh = agrees & (start > self._hit_end[d])
        restart = is_hit & ~agrees & ~active
        miss = (kind == 2) | (is_hit & ~agrees & active)
        hits = np.where(fresh, self._hits[d] + 1, np.where(restart, 1, self._hits[d]))
        misses = np.where(agrees | restart, 0, self._misses[d] + miss)
        reset = misses >= self.clear_misses
        self._hits[d] = np.where(reset, 0, hits)
        self._misses[d] = np.where(reset, 0, misses)
        self._lag[d] = np.where(reset, np.nan, np.where(restart, lag, held))
        self._since[d] = np.where(reset, np.nan, np.where(restart, start, self._since[d]))
        self._hit_end[d] = np.where(fresh | restart, end, self._hit_end[d])
        self._active[d] = self._hits[d] >= self.min_hits
