"""The scenario catalogue: one row per named scenario, and name resolution for the CLI.

Kept free of any injection code so the catalogue reads as the contract's table
(CONTRACT.md §3) and the suite can validate ``--scenario`` before building anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """A named scenario: the alert ``kind`` its labels carry, the industries it applies
    to, whether it is a hard negative, what window it needs (``stop``: inside a new
    declared stop; ``production``; ``history``: production with a day of data before;
    ``off``: plant idle) and its duration range in seconds."""

    name: str
    kind: str
    industries: tuple[str, ...]
    negative: bool
    needs: str
    duration_s: tuple[float, float]
    doc: str


BOTH = ("dust", "metallurgy")
DUST = ("dust",)
METAL = ("metallurgy",)

_Row = tuple[str, str, tuple[str, ...], str, tuple[int, int], str]

# Durations are whole minutes so every bound is an exact number of seconds.  The hard
# negatives are exactly the ``negative`` family.
_ROWS: tuple[_Row, ...] = (
    # name                              kind                    industry needs      minutes
    ("hidden_operation.full",           "hidden_operation",     BOTH,  "stop",       (240, 720),
     "Full production on 1-2 workdays of a declared stop (明停暗开)."),
    ("hidden_operation.partial_line",   "hidden_operation",     BOTH,  "stop",       (180, 600),
     "One line (or the furnace at 40-60 %) runs 3-10 h during a declared stop."),
    ("hidden_operation.night_only",     "hidden_operation",     BOTH,  "stop",       (360, 540),
     "Stopped by day, producing 21:00-05:00 on 1-3 nights (昼停夜开)."),
    ("hidden_operation.ramped",         "hidden_operation",     BOTH,  "stop",       (360, 720),
     "Load creeps up from 15 % to full over 6-12 h during a declared stop."),
    ("fake_offline.silent",             "fake_offline",         BOTH,  "production", (30, 240),
     "Every on-site device goes silent while the utility meter shows production."),
    ("fake_offline.frozen",             "fake_offline",         BOTH,  "production", (30, 240),
     "The collector / cooling device repeats its last values exactly."),
    ("fake_offline.replay_day",         "fake_offline",         BOTH,  "history",    (60, 240),
     "The device re-sends the exact values of the same hours 1 or 7 days earlier."),
    ("fake_offline.replay_noisy",       "fake_offline",         BOTH,  "history",    (60, 240),
     "Like replay_day with a 0.5-2 % offset, sensor-level noise and a sample shift."),
    ("fake_offline.clone",              "fake_offline",         METAL, "production", (60, 360),
     "The cooling outlet flow sensor reports the inlet sensor's values exactly."),
    ("abnormal.filter_clogging",        "threshold",            DUST,  "production", (60, 240),
     "Bags blind, cleaning stops helping: ΔP climbs above hi/hihi (point dp)."),
    ("abnormal.bag_rupture",            "threshold",            DUST,  "production", (30, 120),
     "Ruptured bags let air bypass the cake: ΔP falls below lo (point dp)."),
    ("abnormal.hopper_temp_rise",       "rate_of_change",       DUST,  "production", (30, 90),
     "Smouldering dust in the hopper: 2.5-5 K/min for 6-15 min."),
    ("abnormal.spark",                  "abnormal_condition",   DUST,  "production", (3, 20),
     "A burst of 5-25 spark detections in one zone within minutes."),
    ("abnormal.fan_off_interlock",      "interlock_violation",  DUST,  "production", (10, 90),
     "Lines keep running while the collector fan is off."),
    ("abnormal.fan_belt_slip",          "abnormal_condition",   DUST,  "production", (30, 120),
     "The fan runs but draws 55-70 % of its current: a slipping belt, a worn impeller."),
    ("abnormal.cooling_flow_loss",      "interlock_violation",  METAL, "production", (10, 45),
     "Pump degrades to 25-45 % flow while the furnace is powered."),
    ("abnormal.cooling_leak",           "interlock_violation",  METAL, "production", (15, 90),
     "12-25 % of coil water lost between inlet and outlet meters."),
    ("abnormal.cooling_tower_fault",    "abnormal_condition",   METAL, "production", (30, 120),
     "Tower fan fails: supply water (temp_in) climbs 8-15 K in 5-10 min and stays."),
    ("abnormal.co_high",                "threshold",            METAL, "production", (10, 50),
     "CO near the furnace rises to 35-150 ppm (point co)."),
    ("negative.power_outage",           "fake_offline",         BOTH,  "production", (30, 180),
     "Grid outage: meter near zero and gateway silent (device_offline positive)."),
    ("negative.maintenance_load",       "hidden_operation",     BOTH,  "stop",       (120, 480),
     "About 5 % of production load (repairs, welding, lights) in a declared stop."),
    ("negative.steady_flat",            "fake_offline",         BOTH,  "production", (120, 360),
     "A genuinely steady process: readings flat at sensor resolution for hours."),
    ("negative.gateway_outage_plant_off", "fake_offline",       BOTH,  "off",        (60, 600),
     "Gateway silent while the plant is off (device_offline positive)."),
)

SCENARIOS: Mapping[str, ScenarioSpec] = MappingProxyType({
    name: ScenarioSpec(name, kind, industries, name.startswith("negative."), needs,
                       (lo * 60.0, hi * 60.0), doc)
    for name, kind, industries, needs, (lo, hi), doc in _ROWS
})
"""Every scenario by name.  Families: the text before the dot."""


def expand(names: Sequence[str]) -> list[str]:
    """Resolve ``all``, family prefixes (``hidden_operation``, ``negative``) and exact
    names to catalogue names, in catalogue order, without duplicates."""
    chosen: set[str] = set()
    for name in names:
        hits = [n for n in SCENARIOS if name == "all" or n == name or n.split(".")[0] == name]
        if not hits:
            families = sorted({n.split(".")[0] for n in SCENARIOS})
            raise ValueError(f"unknown scenario {name!r}; valid: all, {', '.join(families)}, "
                             f"{', '.join(SCENARIOS)}")
        chosen.update(hits)
    return [n for n in SCENARIOS if n in chosen]
