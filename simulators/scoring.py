"""Score a service's alerts against ground-truth labels (``riskwatch score``, issue 3).

Inputs are the simulator's ``labels.jsonl`` (:mod:`simulators.labels`, CONTRACT.md §3)
and the service's alerts as JSON Lines (CONTRACT.md §4, as ``riskwatch replay
--alerts-out`` writes them).  Everything is computed on **event time**.  The rules below
are the definition testers rely on; ``docs/scoring.md`` repeats them with an example.

Evaluation set
    The span is ``span`` or, by default, from the earliest label start / alert start to
    the latest label end / alert detection / alert resolution.  Labels and alerts of
    enterprises outside ``enterprises`` are dropped first.  A label is evaluated when it
    intersects the span; an alert when its ``detected_at`` lies in the span (closed).
    The enterprises under evaluation are ``enterprises`` or, by default, every
    enterprise seen in the (filtered) labels and alerts.

Matching (a positive label L and an alert A; tolerances from :class:`ScoringRules`)
    1. same ``kind`` and same ``enterprise_id``;
    2. device: when both L and A name a device they must be equal; a ``null`` on either
       side is a wildcard, so a site-level alert may detect a device-level label and a
       device-level alert may detect a site-level label (detectors differ in how
       precisely they can locate a fault, and a correct but coarser location is still
       a detection; the precision metrics punish alerts that land elsewhere);
    3. point: the same rule as the device;
    4. A's active interval ``[started_at, resolved_at or span end]`` (closed) has a
       point in L's window ``[L.start - early_tolerance_s, L.end + late_tolerance_s)``;
    5. ``A.detected_at >= L.start - early_tolerance_s``: an alert raised long before
       the event began cannot be a detection of it, however long it stayed open.

Per kind
    * event recall = positive labels matched by at least one alert / positive labels.
      Several alerts on one label are one detection; one alert may detect several
      (overlapping) labels.
    * event precision = alerts matching at least one positive label / alerts.
      Duplicate alerts of one event all count as true; the noise shows in chattering
      and alarm rates instead.
    * time-wise precision = alert time inside the union of the tolerance-expanded
      windows of the positive labels compatible with the alert (rules 1-3) / total
      alert time, where alert time is ``[started_at, resolved_at or span end]``
      clipped to the span.  Zero-length alerts add nothing to either side.
    * composite F1 (Garg et al., 2021, "An evaluation of anomaly detection and
      diagnosis in multivariate time series", IEEE TNNLS) = harmonic mean of event
      recall and time-wise precision.  It is 0 when recall is 0 (whatever the
      precision, so a detector that stays silent scores 0, not "—"), and otherwise
      ``None`` when either ingredient is ``None``.
    * delay of a detected label = ``detected_at`` of its earliest-detected matching
      alert minus ``L.start``, clamped at 0 (an alert inside the early tolerance is
      on time, not ahead of time).  Median and 95th percentile use linear
      interpolation between order statistics (numpy's default).
    * false alerts = alerts of the kind matching no positive label.
      ``false_per_enterprise_30d`` = false alerts / (event-free time / 30 days), where
      event-free time = sum over the enterprises under evaluation of the span length
      minus the union of that enterprise's labels of *any* kind, positive or negative,
      each expanded by the tolerances.  The numerator counts every false alert of the
      kind, also those raised in labelled time, so the figure errs on the high side.
    * hard negatives: a ``negative`` label is not an event.  A false alert of its kind
      compatible with it (rules 1-3) whose active interval has a point in
      ``[N.start, N.end)`` counts in ``hard_negative_violations`` (an alert matching
      a positive label is credited to that label and is no violation).

Alarm rates (ISA-18.2, all kinds together, alerts in the span)
    Only annunciated alerts count: an alert whose evidence says ``inhibited_by`` (a
    site-level parent covered it, :mod:`alerting.inhibition`) is no alarm to the
    operator; it still counts in recall and precision above.
    ``alerts_per_hour`` = alerts / span hours, ``alerts_per_hour_per_enterprise`` = that
    / enterprises, ``max_per_10min`` = the most ``detected_at`` in any half-open window
    ``[t, t + flood_window_s)``, ``chattering`` = fingerprints with at least
    ``chatter_count`` ``started_at`` in some half-open window of ``chatter_window_s``.

A metric whose denominator is zero is ``None`` (rendered "—"), never NaN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from alerting.models import fingerprint as alert_fingerprint
from alerting.timefmt import format_ts
from simulators.intervals import IntervalUnion, max_in_window
from simulators.labels import Label, parse_time

THIRTY_DAYS_S = 30 * 86_400.0
NO_SCENARIO = "(none)"
"""``by_scenario`` key of positive labels that name no scenario."""
REPORT_TIMEZONE = "Asia/Shanghai"
"""Zone of the span in :meth:`ScoreReport.to_json`: the contract's default site zone."""

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ScoringRules:
    """Tolerances and windows of the matching rules (all in seconds of event time)."""

    early_tolerance_s: float = 300.0
    """An alert may start (and be detected) this long before a label and still match;
    detectors report ``started_at`` = first anomalous sample, so this covers clock skew."""
    late_tolerance_s: float = 3600.0
    """An alert starting up to this long after a label ends still matches (slow
    detectors, e.g. a 15-minute utility meter behind a hidden-operation rule)."""
    chatter_window_s: float = 60.0
    """ISA-18.2 chattering: ``chatter_count`` starts of one fingerprint in this window."""
    chatter_count: int = 3
    flood_window_s: float = 600.0
    """Window of ``max_per_10min`` (ISA-18.2: at most 10 alarms per 10 min in an upset)."""

    def __post_init__(self) -> None:
        if self.early_tolerance_s < 0 or self.late_tolerance_s < 0:
            raise ValueError("scoring tolerances must not be negative")
        if self.chatter_window_s <= 0 or self.flood_window_s <= 0:
            raise ValueError("scoring windows must be positive")
        if self.chatter_count < 2:
            raise ValueError("chatter_count must be at least 2")


