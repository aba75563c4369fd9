"""Scoring: hand-made labels and alerts, each test one short story of the matching rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import Alert, Subject, alert_id, fingerprint
from gateway.registry import Registry
from gateway.replay import ReplayOptions, replay_recording
from simulators.basic import BasicSimulator, Excursion, Outage
from simulators.labels import Label
from simulators.score_report import report_json
from simulators.scoring import (
    THIRTY_DAYS_S,
    KindScore,
    ScoredAlert,
    ScoreReport,
    ScoringRules,
    load_alerts,
    score,
)

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
HOUR = 3600.0


def label(start: float, end: float, kind: str = "hidden_operation", *, enterprise: str = "E1",
          device: str | None = None, point: str | None = None, scenario: str | None = None,
          negative: bool = False) -> Label:
    """A label from offsets in seconds after T0."""
    return Label(enterprise, device, kind, T0 + start, T0 + end, scenario, negative, point)


def alert(started: float, detected: float | None = None, resolved: float | None = None,
          kind: str = "hidden_operation", *, enterprise: str = "E1", device: str | None = None,
          point: str | None = None, ident: str | None = None) -> ScoredAlert:
    """An alert from offsets in seconds after T0; detected defaults to started + 60 s."""
    detected = started + 60.0 if detected is None else detected
    return ScoredAlert(
        id=ident or f"{kind}:{enterprise}:{device}:{point}:{started}",
        enterprise_id=enterprise, device_id=device, point=point, kind=kind, level=2,
        started_at=T0 + started, detected_at=T0 + detected,
        resolved_at=None if resolved is None else T0 + resolved)


def only(report: ScoreReport, kind: str = "hidden_operation") -> KindScore:
    rows = [row for row in report.kinds if row.kind == kind]
    assert len(rows) == 1, report.kinds
    return rows[0]


def test_perfect_detection_scores_one_everywhere() -> None:
    report = score([label(0, HOUR, scenario="hidden_operation.full")],
                   [alert(60, 120, HOUR)])

    row = only(report)
    assert (row.events, row.detected, row.alerts, row.true_alerts) == (1, 1, 1, 1)
    assert row.event_recall == row.event_precision == row.composite_f1 == 1.0
    assert row.delay_median_s == row.delay_p95_s == 120.0
    assert row.false_alerts == 0
    assert row.hard_negative_violations == 0
    assert row.by_scenario == {"hidden_operation.full": (1, 1)}
    assert report.span == (T0, T0 + HOUR)
    assert (report.enterprises, report.labels, report.alerts) == (1, 1, 1)


def test_missed_event_has_recall_zero_and_no_precision() -> None:
    report = score([label(0, HOUR, scenario="hidden_operation.night_only")], [])

    row = only(report)
    assert (row.events, row.detected, row.alerts) == (1, 0, 0)
    assert row.event_recall == 0.0
    assert row.event_precision is None  # no alerts: nothing to be precise about
    assert row.composite_f1 == 0.0  # a silent detector scores 0, not "—"
    assert row.delay_median_s is None
    assert row.by_scenario == {"hidden_operation.night_only": (1, 0)}


def test_false_alert_counts_against_precision_and_per_30_days() -> None:
    span = (T0, T0 + THIRTY_DAYS_S)
    report = score([label(0, HOUR)],
                   [alert(60, 120, HOUR), alert(5 * HOUR, 5 * HOUR + 60, 6 * HOUR)], span=span)

    row = only(report)
    assert row.event_precision == 0.5
    assert (row.true_alerts, row.false_alerts) == (1, 1)
    # Event-free time: 30 days minus the label expanded by the tolerances, clipped to
    # the span: [T0 - 5 min, T0 + 1 h + 1 h) -> 2 h inside the span.
    free = THIRTY_DAYS_S - 2 * HOUR
    assert row.false_per_enterprise_30d == pytest.approx(1 / (free / THIRTY_DAYS_S))


def test_an_alert_after_the_late_tolerance_is_false() -> None:
    report = score([label(0, HOUR)], [alert(2 * HOUR + 1)])  # window ends at 2 h

    assert only(report).detected == 0
    assert only(report).false_alerts == 1


def test_one_alert_detects_two_overlapping_events() -> None:
    labels = [label(0, HOUR, "interlock_violation", device="DC1"),
              label(200, 2 * HOUR, "interlock_violation", device="DC2")]
    report = score(labels, [alert(300, 360, 2 * HOUR, "interlock_violation")])

    row = only(report, "interlock_violation")
    assert (row.events, row.detected, row.alerts, row.true_alerts) == (2, 2, 1, 1)
    assert row.delay_median_s == pytest.approx((360 + 160) / 2)


def test_an_alert_raised_before_a_later_overlapping_event_does_not_detect_it() -> None:
    labels = [label(0, HOUR, "interlock_violation", device="DC1"),
              label(HOUR / 2, 2 * HOUR, "interlock_violation", device="DC2")]
    report = score(labels, [alert(300, 360, 2 * HOUR, "interlock_violation")])

    row = only(report, "interlock_violation")
    assert (row.events, row.detected) == (2, 1)  # raised 24 min before DC2's event began


def test_duplicate_alerts_of_one_event_are_true_but_chatter() -> None:
    starts = (100.0, 120.0, 150.0)  # three starts of one fingerprint within 60 s
    report = score([label(0, HOUR, "threshold", device="DC1", point="dp")],
                   [alert(s, s + 5, s + 10, "threshold", device="DC1", point="dp")
                    for s in starts])

    row = only(report, "threshold")
    assert (row.events, row.detected, row.alerts, row.true_alerts) == (1, 1, 3, 3)
    assert row.event_recall == row.event_precision == 1.0
    assert row.delay_median_s == 105.0
    assert report.rates.chattering == 1


def test_starts_spread_wider_than_the_chatter_window_do_not_chatter() -> None:
    starts = (100.0, 130.0, 160.0)  # 100 and 160 are exactly 60 s apart: not within
    report = score([label(0, HOUR, "threshold")],
                   [alert(s, s + 5, s + 10, "threshold") for s in starts])

    assert report.rates.chattering == 0


@pytest.mark.parametrize(
    ("started", "detected", "detects"),
    [
        (-200.0, -100.0, True),    # within the 5 min early tolerance
        (-600.0, -299.0, True),    # started early, detected just inside the tolerance
        (-600.0, -400.0, False),   # detected 400 s before the event: not a detection of it
        (-7200.0, -7000.0, False),  # raised long before and still open across the event
    ],
)
def test_early_alerts_match_only_within_the_tolerance(
    started: float, detected: float, detects: bool
) -> None:
    report = score([label(0, HOUR)], [alert(started, detected, None)],
                   span=(T0 - 2 * HOUR, T0 + 2 * HOUR))

    row = only(report)
    assert row.detected == int(detects)
    assert row.false_alerts == int(not detects)
    if detects:
        assert row.delay_median_s == 0.0  # early but on time: clamped at zero


def test_alert_still_open_at_span_end_is_active_until_span_end() -> None:
    span = (T0, T0 + 3 * HOUR)
    report = score([label(0, HOUR)], [alert(600, 660, None)], span=span)

    row = only(report)
    assert row.detected == 1
    # Active [600 s, 3 h]; the tolerance-expanded label covers it up to 2 h.
    time_precision = (2 * HOUR - 600) / (3 * HOUR - 600)
    assert row.time_precision == pytest.approx(time_precision)
    assert row.composite_f1 == pytest.approx(2 * time_precision / (1 + time_precision))


@pytest.mark.parametrize(
    ("label_device", "alert_device", "detects"),
    [
        ("DC1", None, True),   # a site-level alert detects a device-level event
        (None, "DC1", True),   # a device-level alert detects a site-level event
        ("DC1", "DC1", True),
        ("DC1", "DC2", False),  # the right kind on the wrong device is a false alert
    ],
)
def test_device_must_agree_only_when_both_sides_name_one(
    label_device: str | None, alert_device: str | None, detects: bool
) -> None:
    report = score([label(0, HOUR, "fake_offline", device=label_device)],
                   [alert(60, 120, HOUR, "fake_offline", device=alert_device)])

    assert only(report, "fake_offline").detected == int(detects)


def test_point_must_agree_when_both_sides_name_one() -> None:
    labels = [label(0, HOUR, "threshold", device="DC1", point="dp")]
    report = score(labels, [alert(60, 120, HOUR, "threshold", device="DC1", point="hopper_temp")])

    assert only(report, "threshold").detected == 0


def test_alert_during_a_hard_negative_is_a_violation() -> None:
    labels = [label(0, HOUR, "fake_offline", device="GW1", negative=True,
                    scenario="negative.power_outage")]
    report = score(labels, [alert(600, 700, 1200, "fake_offline"),
                            alert(600, 700, 1200, "device_offline", device="GW1")])

    row = only(report, "fake_offline")
    assert (row.events, row.alerts, row.false_alerts, row.hard_negative_violations) == (0, 1, 1, 1)
    assert row.event_recall is None
    assert row.event_precision == 0.0
    assert row.composite_f1 is None
    assert row.by_scenario == {}
    assert only(report, "device_offline").hard_negative_violations == 0  # another kind


def test_hard_negative_outside_the_alert_is_no_violation() -> None:
    labels = [label(0, HOUR, "fake_offline", negative=True)]
    report = score(labels, [alert(HOUR, HOUR + 60, 2 * HOUR, "fake_offline")])  # ends at 1 h

    assert only(report, "fake_offline").hard_negative_violations == 0


def test_enterprise_filter_ignores_other_enterprises() -> None:
    labels = [label(0, HOUR), label(0, HOUR, enterprise="E2")]
    alerts = [alert(60), alert(60, enterprise="E2"), alert(9 * HOUR, enterprise="E3")]
    report = score(labels, alerts, enterprises=["E1", "E4"])

    row = only(report)
    assert (row.events, row.detected, row.alerts) == (1, 1, 1)
    assert report.enterprises == 2  # E4 is monitored, it just had nothing to say
    assert (report.labels, report.alerts) == (1, 1)


def test_event_free_time_counts_quiet_enterprises_and_any_labelled_kind() -> None:
    span = (T0, T0 + 10 * HOUR)
    labels = [label(2 * HOUR, 3 * HOUR, "threshold", negative=True)]  # E1: 2 h 5 min labelled
    report = score(labels, [alert(6 * HOUR)], span=span, enterprises=["E1", "E2"])

    free = (10 * HOUR - (2 * HOUR + 300)) + 10 * HOUR
    assert only(report).false_per_enterprise_30d == pytest.approx(1 / (free / THIRTY_DAYS_S))


def test_zero_denominators_are_none_never_nan() -> None:
    empty = score([], [])
    assert empty.kinds == []
    assert empty.rates.alerts_per_hour is None
    assert empty.rates.alerts_per_hour_per_enterprise is None
    assert (empty.rates.max_per_10min, empty.rates.chattering, empty.rates.hours) == (0, 0, 0.0)

    alerts_only = only(score([], [alert(0, 0, 0)]))  # a single instantaneous alert
    assert alerts_only.event_recall is None
    assert alerts_only.event_precision == 0.0
    assert alerts_only.time_precision is None  # no alert time at all
    assert alerts_only.composite_f1 is None
    assert alerts_only.false_per_enterprise_30d is None  # zero-length span: no free time


def test_delay_median_and_p95_on_known_delays() -> None:
    delays = [0.0, 60.0, 120.0, 180.0, 240.0]
    labels = [label(i * 10 * HOUR, i * 10 * HOUR + HOUR) for i in range(5)]
    alerts = [alert(i * 10 * HOUR, i * 10 * HOUR + d, i * 10 * HOUR + HOUR)
              for i, d in enumerate(delays)]
    row = only(score(labels, alerts))

    assert row.delay_median_s == 120.0
    assert row.delay_p95_s == pytest.approx(180.0 + 0.8 * 60.0)  # linear interpolation


def test_delay_uses_the_earliest_detected_matching_alert() -> None:
    alerts = [alert(100, 900, HOUR, device="A"), alert(200, 300, HOUR, device="B")]
    assert only(score([label(0, HOUR)], alerts)).delay_median_s == 300.0


def test_composite_f1_on_a_hand_computed_case() -> None:
    rules = ScoringRules(early_tolerance_s=0.0, late_tolerance_s=0.0)
    labels = [label(0, 1000), label(5000, 6000)]
    alerts = [alert(500, 600, 1500),    # detects the first label; 500 of 1000 s inside
              alert(8000, 8100, 9000)]  # false; 0 of 1000 s inside
    row = only(score(labels, alerts, rules=rules))

    assert row.event_recall == 0.5
    assert row.event_precision == 0.5
    assert row.time_precision == pytest.approx(500 / 2000)
    assert row.composite_f1 == pytest.approx(2 * 0.5 * 0.25 / (0.5 + 0.25))  # = 1/3


def test_max_per_10_min_counts_a_burst_exactly() -> None:
    burst = [alert(1000 + 20 * i, 1000 + 20 * i, None, "threshold", point=f"p{i}")
             for i in range(12)]                       # 12 detections within 220 s
    edge = [alert(t, t, t + 1, "flatline") for t in (5000.0, 5600.0)]  # exactly 10 min apart
    report = score([], burst + edge, span=(T0, T0 + 10 * HOUR))

    assert report.rates.max_per_10min == 12
    assert report.rates.alerts == 14
    assert report.rates.alerts_per_hour == pytest.approx(1.4)
    assert report.rates.alerts_per_hour_per_enterprise == pytest.approx(1.4)
    assert report.rates.chattering == 0  # twelve fingerprints, one start each


def test_alerts_detected_outside_the_span_are_not_scored() -> None:
    span = (T0, T0 + 2 * HOUR)
    report = score([label(0, HOUR)], [alert(60), alert(3 * HOUR)], span=span)

    assert report.alerts == 1
    assert only(report).false_alerts == 0


def test_invalid_span_and_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="span ends before it starts"):
        score([], [], span=(T0, T0 - 1))
    with pytest.raises(ValueError, match="negative"):
        ScoringRules(early_tolerance_s=-1)


def _wire_alert(started: float, detected: float, resolved: float | None,
                *, state: str = "resolved") -> Alert:
    subject = Subject("E370829001", "示例", "dust", ("370000",), "Asia/Shanghai",
                      device_id="DC1", device_kind="dust_collector", point="dp",
                      point_kind="differential_pressure", unit="Pa")
    fp = fingerprint("threshold", "E370829001", "DC1", "dp")
    return Alert(id=alert_id(fp, started), fingerprint=fp, kind="threshold", subject=subject,
                 level=2, state=state, started_at=started, detected_at=detected,
                 resolved_at=resolved, updated_at=resolved or detected, title="压差高",
                 evidence={"rule": "hihi"})


def test_load_alerts_reads_the_replay_format(tmp_path: Path) -> None:
    first = _wire_alert(T0 + 600, T0 + 630.5, T0 + 1200)
    still_open = _wire_alert(T0 + 4000, T0 + 4030, None, state="firing")
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(a.to_json()) + b"\n" for a in (first, still_open)))

    alerts = load_alerts(path)

    assert [a.id for a in alerts] == [first.id, still_open.id]
    assert alerts[0].started_at == T0 + 600
    assert alerts[0].detected_at == T0 + 630.5
    assert alerts[0].resolved_at == T0 + 1200
    assert alerts[1].resolved_at is None
    assert alerts[0].fingerprint == first.fingerprint
    assert (alerts[0].device_id, alerts[0].point, alerts[0].level) == ("DC1", "dp", 2)


def test_load_alerts_accepts_contract_minimum_and_keeps_the_last_state(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "enterprise_id": "E1", "kind": "hidden_operation",
         "started_at": 1_795_478_400_000, "detected_at": 1_795_478_460_000},  # epoch ms
        {"id": "a", "enterprise_id": "E1", "kind": "hidden_operation",
         "started_at": 1_795_478_400_000, "detected_at": 1_795_478_460_000,
         "resolved_at": "2026-11-24T09:00:00+08:00"},
    ]
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n")

    (only_alert,) = load_alerts(path)

    assert only_alert.resolved_at == T0 + HOUR
    assert only_alert.device_id is None
    assert only_alert.fingerprint == fingerprint("hidden_operation", "E1", None, None)


@pytest.mark.parametrize(
    "bad",
    [b"{not json", b'{"id": "x", "enterprise_id": "E1", "kind": "threshold"}',
     b'{"id": "x", "enterprise_id": "E1", "kind": "k", "started_at": "08:00",'
     b' "detected_at": "08:00"}', b"[1, 2]"],
)
def test_load_alerts_names_file_and_line_of_a_bad_line(tmp_path: Path, bad: bytes) -> None:
    good = orjson.dumps(_wire_alert(T0, T0 + 30, None).to_json())
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(good + b"\n\n" + bad + b"\n")

    with pytest.raises(ValueError, match=r"alerts\.jsonl:3: not an alert"):
        load_alerts(path)


def test_to_json_round_trips_through_report_json() -> None:
    report = score([label(0, HOUR, scenario="s1"), label(0, HOUR, "fake_offline", negative=True)],
                   [alert(60, 120, HOUR), alert(100, 200, 300, "fake_offline")])

    body = report.to_json()
    assert orjson.loads(report_json(report)) == body
    assert report_json(report) == report_json(score(
        [label(0, HOUR, scenario="s1"), label(0, HOUR, "fake_offline", negative=True)],
        [alert(60, 120, HOUR), alert(100, 200, 300, "fake_offline")]))
    assert list(body) == ["span", "enterprises", "labels", "alerts", "rules", "kinds", "rates"]
    assert body["span"] == {"start": "2026-11-24T08:00:00+08:00",
                            "end": "2026-11-24T09:00:00+08:00", "hours": 1.0}
    assert [k["kind"] for k in body["kinds"]] == ["fake_offline", "hidden_operation"]
    hidden = body["kinds"][1]
    assert hidden["by_scenario"] == {"s1": {"events": 1, "detected": 1, "recall": 1.0}}
    assert hidden["delay_median_s"] == 120.0
    assert body["kinds"][0]["event_recall"] is None
    assert set(body["rates"]) == {"alerts_per_hour", "alerts_per_hour_per_enterprise",
                                  "max_per_10min", "chattering", "alerts", "hours"}
    assert body["rules"]["late_tolerance_s"] == 3600.0


def test_replayed_alerts_score_against_the_injected_incidents(
    tmp_path: Path, small_registry: Registry
) -> None:
    """End to end: simulate two incidents, replay them, score the real alert file."""
    incidents: list[Excursion | Outage] = [Excursion("DC1", "dp", T0 + 600, T0 + 1200, 2300.0),
                                           Outage("GD-CO1", T0 + 1800, T0 + 2400)]
    simulator = BasicSimulator(small_registry.spec, seed=3, incidents=incidents)
    recording = tmp_path / "rec.jsonl"
    with recording.open("wb") as out:
        for topic, payload in simulator.messages(T0, T0 + HOUR):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
    alerts_path = tmp_path / "alerts.jsonl"
    replay_recording(small_registry, recording, alerts_path,
                     options=ReplayOptions(progress=False))
    labels = [Label("E370829001", "DC1", "threshold", T0 + 600, T0 + 1200, point="dp"),
              Label("E320583002", "GD-CO1", "device_offline", T0 + 1800, T0 + 2400)]

    report = score(labels, load_alerts(alerts_path), span=(T0, T0 + HOUR))

    for row in report.kinds:
        assert (row.event_recall, row.event_precision) == (1.0, 1.0), row
        assert row.delay_median_s is not None
        assert 0 < row.delay_median_s < 60, row  # on-delays of about 30 s
    assert report.enterprises == 2


_times = st.floats(min_value=0, max_value=20 * HOUR, allow_nan=False)


@st.composite
def _labels(draw: st.DrawFn) -> Label:
    start = draw(_times)
    return label(start, start + draw(st.floats(min_value=1, max_value=5 * HOUR)),
                 draw(st.sampled_from(["threshold", "fake_offline"])),
                 enterprise=draw(st.sampled_from(["E1", "E2"])),
                 device=draw(st.sampled_from([None, "D1", "D2"])),
                 negative=draw(st.booleans()))


@st.composite
def _alerts(draw: st.DrawFn) -> ScoredAlert:
    started = draw(_times)
    detected = started + draw(st.floats(min_value=0, max_value=HOUR))
    open_ = draw(st.booleans())
    return alert(started, detected,
                 None if open_ else detected + draw(st.floats(min_value=0, max_value=HOUR)),
                 draw(st.sampled_from(["threshold", "fake_offline", "flatline"])),
                 enterprise=draw(st.sampled_from(["E1", "E2", "E3"])),
                 device=draw(st.sampled_from([None, "D1", "D2"])),
                 ident=str(draw(st.uuids())))


@settings(max_examples=200, deadline=None)
@given(st.lists(_labels(), max_size=8), st.lists(_alerts(), max_size=12))
def test_rates_stay_within_bounds(labels: list[Label], alerts: list[ScoredAlert]) -> None:
    report = score(labels, alerts)

    for row in report.kinds:
        assert 0 <= row.detected <= row.events
        assert 0 <= row.true_alerts <= row.alerts
        assert row.hard_negative_violations <= row.false_alerts
        for value in (row.event_recall, row.event_precision, row.time_precision,
                      row.composite_f1):
            assert value is None or 0.0 <= value <= 1.0 + 1e-12
        assert sum(n for n, _ in row.by_scenario.values()) == row.events
    assert report.rates.max_per_10min <= report.alerts


def test_inhibited_alerts_count_for_recall_but_not_as_alarms() -> None:
    parent = alert(60, 1860, 2 * HOUR, kind="fake_offline")
    covered = ScoredAlert.from_json({
        "id": "child", "enterprise_id": "E1", "device_id": "DC1", "point": None,
        "kind": "device_offline", "started_at": int((T0 + 60) * 1000),
        "detected_at": int((T0 + 150) * 1000), "resolved_at": None,
        "evidence": {"rule": "silence", "inhibited_by": "parent-id"}})
    report = score([label(0, 2 * HOUR, "fake_offline"),
                    label(0, 2 * HOUR, "device_offline", device="DC1")], [parent, covered])

    assert covered.inhibited
    assert not parent.inhibited
    assert only(report, "device_offline").detected == 1
    assert report.rates.alerts == 1
