"""Dense integer ids for enterprises, devices and points, as struct-of-arrays.

Detectors keep their state in arrays indexed by these ids (DESIGN.md, "Principles"),
so the registry is flattened once, in file order, into the arrays below.  Per-point
parameters already have the per-kind defaults of :mod:`gateway.registry.point_defaults`
applied, so no detector ever looks at a ``PointSpec`` on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from gateway.registry.models import PointSpec, RegistrySpec
from gateway.registry.point_defaults import defaults_for

__all__ = ["RegistryIndex", "build_index"]

_Scalar = TypeVar("_Scalar", bound=np.generic)


@dataclass(frozen=True, eq=False)
class RegistryIndex:
    """Dense ids ``0..n-1`` in file order, and per-id parameters as read-only arrays.

    Limits, deadbands and on-delays are in the point's own unit; ``NaN`` marks a limit
    (or ``rate_hi_per_min``) that is absent after defaults were applied.  Intervals and
    delays are in seconds.  Build it with :func:`build_index`.
    """

    enterprise_ids: list[str]
    """Enterprise idx -> enterprise id."""
    enterprise_index: dict[str, int]
    device_ids: list[str]
    """Device idx -> device id (device ids are unique across the whole registry)."""
    device_index: dict[str, int]
    device_enterprise: NDArray[np.int32]
    """Device idx -> enterprise idx."""
    device_expected_interval_s: NDArray[np.float64]
    device_points: list[dict[str, int]]
    """Device idx -> {point name: point idx}; the decoder's lookup per value."""
    point_names: list[str]
    """Point idx -> point name (unique only within its device)."""
    point_kinds: list[str]
    point_units: list[str | None]
    point_device: NDArray[np.int32]
    point_enterprise: NDArray[np.int32]
    point_lo: NDArray[np.float64]
    point_hi: NDArray[np.float64]
    point_lolo: NDArray[np.float64]
    point_hihi: NDArray[np.float64]
    point_deadband: NDArray[np.float64]
    """Hysteresis, ``>= 0``, in the point's unit."""
    point_on_delay_s: NDArray[np.float64]
    point_rate_hi_per_min: NDArray[np.float64]
    """Largest allowed rise per minute in the point's unit; ``NaN`` where none."""

    @property
    def n_enterprises(self) -> int:
        """Number of enterprises."""
        return len(self.enterprise_ids)

    @property
    def n_devices(self) -> int:
        """Number of devices over all enterprises."""
        return len(self.device_ids)

    @property
    def n_points(self) -> int:
        """Number of points over all devices."""
        return len(self.point_names)


def build_index(spec: RegistrySpec) -> RegistryIndex:
    """Flatten a validated registry into a :class:`RegistryIndex`.

    Raises ``ValueError`` if an enterprise id or a device id occurs twice; the loader
    reports those with file and line before it gets here, so this only guards specs
    built in code.

    >>> from gateway.registry.models import RegistrySpec
    >>> spec = RegistrySpec.model_validate({"enterprises": [{
    ...     "id": "E1", "name": "示例厂", "industry": "dust", "region": ["370000"],
    ...     "devices": [{"id": "GD1", "kind": "gas_detector", "expected_interval_s": 10,
    ...                  "points": {"co": {"kind": "co", "unit": "ppm"}}}]}]})
    >>> index = build_index(spec)
    >>> index.device_points, float(index.point_hi[0]), float(index.point_hihi[0])
    ([{'co': 0}], 25.0, 50.0)
    """
    enterprise_ids: list[str] = []
    enterprise_index: dict[str, int] = {}
    device_ids: list[str] = []
    device_index: dict[str, int] = {}
    device_enterprise: list[int] = []
    device_interval: list[float] = []
    device_points: list[dict[str, int]] = []
    point_names: list[str] = []
    point_kinds: list[str] = []
    point_units: list[str | None] = []
    point_device: list[int] = []
    point_enterprise: list[int] = []
    params: list[tuple[float, float, float, float, float, float, float]] = []

    for enterprise in spec.enterprises:
        if enterprise.id in enterprise_index:
            raise ValueError(f"duplicate enterprise id {enterprise.id!r}")
        e_idx = len(enterprise_ids)
        enterprise_ids.append(enterprise.id)
        enterprise_index[enterprise.id] = e_idx
        for device in enterprise.devices:
            if device.id in device_index:
                owner = enterprise_ids[device_enterprise[device_index[device.id]]]
                raise ValueError(f"device {device.id} already belongs to enterprise {owner}")
            d_idx = len(device_ids)
            device_ids.append(device.id)
            device_index[device.id] = d_idx
            device_enterprise.append(e_idx)
            device_interval.append(device.expected_interval_s)
            names: dict[str, int] = {}
            for name, point in device.points.items():
                names[name] = len(point_names)
                point_names.append(name)
                point_kinds.append(point.kind)
                point_units.append(point.unit)
                point_device.append(d_idx)
                point_enterprise.append(e_idx)
                params.append(_point_params(point))
            device_points.append(names)

    table = np.array(params, dtype=np.float64).reshape(len(params), 7)
    lo, hi, lolo, hihi, deadband, on_delay_s, rate = (
        _frozen(table[:, column].copy()) for column in range(7)
    )
    return RegistryIndex(
        enterprise_ids=enterprise_ids,
        enterprise_index=enterprise_index,
        device_ids=device_ids,
        device_index=device_index,
        device_enterprise=_frozen(np.array(device_enterprise, dtype=np.int32)),
        device_expected_interval_s=_frozen(np.array(device_interval, dtype=np.float64)),
        device_points=device_points,
        point_names=point_names,
        point_kinds=point_kinds,
        point_units=point_units,
        point_device=_frozen(np.array(point_device, dtype=np.int32)),
        point_enterprise=_frozen(np.array(point_enterprise, dtype=np.int32)),
        point_lo=lo,
        point_hi=hi,
        point_lolo=lolo,
        point_hihi=hihi,
        point_deadband=deadband,
        point_on_delay_s=on_delay_s,
        point_rate_hi_per_min=rate,
    )


def _point_params(point: PointSpec) -> tuple[float, float, float, float, float, float, float]:
    """(lo, hi, lolo, hihi, deadband, on_delay_s, rate_hi_per_min) with defaults applied.

    Default limits come as a set and only when the point names no limit itself and is
    measured in the unit the defaults were written for (see ``point_defaults``).
    """
    defaults = defaults_for(point.kind)
    own_limits = (point.lo, point.hi, point.lolo, point.hihi)
    if all(v is None for v in own_limits) and defaults.limits_apply_to(point.unit):
        limits = (defaults.lo, defaults.hi, defaults.lolo, defaults.hihi)
    else:
        limits = own_limits
    deadband = defaults.deadband if point.deadband is None else point.deadband
    on_delay_s = defaults.on_delay_s if point.on_delay_s is None else point.on_delay_s
    lo, hi, lolo, hihi = (_nan_if_none(v) for v in limits)
    return lo, hi, lolo, hihi, deadband, on_delay_s, _nan_if_none(point.rate_hi_per_min)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _frozen(array: NDArray[_Scalar]) -> NDArray[_Scalar]:
    """Mark an index array read-only: a detector writing into it would be a bug."""
    array.flags.writeable = False
    return array
