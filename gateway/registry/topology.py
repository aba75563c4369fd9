"""What the plant-level detectors need to know about each site, as dense arrays.

Threshold and silence rules look at one point or one device; the rules of issue 4 relate
points across devices: a meter against the declared status (hidden operation), the
independent meter against the silence of the site gateway (offline faking), a production
meter against the dust-collector fan, the furnace meter against its cooling water
(interlocks).  This module finds those relations in the registry once, by device kind,
meter role and point names, and flattens them into struct-of-arrays tables so the
detectors stay free of names.

Conventions it relies on (documented for integrators in docs/registry.md):

* a meter is a device of kind ``meter`` with a ``power`` point (``p_kw``); its ``role``
  says what it measures; ``total`` is the utility's feed, independent of the site's
  own gateway, and is the reference for offline faking;
* a dust collector (kind ``dust_collector``) reports its fan as a ``run_state`` point
  whose name starts with ``fan``;
* a cooling-water device (kind ``cooling_water``) reports ``flow`` points whose names end
  in ``_in``/``_out`` and a ``pressure`` point; their ``lo`` limits are the interlock
  limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.registry.index import RegistryIndex
from gateway.registry.models import DeviceSpec, RegistrySpec

__all__ = [
    "INTERLOCK_COOLING",
    "INTERLOCK_FAN",
    "INTERLOCK_LEAK",
    "ROLE_CODES",
    "SiteTopology",
    "build_topology",
]

ROLE_CODES = {"total": 0, "production": 1, "dust_collector": 2, "furnace": 3,
              "cooling_pump": 4, None: 5}
"""Meter role → code in :attr:`SiteTopology.meter_role` (5: not given)."""

INTERLOCK_FAN = 1
"""Production meter drawing load while the dust-collector fan is off."""
INTERLOCK_COOLING = 2
"""Furnace energised while coil cooling flow or pressure is below its ``lo`` limit."""
INTERLOCK_LEAK = 3
"""Furnace energised while outlet flow falls short of inlet flow (a leak in the coil)."""

FAN_ON_FRACTION = 0.2
"""A production line counts as running above this share of its rated power (idle
control standby is 0.3-1.5 kW, production 55-80 % of rated)."""
FURNACE_HEATING_FRACTION = 0.10
"""Low cooling is a violation while the furnace heats (above this share of its rating):
holding, pouring and charging draw a few per cent and the coil then only needs the
pump's after-run, while a furnace meter also shows auxiliaries when nothing heats."""
FURNACE_ENERGISED_FRACTION = 0.015
"""A leak matters whenever the coil is energised at all (charging idle is about 2 %);
the leak rule also needs water flowing, so a stopped pump is not read as a leak."""
LEAK_FRACTION = 0.08
"""Outlet flow short of inlet flow by more than this share is a leak; two healthy
flow meters agree within about 2 %."""


