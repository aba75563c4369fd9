"""Data-level signs of offline faking (虚假离线): the ``tamper`` rule.

An enterprise that fakes its monitoring keeps the channel alive but feeds it data that
no running plant produces: readings frozen, a day replayed exactly, one sensor copying
another.  This detector reports those *data-level* signals only; whether the plant was
running meanwhile (the electricity meter) is decided elsewhere and combined with it.

Samples are regrouped into device records (:mod:`detectors.tamper_records`), and four
judges run on them, each in its own module:

* frozen (:mod:`detectors.tamper_frozen`): every watched point of a device unchanged for
  much longer than the device has ever stood still;
* exact replay (:mod:`detectors.tamper_replay`): windows of records identical to windows
  sent at least an hour earlier, all at one lag;
* noisy replay (:mod:`detectors.tamper_noisy`): the changes of several points
  correlating with their changes exactly 1, 2 or 7 days earlier, and at no other of
  those lags: old data re-sent disguised by a scale factor, noise and a shift;
* clone (:mod:`detectors.tamper_clone`): two points of a clone group exactly equal,
  sample after sample, while their value moves.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors._segments import read_only, segment_ends, shift_from_state
from detectors.base import ConditionChanges, SampleBatch
from detectors.cadence import Cadence
from detectors.tamper_clone import CloneJudge
from detectors.tamper_frozen import FrozenJudge
from detectors.tamper_noisy import NoisyReplayJudge
from detectors.tamper_records import RecordBuffer, Records, segment_cummax
from detectors.tamper_replay import ReplayJudge

FROZEN, REPLAY, CLONE, NOISY_REPLAY = 1, 2, 3, 4
"""Severity codes of the ``tamper`` rule (0: cleared)."""

DAY = 86_400.0


class TamperDetector:
    """Frozen, exactly or noisily replayed and cloned data, judged per device on event
    time.

    Per-point arrays (length ``n_points``, the registry's dense ids):

    * ``point_device``: device index of each point (int, >= 0); ``n_devices`` (default
      the largest index + 1) sizes the per-device state.
    * ``watched``: judge this point (bool).  Analog readings only: run states (0/1)
      and energy counters say nothing about faking, and meters are the independent
      reference, not a suspect.  Samples of unwatched points are ignored.
    * ``clone_groups``: group id (int, -1 = none); watched points of one device in one
      group (``flow_in``/``flow_out``) are compared with each other.

    A *record* is the samples of one device at one ts.  A device's newest record is
    judged when a later one arrives, or by ``sweep(now)`` once ``now - ts >=
    close_after_s`` (default 300 s), so a record split over batches is judged whole and
    the changes do not depend on where batches are cut.  The default is longer than
    any reporting interval of a watched device, so records close by the next record,
    in bulk with the rest of a batch; a clock-closed record (each costs a whole judging
    pass) is only the last one before a device falls silent, judged at most 5 min late,
    which no signal here notices (each needs 20 min or more of evidence).

    Samples are judged in bulk (:mod:`detectors.cadence`): held until ``judge_every_s``
    of event time (default 120 s; 0: every batch) has passed since the first held
    batch, then judged together; the changes are the same, as they do not depend on
    where batches are cut, only emitted up to two minutes later.  Two minutes, not one:
    every signal here needs 20 minutes or more of evidence (the disguised replay is
    evaluated every 6 minutes anyway), and each judging pass has a fixed cost of a few
    hundred numpy calls that dominates the fleet's 5-s batches; on the 50-site suite
    this moved the median fake-offline delay by 25 s (docs/detection.md).

    Frozen, severity 1 (:mod:`detectors.tamper_frozen`): no watched point of the device
    changed for ``max(min_frozen_s, frozen_factor x learned)``, ``learned`` being the
    longest such joint run the device completed unreported, halving every
    ``frozen_half_life_s``.

    * ``min_frozen_s``: seconds, default 1200;  ``frozen_factor``: default 2;
    * ``frozen_half_life_s``: seconds, default 7 days;
    * ``frozen_max_gap_s``: seconds, default 300: a longer silence starts a new run;
    * ``frozen_min_points``: default 2: a record with fewer samples is never frozen,
      as one flat reading (a CO sensor at its zero) cannot tell a freeze from a
      steady process.

    Exact replay, severity 2 (:mod:`detectors.tamper_replay`): windows of
    ``replay_window`` records (default 2) identical to windows sent between
    ``replay_min_lag_s`` (s, default 3600) and ``replay_history_s`` (s, default
    8 days) earlier; ``replay_min_hits`` (default 3) non-overlapping hits must agree on
    the lag within ``replay_tolerance_s`` (s, default 30); ``replay_clear_misses``
    (default 6) unmatched windows in a row clear it.  History keeps windows whose key
    is divisible by ``replay_stride`` (default 8), 13 bytes each; a key seen more than
    ``replay_max_repeats`` times (default 2) is no evidence, nor is a window with fewer
    than ``replay_min_changes`` value changes inside (default 2) or a plant at rest.

    Noisy replay, severity 4 (:mod:`detectors.tamper_noisy`; ``noisy_replay=False``
    turns it off): per watched point, triangular-weighted means of event-time slots of
    ``noisy_slot_s`` seconds (default 120).  Whenever a device closes a slot divisible
    by ``noisy_every`` (default 3: every 6 min), each point's last ``noisy_window``
    changes of slot mean (default 20: 40 min) are correlated with the same changes one
    lag earlier, for each lag of ``noisy_lags_s`` (seconds, multiples of the slot;
    default 1, 2 and 7 days), each side winsorised at its median ± ``noisy_clip``
    robust standard deviations (default 2.5), over at least ``noisy_min_valid`` pairs
    of present changes (default 16).  A lag agrees when ``noisy_min_points`` points
    (default 3; devices with fewer watched points are not judged) reach
    ``noisy_min_corr`` (default 0.75) and at no other lag do that many reach
    ``noisy_control_corr`` (default 0.45).  Replaying after ``noisy_min_hits``
    agreeing evaluations in a row at one lag (default 3), cleared after
    ``noisy_clear_misses`` without (default 3).  The ring of changes costs
    ``(max lag / noisy_slot_s + noisy_window) x 2`` bytes per watched point of a judged
    device: 10.1 KB with the defaults.

    Clone, severity 3 (:mod:`detectors.tamper_clone`): two points of a group exactly
    equal on at least ``clone_min_samples`` (default 10) paired samples in a row, over
    which the value moved ``k`` times; ``k = max(clone_min_changes (default 2),
    log(clone_alpha) / log(q))``, ``q`` the pair's own share of moves the other point
    followed exactly, ``clone_alpha`` default 1e-6.

    Rows: frozen, replay and noisy replay on the device's first watched point (one
    alert per device; frozen outranks replay, which outranks noisy replay, when several
    hold: a replay stays latched through a flat stretch, which carries no evidence
    either way, and an exact copy is also a near one, so a noisy-replay run that began
    before the device's exact replay was last active is not reported), clone on the
    pair's higher-indexed point.  ``since``: the first record of the frozen run, of the
    first matching window, the estimated start of the copy (``tamper_noisy``), the first
    record of the equal run.  ``value``/``limit``: the run and its threshold (s); the
    lag (s) and ``replay_min_lag_s``; the lag (s) and ``noisy_min_corr``; the source
    point index and ``k``.  Clearing rows (severity 0) have ``since = ts`` and NaN
    value and limit.

    Samples that cannot be judged change no state: non-finite value or ts, quality
    other than normal (``skipped_samples``); ts at or before the device's last judged
    record, or a repeat of a (point, ts) already held, of which the first arrival wins
    (``late_samples``).

    >>> det = TamperDetector(point_device=[0, 0], watched=[True, True], clone_groups=[-1, -1],
    ...                      judge_every_s=0)
    >>> ts = [i * 30.0 for i in range(60)]
    >>> batch = SampleBatch.from_arrays([0] * 60 + [1] * 60, ts + ts, [5.0] * 120)
    >>> changes = det.update(batch)
    >>> changes.severity.tolist(), changes.ts.tolist(), changes.since.tolist()
    ([1], [1200.0], [0.0])
    >>> changes.value.tolist(), changes.limit.tolist()
    ([1200.0], [1200.0])
    """

    rule = "tamper"

    def __init__(
        self,
        point_device: ArrayLike,
        watched: ArrayLike,
        clone_groups: ArrayLike,
        *,
        n_devices: int | None = None,
        close_after_s: float = 300.0,
        judge_every_s: float = 120.0,
        min_frozen_s: float = 1200.0,
        frozen_factor: float = 2.0,
        frozen_half_life_s: float = 7 * DAY,
        frozen_max_gap_s: float = 300.0,
        frozen_min_points: int = 2,
        replay_window: int = 2,
        replay_stride: int = 8,
        replay_history_s: float = 8 * DAY,
        replay_min_lag_s: float = 3600.0,
        replay_min_hits: int = 3,
        replay_clear_misses: int = 6,
        replay_tolerance_s: float = 30.0,
        replay_max_repeats: int = 2,
        replay_min_changes: int = 2,
        clone_min_samples: int = 10,
        clone_alpha: float = 1e-6,
        clone_min_changes: int = 2,
        noisy_replay: bool = True,
        noisy_slot_s: float = 120.0,
        noisy_window: int = 20,
        noisy_every: int = 3,
        noisy_lags_s: tuple[float, ...] = (DAY, 2 * DAY, 7 * DAY),
        noisy_min_corr: float = 0.75,
        noisy_control_corr: float = 0.45,
        noisy_min_points: int = 3,
        noisy_min_hits: int = 3,
        noisy_clear_misses: int = 3,
        noisy_clip: float = 2.5,
        noisy_min_valid: int = 16,
    ) -> None:
        device = np.array(point_device, dtype=np.int32)
        watch = np.array(watched, dtype=np.bool_)
        groups = np.array(clone_groups, dtype=np.int32)
        if device.ndim != 1 or watch.shape != device.shape or groups.shape != device.shape:
            raise ValueError("point_device, watched and clone_groups must be 1-D, same length")
        if device.shape[0] and int(device.min()) < 0:
            raise ValueError("point_device must be >= 0")
        n_dev = int(device.max()) + 1 if device.shape[0] else 0
        if n_devices is not None:
            if n_devices < n_dev:
                raise ValueError("point_device refers to a device index out of range")
            n_dev = n_devices
        if not close_after_s >= 0:
            raise ValueError("close_after_s must be >= 0")
        self.n_points, self.n_devices = int(device.shape[0]), n_dev
        self.close_after_s = float(close_after_s)
        self._cadence = Cadence(judge_every_s)
        self._records = RecordBuffer(device, watch, n_dev)
        self._frozen = FrozenJudge(
            n_dev, min_s=min_frozen_s, factor=frozen_factor, half_life_s=frozen_half_life_s,
            max_gap_s=frozen_max_gap_s, min_points=frozen_min_points)
        self._replay = ReplayJudge(
            n_dev, window=replay_window, stride=replay_stride, history_s=replay_history_s,
            min_lag_s=replay_min_lag_s, min_hits=replay_min_hits,
            clear_misses=replay_clear_misses, tolerance_s=replay_tolerance_s,
            max_repeats=replay_max_repeats, min_changes=replay_min_changes)
        self._clone = CloneJudge(device, watch, groups, min_samples=clone_min_samples,
                                 alpha=clone_alpha, min_changes=clone_min_changes)
        self._noisy = NoisyReplayJudge(
            device, watch & noisy_replay, n_dev, slot_s=noisy_slot_s, window=noisy_window,
            every=noisy_every, lags_s=noisy_lags_s, min_corr=noisy_min_corr,
            control_corr=noisy_control_corr, min_points=noisy_min_points,
            min_hits=noisy_min_hits, clear_misses=noisy_clear_misses, clip=noisy_clip,
            min_valid=noisy_min_valid)
        first = np.full(n_dev, np.iinfo(np.int32).max, dtype=np.int32)
        points = np.flatnonzero(watch).astype(np.int32)
        np.minimum.at(first, device[points], points)
        self._subject = np.where(first < self.n_points, first, -1).astype(np.int32)
        """First watched point of each device: the subject of its frozen/replay rows."""
        self._device_code = np.zeros(n_dev, dtype=np.int8)
        self._last_exact = np.full(n_dev, -np.inf)
        """ts of each device's newest record with an exact replay active."""
        self._code = np.zeros(self.n_points, dtype=np.int8)

    @property
    def severity(self) -> NDArray[np.int8]:
        """Current code of every point (read-only view): 0 to 4."""
        return read_only(self._code)

    @property
    def skipped_samples(self) -> int:
        """Samples with a non-finite value or ts, or a quality flag other than normal."""
        return self._records.skipped

    @property
    def late_samples(self) -> int:
        """Samples at or before their device's last judged record, or repeated."""
        return self._records.late

    @property
    def replay_anchors(self) -> int:
        """Anchor windows held in the replay history."""
        return len(self._replay.history)

    def state_nbytes(self) -> dict[str, int]:
        """Bytes of state held, per part (the replay history grows with time)."""
        return {"records": self._records.nbytes(), "frozen": self._frozen.nbytes(),
                "replay": self._replay.nbytes(), "clone": self._clone.nbytes(),
                "noisy_replay": self._noisy.nbytes(),
                "codes": int(self._device_code.nbytes + self._code.nbytes
                             + self._last_exact.nbytes
                             + self._subject.nbytes)}

    def update(self, batch: SampleBatch) -> ConditionChanges:
        """Take a batch; judge the records closed by what is due; changes sorted by ts."""
        if len(batch) and (int(batch.point.min()) < 0
                           or int(batch.point.max()) >= self.n_points):
            raise ValueError(f"point index out of range 0..{self.n_points - 1}")
        due = self._cadence.add(self._records.admit(batch), clock=batch)
        return ConditionChanges.none(self.rule) if due is None else self._judge(
            self._records.add(due))

    def judge_held(self) -> ConditionChanges:
        """Judge every held sample now (the end of a recording, a shutdown); a device's
        newest record stays open, as after any batch."""
        held = self._cadence.release()
        return ConditionChanges.none(self.rule) if held is None else self._judge(
            self._records.add(held))

    def sweep(self, now: float) -> ConditionChanges:
        """Judge held samples once due, and open records the watermark left behind by
        ``close_after_s`` (held samples first: they may close those records)."""
        before = now - self.close_after_s
        closing = self._records.any_open_at_or_before(before)
        held = self._cadence.release() if closing else self._cadence.due(now)
        judged = ConditionChanges.none(self.rule) if held is None else self._judge(
            self._records.add(held))
        if not closing:  # the usual sweep: nothing left open that long
            return judged
        flushed = self._judge(self._records.flush(before))
        if not len(judged):
            return flushed
        if not len(flushed):
            return judged
        parts = (judged, flushed)
        subject = np.concatenate([c.subject for c in parts])
        ts = np.concatenate([c.ts for c in parts])
        order = np.lexsort((subject, ts))
        return ConditionChanges(
            rule=self.rule, subject=subject[order], ts=ts[order],
            since=np.concatenate([c.since for c in parts])[order],
            severity=np.concatenate([c.severity for c in parts])[order],
            value=np.concatenate([c.value for c in parts])[order],
            limit=np.concatenate([c.limit for c in parts])[order])

    def _judge(self, rec: Records) -> ConditionChanges:
        if len(rec) == 0:
            return ConditionChanges.none(self.rule)
        frozen = self._frozen.judge(rec)
        replay = self._replay.judge(rec)
        noisy = self._noisy.judge(rec)
        c_subject, c_ts, c_since, c_on, c_value, c_limit = self._clone.judge(rec)
        self._code[c_subject] = np.where(self._clone.cloned[c_subject] > 0, CLONE, 0)
        # One code per device: frozen, else replay, else noisy replay, else 0; a row
        # where it changes.  A noisy-replay run that began before an exact replay of
        # the device was last seen is that replay's shadow (an exact copy is also a
        # near one, and its windows keep correlating for a while after it ends).
        dev = rec.device
        if replay.active.any():
            last_exact = segment_cummax(np.where(replay.active, rec.ts, -np.inf), rec.first,
                                        self._last_exact[dev])
        else:  # the usual set: each device's value carried through unchanged
            last_exact = self._last_exact.take(dev)
        noisy_on = noisy.active & (noisy.since > last_exact)
        code = np.where(frozen.active, np.int8(FROZEN), np.where(
            replay.active, np.int8(REPLAY),
            np.where(noisy_on, np.int8(NOISY_REPLAY), np.int8(0)))).astype(np.int8)
        at = np.flatnonzero(code != shift_from_state(code, rec.first, self._device_code, dev))
        last = segment_ends(rec.first)
        self._device_code[dev[last]] = code[last]
        self._last_exact[dev[last]] = last_exact[last]
        self._code[self._subject[dev[last]]] = code[last]
        d_code = code[at]
        is_frozen, is_replay = d_code == FROZEN, d_code == REPLAY
        is_noisy = d_code == NOISY_REPLAY
        d_ts = rec.ts[at]
        nan = np.full(at.shape[0], np.nan)

        def pick(f: NDArray[np.float64], r: NDArray[np.float64], q: NDArray[np.float64],
                 otherwise: NDArray[np.float64]) -> NDArray[np.float64]:
            out: NDArray[np.float64] = np.where(is_frozen, f[at], np.where(
                is_replay, r[at], np.where(is_noisy, q[at], otherwise)))
            return out

        subject = np.concatenate((self._subject[dev[at]], c_subject))
        ts = np.concatenate((d_ts, c_ts))
        order = np.lexsort((subject, ts))
        severity = np.concatenate((d_code, np.where(c_on, np.int8(CLONE), np.int8(0))))
        return ConditionChanges(
            rule=self.rule,
            subject=subject[order],
            ts=ts[order],
            since=np.concatenate((pick(frozen.since, replay.since, noisy.since, d_ts),
                                   c_since))[order],
            severity=severity[order].astype(np.int8),
            value=np.concatenate((pick(frozen.value, replay.value, noisy.value, nan),
                                   c_value))[order],
            limit=np.concatenate((pick(frozen.limit, replay.limit, noisy.limit, nan),
                                   c_limit))[order],
        )
