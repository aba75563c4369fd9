"""Inhibition: an alert covers the alerts of the parts it explains.

When the whole site gateway is silent while the plant runs (``fake_offline`` with no
device), every device of the site also raises ``device_offline``: the same fact seen
piece by piece.  Likewise a dust collector whose ΔP is already over its limit (bags
blinding) draws less fan current, and the deviation rule sees that too: a symptom of the
fault already alerted on that device.  ISA-18.2 wants one alarm there, not a flood, so
the children are kept (they are true, and auditors may ask) but marked ``inhibited_by``
the parent's id in their evidence; the scorer's alarm rates skip marked alerts, and so
must notification (issue 5).  The mark is a record of what covered the alert, so it
stays after the parent resolves.
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
    ``child_kind`` alerts of the same enterprise; with ``same_device``, a parent on a
    device inhibits children on another point of that device.  ``child_rule``: only
    children whose evidence names this detector rule."""

    parent_kind: str
    child_kind: str
    same_device: bool = False
    child_rule: str | None = None

    def parent_key(self, alert: Alert) -> tuple[str, str | None] | None:
        """What a parent covers, or None when ``alert`` cannot be this rule's parent."""
        if alert.kind != self.parent_kind:
            return None
        if self.same_device:
            device = alert.subject.device_id
            return None if device is None else (alert.subject.enterprise_id, device)
        return None if alert.subject.device_id is not None else (
            alert.subject.enterprise_id, None)

    def child_key(self, alert: Alert) -> tuple[str, str | None] | None:
        """The parent key that would cover ``alert``, or None when it is no child."""
        if alert.kind != self.child_kind or (
                self.child_rule is not None and alert.evidence.get("rule") != self.child_rule):
            return None
        device = alert.subject.device_id if self.same_device else None
        return alert.subject.enterprise_id, device


SYMPTOM_PARENTS = ("threshold", "rate_of_change", "interlock_violation")
"""Alerts on a device that explain a deviation of another of its points."""

DEFAULT_RULES = (InhibitRule("fake_offline", "device_offline"),
                 *(InhibitRule(parent, "abnormal_condition", same_device=True,
                               child_rule="deviation") for parent in SYMPTOM_PARENTS))


class Inhibitor:
    """Marks children of open parents; run after :meth:`AlertManager.apply`.

    >>> [(r.parent_kind, r.child_kind, r.same_device) for r in Inhibitor().rules][:2]
    [('fake_offline', 'device_offline', False), ('threshold', 'abnormal_condition', True)]
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
            parents: dict[tuple[str, str | None], Alert] = {}
            for alert in open_alerts:
                key = rule.parent_key(alert)
                if key is not None:
                    parents.setdefault(key, alert)
            if not parents:
                continue
            touched = {a.subject.enterprise_id for a in changed
                       if a.kind in (rule.parent_kind, rule.child_kind)}
            for child in open_alerts:
                key = rule.child_key(child)
                parent = None if key is None else parents.get(key)
                if parent is None or child.subject.enterprise_id not in touched:
                    continue
                if rule.same_device and (parent.subject.point == child.subject.point
                                         or INHIBITED_BY in child.evidence):
                    continue  # a point does not explain itself; the first cover stays
                updated = manager.annotate(child.fingerprint, INHIBITED_BY, parent.id,
                                           parent.detected_at)
                if updated is not None:
                    marked[updated.id] = updated
        if not marked:
            return changed
        merged = [marked.pop(a.id, a) for a in changed]
        return merged + list(marked.values())