@dataclass(frozen=True, eq=False)
class SiteTopology:
    """Cross-device relations of every site; one row per meter, declared stop or rule."""

    meter_point: NDArray[np.int32]
    """Meter m → dense index of its power point (kW)."""
    meter_device: NDArray[np.int32]
    meter_enterprise: NDArray[np.int32]
    meter_role: NDArray[np.int8]
    """:data:`ROLE_CODES` code."""
    meter_rated_kw: NDArray[np.float64]
    """Rated power from the registry; NaN where not given."""
    meter_interval_s: NDArray[np.float64]
    meter_independent: NDArray[np.bool_]
    """True for the utility's total meter, which does not report through the site."""

    stop_enterprise: NDArray[np.int32]
    """Declared stops, sorted by (enterprise, from): owner, start, end (epoch s);
    overlapping or touching stops of an enterprise are merged into one."""
    stop_from: NDArray[np.float64]
    stop_to: NDArray[np.float64]
    stop_reason: list[str]

    enterprise_reference_meter: NDArray[np.int32]
    """Enterprise → meter row of its independent meter (-1: none)."""
    device_monitoring: NDArray[np.bool_]
    """Device → True when it reports through the site's own gateway (not independent)."""

    point_tamper_watched: NDArray[np.bool_]
    """Point → judged for faked data: analogue points of on-site sensor devices (not
    meters, run states, energy counters or power)."""
    point_clone_group: NDArray[np.int32]
    """Point → group of points of one device compared for cloning (flows), -1: none."""

    interlock_kind: NDArray[np.int8]
    """Rule r: :data:`INTERLOCK_FAN`, :data:`INTERLOCK_COOLING` or :data:`INTERLOCK_LEAK`."""
    interlock_power_point: NDArray[np.int32]
    interlock_power_on_kw: NDArray[np.float64]
    """The power point is "on" above this (kW)."""
    interlock_guard_point: NDArray[np.int32]
    """Fan run state, cooling inlet flow, or inlet flow (leak)."""
    interlock_guard_limit: NDArray[np.float64]
    """Guard is bad below this (fan: 0.5; flow: its ``lo``); leak: least inlet flow."""
    interlock_other_point: NDArray[np.int32]
    """Cooling: the pressure point (-1: none); leak: the outlet flow point."""
    interlock_other_limit: NDArray[np.float64]
    """Cooling: pressure ``lo``; leak: the largest allowed shortfall as a fraction."""
    interlock_subject: NDArray[np.int32]
    """Point an alert of the rule is about (fan run, inlet flow, outlet flow)."""
    point_deviation_watched: NDArray[np.bool_]
    """Point → judged against its own running baseline: analogue points of on-site
    devices with no alarm limit and no rate limit, on a device with a run state."""
    point_run_gate: NDArray[np.int32]
    """Point → the run-state point that says whether its equipment runs (-1: none): the
    one named like it (``fan_current`` → ``fan_run``), else the device's first."""
    point_deviation_direction: NDArray[np.int8]
    """Point → which side of its baseline is a fault: 1 (only above) for temperatures
    (heat is the hazard; supply water runs colder on a cold night), 0 (both) otherwise."""

    @property
    def n_meters(self) -> int:
        return int(self.meter_point.shape[0])

    @property
    def n_interlocks(self) -> int:
        return int(self.interlock_kind.shape[0])


def build_topology(spec: RegistrySpec, index: RegistryIndex) -> SiteTopology:
    """Find meters, declared stops and interlock pairs in a validated registry."""
    meters: list[tuple[int, int, int, int, float, float, bool]] = []
    stops: list[tuple[int, float, float, str]] = []
    rules: list[tuple[int, int, float, int, float, int, float, int]] = []
    reference = np.full(index.n_enterprises, -1, dtype=np.int32)
    monitoring = np.ones(index.n_devices, dtype=np.bool_)
    for e_idx, enterprise in enumerate(spec.enterprises):
        stops += [(e_idx, p.from_.timestamp(), p.to.timestamp(), p.reason or "")
                  for p in enterprise.declared if p.state == "stopped"]
        site_meters: list[tuple[DeviceSpec, int, float]] = []
        for device in enterprise.devices:
            d_idx = index.device_index[device.id]
            power = _point(index, d_idx, device, kind="power")
            if device.kind != "meter" or power is None:
                continue
            independent = device.role == "total"
            monitoring[d_idx] = not independent
            rated = float("nan") if device.rated_kw is None else float(device.rated_kw)
            if independent and reference[e_idx] < 0:
                reference[e_idx] = len(meters)
            meters.append((power, d_idx, e_idx, ROLE_CODES[device.role], rated,
                           device.expected_interval_s, independent))
            site_meters.append((device, power, rated))
        rules += _interlocks(index, enterprise.devices, site_meters)
    watched, clone_group = _tamper_points(spec, index)
    deviation, gate, direction = _deviation_points(spec, index)
    m = np.array(meters, dtype=object).reshape(len(meters), 7)
    s = _stop_table(stops)
    r = np.array(rules, dtype=np.float64).reshape(len(rules), 8)
    return SiteTopology(
        meter_point=m[:, 0].astype(np.int32),
        meter_device=m[:, 1].astype(np.int32),
        meter_enterprise=m[:, 2].astype(np.int32),
        meter_role=m[:, 3].astype(np.int8),
        meter_rated_kw=m[:, 4].astype(np.float64),
        meter_interval_s=m[:, 5].astype(np.float64),
        meter_independent=m[:, 6].astype(np.bool_),
        stop_enterprise=s[:, 0].astype(np.int32),
        stop_from=s[:, 1].astype(np.float64),
        stop_to=s[:, 2].astype(np.float64),
        stop_reason=[str(x) for x in s[:, 3]],
        enterprise_reference_meter=reference,
        device_monitoring=monitoring,
        point_tamper_watched=watched,
        point_clone_group=clone_group,
        interlock_kind=r[:, 0].astype(np.int8),
        interlock_power_point=r[:, 1].astype(np.int32),
        interlock_power_on_kw=r[:, 2],
        interlock_guard_point=r[:, 3].astype(np.int32),
        interlock_guard_limit=r[:, 4],
        interlock_other_point=r[:, 5].astype(np.int32),
        interlock_other_limit=r[:, 6],
        interlock_subject=r[:, 7].astype(np.int32),
        point_deviation_watched=deviation,
        point_run_gate=gate,
        point_deviation_direction=direction,
    )


