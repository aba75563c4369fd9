"""FakeOfflineDetector (虚假离线): the site gateway silent while the independent meter
shows production, and tampered data while the plant produces."""

from __future__ import annotations

import math

import numpy as np

from detectors.base import ConditionChanges, SampleBatch
from detectors.fake_offline import SITE_RULE, FakeOfflineDetector
from detectors.plant_state import OFF, PRODUCTION, MeterReadings, PlantStateDetector

NAN = math.nan
DAY0 = 1_795_478_400.0
MIN, HOUR = 60.0, 3600.0
SILENT_FROM = DAY0 + 10 * HOUR  # the site's devices were last heard of here
RATED, BUSY_KW, CUT_KW = 200.0, 150.0, 0.4

# Enterprise 0: dust collector (device 0) and gas detector (device 1) report through
# the site gateway; the utility meter (device 2, meter 0, point 0) does not.
# Enterprise 1: one device (3) and no independent meter.
DEVICE_ENTERPRISE = [0, 0, 0, 1]
MONITORING = [True, True, False, True]
POINT_ENTERPRISE = [0, 0, 0, 1]  # meter p_kw, DC1 dp, GD1 co, enterprise 1's point
SITE_DEVICES = [0, 1]

Row = tuple[int, float, float, int, float, float]


def rows(changes: ConditionChanges) -> list[Row]:
    """(subject, minutes after SILENT_FROM decided, ... began, severity, value, limit)."""
    def clean(x: float) -> float:
        return -999.0 if math.isnan(x) else float(x)

    return [(int(changes.subject[i]), (float(changes.ts[i]) - SILENT_FROM) / MIN,
             (float(changes.since[i]) - SILENT_FROM) / MIN, int(changes.severity[i]),
             clean(changes.value[i]), clean(changes.limit[i])) for i in range(len(changes))]


class Site:
    """A 15-minute utility meter judged by PlantStateDetector, the silence verdicts of
    the site's devices, and the detector, wired as the pipeline wires them."""

    def __init__(self, *, on_delay_s: float = 1800.0) -> None:
        self.plant = PlantStateDetector([0], [RATED], n_points=4)
        self.fake = FakeOfflineDetector(
            device_enterprise=DEVICE_ENTERPRISE, device_monitoring=MONITORING,
            enterprise_reference_meter=[0, -1], meter_enterprise=[0],
            meter_interval_s=[900.0], point_enterprise=POINT_ENTERPRISE,
            on_delay_s=on_delay_s)
        self.silent = np.zeros(4, dtype=np.bool_)
        self.last_seen = np.full(4, SILENT_FROM)
        self.meter(-10 * HOUR, 0.0, BUSY_KW)  # running normally all morning

    def meter(self, from_s: float, to_s: float, kw: float) -> None:
        """15-minute readings (ts = end of the interval) from ``SILENT_FROM + from_s``
        (exclusive) to ``SILENT_FROM + to_s`` (inclusive), all at ``kw``."""
        ts = SILENT_FROM + np.arange(from_s + 900.0, to_s + 1.0, 900.0)
        self.plant.update(SampleBatch.from_arrays(np.zeros(ts.shape[0], np.int32), ts,
                                                  np.full(ts.shape[0], kw)))
        self.fake.observe_readings(self.plant.readings)

    def go_silent(self, devices: list[int] = SITE_DEVICES) -> None:
        self.silent[devices] = True

    def report_again(self, at_s: float) -> None:
        self.silent[:] = False
        self.last_seen[SITE_DEVICES] = SILENT_FROM + at_s

    def sweep(self, *minutes: float) -> list[Row]:
        out: list[Row] = []
        for m in minutes:
            out += rows(self.fake.sweep_site(SILENT_FROM + m * MIN, self.silent,
                                             self.last_seen))
        return out


def every_5_min(from_min: float, to_min: float) -> list[float]:
    return [float(m) for m in np.arange(from_min, to_min + 1e-9, 5.0)]


# --- site silent while running ------------------------------------------------------------


def test_silent_site_with_the_meter_producing_throughout_fires_after_the_on_delay() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 1800.0, BUSY_KW)

    before = site.sweep(*every_5_min(5, 25), 29.9)
    fired = site.sweep(30.0)

    assert before == []
    # since: when the site was last heard of; value: how long it has been silent (s).
    assert fired == [(0, 30.0, 0.0, 1, 1800.0, 1800.0)]
    assert site.fake.site_active.tolist() == [True, False]
    assert site.sweep(*every_5_min(35, 240)) == []  # once


