"""Score report rendering: the table testers read and the JSON they diff."""

from __future__ import annotations

import orjson

from simulators.labels import Label
from simulators.score_report import MISSING, format_duration, format_table, report_json
from simulators.scoring import ScoredAlert, ScoreReport, score

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
HOUR = 3600.0


def small_report() -> ScoreReport:
    labels = [
        Label("E1", None, "hidden_operation", T0, T0 + 8 * HOUR, "hidden_operation.full"),
        Label("E1", None, "hidden_operation", T0 + 24 * HOUR, T0 + 30 * HOUR,
              "hidden_operation.night_only"),
        Label("E2", None, "fake_offline", T0 + 40 * HOUR, T0 + 44 * HOUR,
              "negative.power_outage", negative=True),
    ]
    alerts = [
        ScoredAlert("a1", "E1", None, None, "hidden_operation", 2,
                    T0 + 600, T0 + 870, T0 + 8 * HOUR),
        ScoredAlert("a2", "E2", "GW", None, "fake_offline", 3,
                    T0 + 41 * HOUR, T0 + 41 * HOUR + 100, T0 + 42 * HOUR),
    ]
    return score(labels, alerts, span=(T0, T0 + 7 * 24 * HOUR))


def test_table_has_one_aligned_row_per_kind_with_dashes_for_undefined() -> None:
    text = format_table(small_report())
    lines = text.splitlines()

    header = next(line for line in lines if line.startswith("kind"))
    fake = next(line for line in lines if line.startswith("fake_offline"))
    hidden = next(line for line in lines if line.startswith("hidden_operation "))
    assert len(header) == len(fake) == len(hidden)  # fixed width
    assert hidden.split()[1:7] == ["2", "1", "0.500", "1", "1.000", "0.667"]
    assert "4 min 30 s" in hidden  # delay 270 s, median and p95
    assert fake.split()[3] == MISSING  # no events: recall undefined
    assert fake.split()[-1] == "1"  # one hard-negative violation
    assert "2026-11-24T08:00:00+08:00" in lines[0]
    assert "168.0 h" in lines[0]


def test_table_lists_recall_per_scenario_and_alarm_rates() -> None:
    text = format_table(small_report())

    assert "hidden_operation / hidden_operation.full" in text
    assert "0/1" in text
    assert "recall 0.000" in text
    assert "alerts per hour           0.012" in text  # 2 alerts in 168 h
    assert "max per 10 min            1" in text
    assert "chattering fingerprints   0" in text


def test_empty_report_renders_without_errors() -> None:
    text = format_table(score([], []))

    assert "(no labels and no alerts in the span)" in text
    assert f"alerts per hour           {MISSING}" in text


def test_report_json_is_deterministic_and_parses_back() -> None:
    first, second = report_json(small_report()), report_json(small_report())

    assert first == second
    assert first.endswith(b"\n")
    assert orjson.loads(first) == small_report().to_json()


def test_durations_read_in_two_units() -> None:
    assert format_duration(59.6) == "1 min"
    assert format_duration(3599) == "59 min 59 s"
    assert format_duration(-3) == "0 s"
