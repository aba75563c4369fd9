"""Alert lifecycle: turn a stream of conditions into firing and resolved alerts.

The detectors report *changes* of their verdicts, but the same anomaly can be reported
again (a level change, a restart that re-evaluates everything, a second rule seeing the
same thing).  An operator must see one alert per anomaly, so the manager keeps the
open alerts by :func:`~alerting.models.fingerprint` and folds repeats into them.

Everything here is pure and synchronous: no clock (conditions carry event time), no
I/O.  The caller persists what :meth:`AlertManager.apply` returns and, after a restart,
hands the open alerts back through :meth:`AlertManager.restore`.  Later stages
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

STAT_KEYS: tuple[str, ...] = ("created", "updated", "resolved", "deduplicated", "stray_clears")
"""Counters of :attr:`AlertManager.stats`.

Every active condition counts once as ``created``, ``updated`` (it changed the open
alert's level, title or evidence) or ``deduplicated`` (it changed nothing); every clear
counts once as ``resolved`` or ``stray_clears`` (no open alert to resolve).
"""


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """Start (ms) and id sequence of the last alert of a fingerprint, to keep ids unique."""

    started_ms: int
    seq: int


class AlertManager:
    """Deduplicates conditions by fingerprint and drives firing -> resolved.

    ``locale`` selects the title language (``"zh"`` or ``"en"``).
    """

    def __init__(self, locale: str = "zh") -> None:
        check_locale(locale)
        self._locale = locale
        self._open: dict[str, Alert] = {}
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

        Only open (firing/acknowledged) alerts are taken.  Should the store hold two
        open alerts of one fingerprint, the later-detected one wins, because a new
        condition belongs to the most recent occurrence.
        """
        for alert in alerts:
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
            return self._create(fp, condition)
        return self._update(alert, condition)

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
        alert.state = "resolved"
        alert.resolved_at = condition.at
        alert.updated_at = max(alert.updated_at, condition.at)
        if condition.evidence:
            alert.evidence = {**alert.evidence, "resolution": dict(condition.evidence)}
        del self._open[fp]
        self.stats["resolved"] += 1
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
