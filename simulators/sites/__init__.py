"""Physical site models for the scenario simulator (dust-explosion and metallurgy).

A model draws its plant (lines, fan, furnace, sensors, limits) from a seeded generator,
turns working intervals into a :class:`Plan`-like bundle of base-grid (30 s) process
arrays that scenarios may edit, and samples every device from that one physical state,
so cross-device relations (total meter = lines + fan + base; ΔP ∝ airflow²; coil
ΔT = heat / (1.163 × flow)) hold by construction.
"""

from simulators.sites.common import DeviceSeries, EventSeries, ShiftPattern, StatusSeries
from simulators.sites.dust import DustPlan, DustSite
from simulators.sites.metallurgy import MetalPlan, MetalSite

SiteModel = DustSite | MetalSite
SitePlan = DustPlan | MetalPlan

__all__ = [
    "DeviceSeries",
    "DustPlan",
    "DustSite",
    "EventSeries",
    "MetalPlan",
    "MetalSite",
    "ShiftPattern",
    "SiteModel",
    "SitePlan",
    "StatusSeries",
]
