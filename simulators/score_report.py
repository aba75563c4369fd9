"""Render a :class:`~simulators.scoring.ScoreReport` for testers: a text table or JSON.

The table is what ``riskwatch score`` prints: one row per alert kind, then recall per
scenario, then the ISA-18.2 alarm-rate block.  ``None`` (a zero denominator) prints
as "—" so it cannot be mistaken for a measured zero.  The JSON is
:meth:`ScoreReport.to_json` in its fixed key order, so two runs on the same input
give identical bytes and can be diffed.
"""

from __future__ import annotations

import orjson

from alerting.timefmt import format_ts
from simulators.scoring import KindScore, ScoreReport

MISSING = "—"
"""Shown for a metric whose denominator is zero."""

_COLUMNS: tuple[tuple[str, int], ...] = (
    ("events", 7), ("detected", 9), ("recall", 7), ("alerts", 7), ("precision", 10),
    ("F1c", 6), ("delay med", 13), ("delay p95", 13), ("false/ent/30d", 15),
    ("hard-neg", 9),
)
"""Header and width of every column after the kind; numbers are right-aligned."""


def format_table(report: ScoreReport, *, timezone: str = "Asia/Shanghai") -> str:
    """The fixed-width plain-text report; times of the span in ``timezone``."""
    lines = [*_header(report, timezone), ""]
    kind_width = max([len("kind"), *(len(k.kind) for k in report.kinds)])
    lines.append("kind".ljust(kind_width) + "".join(h.rjust(w) for h, w in _COLUMNS))
    lines.append("-" * (kind_width + sum(w for _, w in _COLUMNS)))
    if not report.kinds:
        lines.append("(no labels and no alerts in the span)")
    for kind in report.kinds:
        cells = _cells(kind)
        lines.append(kind.kind.ljust(kind_width)
                     + "".join(c.rjust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True)))
    lines.extend(_scenarios(report))
    lines.extend(_rates(report))
    return "\n".join(lines) + "\n"


def report_json(report: ScoreReport) -> bytes:
    """``report.to_json()`` as indented UTF-8 JSON with a final newline."""
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n"


def format_duration(seconds: float | None) -> str:
    """Seconds in the two largest units that matter, e.g. ``"4 min 30 s"``.

    >>> [format_duration(s) for s in (0, 42.4, 270, 3600, 7500, 93_600, None)]
    ['0 s', '42 s', '4 min 30 s', '1 h', '2 h 5 min', '1 d 2 h', '—']
    """
    if seconds is None:
        return MISSING
    total = max(0, round(seconds))
    for big, big_name, small, small_name in ((86_400, "d", 3600, "h"), (3600, "h", 60, "min"),
                                             (60, "min", 1, "s")):
        if total >= big:
            whole, rest = divmod(total, big)
            part = rest // small
            return f"{whole} {big_name} {part} {small_name}" if part else f"{whole} {big_name}"
    return f"{total} s"


def _header(report: ScoreReport, timezone: str) -> list[str]:
    start, end = report.span
    rules = report.rules
    return [
        f"span {format_ts(start, timezone)} .. {format_ts(end, timezone)}"
        f" ({report.rates.hours:.1f} h); {report.enterprises} enterprises,"
        f" {report.labels} labels, {report.alerts} alerts",
        f"matching: alert may start {format_duration(rules.early_tolerance_s)} early"
        f" and up to {format_duration(rules.late_tolerance_s)} after the label ends",
    ]


def _cells(kind: KindScore) -> list[str]:
    return [
        str(kind.events), str(kind.detected), _number(kind.event_recall, 3),
        str(kind.alerts), _number(kind.event_precision, 3), _number(kind.composite_f1, 3),
        format_duration(kind.delay_median_s), format_duration(kind.delay_p95_s),
        _number(kind.false_per_enterprise_30d, 2), str(kind.hard_negative_violations),
    ]


def _scenarios(report: ScoreReport) -> list[str]:
    rows = [(kind.kind, name, events, detected)
            for kind in report.kinds
            for name, (events, detected) in kind.by_scenario.items()]
    if not rows:
        return []
    width = max(len(f"{kind} / {name}") for kind, name, _, _ in rows)
    lines = ["", "recall by scenario (positive labels):"]
    for kind, name, events, detected in rows:
        recall = _number(detected / events if events else None, 3)
        lines.append(f"  {f'{kind} / {name}'.ljust(width)}  {detected:>5}/{events:<5}"
                     f"  recall {recall}")
    return lines


def _rates(report: ScoreReport) -> list[str]:
    rates, rules = report.rates, report.rules
    return [
        "",
        "alarm rates (ISA-18.2, all kinds):",
        f"  alerts                    {rates.alerts} in {rates.hours:.1f} h",
        f"  alerts per hour           {_number(rates.alerts_per_hour, 3)}",
        f"  per hour per enterprise   {_number(rates.alerts_per_hour_per_enterprise, 3)}",
        f"  max per {format_duration(rules.flood_window_s):<18}{rates.max_per_10min}"
        "  (ISA-18.2 flood: more than 10 per 10 min)",
        f"  chattering fingerprints   {rates.chattering}"
        f"  (>= {rules.chatter_count} starts in {format_duration(rules.chatter_window_s)};"
        " target 0)",
    ]


def _number(value: float | None, decimals: int) -> str:
    return MISSING if value is None else f"{value:.{decimals}f}"
