"""InterlockDetector: fan, cooling and leak rules judged at sweeps on the latest values,
with on-delay, deadband and stale inputs holding the state."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import QUALITY_CODES, ConditionChanges, SampleBatch
from detectors.interlock import COOLING, FAN, LEAK, InterlockDetector
from tests.detectors.change_rows import Row
from tests.detectors.change_rows import rows as _rows

NAN = math.nan


def rows(changes: ConditionChanges) -> list[Row]:
    """Leak shortfalls are computed ratios: compared to 6 digits."""
    return _rows(changes, digits=6)


LINE, FAN_RUN = 0, 1  # fan rule points: line power (kW, 60 s), fan run state (30 s)
FURNACE, FLOW_IN, OTHER = 0, 1, 2  # furnace power (60 s); flows and pressure (10 s)


def send(det: InterlockDetector, ts: float, values: dict[int, float],
         quality: dict[int, int] | None = None) -> None:
    """One sample per point, all at ``ts``."""
    points = list(values)
    q = [(quality or {}).get(p, 0) for p in points]
    det.update(SampleBatch.from_arrays(points, [ts] * len(points), list(values.values()), q))


def sweeps(det: InterlockDetector, *instants: float) -> list[Row]:
    return [row for now in instants for row in rows(det.sweep(now))]


def fan_rule(on_delay_s: float = 60.0) -> InterlockDetector:
    """A 90 kW line (on above 18 kW) and its dust collector's fan."""
    return InterlockDetector(
        kind=[FAN], power_point=[LINE], power_on_kw=[18.0], guard_point=[FAN_RUN],
        guard_limit=[0.5], other_point=[-1], other_limit=[NAN], subject=[FAN_RUN],
        point_interval_s=[60.0, 30.0], on_delay_s=on_delay_s)


def cooling_rule(*, pressure: bool = True) -> InterlockDetector:
    """A 750 kW furnace (heating above 75 kW), coil inlet flow lo 12 m³/h, pressure lo
    0.2 MPa."""
    return InterlockDetector(
        kind=[COOLING], power_point=[FURNACE], power_on_kw=[75.0], guard_point=[FLOW_IN],
        guard_limit=[12.0], other_point=[OTHER if pressure else -1],
        other_limit=[0.2 if pressure else NAN], subject=[FLOW_IN],
        point_interval_s=[60.0, 10.0, 10.0], on_delay_s=30.0)


def leak_rule() -> InterlockDetector:
    """The same furnace (energised above 11.25 kW); water flowing above 6 m³/h; outlet
    short of inlet by more than 8 % is a leak."""
    return InterlockDetector(
        kind=[LEAK], power_point=[FURNACE], power_on_kw=[11.25], guard_point=[FLOW_IN],
        guard_limit=[6.0], other_point=[OTHER], other_limit=[0.08], subject=[OTHER],
        point_interval_s=[60.0, 10.0, 10.0], on_delay_s=30.0)


# --- fan ----------------------------------------------------------------------------------


def test_fan_off_while_the_line_runs_fires_after_the_on_delay() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 1.0})
    assert sweeps(det, 5.0) == []

    send(det, 30.0, {LINE: 61.0, FAN_RUN: 0.0})

    assert sweeps(det, 35.0, 60.0, 85.0) == []
    assert sweeps(det, 90.0) == [(0, 90.0, 30.0, 1, 0.0, 0.5)]
    assert det.active.tolist() == [True]
    assert sweeps(det, 95.0, 120.0) == []  # once per violation


def test_the_violation_starts_when_the_second_condition_comes_true() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 2.0, FAN_RUN: 0.0})  # line idle, fan off: fine
    assert sweeps(det, 5.0, 30.0) == []

    send(det, 60.0, {LINE: 70.0, FAN_RUN: 0.0})

    assert sweeps(det, 65.0, 115.0) == []
    assert sweeps(det, 120.0) == [(0, 120.0, 60.0, 1, 0.0, 0.5)]


def test_no_violation_with_the_fan_on_or_the_line_idle() -> None:
    det = fan_rule(on_delay_s=0.0)

    send(det, 0.0, {LINE: 90.0, FAN_RUN: 1.0})
    send(det, 30.0, {LINE: 18.0, FAN_RUN: 0.0})  # exactly at the on limit: not running

    assert sweeps(det, 5.0, 35.0, 60.0, 600.0) == []
    assert det.active.tolist() == [False]


