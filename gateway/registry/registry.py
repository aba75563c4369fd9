"""The loaded registry: the validated spec, where it came from, and its dense index.

Ingest resolves ``(enterprise id, device id, point name)`` to dense ids through
:attr:`Registry.index`; alerting and the API go the other way, from dense ids back to
the specs that carry names, regions and supervisors.  Both directions live here so
they cannot disagree.
"""

from __future__ import annotations

from gateway.registry.index import RegistryIndex, build_index
from gateway.registry.models import DeviceSpec, EnterpriseSpec, PointSpec, RegistrySpec

__all__ = ["Registry"]


class Registry:
    """A validated registry with lookups by id and by dense index.

    Immutable once built: a changed registry (edited through the API, reloaded from
    disk) is a new ``Registry`` with a new index.  Build it with
    :func:`gateway.registry.load_registry`, which reports duplicate ids with file and
    line; constructing it directly from a spec with duplicate ids raises ``ValueError``.

    >>> from gateway.registry import load_registry_text
    >>> registry = load_registry_text('''
    ... enterprises:
    ...   - id: E1
    ...     name: 示例金属制品有限公司
    ...     industry: dust
    ...     region: ["370000"]
    ...     devices:
    ...       - id: DC1
    ...         kind: dust_collector
    ...         expected_interval_s: 10
    ...         points: {dp: {kind: differential_pressure, unit: Pa, hi: 1500}}
    ... ''')
    >>> registry.device("DC1")[0].id
    'E1'
    >>> enterprise, device, name, point = registry.point_of_index(0)
    >>> (device.id, name, point.hi)
    ('DC1', 'dp', 1500.0)
    """

    def __init__(self, spec: RegistrySpec, source: str = "<spec>") -> None:
        """Index ``spec``; ``source`` names where it came from (a path, ``"<api>"``)."""
        self.spec = spec
        self.source = source
        self.index: RegistryIndex = build_index(spec)
        self._devices: list[tuple[EnterpriseSpec, DeviceSpec]] = [
            (enterprise, device) for enterprise in spec.enterprises for device in enterprise.devices
        ]
        self._points: list[tuple[EnterpriseSpec, DeviceSpec, str, PointSpec]] = [
            (enterprise, device, name, point)
            for enterprise, device in self._devices
            for name, point in device.points.items()
        ]

    def __repr__(self) -> str:
        index = self.index
        return (
            f"<Registry {self.source}: {index.n_enterprises} enterprises, "
            f"{index.n_devices} devices, {index.n_points} points>"
        )

    def enterprise(self, enterprise_id: str) -> EnterpriseSpec:
        """The enterprise with this id; ``KeyError`` if the registry has none."""
        return self.spec.enterprises[self.index.enterprise_index[enterprise_id]]

    def device(self, device_id: str) -> tuple[EnterpriseSpec, DeviceSpec]:
        """The device with this id and the enterprise it belongs to; ``KeyError`` if none."""
        return self._devices[self.index.device_index[device_id]]

    def enterprise_of_device_index(self, device_idx: int) -> EnterpriseSpec:
        """The enterprise owning the device with dense id ``device_idx``."""
        return self._devices[device_idx][0]

    def device_of_index(self, device_idx: int) -> DeviceSpec:
        """The device with dense id ``device_idx``."""
        return self._devices[device_idx][1]

    def point_of_index(self, point_idx: int) -> tuple[EnterpriseSpec, DeviceSpec, str, PointSpec]:
        """(enterprise, device, point name, point spec) of the point with dense id ``point_idx``.

        The spec is the registry's own: limits it leaves out are ``None`` here, while
        the index arrays hold them with per-kind defaults applied.
        """
        return self._points[point_idx]
