"""Per point-kind defaults: the one documented table behind every registry point.

A registry point may leave out ``deadband``, ``on_delay_s`` and its limits; the index
(:mod:`gateway.registry.index`) then fills them from :data:`POINT_KIND_DEFAULTS`.
Explicit values in the registry always win.  Keep this table and the table in
``docs/registry.md`` in step: integrators read the document, the service reads this.

Default *limits* are applied all-or-nothing and only in the unit they were written for:
a ``co`` point in ``ppm`` with no limits of its own gets ``hi: 25, hihi: 50``, but a
``co`` point in ``mg/m3``, or one that sets any of ``lolo``/``lo``/``hi``/``hihi``
itself, gets no default limits at all (mixing two sources could break the order
``lolo < lo < hi < hihi``, and a number without its unit is meaningless).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["POINT_KIND_DEFAULTS", "PointKindDefaults", "defaults_for"]


@dataclass(frozen=True)
class PointKindDefaults:
    """What a point of one kind gets when the registry does not say.

    Attributes:
        deadband: hysteresis in ``unit``; an alarm at ``hi`` clears below
            ``hi - deadband``.  ``>= 0``.
        on_delay_s: seconds of event time a limit must stay exceeded before the
            alarm fires.  ``>= 0``.
        unit: the unit the numbers above and the default limits are written in;
            ``None`` for dimensionless kinds (run states, counts).
        lolo, lo, hi, hihi: default alarm limits in ``unit``; ``None`` where the
            right value is site specific and must come from the registry.

    >>> PointKindDefaults(deadband=1.0, on_delay_s=10.0, unit="degC").has_limits
    False
    """

    deadband: float = 0.0
    on_delay_s: float = 0.0
    unit: str | None = None
    lolo: float | None = None
    lo: float | None = None
    hi: float | None = None
    hihi: float | None = None

    @property
    def has_limits(self) -> bool:
        """True when at least one default limit is set."""
        return any(v is not None for v in (self.lolo, self.lo, self.hi, self.hihi))

    def limits_apply_to(self, unit: str | None) -> bool:
        """Whether the default limits may be used for a point measured in ``unit``.

        Units are compared as written (``"ppm"`` is not ``"PPM"``): a wrong guess
        here would put an alarm limit on the wrong scale.

        >>> co = defaults_for("co")
        >>> co.limits_apply_to("ppm"), co.limits_apply_to("mg/m3")
        (True, False)
        """
        return self.has_limits and unit == self.unit


_UNKNOWN = PointKindDefaults()
"""Kinds not in the table: no deadband, no on-delay, no limits."""

POINT_KIND_DEFAULTS: dict[str, PointKindDefaults] = {
    # Dust-collector ΔP: the healthy band depends on the filter and fan, so no default
    # limits; 20 Pa deadband and 30 s on-delay ride out pulse-jet cleaning spikes.
    "differential_pressure": PointKindDefaults(deadband=20.0, on_delay_s=30.0, unit="Pa"),
    "temperature": PointKindDefaults(deadband=1.0, on_delay_s=10.0, unit="degC"),
    # 0/1 fan or motor state: used by interlock rules, never compared to limits.
    "run_state": PointKindDefaults(),
    "power": PointKindDefaults(deadband=1.0, on_delay_s=60.0, unit="kW"),
    # Cumulative counter: only its increase means anything, limits make no sense.
    "energy": PointKindDefaults(unit="kWh"),
    "current": PointKindDefaults(deadband=1.0, on_delay_s=10.0, unit="A"),
    "voltage": PointKindDefaults(deadband=2.0, on_delay_s=10.0, unit="V"),
    # Furnace coil cooling water: flow and pressure limits depend on the furnace.
    "flow": PointKindDefaults(deadband=0.2, on_delay_s=10.0, unit="m3/h"),
    "pressure": PointKindDefaults(deadband=0.01, on_delay_s=10.0, unit="MPa"),
    "water_level": PointKindDefaults(deadband=0.02, on_delay_s=10.0, unit="m"),
    # CO (toxic): GB/T 50493-2019 sets the first/second alarm level at <= 100 % / 200 %
    # of the occupational exposure limit.  With the CO PC-STEL of 30 mg/m³ (GBZ 2.1)
    # ≈ 25 ppm at 20 °C, that gives hi 25 ppm and hihi 50 ppm.  Some vendor tables
    # derived from the same standard use PC-TWA 20 mg/m³ instead (≈ 17/35 ppm):
    # sites that need the stricter reading set hi/hihi in the registry.
    # No on-delay: a toxic-gas alarm must not wait.
    "co": PointKindDefaults(deadband=2.0, on_delay_s=0.0, unit="ppm", hi=25.0, hihi=50.0),
    # Hydrogen (combustible): GB/T 50493-2019 first level <= 25 %LEL, second <= 50 %LEL.
    "hydrogen": PointKindDefaults(deadband=2.0, on_delay_s=0.0, unit="%LEL", hi=25.0, hihi=50.0),
    # Spark detector counts per reporting interval: any spark matters, rules decide.
    "spark_count": PointKindDefaults(),
}
"""Defaults by point ``kind`` (the ``kind:`` of a point in the registry)."""


def defaults_for(kind: str) -> PointKindDefaults:
    """Defaults for a point kind; unknown kinds get deadband 0 and on-delay 0 s.

    >>> defaults_for("differential_pressure").deadband
    20.0
    >>> unknown = defaults_for("no_such_kind")
    >>> unknown.deadband, unknown.on_delay_s, unknown.has_limits
    (0.0, 0.0, False)
    """
    return POINT_KIND_DEFAULTS.get(kind, _UNKNOWN)
