"""Typed model of the registry YAML (CONTRACT.md §2).

Every model forbids unknown keys so a typo such as ``hihg:`` is an error naming the
file, line and key (see :mod:`gateway.registry.loader`) instead of a silently ignored
limit.  Fields beyond the contract example (``deadband``, ``on_delay_s``, ``rated_kw``)
are optional extensions; a registry written to the contract alone stays valid.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Enterprise, device and point ids; they appear in MQTT topics (CONTRACT.md §1)."""

Identifier = Annotated[str, Field(pattern=ID_PATTERN)]

Industry = Literal["dust", "metallurgy"]
MeterRole = Literal["total", "production", "dust_collector", "furnace", "cooling_pump"]
DeclaredState = Literal["stopped", "running"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PointSpec(_Strict):
    """One measured quantity of a device, with optional alarm limits in its own unit."""

    kind: str = Field(min_length=1, max_length=64)
    unit: str | None = None
    lo: float | None = None
    hi: float | None = None
    lolo: float | None = None
    hihi: float | None = None
    deadband: float | None = Field(default=None, ge=0)
    """Hysteresis in the point's unit: an alarm at ``hi`` clears below ``hi - deadband``."""
    on_delay_s: float | None = Field(default=None, ge=0)
    """The limit must be exceeded this long (event time) before the alarm fires."""
    rate_hi_per_min: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _limits_ordered(self) -> PointSpec:
        order = [("lolo", self.lolo), ("lo", self.lo), ("hi", self.hi), ("hihi", self.hihi)]
        present = [(name, v) for name, v in order if v is not None]
        for (name_a, a), (name_b, b) in itertools.pairwise(present):
            if not a < b:
                raise ValueError(f"limits must satisfy lolo < lo < hi < hihi, got {name_a}={a} "
                                 f"and {name_b}={b}")
        return self


class DeviceSpec(_Strict):
    id: Identifier
    kind: str = Field(min_length=1, max_length=64)
    role: MeterRole | None = None
    """Only for meters: what the meter measures."""
    expected_interval_s: float = Field(gt=0, le=86_400)
    rated_kw: float | None = Field(default=None, gt=0)
    """Rated power of the metered load, kW; seeds plant-state learning (extension)."""
    points: dict[Identifier, PointSpec] = Field(min_length=1)


class Schedule(_Strict):
    workdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    """ISO weekdays, 1 = Monday."""
    hours: list[Annotated[str, Field(pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")]] = Field(
        default_factory=lambda: ["08:00-17:00"]
    )


class DeclaredPeriod(_Strict):
    state: DeclaredState
    from_: datetime = Field(alias="from")
    to: datetime
    reason: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _aware_and_ordered(self) -> DeclaredPeriod:
        if self.from_.tzinfo is None or self.to.tzinfo is None:
            raise ValueError("declared period times need a UTC offset, e.g. +08:00")
        if not self.from_ < self.to:
            raise ValueError("declared period must end after it starts")
        return self


class EnterpriseSpec(_Strict):
    id: Identifier
    name: str = Field(min_length=1)
    industry: Industry
    region: list[Annotated[str, Field(pattern=r"^\d{6}(\d{3})?$")]] = Field(
        min_length=1, max_length=4
    )
    """Administrative codes from province down to town (GB/T 2260 + 3-digit town)."""
    timezone: str = "Asia/Shanghai"
    schedule: Schedule | None = None
    declared: list[DeclaredPeriod] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(min_length=1)
    supervisors: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class RegistrySpec(_Strict):
    enterprises: list[EnterpriseSpec] = Field(min_length=1)
