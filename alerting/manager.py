"""Alert lifecycle: turn a stream of conditions into firing and resolved alerts.

The detectors report *changes* of their verdicts, but the same anomaly can be reported
again (a level change, a restart that re-evaluates everything, a second rule seeing the
same thing).  An operator must see one alert per anomaly, so the manager keeps the
open alerts by :func:`~alerting.models.fingerprint` and folds repeats into them.

A condition that re-fires soon after its alert resolved (``reopen_window_s``, event
time) reopens that alert instead of raising a new one: a threshold crossed, left and
crossed again within minutes is one anomaly to an operator, and a handling already
under way (acknowledged, dispatched) carries on.  An alert whose condition changes
``flap_transitions`` times within ``flap_window_s`` (fired, resolved, reopened, ...) is
marked ``flapping``: it stays one alert, and notifiers send one flapping message
instead of one per transition.  It stops flapping once ``flap_window_s`` passes without
a transition, which :meth:`AlertManager.sweep` notices on the watermark.  A closed
alert (销号) never reopens: the next firing is a new alert.

Everything here is pure and synchronous: no clock of its own (conditions and sweeps
carry event time), no I/O.  The caller persists what :meth:`AlertManager.apply`
returns and, after a restart, hands the open alerts back through
:meth:`AlertManager.restore`.  Later stages
(escalation, routing, notification, acknowledgement) consume the returned alerts; they
are copies, so a stage that runs after the next ``apply`` still sees the alert as it
was when returned.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from alerting.models import Alert, Condition, alert_id, fingerprint
from alerting.timefmt import to_ms
from alerting.titles import check_locale, render_title
from alerting.workflow import contract_state

STAT_KEYS: tuple[str, ...] = ("created", "updated", "resolved", "deduplicated", "stray_clears",
                              "reopened", "flapping")
"""Counters of :attr:`AlertManager.stats`.

