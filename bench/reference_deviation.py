"""The ``deviation`` rule one sample at a time: the test oracle of ``detectors.deviation``.

Plain Python, no numpy: one small object per watched point and per gate, and a loop
over a batch's samples in event-time order (a gate sample before a watched sample of
the same ts, ties otherwise in arrival order).  Every rule of the detector's docstring
is restated here the obvious way; the arithmetic is written in the same order as the
detector's, so z values agree to the last bit.  Rows are
``(subject, ts, since, severity, value, limit)`` with NaN as in
:class:`~detectors.base.ConditionChanges`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from detectors.base import SampleBatch

NAN = math.nan
MAD_TO_SIGMA = 1.4826
RUNNING_AT = 0.5

Row = tuple[int, float, float, int, float, float]


class _Gate:
    __slots__ = ("last_ts", "members", "running", "since")

    def __init__(self) -> None:
        self.last_ts = -math.inf
        self.running = False
        self.since = NAN
        self.members: list[int] = []


class _Watched:
    __slots__ = ("bucket", "centre", "code", "count", "direction", "floor", "gate", "high",
                 "high_start", "last_ts", "low", "low_start", "on_delay", "ring", "scale",
                 "settle", "sum", "sum_sq", "x0")

    def __init__(self, gate: int, settle: float, on_delay: float, floor: float,
                 buckets: int, direction: int) -> None:
        self.gate, self.settle, self.on_delay, self.floor = gate, settle, on_delay, floor
        self.direction = direction  # 1: only high may fire, -1: only low, 0: both
        self.last_ts = -math.inf
        self.bucket = -math.inf
        self.count = 0
        self.x0 = self.sum = self.sum_sq = 0.0
        self.ring: deque[tuple[float, float]] = deque(maxlen=buckets)  # (mean, variance)
        self.centre = self.scale = NAN
        self.high = self.low = False
        self.high_start = self.low_start = NAN
        self.code = 0


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) / 2.0


def _per_point(value: float | Sequence[float], n: int) -> list[float]:
    return [float(value)] * n if isinstance(value, int | float) else [float(x) for x in value]


class DeviationReference:
    """Same constructor as :class:`~detectors.deviation.DeviationDetector` (lists or
    scalars instead of arrays), without ``judge_every_s``."""

    def __init__(
        self,
        watched: Sequence[bool],
        gate_point: Sequence[int] | None = None,
        *,
        bucket_s: float = 600.0,
        buckets: int = 144,
        min_buckets: int = 72,
        min_bucket_samples: int = 3,
        settle_s: float | Sequence[float] = 900.0,
        z_on: float = 4.0,
        z_off: float = 3.0,
        on_delay_s: float | Sequence[float] = 600.0,
        scale_floor: float | Sequence[float] = 0.0,
        scale_floor_rel: float = 0.01,
        direction: int | Sequence[int] = 0,
    ) -> None:
        n = len(watched)
        gates = [-1] * n if gate_point is None else [int(g) for g in gate_point]
        settle = _per_point(settle_s, n)
        on_delay = [0.0 if math.isnan(d) else d for d in _per_point(on_delay_s, n)]
        floor = _per_point(scale_floor, n)
        sides = [int(direction)] * n if isinstance(direction, int) else [int(d) for d in direction]
        self.bucket_s, self.min_buckets = bucket_s, min_buckets
        self.min_bucket_samples = min_bucket_samples
        self.z_on, self.z_off, self.scale_floor_rel = z_on, z_off, scale_floor_rel
        self.watched: dict[int, _Watched] = {}
        self.gates: dict[int, _Gate] = {}
        for p in range(n):
            if watched[p]:
                self.watched[p] = _Watched(gates[p], settle[p], on_delay[p], floor[p],
                                           buckets, sides[p])
                if gates[p] >= 0:
                    self.gates.setdefault(gates[p], _Gate()).members.append(p)
        self.late = self.skipped = 0

    @property
    def severity(self) -> dict[int, int]:
        return {p: w.code for p, w in self.watched.items()}

    def update(self, batch: SampleBatch) -> list[Row]:
        out: list[Row] = []
        rows: list[tuple[float, int, int, float]] = []  # (ts, 0 gate / 1 watched, point, v)
        for p, t, v, q in zip(batch.point.tolist(), batch.ts.tolist(), batch.value.tolist(),
                              batch.quality.tolist(), strict=True):
            if p not in self.watched and p not in self.gates:
                continue
            if math.isfinite(t) and math.isfinite(v) and q == 0:
                rows.append((t, 0 if p in self.gates else 1, p, v))
            else:
                self.skipped += 1
        rows.sort(key=lambda r: (r[0], r[1]))  # stable: the first arrival of a tie first
        for t, kind, p, v in rows:
            state = self.gates[p] if kind == 0 else self.watched[p]
            if t <= state.last_ts:
                self.late += 1
                continue
            state.last_ts = t
            if kind == 0:
                self._gate(self.gates[p], t, v, out)
            else:
                self._sample(p, self.watched[p], t, v, out)
        out.sort(key=lambda r: (r[1], r[0]))
        return out

    def _gate(self, gate: _Gate, t: float, v: float, out: list[Row]) -> None:
        running = v >= RUNNING_AT
        if running and not gate.running:
            gate.running, gate.since = True, t
        elif not running and gate.running:
            gate.running, gate.since = False, NAN
            for p in gate.members:  # a stopped machine is not abnormal
                w = self.watched[p]
                w.high = w.low = False
                w.high_start = w.low_start = NAN
                if w.code != 0:
                    w.code = 0
                    out.append((p, t, t, 0, NAN, NAN))

    def _sample(self, p: int, w: _Watched, t: float, x: float, out: list[Row]) -> None:
        if w.gate >= 0:
            gate = self.gates[w.gate]
            if not (gate.running and t - gate.since >= w.settle):
                return  # out of regime: neither judged nor learned
        bucket = float(math.floor(t / self.bucket_s))
        if bucket != w.bucket:  # a later bucket: the current one is finished
            if w.count >= self.min_bucket_samples:
                self._push(w)
            w.bucket, w.count, w.x0, w.sum, w.sum_sq = bucket, 0, x, 0.0, 0.0
        verdict = (math.isfinite(w.centre) and math.isfinite(w.scale) and w.scale > 0)
        if verdict:
            z = (x - w.centre) / w.scale  # may be +-inf on absurd values, never NaN
            self._judge(p, w, t, z, out)
        d = x - w.x0
        w.sum += d
        w.sum_sq += d * d
        w.count += 1

    def _push(self, w: _Watched) -> None:
        n = float(w.count)
        mean = w.x0 + w.sum / n
        var = (w.sum_sq - w.sum * w.sum / n) / (n - 1.0)
        if var < 0:
            var = 0.0
        if not (math.isfinite(mean) and math.isfinite(var)):
            return
        w.ring.append((mean, var))
        if len(w.ring) < self.min_buckets:
            w.centre = w.scale = NAN
            return
        means = [m for m, _ in w.ring]
        centre = _median(means)
        mad = _median([abs(m - centre) for m in means])
        spread = MAD_TO_SIGMA * mad
        scale = math.sqrt(_median([v for _, v in w.ring]) + spread * spread)
        w.centre = centre
        w.scale = max(scale, w.floor, self.scale_floor_rel * abs(centre))

    def _judge(self, p: int, w: _Watched, t: float, z: float, out: list[Row]) -> None:
        if w.high and z < self.z_off:
            w.high, w.high_start = False, NAN
        elif not w.high and z >= self.z_on and w.direction != -1:
            w.high, w.high_start = True, t
        if w.low and z > -self.z_off:
            w.low, w.low_start = False, NAN
        elif not w.low and z <= -self.z_on and w.direction != 1:
            w.low, w.low_start = True, t
        code, since = 0, t
        if w.high and t - w.high_start >= w.on_delay:
            code, since = 1, w.high_start
        elif w.low and t - w.low_start >= w.on_delay:
            code, since = -1, w.low_start
        if code != w.code:
            w.code = code
            out.append((p, t, since, code, z, self.z_on if code else NAN))