@dataclass(frozen=True, slots=True)
class ScoredAlert:
    """The part of a CONTRACT.md §4 alert that scoring needs; times in epoch seconds."""

    id: str
    enterprise_id: str
    device_id: str | None
    point: str | None
    kind: str
    level: int | None
    started_at: float
    detected_at: float
    resolved_at: float | None
    """``None`` while the alert is still open; it then counts as active to span end."""
    fingerprint: str = ""
    """Identity of *what* is wrong; empty means derive it as the service does."""
    inhibited: bool = False
    """Covered by a parent alert (``evidence.inhibited_by``): not annunciated."""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            derived = alert_fingerprint(self.kind, self.enterprise_id, self.device_id,
                                        self.point)
            object.__setattr__(self, "fingerprint", derived)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoredAlert:
        """Read an alert object; only the keys scoring needs are required.

        Times are RFC 3339 with offset or epoch milliseconds (CONTRACT.md);
        ``device_id``, ``point``, ``resolved_at``, ``level`` and ``fingerprint`` may be
        missing (hand-written expected alerts), the rest may not.
        """
        if not isinstance(data, Mapping):
            raise ValueError("an alert must be a JSON object")
        try:
            level = data.get("level")
            if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
                raise ValueError(f"level must be an integer, got {level!r}")
            resolved = data.get("resolved_at")
            return cls(
                id=str(data["id"]),
                enterprise_id=str(data["enterprise_id"]),
                device_id=_opt_str(data.get("device_id")),
                point=_opt_str(data.get("point")),
                kind=str(data["kind"]),
                level=level,
                started_at=parse_time(data["started_at"]),
                detected_at=parse_time(data["detected_at"]),
                resolved_at=None if resolved is None else parse_time(resolved),
                fingerprint=str(data.get("fingerprint") or ""),
                inhibited=_inhibited(data.get("evidence")),
            )
        except KeyError as exc:
            raise ValueError(f"alert lacks required key {exc.args[0]!r}") from exc


def load_alerts(path: Path) -> list[ScoredAlert]:
    """Read alert JSON Lines; a bad line is a ``ValueError`` naming ``file:line``.

    Blank lines are skipped.  A later line with an ``id`` already seen replaces the
    earlier one (a later state of the same alert, as the store's upsert by id does),
    so a file of successive snapshots is not scored as duplicates.
    """
    by_id: dict[str, ScoredAlert] = {}
    with path.open("rb") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                alert = ScoredAlert.from_json(orjson.loads(line))
            except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{number}: not an alert: {exc}") from exc
            by_id[alert.id] = alert
    return list(by_id.values())


