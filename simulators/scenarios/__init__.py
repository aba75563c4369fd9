"""The named scenario catalogue and its injection into one site (ground truth included).

Every scenario is seedable through the generator it is given, chooses its own window
on the site's real production timeline (no overlap with the site's other scenarios),
acts at the stage where it physically happens and writes the labels a correct service
should match (CONTRACT.md §3, kinds of §4):

* ``work``: what runs when (hidden production in a declared stop, a power cut);
* ``plan``: process knobs on the 30 s base grid (fan forced off, filter clogging, flow
  loss, ...), so every derived reading stays physically consistent;
* ``data``: what the monitoring system *reports* (silence, frozen or replayed values).

Consequences are labelled honestly: a flow loss that also drives ``temp_out`` over its
``hi`` gets a ``threshold`` label for ``temp_out``, and silent devices get
``device_offline`` labels, so a service that raises them is not charged a false alert.

Modules: :mod:`.catalogue` (the table, :func:`expand`), :mod:`.build` (the site under
construction), :mod:`.placement` (windows), :mod:`.operation`, :mod:`.physics` and
:mod:`.tampering` (the injectors), :mod:`.labelling`, and :mod:`.run` (the stage table).
"""

from simulators.scenarios.build import Placed, SiteBuild
from simulators.scenarios.catalogue import SCENARIOS, ScenarioSpec, expand
from simulators.scenarios.placement import expand_busy
from simulators.scenarios.run import run_site
from simulators.scenarios.tampering import silence_devices

__all__ = [
    "SCENARIOS",
    "Placed",
    "ScenarioSpec",
    "SiteBuild",
    "expand",
    "expand_busy",
    "run_site",
    "silence_devices",
]
