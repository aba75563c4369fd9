"""The one shape every detector shares: array batches in, condition changes out.

The pipeline (``gateway.pipeline``) decodes MQTT messages or recording lines into a
:class:`SampleBatch` whose rows are addressed by the registry's dense integer ids, so a
detector never sees names, dicts or per-sensor objects.  A detector keeps its state in
preallocated numpy arrays indexed by those ids and answers with
:class:`ConditionChanges`: the rows where its debounced verdict changed.  Changes are
rare compared with samples, so the alerting side may turn them into Python objects.

Two entry points, both on event time:

* ``update(batch)``: new samples arrived (their ``ts`` is event time, not arrival).
* ``sweep(now)``: the watermark clock reached ``now``; rules that fire on the *absence*
  of data (silence) or on elapsed time evaluate here as whole-array operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

#: Quality code of a sample with HJ 212 flag ``N`` (normal).  Other flags map to the
#: non-zero codes of :data:`QUALITY_CODES`; detectors judge limits only on normal data.
QUALITY_NORMAL = 0

#: HJ 212 data flags (CONTRACT.md §1) to the compact codes carried in batches.
QUALITY_CODES: dict[str, int] = {
    "N": 0,  # normal
    "F": 1,  # stopped (停运)
    "M": 2,  # maintenance (维护)
    "S": 3,  # manual input (手工输入)
    "D": 4,  # fault (故障)
    "C": 5,  # calibration (校准)
    "T": 6,  # over range (超测定上限)
    "B": 7,  # communication fault (通讯异常)
}


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Samples decoded from any number of messages, one row per (point, ts, value).

    Rows are in arrival order and may be out of event-time order or duplicated (QoS 1
    redelivery); detectors must tolerate both.  ``heartbeat_*`` rows record device
    activity that carries no sample (an ``event`` or an ``online`` status message), so
    silence detection sees every sign of life.
    """

    point: NDArray[np.intp]
    """Dense point index from the registry, as ``np.intp``: every detector gathers its
    state by it, and numpy gathers by a native index several times faster than by an
    int32 one it must convert first."""
    ts: NDArray[np.float64]
    """Event time, seconds since the Unix epoch (UTC)."""
    value: NDArray[np.float64]
    quality: NDArray[np.uint8]
    """:data:`QUALITY_CODES` code of each sample."""
    heartbeat_device: NDArray[np.int32]
    """Dense device index of sample-less activity."""
    heartbeat_ts: NDArray[np.float64]
    """Event time of that activity, epoch seconds."""

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls.from_arrays([], [], [])

    @classmethod
    def from_arrays(
        cls,
        point: object,
        ts: object,
        value: object,
        quality: object | None = None,
        heartbeat_device: object | None = None,
        heartbeat_ts: object | None = None,
    ) -> SampleBatch:
        """Build a batch from sequences, casting to the dtypes detectors rely on."""
        p = np.asarray(point, dtype=np.intp)
        q = (
            np.zeros(p.shape[0], dtype=np.uint8)
            if quality is None
            else np.asarray(quality, dtype=np.uint8)
        )
        return cls(
            point=p,
            ts=np.asarray(ts, dtype=np.float64),
            value=np.asarray(value, dtype=np.float64),
            quality=q,
            heartbeat_device=np.asarray(
                [] if heartbeat_device is None else heartbeat_device, dtype=np.int32
            ),
            heartbeat_ts=np.asarray([] if heartbeat_ts is None else heartbeat_ts, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.point.shape[0])

    def samples_at(self, rows: NDArray[np.intp]) -> SampleBatch:
        """The given rows' samples, without heartbeats (what a rule holds for later).

        >>> SampleBatch.from_arrays([4, 5, 6], [1.0, 2.0, 3.0], [7.0, 8.0, 9.0]).samples_at(
        ...     np.array([2, 0])).point.tolist()
        [6, 4]
        """
        return SampleBatch(self.point.take(rows), self.ts.take(rows), self.value.take(rows),
                           self.quality.take(rows), self.heartbeat_device[:0],
                           self.heartbeat_ts[:0])


@dataclass(frozen=True, slots=True)
class ConditionChanges:
    """Rows where a detector's debounced verdict changed, sorted by ``ts``.

    ``severity`` 0 means the condition cleared.  Its meaning otherwise is the rule's:
    for ``threshold`` the sign is the direction (+ high, − low) and the magnitude the
    band (1 = hi/lo, 2 = hihi/lolo); for ``silence`` it is 1.
    """

    rule: str
    subject: NDArray[np.int32]
    """Point index (per-point rules) or device index (per-device rules)."""
    ts: NDArray[np.float64]
    """Event time at which the change was decided (the alert's ``detected_at``)."""
    since: NDArray[np.float64]
    """Event time at which the condition began (the alert's ``started_at``); for a
    clearing row, the event time of the first normal sample."""
    severity: NDArray[np.int8]
    value: NDArray[np.float64]
    """The sample that decided the change (NaN where no sample did, e.g. silence)."""
    limit: NDArray[np.float64]
    """The limit crossed; for silence the timeout in seconds; NaN when cleared."""

    @classmethod
    def none(cls, rule: str) -> ConditionChanges:
        """No change; one shared instance per rule (it is asked for on every sweep)."""
        cached = _NONE.get(rule)
        if cached is None:
            cached = _NONE[rule] = cls(
                rule=rule, subject=_EMPTY_I32, ts=_EMPTY_F64, since=_EMPTY_F64,
                severity=_EMPTY_I8, value=_EMPTY_F64, limit=_EMPTY_F64,
            )
        return cached

    def __len__(self) -> int:
        return int(self.subject.shape[0])


def _frozen_empty(dtype: type[np.generic]) -> NDArray[Any]:
    array = np.empty(0, dtype=dtype)
    array.flags.writeable = False
    return array


_EMPTY_F64 = _frozen_empty(np.float64)
_EMPTY_I32 = _frozen_empty(np.int32)
_EMPTY_I8 = _frozen_empty(np.int8)
_NONE: dict[str, ConditionChanges] = {}


class Detector(Protocol):
    """What the pipeline calls; each detector documents its parameters with units."""

    rule: str

    def update(self, batch: SampleBatch) -> ConditionChanges: ...

    def sweep(self, now: float) -> ConditionChanges: ...
