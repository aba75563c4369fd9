"""Judging on a coarser cadence than batches arrive: samples held, then judged together.

A vectorized rule pays a fixed cost per call (hundreds of numpy calls) besides its cost
per row, and live batches are small: one sweep interval (5 s) of the fleet's data.  A
rule whose verdicts need tens of minutes of evidence (tampering) loses nothing by
judging a minute of data at once, and a rule that is *batch-split invariant* (its
changes do not depend on where batches are cut, which the detectors' tests prove) gives
exactly the same changes, only emitted up to ``every_s`` of event time later.

:class:`Cadence` is that holding pen.  It knows event time only from what it is given:
the newest sample ts of the batches, and the watermark of sweeps.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from detectors.base import ConditionChanges, SampleBatch


class Cadence:
    """Holds sample batches until ``every_s`` of event time has passed since the first.

    ``add`` returns the held batches joined (in arrival order, the new one last) once a
    batch's newest ts is ``every_s`` past the first held batch's newest ts, or once
    ``max_rows`` are held; ``due(now)`` returns them once the watermark ``now`` is
    ``every_s`` past it.  ``every_s = 0`` holds nothing.  Heartbeats are not held (the
    rules behind a cadence judge samples only).

    >>> c = Cadence(60.0)
    >>> c.add(SampleBatch.from_arrays([0], [100.0], [1.0])) is None
    True
    >>> c.due(150.0) is None, len(c.add(SampleBatch.from_arrays([0], [165.0], [2.0])))
    (True, 2)
    """

    def __init__(self, every_s: float, *, max_rows: int = 262_144) -> None:
        if not (every_s >= 0 and math.isfinite(every_s)) or max_rows < 1:
            raise ValueError("every_s must be finite and >= 0, max_rows >= 1")
        self.every_s, self.max_rows = float(every_s), max_rows
        self._held: list[SampleBatch] = []
        self._rows = 0
        self._since = -math.inf
        """Newest finite ts of the first held batch (-inf: it had none)."""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def add(self, batch: SampleBatch, *, clock: SampleBatch | None = None
            ) -> SampleBatch | None:
        """Hold ``batch``; the held batches joined when they are due, else None.

        ``clock``: the batch whose newest ts advances event time (default ``batch``);
        a rule that holds only some rows of what arrived passes the whole, so its
        judging instants do not depend on which rows it kept."""
        if self.every_s == 0:
            return batch
        newest = _newest(batch if clock is None else clock)
        if not self._held:
            self._since = newest
        self._held.append(batch)
        self._rows += len(batch)
        if self._rows >= self.max_rows or not newest - self._since < self.every_s:
            return self.release()
        return None

    def due(self, now: float) -> SampleBatch | None:
        """The held batches joined if the watermark is ``every_s`` past the first."""
        if self._held and not now - self._since < self.every_s:
            return self.release()
        return None

    def release(self) -> SampleBatch | None:
        """Whatever is held, joined (None when nothing is)."""
        if not self._held:
            return None
        held, self._held, self._rows = self._held, [], 0
        if len(held) == 1:
            return held[0]
        return SampleBatch(
            point=np.concatenate([b.point for b in held]),
            ts=np.concatenate([b.ts for b in held]),
            value=np.concatenate([b.value for b in held]),
            quality=np.concatenate([b.quality for b in held]),
            heartbeat_device=np.empty(0, dtype=np.int32),
            heartbeat_ts=np.empty(0, dtype=np.float64),
        )


def _newest(batch: SampleBatch) -> float:
    """The newest finite ts (-inf: none).  ``fmax`` passes NaN by, so one reduction
    answers unless an infinite ts came (then the finite rows are picked out)."""
    newest = float(np.fmax.reduce(batch.ts, initial=-math.inf))
    if newest != math.inf:
        return newest
    finite = batch.ts[np.isfinite(batch.ts)]
    return float(finite.max()) if finite.shape[0] else -math.inf


class BulkJudged:
    """The entry points of a sample-driven rule that judges its own rows in bulk.

    A subclass sets ``rule`` and ``_cadence`` and implements ``_take(batch)`` (judge
    these samples now); :meth:`_hold` is what its ``update`` calls once the batch is
    checked.  Event time is that of the whole batch (``clock``), so when the rule
    judges does not depend on which rows are its own.
    """

    rule: str
    _cadence: Cadence

    def _take(self, batch: SampleBatch) -> ConditionChanges:
        raise NotImplementedError

    def _hold(self, batch: SampleBatch, mine: NDArray[np.bool_]) -> ConditionChanges:
        """Judge ``batch`` now (no cadence), or hold its rows where ``mine``."""
        if self._cadence.every_s == 0:
            return self._take(batch)
        due = self._cadence.add(batch.samples_at(np.flatnonzero(mine)), clock=batch)
        return ConditionChanges.none(self.rule) if due is None else self._take(due)

    def sweep(self, now: float) -> ConditionChanges:
        """Held samples once due; otherwise nothing to do on the clock (the rule is
        judged on samples)."""
        due = self._cadence.due(now)
        return ConditionChanges.none(self.rule) if due is None else self._take(due)

    def judge_held(self) -> ConditionChanges:
        """Judge every held sample now (the end of a recording, a shutdown)."""
        held = self._cadence.release()
        return ConditionChanges.none(self.rule) if held is None else self._take(held)
