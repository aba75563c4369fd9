"""Inhibition: a site-level alert covers the alerts of the parts it explains.

When the whole site gateway is silent while the plant runs (``fake_offline`` with no
device), every device of the site also raises ``device_offline``: the same fact seen
piece by piece.  ISA-18.2 wants one alarm there, not a flood, so the children are kept
(they are true, and auditors may ask) but marked ``inhibited_by`` the parent's id in
their evidence; the scorer's alarm rates skip marked alerts, and so must notification
(issue 5).  The mark is a
record of what covered the alert, so it stays after the parent resolves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerting.manager import AlertManager
from alerting.models import Alert

INHIBITED_BY = "inhibited_by"
"""Evidence key naming the parent alert's id."""


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """An open ``parent_kind`` alert at site level (no device) inhibits open
    ``child_kind`` alerts of the same enterprise."""

    parent_kind: str
    child_kind: str


DEFAULT_RULES = (InhibitRule("fake_offline", "device_offline"),)


class Inhibitor:
    """Marks children of open parents; run after :meth:`AlertManager.apply`.

    >>> Inhibitor().rules[0]
    InhibitRule(parent_kind='fake_offline', child_kind='device_offline')
    """

    def __init__(self, rules: Iterable[InhibitRule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)

    def apply(self, manager: AlertManager, changed: list[Alert]) -> list[Alert]:
        """``changed`` plus the alerts this stage marked, each once, latest state."""
        if not changed:
            return changed
        marked: dict[str, Alert] = {}
        open_alerts = manager.open_alerts()
        for rule in self.rules:
            parents = {a.subject.enterprise_id: a for a in open_alerts
                       if a.kind == rule.parent_kind and a.subject.device_id is None}
            if not parents:
                continue
            touched = {a.subject.enterprise_id for a in changed
                       if a.kind in (rule.parent_kind, rule.child_kind)}
            for child in open_alerts:
                parent = parents.get(child.subject.enterprise_id)
                if (parent is None or child.kind != rule.child_kind
                        or child.subject.enterprise_id not in touched):
                    continue
                updated = manager.annotate(child.fingerprint, INHIBITED_BY, parent.id,
                                           parent.detected_at)
                if updated is not None:
                    marked[updated.id] = updated
        if not marked:
            return changed
        merged = [marked.pop(a.id, a) for a in changed]
        return merged + list(marked.values())
