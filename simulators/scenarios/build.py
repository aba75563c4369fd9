"""The site under construction: what each generation stage reads and edits in turn.

Scenarios and impairments share this one mutable record rather than passing arrays
around, so a later stage (impairments, labels) sees exactly what earlier ones did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulators.labels import Label
from simulators.scenarios.catalogue import ScenarioSpec
from simulators.sites import DeviceSeries, EventSeries, SiteModel, SitePlan, StatusSeries
from simulators.sites.common import F64
from simulators.sites.dust import DustSite

H = 3600.0
"""One hour, seconds: the unit the scenarios' margins are written in."""


@dataclass(slots=True)
class Placed:
    """A scenario with its chosen window; ``extra`` carries what placement or an early
    stage decided (stop windows, spark times, ramp ends) for the later stages to use."""

    spec: ScenarioSpec
    start: float
    end: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SiteBuild:
    """Everything generated for one site; scenarios and impairments edit it in turn."""

    model: SiteModel
    start: float
    end: float
    grid: F64
    work: list[tuple[F64, F64]]
    declared: list[tuple[float, float, str]] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plan: SitePlan | None = None
    devices: dict[str, DeviceSeries] = field(default_factory=dict)
    events: list[EventSeries] = field(default_factory=list)
    statuses: list[StatusSeries] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)

    @property
    def eid(self) -> str:
        return self.model.eid

    def on_site(self) -> list[str]:
        """Devices behind the site's gateway (all but the utility total meter)."""
        return [d for d in self.devices if d != self.model.ids.total]

    def watched(self) -> str:
        """The sensor device a faker tampers with: dust collector or coil cooling."""
        m = self.model
        return m.ids.collector if isinstance(m, DustSite) else m.ids.cooling

    def label(self, kind: str, device: str | None, start: float, end: float, scenario: str,
              negative: bool = False, point: str | None = None) -> None:
        """Record ground truth; at least 1 s long so no label is an empty interval."""
        self.labels.append(Label(self.eid, device, kind, float(start), float(max(end, start
                                 + 1.0)), scenario, negative, point))

    def limits(self) -> dict[str, dict[str, dict[str, float]]]:
        """Registry limits per device and point, to label what injected data crosses."""
        return {d["id"]: {p: {k: float(v) for k, v in spec.items()
                              if k in ("lo", "lolo", "hi", "hihi")}
                          for p, spec in d["points"].items()}
                for d in self.model.devices()}


Injector = Callable[[SiteBuild, Placed, np.random.Generator], None]
"""One stage of one scenario: edits the build, drawing only from the scenario stream."""


def nothing(b: SiteBuild, p: Placed, rng: np.random.Generator) -> None:
    """A stage the scenario has no part in (it must still not touch ``rng``)."""
    return None