@dataclass(frozen=True, slots=True)
class KindScore:
    """Scores of one alert kind; see the module docstring for every definition."""

    kind: str
    events: int
    """Positive labels of this kind."""
    detected: int
    alerts: int
    true_alerts: int
    event_recall: float | None
    event_precision: float | None
    time_precision: float | None
    """The precision ingredient of ``composite_f1``."""
    composite_f1: float | None
    delay_median_s: float | None
    delay_p95_s: float | None
    false_alerts: int
    false_per_enterprise_30d: float | None
    hard_negative_violations: int
    by_scenario: dict[str, tuple[int, int]]
    """Scenario -> (events, detected) over positive labels."""

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["by_scenario"] = {
            name: {"events": events, "detected": detected,
                   "recall": _ratio(detected, events)}
            for name, (events, detected) in sorted(self.by_scenario.items())
        }
        return body


@dataclass(frozen=True, slots=True)
class AlarmRates:
    """ISA-18.2 style alarm-rate figures over all kinds (``None``: zero-length span)."""

    alerts_per_hour: float | None
    alerts_per_hour_per_enterprise: float | None
    max_per_10min: int
    """Most alerts detected in any window of ``ScoringRules.flood_window_s``."""
    chattering: int
    """Fingerprints that chattered at least once."""
    alerts: int
    hours: float


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Everything ``riskwatch score`` prints; :mod:`simulators.score_report` renders it."""

    kinds: list[KindScore]
    rates: AlarmRates
    rules: ScoringRules
    span: tuple[float, float]
    enterprises: int
    labels: int
    alerts: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict in a fixed key order; times as RFC 3339 (+08:00)."""
        start, end = self.span
        return {
            "span": {"start": format_ts(start, REPORT_TIMEZONE),
                     "end": format_ts(end, REPORT_TIMEZONE),
                     "hours": (end - start) / 3600.0},
            "enterprises": self.enterprises,
            "labels": self.labels,
            "alerts": self.alerts,
            "rules": asdict(self.rules),
            "kinds": [kind.to_json() for kind in self.kinds],
            "rates": asdict(self.rates),
        }


def score(
    labels: Sequence[Label],
    alerts: Sequence[ScoredAlert],
    *,
    rules: ScoringRules = ScoringRules(),
    span: tuple[float, float] | None = None,
    enterprises: Sequence[str] | None = None,
) -> ScoreReport:
    """Score ``alerts`` against ``labels`` by the rules of the module docstring.

    ``span`` is the evaluation period in epoch seconds (default: from the earliest label
    or alert start to the latest label end, detection or resolution).  ``enterprises``
    are the enterprises under evaluation (default: those seen in labels and alerts);
    pass the registry's list when available, because a monitored enterprise that raised
    nothing still adds event-free time.  Raises ``ValueError`` when the span is inverted.
    """
    wanted = None if enterprises is None else frozenset(enterprises)
    labels = [lb for lb in labels if wanted is None or lb.enterprise_id in wanted]
    alerts = [a for a in alerts if wanted is None or a.enterprise_id in wanted]
    monitored = wanted if wanted is not None else (
        {lb.enterprise_id for lb in labels} | {a.enterprise_id for a in alerts})
    window = span if span is not None else _default_span(labels, alerts)
    if window[1] < window[0]:
        raise ValueError(f"span ends before it starts: {window}")
    labels = [lb for lb in labels if lb.start < window[1] and lb.end > window[0]]
    alerts = [a for a in alerts if window[0] <= a.detected_at <= window[1]]

    free_s = _event_free_seconds(labels, monitored, rules, window)
    kinds = sorted({lb.kind for lb in labels} | {a.kind for a in alerts})
    scores = [
        _score_kind(kind, [lb for lb in labels if lb.kind == kind],
                    [a for a in alerts if a.kind == kind], rules, window, free_s)
        for kind in kinds
    ]
    return ScoreReport(kinds=scores, rates=_alarm_rates(alerts, len(monitored), rules, window),
                       rules=rules, span=(float(window[0]), float(window[1])),
                       enterprises=len(monitored), labels=len(labels), alerts=len(alerts))