def test_clears_at_the_first_sweep_where_the_fan_runs_again() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 0.0})
    assert [r[3] for r in sweeps(det, 0.0, 60.0)] == [1]

    send(det, 100.0, {FAN_RUN: 1.0})

    assert sweeps(det, 105.0) == [(0, 105.0, 105.0, 0, 1.0, -999.0)]
    assert det.active.tolist() == [False]


def test_clears_when_the_line_stops() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 0.0})
    sweeps(det, 0.0, 60.0)

    send(det, 90.0, {LINE: 1.0, FAN_RUN: 0.0})

    assert [r[3] for r in sweeps(det, 90.0)] == [0]


def test_a_violation_broken_before_the_on_delay_starts_over() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 0.0})
    assert sweeps(det, 0.0, 30.0) == []
    send(det, 40.0, {FAN_RUN: 1.0})
    assert sweeps(det, 45.0) == []

    send(det, 70.0, {FAN_RUN: 0.0})

    assert sweeps(det, 75.0, 125.0) == []
    assert sweeps(det, 130.0) == [(0, 130.0, 70.0, 1, 0.0, 0.5)]


# --- staleness ----------------------------------------------------------------------------


def test_a_stale_side_holds_the_state_until_both_sides_are_fresh() -> None:
    det = cooling_rule()
    send(det, 0.0, {FURNACE: 600.0, FLOW_IN: 11.0, OTHER: 0.3})
    sweeps(det, 0.0, 30.0)

    # The flow recovers, but the pressure transmitter (10 s) has been silent for 50 s.
    send(det, 50.0, {FLOW_IN: 14.0})
    assert sweeps(det, 50.0) == []
    send(det, 55.0, {OTHER: 0.3})
    assert [r[3] for r in sweeps(det, 55.0)] == [0]


def test_stale_inputs_hold_an_active_violation() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 0.0})
    sweeps(det, 0.0, 60.0)

    # No data for an hour: the alert stays, whatever the sweeps.
    assert sweeps(det, 120.0, 600.0, 3600.0) == []
    # The fan reports running but the line's meter is still silent: not judged.
    send(det, 3600.0, {FAN_RUN: 1.0})
    assert sweeps(det, 3605.0) == []
    assert det.active.tolist() == [True]
    # Both sides fresh again.
    send(det, 3610.0, {LINE: 60.0})
    assert [r[3] for r in sweeps(det, 3615.0)] == [0]


def test_a_violation_seen_only_in_stale_data_does_not_fire() -> None:
    det = fan_rule()
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 0.0})

    # The first sweep comes when the fan's last sample (30 s interval) is 100 s old.
    assert sweeps(det, 100.0, 200.0, 1000.0) == []
    assert det.active.tolist() == [False]


def test_idle_sweeps_report_nothing() -> None:
    det = fan_rule()

    assert sweeps(det, 0.0, 1e9) == []


# --- inputs -------------------------------------------------------------------------------


def test_a_stopped_flag_is_a_real_reading_and_a_fault_is_ignored() -> None:
    det = fan_rule(on_delay_s=0.0)
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 1.0})
    sweeps(det, 0.0)

    send(det, 10.0, {FAN_RUN: 0.0}, quality={FAN_RUN: QUALITY_CODES["D"]})
    assert sweeps(det, 10.0) == []
    send(det, 20.0, {FAN_RUN: 0.0}, quality={FAN_RUN: QUALITY_CODES["F"]})

    assert [r[3] for r in sweeps(det, 20.0)] == [1]
    assert det.samples_ignored == 1


def test_the_latest_sample_wins_and_late_or_duplicate_ones_do_not() -> None:
    det = fan_rule(on_delay_s=0.0)
    det.update(SampleBatch.from_arrays(
        [LINE, FAN_RUN, FAN_RUN, FAN_RUN], [10.0, 20.0, 20.0, 5.0], [60.0, 1.0, 0.0, 0.0]))

    assert det.latest(FAN_RUN) == (20.0, 1.0)  # first arrival of ts 20
    assert sweeps(det, 20.0) == []
    send(det, 15.0, {FAN_RUN: 0.0})  # older than what is held
    assert det.latest(FAN_RUN) == (20.0, 1.0)
    assert sweeps(det, 25.0) == []