def with_declared_stops(topology: SiteTopology, spec: RegistrySpec, index: RegistryIndex,
                        extra: Sequence[tuple[str, float, float, str]]) -> SiteTopology:
    """``topology`` with the registry's declared stops plus ``extra`` ones (enterprise
    id, from, to, reason; declared through the API), merged as the registry's are.
    Stops of enterprises not in the registry are left out."""
    stops = [(e_idx, p.from_.timestamp(), p.to.timestamp(), p.reason or "")
             for e_idx, enterprise in enumerate(spec.enterprises)
             for p in enterprise.declared if p.state == "stopped"]
    stops += [(index.enterprise_index[e], float(f), float(t), r) for e, f, t, r in extra
              if e in index.enterprise_index]
    s = _stop_table(stops)
    return replace(topology, stop_enterprise=s[:, 0].astype(np.int32),
                   stop_from=s[:, 1].astype(np.float64), stop_to=s[:, 2].astype(np.float64),
                   stop_reason=[str(x) for x in s[:, 3]])


def _stop_table(stops: list[tuple[int, float, float, str]]) -> NDArray[Any]:
    merged = _merge_stops(sorted(stops, key=lambda s: (s[0], s[1])))
    return np.array(merged, dtype=object).reshape(len(merged), 4)


def _merge_stops(stops: list[tuple[int, float, float, str]]
                 ) -> list[tuple[int, float, float, str]]:
    """Overlapping or touching stops of one enterprise (sorted) as one: the hidden
    operation rule looks up a single stop per instant, so a short stop inside a long one
    would hide the rest of the long one, and back-to-back stops would end an episode."""
    merged: list[tuple[int, float, float, str]] = []
    for enterprise, start, end, reason in stops:
        if merged and merged[-1][0] == enterprise and start <= merged[-1][2]:
            _, first, last, reasons = merged[-1]
            if reason and reason not in reasons.split("; "):
                reasons = f"{reasons}; {reason}" if reasons else reason
            merged[-1] = (enterprise, first, max(last, end), reasons)
        else:
            merged.append((enterprise, start, end, reason))
    return merged


_NOT_TAMPER_WATCHED = frozenset({"run_state", "energy", "power"})


def _tamper_points(spec: RegistrySpec, index: RegistryIndex
                   ) -> tuple[NDArray[np.bool_], NDArray[np.int32]]:
    """Which points the tamper rule judges, and the flow groups it compares for clones.

    Run states sit at 0/1 for hours honestly, energy counters only grow, and meters are
    the witness the faked data is checked against, so none of those are judged.
    """
    watched = np.zeros(index.n_points, dtype=np.bool_)
    group = np.full(index.n_points, -1, dtype=np.int32)
    for enterprise in spec.enterprises:
        for device in enterprise.devices:
            if device.kind == "meter":
                continue
            d_idx = index.device_index[device.id]
            for name, point in device.points.items():
                p_idx = index.device_points[d_idx][name]
                watched[p_idx] = point.kind not in _NOT_TAMPER_WATCHED
                if point.kind == "flow":
                    group[p_idx] = 0
    return watched, group


_HIGH_ONLY_KINDS = frozenset({"temperature"})