def _score_kind(kind: str, labels: list[Label], alerts: list[ScoredAlert],
                rules: ScoringRules, span: tuple[float, float], free_s: float) -> KindScore:
    table = _AlertTable(alerts, span[1])
    positives = [lb for lb in labels if not lb.negative]
    matched = np.zeros(len(alerts), dtype=np.bool_)
    delays: list[float] = []
    scenarios: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for label in positives:
        low, high = label.start - rules.early_tolerance_s, label.end + rules.late_tolerance_s
        rows = table.compatible(label)
        hits = rows[table.overlaps(rows, low, high) & (table.detected[rows] >= low)]
        tally = scenarios[label.scenario or NO_SCENARIO]
        tally[0] += 1
        if hits.size:
            matched[hits] = True
            tally[1] += 1
            delays.append(max(0.0, float(table.detected[hits].min()) - label.start))

    violating = np.zeros(len(alerts), dtype=np.bool_)
    for label in labels:
        if label.negative:
            rows = table.compatible(label)
            violating[rows[table.overlaps(rows, label.start, label.end)]] = True

    true_alerts = int(matched.sum())
    false_alerts = len(alerts) - true_alerts
    recall = _ratio(len(delays), len(positives))
    time_precision = _time_precision(table, positives, rules, span)
    delay = np.asarray(delays, dtype=np.float64)
    return KindScore(
        kind=kind, events=len(positives), detected=len(delays),
        alerts=len(alerts), true_alerts=true_alerts,
        event_recall=recall, event_precision=_ratio(true_alerts, len(alerts)),
        time_precision=time_precision, composite_f1=_composite_f1(recall, time_precision),
        delay_median_s=float(np.median(delay)) if delay.size else None,
        delay_p95_s=float(np.percentile(delay, 95.0)) if delay.size else None,
        false_alerts=false_alerts,
        false_per_enterprise_30d=(false_alerts / (free_s / THIRTY_DAYS_S)
                                  if free_s > 0 else None),
        hard_negative_violations=int((violating & ~matched).sum()),
        by_scenario={name: (n, d) for name, (n, d) in sorted(scenarios.items())},
    )


class _AlertTable:
    """One kind's alerts as arrays, so each label is matched with a few vector ops.

    Identifiers are coded as integers per column (``-1`` for null) and rows are
    grouped by enterprise, so a label only ever looks at its own enterprise's alerts.
    """

    def __init__(self, alerts: Sequence[ScoredAlert], span_end: float) -> None:
        self.start: FloatArray = np.array([a.started_at for a in alerts], dtype=np.float64)
        resolved = np.array([span_end if a.resolved_at is None else a.resolved_at
                             for a in alerts], dtype=np.float64)
        self.end: FloatArray = np.maximum(resolved, self.start)
        self.detected: FloatArray = np.array([a.detected_at for a in alerts], dtype=np.float64)
        self._device_codes: dict[str, int] = {}
        self._point_codes: dict[str, int] = {}
        self.device = np.array([_code(self._device_codes, a.device_id) for a in alerts],
                               dtype=np.int64)
        self.point = np.array([_code(self._point_codes, a.point) for a in alerts],
                              dtype=np.int64)
        groups: dict[str, list[int]] = defaultdict(list)
        for row, alert in enumerate(alerts):
            groups[alert.enterprise_id].append(row)
        self._rows = {eid: np.array(rows, dtype=np.int64) for eid, rows in groups.items()}
        self.keys = [(a.enterprise_id, a.device_id, a.point) for a in alerts]

    def compatible(self, label: Label) -> npt.NDArray[np.int64]:
        """Rows of the label's enterprise whose device and point agree (null = any)."""
        rows = self._rows.get(label.enterprise_id, np.zeros(0, dtype=np.int64))
        if label.device_id is not None:
            code = self._device_codes.get(label.device_id, -2)
            rows = rows[(self.device[rows] == -1) | (self.device[rows] == code)]
        if label.point is not None:
            code = self._point_codes.get(label.point, -2)
            rows = rows[(self.point[rows] == -1) | (self.point[rows] == code)]
        return rows

    def overlaps(self, rows: npt.NDArray[np.int64], low: float, high: float) -> BoolArray:
        """Whether each closed active interval has a point in ``[low, high)``."""
        return (self.start[rows] < high) & (self.end[rows] >= low)