Every active condition counts once as ``created``, ``updated`` (it changed the open
alert's level, title or evidence) or ``deduplicated`` (it changed nothing); every clear
counts once as ``resolved`` or ``stray_clears`` (no open alert to resolve).  A created
alert that reopened a resolved one counts as ``reopened`` instead of ``created``;
``flapping`` counts alerts that started flapping.
"""


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """Start (ms) and id sequence of the last alert of a fingerprint, to keep ids unique."""

    started_ms: int
    seq: int


class AlertManager:
    """Deduplicates conditions by fingerprint and drives firing -> resolved (-> reopened).

    ``locale`` selects the title language (``"zh"`` or ``"en"``).  ``reopen_window_s``
    0 turns reopening off; ``flap_transitions`` 0 turns flap marking off.
    """

    def __init__(self, locale: str = "zh", *, reopen_window_s: float = 1800.0,
                 flap_transitions: int = 3, flap_window_s: float = 600.0) -> None:
        check_locale(locale)
        if reopen_window_s < 0 or flap_transitions < 0 or flap_window_s <= 0:
            raise ValueError("reopen and flap windows must be positive, transitions >= 0")
        self._locale = locale
        self.reopen_window_s = reopen_window_s
        self.flap_transitions = flap_transitions
        self.flap_window_s = flap_window_s
        self._open: dict[str, Alert] = {}
        self._recent: dict[str, Alert] = {}
        """Resolved, not closed alerts by fingerprint, while they may still reopen."""
        self._transitions: dict[str, list[float]] = {}
        """Event times of the recent condition transitions of open and recent alerts."""
        self._last: dict[str, _Occurrence] = {}
        self._annotations: set[str] = set()
        """Evidence keys written by :meth:`annotate`, kept across condition updates."""
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    def apply(self, conditions: Iterable[Condition]) -> list[Alert]:
        """Fold ``conditions`` (in decision order) into the open alerts.

        Returns every alert this call created, changed or resolved, once each, as it
        stands at the end of the call, in the order of its first change.  An alert
        created and resolved in the same call is returned once, resolved.
        """
        changed: dict[str, Alert] = {}
        for condition in conditions:
            alert = self._fold(condition)
            if alert is not None:
                changed.setdefault(alert.id, alert)
        return [copy.copy(alert) for alert in changed.values()]

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Re-open alerts loaded from the store so deduplication survives a restart.

        Open (firing/acknowledged) alerts deduplicate again; resolved ones may reopen
        (the next :meth:`sweep` forgets those past the window).  Should the store hold
        two alerts of one fingerprint, the later-detected one wins, because a new
        condition belongs to the most recent occurrence.
        """
        for alert in alerts:
            if alert.state == "resolved" and alert.resolved_at is not None:
                recent = self._recent.get(alert.fingerprint)
                if recent is None or alert.resolved_at > (recent.resolved_at or 0.0):
                    self._recent[alert.fingerprint] = copy.copy(alert)
                continue
            if not alert.is_open:
                continue
            current = self._open.get(alert.fingerprint)
            if current is None or (alert.detected_at, alert.id) > (current.detected_at,
                                                                    current.id):
                self._open[alert.fingerprint] = copy.copy(alert)
                if alert.id == alert_id(alert.fingerprint, alert.started_at):
                    self._last[alert.fingerprint] = _Occurrence(to_ms(alert.started_at), 0)

    def open_alerts(self) -> list[Alert]:
        """Copies of the open alerts, earliest detected first."""
        alerts = sorted(self._open.values(), key=lambda a: (a.detected_at, a.id))
        return [copy.copy(alert) for alert in alerts]

    def sweep(self, now: float) -> list[Alert]:
        """Event time moved to ``now``: end flapping that has calmed down and forget
        resolved alerts that can no longer reopen.  Returns the alerts changed."""
        changed = []
        for fp, times in list(self._transitions.items()):
            if times and times[-1] > now - self.flap_window_s:
                continue
            del self._transitions[fp]
            alert = self._open.get(fp) or self._recent.get(fp)
            if alert is not None and alert.flapping:
                alert.flapping = False
                alert.updated_at = max(alert.updated_at, now)
                changed.append(copy.copy(alert))
        for fp, alert in list(self._recent.items()):
            if (alert.resolved_at or now) < now - self.reopen_window_s:
                del self._recent[fp]
        return changed

    def set_handling(self, alert_id: str, *, stage: str, assignee: str | None,
                     acknowledged_at: float | None, closed_at: float | None) -> bool:
        """A person moved an alert along its handling workflow (the store already
        holds it): mirror it, so that escalation sees the response and a closed alert
        never reopens.  Returns whether the alert was known here."""
        for table in (self._open, self._recent):
            for fp, alert in list(table.items()):
                if alert.id != alert_id:
                    continue
                alert.stage, alert.assignee = stage, assignee
                alert.acknowledged_at, alert.closed_at = acknowledged_at, closed_at
                alert.state = contract_state(stage, alert.resolved_at is not None)
                if stage == "closed" and table is self._recent:
                    del self._recent[fp]
                return True
        return False

    def annotate(self, fp: str, key: str, value: object, at: float) -> Alert | None:
        """Add ``key: value`` to the evidence of the open alert with fingerprint ``fp``.

        Used by later stages (inhibition) to record a fact about an alert without a
        new condition.  Returns a copy of the changed alert, or ``None`` when there is
        no such open alert or the evidence already says so.
        """
        alert = self._open.get(fp)
        if alert is None or alert.evidence.get(key) == value:
            return None
        self._annotations.add(key)
        alert.evidence = {**alert.evidence, key: value}
        alert.updated_at = max(alert.updated_at, at)
        self.stats["updated"] += 1
        return copy.copy(alert)

    def _fold(self, condition: Condition) -> Alert | None:
        subject = condition.subject
        fp = fingerprint(condition.kind, subject.enterprise_id, subject.device_id,
                         subject.point)
        alert = self._open.get(fp)
        if not condition.active:
            if alert is None:
                self.stats["stray_clears"] += 1
                return None
            return self._resolve(fp, alert, condition)
        if alert is None:
            recent = self._recent.get(fp)
            if (recent is not None and recent.resolved_at is not None
                    and condition.at - recent.resolved_at <= self.reopen_window_s):
                return self._reopen(fp, recent, condition)
            return self._create(fp, condition)
        return self._update(alert, condition)

    def _reopen(self, fp: str, alert: Alert, condition: Condition) -> Alert:
        """The same anomaly is back: the resolved alert fires again, handling kept."""
        del self._recent[fp]
        alert.resolved_at = None
        alert.state = contract_state(alert.stage, False)
        alert.level = condition.level
        alert.title = self._title(condition)
        kept = {k: alert.evidence[k] for k in self._annotations if k in alert.evidence}
        alert.evidence = {**condition.evidence, **kept}
        alert.reopen_count += 1
        alert.updated_at = max(alert.updated_at, condition.at)
        self._open[fp] = alert
        self.stats["reopened"] += 1
        self._transition(fp, alert, condition.at)
        return alert

    def _transition(self, fp: str, alert: Alert, at: float) -> None:
        """Count a condition transition; mark the alert flapping at the threshold."""
        if self.flap_transitions == 0:
            return
        times = [t for t in self._transitions.get(fp, []) if t > at - self.flap_window_s]
        times.append(at)
        self._transitions[fp] = times
        if len(times) >= self.flap_transitions and not alert.flapping:
            alert.flapping = True
            self.stats["flapping"] += 1

    def _create(self, fp: str, condition: Condition) -> Alert:
        alert = Alert(
            id=self._new_id(fp, condition.started_at),
            fingerprint=fp,
            kind=condition.kind,
            subject=condition.subject,
            level=condition.level,
            state="firing",
            started_at=condition.started_at,
            detected_at=condition.at,
            resolved_at=None,
            updated_at=condition.at,
            title=self._title(condition),
            evidence=dict(condition.evidence),
        )
        self._open[fp] = alert
        self.stats["created"] += 1
        self._transition(fp, alert, condition.at)
        return alert

    def _update(self, alert: Alert, condition: Condition) -> Alert | None:
        """Same anomaly reported again: change the alert only if what it says changed.

        Comparing the rendered title covers the ``detail`` values shown to operators
        without keeping the previous detail around (restored alerts have none).
        """
        title = self._title(condition)
        # Marks added by later stages (annotate) are facts about the alert, not part of
        # what the detector says: keep them, and do not let them defeat deduplication.
        evidence = {**condition.evidence,
                    **{k: alert.evidence[k] for k in self._annotations if k in alert.evidence}}
        if condition.level == alert.level and evidence == alert.evidence and title == alert.title:
            self.stats["deduplicated"] += 1
            return None
        alert.level = condition.level
        alert.title = title
        alert.evidence = evidence
        alert.updated_at = max(alert.updated_at, condition.at)
        self.stats["updated"] += 1
        return alert

    def _resolve(self, fp: str, alert: Alert, condition: Condition) -> Alert:
        """Close the occurrence; keep the firing evidence, which regulators rely on.

        The clear's own evidence (what ended the anomaly) is added under
        ``"resolution"`` instead of replacing the data window that fired.
        """
        alert.resolved_at = condition.at
        alert.state = contract_state(alert.stage, True)
        alert.updated_at = max(alert.updated_at, condition.at)
        if condition.evidence:
            alert.evidence = {**alert.evidence, "resolution": dict(condition.evidence)}
        del self._open[fp]
        if alert.stage != "closed" and self.reopen_window_s > 0:
            self._recent[fp] = alert
        self.stats["resolved"] += 1
        self._transition(fp, alert, condition.at)
        return alert

    def _new_id(self, fp: str, started_at: float) -> str:
        """:func:`alert_id`, bumping ``seq`` only if the previous occurrence started in
        the same millisecond, so a re-fire never overwrites its predecessor in the store.
        """
        started_ms = to_ms(started_at)
        last = self._last.get(fp)
        seq = last.seq + 1 if last is not None and last.started_ms == started_ms else 0
        self._last[fp] = _Occurrence(started_ms, seq)
        return alert_id(fp, started_at, seq)

    def _title(self, condition: Condition) -> str:
        return render_title(condition.kind, condition.subject, condition.detail,
                            condition.level, self._locale)
