"""The site registry: which enterprises, devices and points exist, and their limits.

Load it with :func:`load_registry`; every problem in the YAML is a
:class:`RegistryError` naming file, line and key.  :class:`Registry` gives lookups by id
and by the dense indices of :class:`RegistryIndex` that the detectors use.
"""

from gateway.registry.index import RegistryIndex, build_index
from gateway.registry.loader import (
    RegistryError,
    load_registry,
    load_registry_data,
    load_registry_text,
)
from gateway.registry.point_defaults import POINT_KIND_DEFAULTS, PointKindDefaults, defaults_for
from gateway.registry.registry import Registry

__all__ = [
    "POINT_KIND_DEFAULTS",
    "PointKindDefaults",
    "Registry",
    "RegistryError",
    "RegistryIndex",
    "build_index",
    "defaults_for",
    "load_registry",
    "load_registry_data",
    "load_registry_text",
]