def _time_precision(table: _AlertTable, positives: Sequence[Label], rules: ScoringRules,
                    span: tuple[float, float]) -> float | None:
    """Alert time inside compatible expanded positive windows / alert time, in the span."""
    start = np.clip(table.start, span[0], span[1])
    end = np.clip(table.end, span[0], span[1])
    total = float((end - start).sum())
    if total <= 0:
        return None
    rows_by_key: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(list)
    for row, key in enumerate(table.keys):
        rows_by_key[key].append(row)
    by_enterprise: dict[str, list[Label]] = defaultdict(list)
    for label in positives:
        by_enterprise[label.enterprise_id].append(label)
    inside = 0.0
    for (enterprise, device, point), rows in rows_by_key.items():
        union = IntervalUnion.of(
            (lb.start - rules.early_tolerance_s, lb.end + rules.late_tolerance_s)
            for lb in by_enterprise.get(enterprise, ())
            if _agrees(lb.device_id, device) and _agrees(lb.point, point))
        index = np.array(rows, dtype=np.int64)
        inside += float(union.measure(start[index], end[index]).sum())
    return inside / total


def _event_free_seconds(labels: Sequence[Label], enterprises: Iterable[str],
                        rules: ScoringRules, span: tuple[float, float]) -> float:
    """Sum over enterprises of span time outside every expanded label of any kind."""
    by_enterprise: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_enterprise[label.enterprise_id].append(label)
    ends = np.array([span[0], span[1]], dtype=np.float64)
    free = 0.0
    for enterprise in enterprises:
        union = IntervalUnion.of(
            (lb.start - rules.early_tolerance_s, lb.end + rules.late_tolerance_s)
            for lb in by_enterprise.get(enterprise, ()))
        covered = union.covered_until(ends)
        free += (span[1] - span[0]) - float(covered[1] - covered[0])
    return free


def _alarm_rates(alerts: Sequence[ScoredAlert], enterprises: int, rules: ScoringRules,
                 span: tuple[float, float]) -> AlarmRates:
    alerts = [a for a in alerts if not a.inhibited]
    hours = (span[1] - span[0]) / 3600.0
    per_hour = len(alerts) / hours if hours > 0 else None
    detected = np.sort(np.array([a.detected_at for a in alerts], dtype=np.float64))
    starts: dict[str, list[float]] = defaultdict(list)
    for alert in alerts:
        starts[alert.fingerprint].append(alert.started_at)
    chattering = sum(
        1 for times in starts.values()
        if max_in_window(np.sort(np.array(times, dtype=np.float64)),
                          rules.chatter_window_s) >= rules.chatter_count)
    return AlarmRates(
        alerts_per_hour=per_hour,
        alerts_per_hour_per_enterprise=(per_hour / enterprises
                                        if per_hour is not None and enterprises else None),
        max_per_10min=max_in_window(detected, rules.flood_window_s),
        chattering=chattering, alerts=len(alerts), hours=hours)


def _default_span(labels: Sequence[Label], alerts: Sequence[ScoredAlert]) -> tuple[float, float]:
    starts = [lb.start for lb in labels] + [a.started_at for a in alerts]
    ends = ([lb.end for lb in labels] + [a.detected_at for a in alerts]
            + [a.resolved_at for a in alerts if a.resolved_at is not None])
    if not starts:
        return (0.0, 0.0)
    return (min(starts), max(*ends, *starts))


def _composite_f1(recall: float | None, precision: float | None) -> float | None:
    if recall is None:
        return None
    if recall == 0.0:
        return 0.0
    if precision is None:
        return None
    return 2.0 * recall * precision / (recall + precision)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _agrees(label_value: str | None, alert_value: str | None) -> bool:
    return label_value is None or alert_value is None or label_value == alert_value


def _code(codes: dict[str, int], value: str | None) -> int:
    if value is None:
        return -1
    return codes.setdefault(value, len(codes))


def _inhibited(evidence: object) -> bool:
    return isinstance(evidence, Mapping) and bool(evidence.get("inhibited_by"))


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