def test_nan_values_are_ignored_and_counted() -> None:
    det = fan_rule(on_delay_s=0.0)
    send(det, 0.0, {LINE: 60.0, FAN_RUN: 1.0})

    det.update(SampleBatch.from_arrays([FAN_RUN, LINE, LINE], [10.0, NAN, 10.0],
                                       [NAN, 60.0, math.inf]))

    assert det.latest(FAN_RUN) == (0.0, 1.0)
    assert det.samples_ignored == 3
    assert sweeps(det, 10.0) == []


# --- cooling ------------------------------------------------------------------------------


def test_low_cooling_flow_while_heating_fires_and_needs_the_deadband_to_clear() -> None:
    det = cooling_rule()
    send(det, 0.0, {FURNACE: 600.0, FLOW_IN: 11.5, OTHER: 0.3})
    assert sweeps(det, 0.0, 25.0) == []
    assert sweeps(det, 30.0) == [(0, 30.0, 0.0, 1, 11.5, 12.0)]

    send(det, 40.0, {FLOW_IN: 12.3, OTHER: 0.3})  # above lo, inside the 5 % deadband
    assert sweeps(det, 40.0) == []
    send(det, 50.0, {FLOW_IN: 12.7, OTHER: 0.3})

    assert sweeps(det, 50.0) == [(0, 50.0, 50.0, 0, 12.7, -999.0)]


def test_low_pressure_alone_is_a_cooling_violation() -> None:
    det = cooling_rule()
    send(det, 0.0, {FURNACE: 600.0, FLOW_IN: 20.0, OTHER: 0.15})

    assert [r[3] for r in sweeps(det, 0.0, 30.0)] == [1]
    send(det, 40.0, {FLOW_IN: 20.0, OTHER: 0.205})
    assert sweeps(det, 40.0) == []
    send(det, 50.0, {FLOW_IN: 20.0, OTHER: 0.22})
    assert [r[3] for r in sweeps(det, 50.0)] == [0]


def test_holding_or_pouring_power_is_not_heating() -> None:
    det = cooling_rule(pressure=False)
    send(det, 0.0, {FURNACE: 30.0, FLOW_IN: 2.0})  # pump after-run, furnace holding

    assert sweeps(det, 0.0, 30.0, 60.0) == []


def test_a_cooling_rule_without_pressure_judges_flow_alone() -> None:
    det = cooling_rule(pressure=False)
    send(det, 0.0, {FURNACE: 600.0, FLOW_IN: 13.0})
    assert sweeps(det, 0.0, 30.0) == []

    send(det, 40.0, {FLOW_IN: 10.0})

    assert sweeps(det, 40.0, 70.0) == [(0, 70.0, 40.0, 1, 10.0, 12.0)]


# --- leak ---------------------------------------------------------------------------------


def test_outlet_short_of_inlet_while_energised_is_a_leak() -> None:
    det = leak_rule()
    send(det, 0.0, {FURNACE: 300.0, FLOW_IN: 20.0, OTHER: 17.0})

    assert sweeps(det, 0.0) == []
    assert sweeps(det, 30.0) == [(0, 30.0, 0.0, 1, 0.15, 0.08)]


def test_flow_meters_agreeing_within_tolerance_are_no_leak() -> None:
    det = leak_rule()
    send(det, 0.0, {FURNACE: 300.0, FLOW_IN: 20.0, OTHER: 19.0})

    assert sweeps(det, 0.0, 30.0, 60.0) == []


def test_a_stopped_pump_is_not_read_as_a_leak() -> None:
    det = leak_rule()
    send(det, 0.0, {FURNACE: 300.0, FLOW_IN: 3.0, OTHER: 0.0})

    assert sweeps(det, 0.0, 30.0, 60.0) == []


