"""Running the scenarios of one site: placement, then the three generation stages.

Each scenario acts at the stage where it physically happens (``work``: what runs when;
``plan``: process knobs; ``data``: what is reported, and labels read off the data), so
the stage table below says, one row per scenario, where each one intervenes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from simulators.scenarios import labelling as lab
from simulators.scenarios import operation as op
from simulators.scenarios import physics as phy
from simulators.scenarios import tampering as tam
from simulators.scenarios.build import Injector, SiteBuild, nothing
from simulators.scenarios.catalogue import SCENARIOS
from simulators.scenarios.placement import place, without_stops


@dataclass(frozen=True, slots=True)
class Stages:
    """What one scenario does at each stage; a stage it skips is :func:`nothing`."""

    work: Injector = nothing
    plan: Injector = nothing
    data: Injector = nothing


_HIDDEN = Stages(work=op.hidden_work, plan=op.hidden_load)

STAGES: Mapping[str, Stages] = MappingProxyType({
    "hidden_operation.full": _HIDDEN,
    "hidden_operation.partial_line": _HIDDEN,
    "hidden_operation.night_only": _HIDDEN,
    "hidden_operation.ramped": _HIDDEN,
    "fake_offline.silent": Stages(data=tam.silent),
    "fake_offline.frozen": Stages(data=tam.frozen),
    "fake_offline.replay_day": Stages(data=tam.replay),
    "fake_offline.replay_noisy": Stages(data=tam.replay),
    "fake_offline.clone": Stages(data=tam.clone),
    "abnormal.filter_clogging": Stages(plan=phy.knob("extra_resistance", phy.clog),
                                       data=lab.limit_crossings),
    "abnormal.bag_rupture": Stages(plan=phy.knob("resistance_scale", phy.rupture),
                                   data=lab.limit_crossings),
    "abnormal.hopper_temp_rise": Stages(plan=phy.knob("hopper_heat", phy.hopper_heat),
                                        data=lab.hopper_rise),
    "abnormal.spark": Stages(plan=phy.sparks, data=lab.spark_burst),
    "abnormal.fan_off_interlock": Stages(plan=phy.knob("fan_off", phy.always),
                                         data=lab.interlock("fan_run")),
    "abnormal.fan_belt_slip": Stages(plan=phy.knob("fan_load", phy.slip),
                                     data=lab.condition("fan_current")),
    "abnormal.cooling_flow_loss": Stages(plan=phy.knob("flow_factor", phy.flow_loss),
                                         data=lab.interlock("flow_in")),
    "abnormal.cooling_leak": Stages(plan=phy.knob("leak", phy.leak),
                                    data=lab.interlock("flow_out")),
    "abnormal.cooling_tower_fault": Stages(data=phy.tower_fault),
    "abnormal.co_high": Stages(plan=phy.knob("co_extra", phy.co_rise), data=lab.gas_crossings),
    "negative.power_outage": Stages(work=op.power_cut_work, plan=op.power_cut_grid,
                                    data=tam.silent),
    "negative.maintenance_load": Stages(plan=op.maintenance_load),
    "negative.steady_flat": Stages(plan=phy.knob("steady", phy.always), data=lab.steady),
    "negative.gateway_outage_plant_off": Stages(data=tam.silent),
})
"""Where each catalogue scenario intervenes."""

if STAGES.keys() != SCENARIOS.keys():  # a catalogue row without injectors, or vice versa
    raise RuntimeError(f"scenario stages out of step with the catalogue: "
                       f"{sorted(STAGES.keys() ^ SCENARIOS.keys())}")


def run_site(b: SiteBuild, names: Sequence[str], rng: np.random.Generator,
             sim_rng: np.random.Generator) -> None:
    """Place ``names`` on the site, then generate its data with them injected.

    Stop-needing scenarios are placed first because they declare stops, which changes
    where production (and so every other scenario) can be.
    """
    for name in sorted(names, key=lambda n: SCENARIOS[n].needs != "stop"):
        spec = SCENARIOS[name]
        placed = place(b, spec, rng)
        if placed is None:
            b.skipped.append(name)
            continue
        b.placed.append(placed)
        b.busy.append((placed.start, placed.end))
    b.work = without_stops(b)
    for p in b.placed:
        STAGES[p.spec.name].work(b, p, rng)
    b.plan = b.model.plan(b.grid, b.work)
    for p in b.placed:
        STAGES[p.spec.name].plan(b, p, rng)
    devices, events = b.model.simulate(b.plan, sim_rng)  # type: ignore[arg-type]
    b.devices, b.events = devices, events
    for p in b.placed:
        STAGES[p.spec.name].data(b, p, rng)