def _deviation_points(spec: RegistrySpec, index: RegistryIndex
                      ) -> tuple[NDArray[np.bool_], NDArray[np.int32], NDArray[np.int8]]:
    """Which points the deviation rule judges, the run state gating each, and which
    side of the baseline is a fault.

    A point with limits is judged by them; one without (a fan's motor current, a
    cooling loop's inlet temperature) can only be judged against its own past, and only
    while its equipment runs: a stopped fan reads 0 A and the water follows the
    weather.  Points on devices without a run state are left out, as nothing tells
    their regimes apart.
    """
    watched = np.zeros(index.n_points, dtype=np.bool_)
    gate = np.full(index.n_points, -1, dtype=np.int32)
    direction = np.zeros(index.n_points, dtype=np.int8)
    # Limits as the index applies them (registry values, else the kind's defaults).
    limits = np.zeros(index.n_points, dtype=np.bool_)
    for bound in (index.point_lo, index.point_hi, index.point_lolo, index.point_hihi,
                  index.point_rate_hi_per_min):
        limits |= np.isfinite(bound)
    for enterprise in spec.enterprises:
        for device in enterprise.devices:
            if device.kind == "meter":
                continue
            d_idx = index.device_index[device.id]
            runs = [name for name, p in device.points.items() if p.kind == "run_state"]
            if not runs:
                continue
            for name, point in device.points.items():
                p_idx = index.device_points[d_idx][name]
                if point.kind in _NOT_TAMPER_WATCHED or limits[p_idx]:
                    continue
                prefix = name.split("_")[0] + "_"
                named = [r for r in runs if r.startswith(prefix)]
                watched[p_idx] = True
                gate[p_idx] = index.device_points[d_idx][(named or runs)[0]]
                direction[p_idx] = 1 if point.kind in _HIGH_ONLY_KINDS else 0
    return watched, gate, direction


def _interlocks(index: RegistryIndex, devices: list[DeviceSpec],
                meters: list[tuple[DeviceSpec, int, float]]
                ) -> list[tuple[int, int, float, int, float, int, float, int]]:
    """Rule rows (kind, power, on_kw, guard, guard limit, other, other limit, subject)."""
    rules: list[tuple[int, int, float, int, float, int, float, int]] = []
    lines = [(p, r) for d, p, r in meters if d.role == "production" and np.isfinite(r)]
    furnaces = [(p, r) for d, p, r in meters if d.role == "furnace" and np.isfinite(r)]
    for device in devices:
        d_idx = index.device_index[device.id]
        if device.kind == "dust_collector":
            fan = _point(index, d_idx, device, kind="run_state", prefix="fan")
            if fan is not None:
                rules += [(INTERLOCK_FAN, p, FAN_ON_FRACTION * r, fan, 0.5, -1, np.nan, fan)
                          for p, r in lines]
        elif device.kind == "cooling_water":
            flow_in = _point(index, d_idx, device, kind="flow", suffix="_in")
            flow_out = _point(index, d_idx, device, kind="flow", suffix="_out")
            pressure = _point(index, d_idx, device, kind="pressure")
            pressure_lo = np.nan if pressure is None else float(index.point_lo[pressure])
            for p, r in furnaces:
                if flow_in is not None and np.isfinite(index.point_lo[flow_in]):
                    rules.append((INTERLOCK_COOLING, p, FURNACE_HEATING_FRACTION * r, flow_in,
                                  float(index.point_lo[flow_in]),
                                  -1 if pressure is None else pressure, pressure_lo, flow_in))
                if flow_in is not None and flow_out is not None:
                    flowing = (0.5 * float(index.point_lo[flow_in])
                               if np.isfinite(index.point_lo[flow_in]) else 0.0)
                    rules.append((INTERLOCK_LEAK, p, FURNACE_ENERGISED_FRACTION * r, flow_in,
                                  flowing, flow_out, LEAK_FRACTION, flow_out))
    return rules


def _point(index: RegistryIndex, d_idx: int, device: DeviceSpec, *, kind: str,
           prefix: str = "", suffix: str = "") -> int | None:
    """Dense index of the device's first point of ``kind`` named ``prefix…suffix``."""
    for name, spec in device.points.items():
        if spec.kind == kind and name.startswith(prefix) and name.endswith(suffix):
            return index.device_points[d_idx][name]
    return None