def test_a_leak_clears_only_past_the_deadband_or_when_the_furnace_is_off() -> None:
    det = leak_rule()
    send(det, 0.0, {FURNACE: 300.0, FLOW_IN: 20.0, OTHER: 17.0})
    sweeps(det, 0.0, 30.0)

    send(det, 40.0, {FLOW_IN: 20.0, OTHER: 18.42})  # shortfall 0.079: < 8 %, > 8 % / 1.05
    assert sweeps(det, 40.0) == []
    send(det, 50.0, {FLOW_IN: 20.0, OTHER: 18.6})  # 0.07
    assert [r[3] for r in sweeps(det, 50.0)] == [0]

    send(det, 60.0, {FURNACE: 300.0, FLOW_IN: 20.0, OTHER: 16.0})
    assert [r[3] for r in sweeps(det, 60.0, 90.0)] == [1]
    send(det, 100.0, {FURNACE: 5.0, FLOW_IN: 20.0, OTHER: 16.0})
    assert [r[3] for r in sweeps(det, 100.0)] == [0]


# --- many rules ---------------------------------------------------------------------------


def test_rules_are_judged_together_and_reported_by_row() -> None:
    # One furnace with a cooling and a leak rule, as the topology builds them.
    det = InterlockDetector(
        kind=[COOLING, LEAK], power_point=[0, 0], power_on_kw=[75.0, 11.25],
        guard_point=[1, 1], guard_limit=[12.0, 6.0], other_point=[3, 2],
        other_limit=[0.2, 0.08], subject=[1, 2], point_interval_s=[60.0, 10.0, 10.0, 10.0],
        on_delay_s=0.0)
    send(det, 0.0, {0: 600.0, 1: 10.0, 2: 8.0, 3: 0.3})

    changes = rows(det.sweep(0.0))

    assert [(r[0], r[3], r[4]) for r in changes] == [(0, 1, 10.0), (1, 1, 0.2)]
    assert det.rule_points(1) == (0, 1, 2)


def test_no_rules_is_fine() -> None:
    det = InterlockDetector([], [], [], [], [], [], [], [], point_interval_s=[60.0])

    assert len(det.update(SampleBatch.from_arrays([0], [0.0], [1.0]))) == 0
    assert len(det.sweep(10.0)) == 0


def test_rule_tables_of_different_lengths_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="guard_limit must have one entry per rule"):
        InterlockDetector([FAN], [0], [18.0], [1], [], [-1], [NAN], [1],
                          point_interval_s=np.array([60.0, 30.0]))


# --- property -----------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300))
def test_hostile_input_never_crashes_and_changes_alternate_per_rule(seed: int, n: int) -> None:
    # Fan, cooling and leak rules over five points; NaN, inf, flags, late rows,
    # redeliveries and sweeps at irregular instants.
    det = InterlockDetector(
        kind=[FAN, COOLING, LEAK], power_point=[0, 2, 2], power_on_kw=[18.0, 75.0, 11.25],
        guard_point=[1, 3, 3], guard_limit=[0.5, 12.0, 6.0], other_point=[-1, -1, 4],
        other_limit=[NAN, NAN, 0.08], subject=[1, 3, 4],
        point_interval_s=[60.0, 30.0, 60.0, 10.0, 10.0], on_delay_s=20.0)
    rng = np.random.default_rng(seed)
    point = rng.integers(0, 5, n)
    ts = np.cumsum(rng.uniform(0.0, 20.0, n)) - rng.choice([0.0, 0.0, 0.0, 90.0], n)
    value = rng.choice([0.0, 1.0, 5.0, 10.0, 13.0, 20.0, 100.0, NAN, math.inf], n)
    quality = rng.choice([0, 0, 0, 0, 1, 4], n)
    again = rng.random(n) < 0.1
    seen: list[list[int]] = [[], [], []]
    cuts = np.unique(np.r_[0, rng.integers(0, n + 1, 8), n])

    for a, b in itertools.pairwise(cuts):
        rows = np.r_[np.arange(a, b), np.arange(a, b)[again[a:b]]]
        det.update(SampleBatch.from_arrays(point[rows], ts[rows], value[rows], quality[rows]))
        now = float(ts[b - 1]) + float(rng.uniform(0.0, 60.0))
        for change in (det.sweep(now), det.sweep(now + 30.0)):
            assert (change.ts == now).all() or (change.ts == now + 30.0).all()
            for r, s in zip(change.subject.tolist(), change.severity.tolist(), strict=True):
                seen[r].append(s)

    for r, history in enumerate(seen):
        assert history == [1, 0] * (len(history) // 2) + [1] * (len(history) % 2)
        assert det.active[r] == (len(history) % 2 == 1)