def test_a_genuine_power_cut_never_fires() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 4 * HOUR, CUT_KW)  # the meter falls to nothing with the gateway

    assert site.sweep(*every_5_min(5, 240)) == []
    assert site.fake.site_active.tolist() == [False, False]


def test_one_interval_without_production_inside_the_silence_is_enough_to_not_fire() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 900.0, BUSY_KW)
    site.meter(900.0, 1800.0, CUT_KW)  # the power went at a quarter past
    site.meter(1800.0, 4 * HOUR, BUSY_KW)  # ... and came back, the gateway did not

    assert site.sweep(*every_5_min(5, 120)) == []


def test_a_silence_shorter_than_the_on_delay_never_fires() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 1800.0, BUSY_KW)
    assert site.sweep(*every_5_min(5, 25)) == []

    site.report_again(at_s=27 * MIN)  # store-and-forward catches up after 27 minutes
    site.meter(1800.0, 4 * HOUR, BUSY_KW)

    assert site.sweep(*every_5_min(30, 240)) == []


def test_nothing_fires_before_the_meter_has_a_complete_interval_inside_the_silence() -> None:
    site = Site()
    site.go_silent()

    assert site.sweep(*every_5_min(5, 60)) == []  # utility data not in yet
    site.meter(0.0, 3600.0, BUSY_KW)
    assert [r[3] for r in site.sweep(65.0)] == [1]


def test_a_meter_interval_that_began_before_the_silence_does_not_count() -> None:
    site = Site()
    # The gateway went quiet 5 min into a meter interval during which the plant was
    # starting up; every interval wholly inside the silence shows production.
    site.last_seen[SITE_DEVICES] = SILENT_FROM + 5 * MIN
    site.go_silent()
    site.meter(0.0, 900.0, 10.0)
    site.meter(900.0, 3600.0, BUSY_KW)

    assert site.sweep(34.0) == []
    assert [r[:4] for r in site.sweep(35.0)] == [(0, 35.0, 5.0, 1)]
    inside = site.fake.meter_readings_inside(0, SILENT_FROM + 5 * MIN)
    assert [((t - SILENT_FROM) / MIN, s) for t, s in inside] == [
        (30.0, PRODUCTION), (45.0, PRODUCTION), (60.0, PRODUCTION)]


def test_clock_skew_of_the_meter_is_tolerated() -> None:
    site = Site()
    site.last_seen[SITE_DEVICES] = SILENT_FROM + 1 * MIN  # 1 min after the meter's boundary
    site.go_silent()
    site.meter(0.0, 1800.0, BUSY_KW)

    assert [r[:4] for r in site.sweep(31.0)] == [(0, 31.0, 1.0, 1)]
    inside = site.fake.meter_readings_inside(0, SILENT_FROM + 1 * MIN)
    assert [(t - SILENT_FROM) / MIN for t, _ in inside] == [15.0, 30.0]


def test_a_partly_silent_site_is_a_device_matter() -> None:
    site = Site()
    site.go_silent([0])  # only the dust collector; the gas detector still reports
    site.meter(0.0, 4 * HOUR, BUSY_KW)

    assert site.sweep(*every_5_min(5, 240)) == []


def test_the_meter_going_silent_is_not_the_site_going_silent() -> None:
    site = Site()
    site.go_silent([2])  # the utility meter's own device
    site.meter(0.0, 4 * HOUR, BUSY_KW)

    assert site.sweep(*every_5_min(5, 240)) == []


def test_an_enterprise_without_an_independent_meter_is_never_judged() -> None:
    site = Site()
    site.go_silent([3])
    site.meter(0.0, 4 * HOUR, BUSY_KW)

    assert site.sweep(*every_5_min(5, 240)) == []


def test_clears_when_the_site_reports_again() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 1800.0, BUSY_KW)
    site.sweep(30.0)

    site.report_again(at_s=42 * MIN)

    assert site.sweep(45.0) == [(0, 45.0, 45.0, 0, -999.0, -999.0)]
    assert site.fake.site_active.tolist() == [False, False]


def test_clears_when_the_meter_shows_the_plant_stopped() -> None:
    site = Site()
    site.go_silent()
    site.meter(0.0, 1800.0, BUSY_KW)
    site.sweep(30.0)

    site.meter(1800.0, 2700.0, CUT_KW)

    assert [r[3] for r in site.sweep(45.0)] == [0]


