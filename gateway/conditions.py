"""Translate detector rows (dense ids) into alerting conditions (names, evidence).

This is the one place where numbers from ``detectors/`` meet the registry's names and
the alert vocabulary of CONTRACT.md §4.  It runs only on condition *changes*, which are
rare, so building Python objects here costs nothing on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alerting import Condition, Subject
from detectors.base import ConditionChanges
from detectors.window import RecentWindow
from gateway.ingest.decode import DeviceStatus
from gateway.plant_conditions import PlantConditions, status_claim
from gateway.registry import Registry

_BANDS = {2: "hihi", 1: "hi", -1: "lo", -2: "lolo"}
_THRESHOLD_LEVEL = {2: 2, 1: 3}
"""hihi/lolo are orange (2), hi/lo yellow (3): the outer band is the urgent one."""

DEVICE_OFFLINE_LEVEL = 3


class ConditionMapper:
    """Builds :class:`alerting.Condition` objects from :class:`ConditionChanges`."""

    def __init__(self, registry: Registry, *, silence_k: float,
                 window: RecentWindow | None = None,
                 statuses: Mapping[int, DeviceStatus] | None = None) -> None:
        self._registry = registry
        self._silence_k = silence_k
        self._window = window
        self._statuses: Mapping[int, DeviceStatus] = {} if statuses is None else statuses
        """Each device's latest ``status`` message (kept up to date by the pipeline)."""
        index = registry.index
        self._point_subjects = [self._point_subject(i) for i in range(index.n_points)]
        self._device_subjects = [self._device_subject(i) for i in range(index.n_devices)]
        self.enterprise_subjects = [self._enterprise_subject(i)
                                    for i in range(index.n_enterprises)]
        self._builders: dict[str, Callable[[ConditionChanges, int], Condition]] = {
            "threshold": self._threshold, "silence": self._silence}

    @property
    def device_subjects(self) -> list[Subject]:
        return self._device_subjects

    @property
    def point_subjects(self) -> list[Subject]:
        return self._point_subjects

    def add_plant_rules(self, plant: PlantConditions) -> None:
        """Map the plant-level rules (hidden operation, faking, interlocks) too."""
        self._builders.update({
            "hidden_operation": plant.hidden_operation,
            "fake_offline": plant.fake_offline,
            "fake_offline_site": plant.site_silent,
            "interlock_violation": plant.interlock,
            "rate_of_change": plant.rate_of_change,
            "deviation": plant.deviation,
            "event_burst": plant.event_burst,
        })

    def add_rule(self, rule: str, build: Callable[[ConditionChanges, int], Condition]) -> None:
        self._builders[rule] = build

    def conditions(self, changes: Iterable[ConditionChanges]) -> list[Condition]:
        """All rows of all detectors, ordered by decision time (stable across rules)."""
        out: list[tuple[float, int, Condition]] = []
        for order, change in enumerate(changes):
            if not len(change):
                continue
            build = self._builders.get(change.rule)
            if build is None:
                raise ValueError(f"no alert mapping for detector rule {change.rule!r}")
            for row in range(len(change)):
                out.append((float(change.ts[row]), order, build(change, row)))
        out.sort(key=lambda item: (item[0], item[1]))
        return [condition for _, _, condition in out]

    def _threshold(self, change: ConditionChanges, row: int) -> Condition:
        point = int(change.subject[row])
        severity = int(change.severity[row])
        subject = self._point_subjects[point]
        index = self._registry.index
        value = float(change.value[row])
        limits = {
            "lolo": _finite(index.point_lolo[point]),
            "lo": _finite(index.point_lo[point]),
            "hi": _finite(index.point_hi[point]),
            "hihi": _finite(index.point_hihi[point]),
        }
        at = float(change.ts[row])
        if severity == 0:
            return Condition(
                kind="threshold", subject=subject, active=False, level=4,
                started_at=float(change.since[row]), at=at,
                evidence={"rule": "threshold", "cleared_by": value, "at": _iso(at)},
            )
        band = _BANDS[severity]
        limit = float(change.limit[row])
        evidence: dict[str, Any] = {
            "rule": "threshold",
            "band": band,
            "value": value,
            "limit": limit,
            "unit": subject.unit,
            "limits": limits,
            "deadband": float(index.point_deadband[point]),
            "on_delay_s": float(index.point_on_delay_s[point]),
            "sample_ts": _iso(at),
            "excursion_started": _iso(float(change.since[row])),
        }
        if self._window is not None:
            times, values = self._window.samples(point)
            evidence["window"] = [[_iso(t), v] for t, v in zip(times, values, strict=True)]
        return Condition(
            kind="threshold", subject=subject, active=True,
            level=_THRESHOLD_LEVEL[abs(severity)],
            started_at=float(change.since[row]), at=at, evidence=evidence,
            detail={"band": band, "value": value, "limit": limit},
        )

    def _silence(self, change: ConditionChanges, row: int) -> Condition:
        device = int(change.subject[row])
        subject = self._device_subjects[device]
        at = float(change.ts[row])
        since = float(change.since[row])
        if int(change.severity[row]) == 0:
            return Condition(
                kind="device_offline", subject=subject, active=False, level=4,
                started_at=since, at=at, evidence={"rule": "silence", "data_resumed": _iso(at)},
            )
        interval = float(self._registry.index.device_expected_interval_s[device])
        evidence = {
            "rule": "silence",
            "last_seen": _iso(since),
            "expected_interval_s": interval,
            "k": self._silence_k,
            "timeout_s": float(change.limit[row]),
            "watermark": _iso(at),
        }
        claim = status_claim(self._statuses.get(device), since)
        if claim is not None:
            evidence["status_claim"] = claim
        return Condition(
            kind="device_offline", subject=subject, active=True, level=DEVICE_OFFLINE_LEVEL,
            started_at=since, at=at, evidence=evidence,
            detail={"silent_for_s": round(at - since), "last_seen": _iso(since)},
        )

    def _point_subject(self, point: int) -> Subject:
        enterprise, device, name, spec = self._registry.point_of_index(point)
        return Subject(
            enterprise_id=enterprise.id, enterprise_name=enterprise.name,
            industry=enterprise.industry, region=tuple(enterprise.region),
            timezone=enterprise.timezone, device_id=device.id, device_kind=device.kind,
            point=name, point_kind=spec.kind, unit=spec.unit,
        )

    def _enterprise_subject(self, e_idx: int) -> Subject:
        enterprise = self._registry.spec.enterprises[e_idx]
        return Subject(
            enterprise_id=enterprise.id, enterprise_name=enterprise.name,
            industry=enterprise.industry, region=tuple(enterprise.region),
            timezone=enterprise.timezone,
        )

    def _device_subject(self, device_idx: int) -> Subject:
        enterprise = self._registry.enterprise_of_device_index(device_idx)
        device = self._registry.device_of_index(device_idx)
        return Subject(
            enterprise_id=enterprise.id, enterprise_name=enterprise.name,
            industry=enterprise.industry, region=tuple(enterprise.region),
            timezone=enterprise.timezone, device_id=device.id, device_kind=device.kind,
        )


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _iso(ts: float) -> str:
    """UTC RFC 3339 for evidence; alert-level times are rendered in the site zone."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
