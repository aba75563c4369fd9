"""The pipeline: decoded batches and clock ticks in, alert changes out.

One object serves the live service and offline replay (DESIGN.md: only the source and
the clock differ).  It is synchronous and does no I/O: callers feed it
:class:`~gateway.ingest.decode.Decoded` batches and watermark instants, and persist or
publish the :class:`~alerting.Alert` objects it returns.  Keeping I/O out makes replay
deterministic and lets the live service run it inline on the event loop (a batch of
10,000 samples costs a few milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from alerting import Alert, AlertManager
from alerting.inhibition import Inhibitor
from detectors import ConditionChanges, SilenceDetector, ThresholdDetector
from detectors.base import Detector
from detectors.deviation import DeviationDetector
from detectors.events import EventBurstDetector
from detectors.fake_offline import FakeOfflineDetector
from detectors.hidden_operation import HiddenOperationDetector
from detectors.interlock import InterlockDetector
from detectors.plant_state import PlantStateDetector
from detectors.rate import RateOfChangeDetector
from detectors.tamper import TamperDetector
from detectors.window import RecentWindow
from gateway.clock import SweepGrid
from gateway.conditions import ConditionMapper
from gateway.ingest.decode import Decoded, DeviceStatus
from gateway.plant_conditions import PlantConditions
from gateway.registry import Registry, RegistryIndex
from gateway.registry.topology import SiteTopology, build_topology, with_declared_stops

FAKE_OFFLINE_MEMORY_S = 6 * 3600.0
"""Meter readings the site-silent rule remembers, in seconds of the fastest reference
meter: the whole silence must be covered, well past the 30-minute on-delay."""

PLANT_JUDGE_EVERY_S = 60.0
"""Meter samples are judged in bulk every minute of event time (meters report every
minute to 15 minutes; hidden operation needs 10 minutes of production to fire)."""

RATE_JUDGE_EVERY_S = 30.0
"""The rate rule judges its samples in bulk every 30 s of event time (the same verdicts,
up to 30 s later, against a 5-minute slope window): a fraction of the per-batch cost."""

DEVIATION_JUDGE_EVERY_S = 60.0
"""The deviation rule judges its samples in bulk every minute of event time (the same
verdicts, up to a minute later, against 10-minute baseline buckets and a 5-minute
on-delay)."""

SPARK_EVENTS = frozenset({"spark_detected"})
"""Event types counted by the burst rule (CONTRACT.md §1 event payloads)."""


@dataclass(slots=True)
class PipelineStats:
    """Counters the API and metrics read; cumulative since start."""

    messages: int = 0
    samples: int = 0
    events: int = 0
    statuses: int = 0
    rejected: int = 0
    sweeps: int = 0
    alerts_changed: int = 0
    last_status: dict[int, DeviceStatus] = field(default_factory=dict)
    """Latest ``status`` claim per device index."""


class Pipeline:
    """Runs every detector over batches and sweeps and turns verdicts into alerts.

    ``sweep_interval_s``: spacing of the watermark sweeps (seconds of event time); it
    bounds how late a silence is noticed.  ``silence_k``: a device is silent after
    ``k × expected_interval_s`` without data.  ``evidence_depth``: recent samples per
    point kept to show in alert evidence.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        locale: str = "zh",
        sweep_interval_s: float = 5.0,
        silence_k: float = 3.0,
        evidence_depth: int = 16,
    ) -> None:
        index = registry.index
        self.registry = registry
        self.topology = topo = build_topology(registry.spec, index)
        self.threshold = ThresholdDetector(
            index.point_lo, index.point_hi, index.point_lolo, index.point_hihi,
            index.point_deadband, index.point_on_delay_s,
        )
        self.silence = SilenceDetector(
            index.point_device, index.device_expected_interval_s, k=silence_k
        )
        self.plant = PlantStateDetector(topo.meter_point, topo.meter_rated_kw, index.n_points,
                                        judge_every_s=PLANT_JUDGE_EVERY_S)
        self.hidden = HiddenOperationDetector(
            topo.meter_enterprise, topo.meter_interval_s, index.n_enterprises,
            topo.stop_enterprise, topo.stop_from, topo.stop_to,
        )
        self.interlock = InterlockDetector(
            topo.interlock_kind, topo.interlock_power_point, topo.interlock_power_on_kw,
            topo.interlock_guard_point, topo.interlock_guard_limit,
            topo.interlock_other_point, topo.interlock_other_limit, topo.interlock_subject,
            index.device_expected_interval_s[index.point_device],
        )
        self.fake = FakeOfflineDetector(
            index.device_enterprise, topo.device_monitoring, topo.enterprise_reference_meter,
            topo.meter_enterprise, topo.meter_interval_s, index.point_enterprise,
            ring=_meter_ring(topo, span_s=FAKE_OFFLINE_MEMORY_S),
        )
        self.tamper = TamperDetector(index.point_device, topo.point_tamper_watched,
                                     topo.point_clone_group, n_devices=index.n_devices)
        self.rate = RateOfChangeDetector(
            index.point_rate_hi_per_min, capacity=_rate_capacity(index, window_s=300.0),
            judge_every_s=RATE_JUDGE_EVERY_S)
        self.deviation = DeviationDetector(topo.point_deviation_watched, topo.point_run_gate,
                                           direction=topo.point_deviation_direction,
                                           judge_every_s=DEVIATION_JUDGE_EVERY_S)
        self.sparks = EventBurstDetector(index.n_devices)
        self._sample_detectors: list[Detector] = [
            self.threshold, self.silence, self.interlock, self.rate, self.deviation]
        self._sweep_detectors: list[Detector] = [
            self.threshold, self.silence, self.hidden, self.interlock, self.sparks, self.rate,
            self.deviation]
        self.window = RecentWindow(index.n_points, depth=evidence_depth)
        self.alerts = AlertManager(locale=locale)
        self.inhibitor = Inhibitor()
        self.stats = PipelineStats()
        self._mapper = ConditionMapper(registry, silence_k=silence_k, window=self.window,
                                       statuses=self.stats.last_status)
        mapper = self._mapper
        self._plant_conditions = PlantConditions(
            registry, topo, enterprise_subjects=mapper.enterprise_subjects,
            device_subjects=mapper.device_subjects, point_subjects=mapper.point_subjects,
            window=self.window, hidden=self.hidden, interlock=self.interlock, fake=self.fake,
            deviation=self.deviation, statuses=self.stats.last_status,
            burst_window_s=self.sparks.window_s)
        mapper.add_plant_rules(self._plant_conditions)
        self._grid = SweepGrid(sweep_interval_s)

    def set_declared_stops(self, extra: Sequence[tuple[str, float, float, str]]) -> None:
        """Stops declared through the API (enterprise id, from, to, reason; epoch s)
        besides the registry's: hidden operation judges against both from now on."""
        topo = with_declared_stops(self.topology, self.registry.spec, self.registry.index,
                                   extra)
        self.topology = topo
        self._plant_conditions.use_topology(topo)
        self.hidden.set_stops(topo.stop_enterprise, topo.stop_from, topo.stop_to)

    @property
    def next_sweep_due(self) -> float:
        return self._grid.next_due

    def process(self, decoded: Decoded) -> list[Alert]:
        """Feed one decoded batch to every detector."""
        stats = self.stats
        stats.messages += decoded.messages
        stats.samples += len(decoded.samples)
        stats.events += len(decoded.events)
        stats.statuses += len(decoded.statuses)
        stats.rejected += len(decoded.rejections)
        for status in decoded.statuses:
            known = stats.last_status.get(status.device)
            if known is None or status.ts >= known.ts:
                stats.last_status[status.device] = status
        if (not len(decoded.samples) and not len(decoded.samples.heartbeat_device)
                and not decoded.events):
            return []
        samples = decoded.samples
        self.window.update(samples)
        changes = [d.update(samples) for d in self._sample_detectors]
        self.plant.update(samples)  # states feed the rules below; not alerts themselves
        changes.append(self.hidden.update_readings(self.plant.readings))
        self.fake.observe_readings(self.plant.readings)
        self.fake.observe_tamper(self.tamper.update(samples))
        sparks = [e for e in decoded.events if e.type in SPARK_EVENTS]
        if sparks:
            changes.append(self.sparks.update_events([e.device for e in sparks],
                                                     [e.ts for e in sparks]))
        return self._emit(changes)

    def advance(self, now: float) -> list[Alert]:
        """Move the watermark to ``now``, sweeping at every grid instant passed."""
        changed: list[Alert] = []
        for instant in self._grid.passed(now):
            self.stats.sweeps += 1
            changes = self._plant_sweep(instant)
            changes += [d.sweep(instant) for d in self._sweep_detectors]
            changes.append(self.fake.sweep_site(instant, self.silence.silent,
                                                self.silence.last_seen))
            self.fake.observe_tamper(self.tamper.sweep(instant))
            changes.append(self.fake.sweep_points(instant))
            changed.extend(self._emit(changes))
            changed.extend(self.alerts.sweep(instant))  # flapping calmed down, reopen window
        return changed

    def drain(self) -> list[Alert]:
        """Judge what the bulk-judging rules (plant state, rate, deviation, tamper) still
        hold, so the end of a recording is judged like the rest; no sweep is made."""
        self.plant.judge_held()
        changes = self._hand_on_readings()
        changes.append(self.rate.judge_held())
        changes.append(self.deviation.judge_held())
        self.fake.observe_tamper(self.tamper.judge_held())
        return self._emit(changes)

    def _plant_sweep(self, instant: float) -> list[ConditionChanges]:
        """Meter samples the plant rule held until now, handed on as in ``process``
        (before the other sweeps: a declared stop's end must see them first)."""
        self.plant.sweep(instant)
        return self._hand_on_readings()

    def _hand_on_readings(self) -> list[ConditionChanges]:
        readings = self.plant.readings
        if not len(readings.meter):
            return []
        self.fake.observe_readings(readings)
        return [self.hidden.update_readings(readings)]

    def device_last_seen(self) -> np.ndarray:
        """Event time of each device's latest data (NaN: nothing since start)."""
        return np.asarray(self.silence.last_seen)

    def _emit(self, changes: list[ConditionChanges]) -> list[Alert]:
        if not any(len(c) for c in changes):
            return []
        alerts = self.inhibitor.apply(self.alerts,
                                      self.alerts.apply(self._mapper.conditions(changes)))
        self.stats.alerts_changed += len(alerts)
        return alerts


def _rate_capacity(index: RegistryIndex, *, window_s: float) -> int:
    """Ring size of the rate rule: enough samples for its window at the fastest
    reporting interval among points that have a rate limit (16 to 512)."""
    ruled = np.isfinite(index.point_rate_hi_per_min)
    if not ruled.any():
        return 16
    fastest = float(index.device_expected_interval_s[index.point_device[ruled]].min())
    return int(np.clip(np.ceil(window_s / max(fastest, 1e-3)) + 2, 16, 512))


def _meter_ring(topo: SiteTopology, *, span_s: float) -> int:
    """Readings per meter to keep ``span_s`` of the fastest reference meter (24..1024)."""
    refs = topo.enterprise_reference_meter[topo.enterprise_reference_meter >= 0]
    if refs.shape[0] == 0:
        return 24
    fastest = float(topo.meter_interval_s[refs].min())
    return int(np.clip(np.ceil(span_s / max(fastest, 1.0)), 24, 1024))