def test_devices_never_heard_of_are_silent_since_the_first_sweep() -> None:
    site = Site()
    site.last_seen[:] = NAN
    site.go_silent()
    site.meter(0.0, 3600.0, BUSY_KW)

    assert site.sweep(0.0, 29.0) == []
    assert [r[:4] for r in site.sweep(30.0)] == [(0, 30.0, 0.0, 1)]


def test_a_registry_without_meters_is_never_judged() -> None:
    det = FakeOfflineDetector([0], [True], [-1], [], [], [0])

    changes = det.sweep_site(DAY0, np.array([True]), np.array([DAY0 - HOUR]))

    assert changes.rule == SITE_RULE
    assert len(changes) == 0


# --- tampered data while producing --------------------------------------------------------


def tamper(point: int, code: int, since: float, value: float = 0.0) -> ConditionChanges:
    """One verdict change of the tamper rule (code 0: cleared)."""
    return ConditionChanges(
        rule="tamper", subject=np.array([point], np.int32), ts=np.array([since]),
        since=np.array([since]), severity=np.array([code], np.int8),
        value=np.array([value]), limit=np.array([NAN]))


def readings(state: int, at: float) -> MeterReadings:
    one = np.ones(1)
    return MeterReadings(np.zeros(1, np.int32), np.array([at]), one, one,
                         np.array([state], np.int8), one, one)


def point_detector() -> FakeOfflineDetector:
    return FakeOfflineDetector(DEVICE_ENTERPRISE, MONITORING, [0, -1], [0], [900.0],
                               POINT_ENTERPRISE)


def test_tampered_data_while_the_meter_shows_production_fires_per_point() -> None:
    det = point_detector()
    det.observe_readings(readings(PRODUCTION, DAY0))
    det.observe_tamper(tamper(point=1, code=2, since=DAY0 - HOUR, value=0.98))

    changes = det.sweep_points(DAY0 + MIN)

    assert changes.rule == "fake_offline"
    assert (changes.subject.tolist(), changes.severity.tolist()) == ([1], [3])  # code + 1
    assert (changes.since.tolist(), changes.value.tolist()) == ([DAY0 - HOUR], [0.98])
    assert det.point_active.tolist() == [False, True, False, False]
    assert len(det.sweep(DAY0 + 2 * MIN)) == 0  # once


def test_tampered_data_while_the_plant_is_stopped_waits_for_production() -> None:
    det = point_detector()
    det.observe_readings(readings(OFF, DAY0))
    det.observe_tamper(tamper(point=2, code=1, since=DAY0))

    assert len(det.sweep_points(DAY0 + MIN)) == 0
    det.observe_readings(readings(PRODUCTION, DAY0 + 900.0))
    changes = det.sweep_points(DAY0 + 901.0)

    assert (changes.subject.tolist(), changes.severity.tolist()) == ([2], [2])
    assert changes.since.tolist() == [DAY0]


def test_the_point_alert_clears_with_the_signal_or_when_production_stops() -> None:
    det = point_detector()
    det.observe_readings(readings(PRODUCTION, DAY0))
    det.observe_tamper(tamper(point=1, code=1, since=DAY0))
    det.sweep_points(DAY0)

    det.observe_tamper(tamper(point=1, code=0, since=DAY0 + 600.0))
    cleared = det.sweep_points(DAY0 + 610.0)
    det.observe_tamper(tamper(point=1, code=1, since=DAY0 + 700.0))
    again = det.sweep_points(DAY0 + 710.0)
    det.observe_readings(readings(OFF, DAY0 + 900.0))
    pause = det.sweep_points(DAY0 + 910.0)  # a pour or a short stop: still producing
    stopped = det.sweep_points(DAY0 + 3610.0)  # no production for the whole memory

    assert (cleared.severity.tolist(), cleared.ts.tolist()) == ([0], [DAY0 + 610.0])
    assert again.severity.tolist() == [2]
    assert len(pause) == 0
    assert (stopped.severity.tolist(), stopped.since.tolist()) == ([0], [DAY0 + 3610.0])


def test_points_of_an_enterprise_without_production_never_fire() -> None:
    det = point_detector()
    det.observe_readings(readings(PRODUCTION, DAY0))  # enterprise 0's meter
    det.observe_tamper(tamper(point=3, code=3, since=DAY0))  # enterprise 1's point

    assert len(det.sweep_points(DAY0 + MIN)) == 0
    assert det.producing().tolist() == [True, False]
