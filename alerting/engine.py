"""Who is told what, and when: routing, grouping, escalation, repeats and silences.

The engine sits between the alert lifecycle (:class:`~alerting.manager.AlertManager`,
plus people's handling actions) and the outbox.  It is told every changed alert
(:meth:`NotificationEngine.observe`) and the passing of time (:meth:`~NotificationEngine.
tick`), and answers with notifications to write to the outbox and audit events to write
beside them.  It keeps no clock of its own: live, ``now`` is the service's watermark;
in a replay it is event time, so a whole escalation timeline can be tested without
sleeping.

Per alert (the routing tree decides the receivers of each tier, see
:mod:`alerting.routing`):

* **Firing.** The enterprise tier is told, grouped: alerts of one enterprise for one
  receiver that arrive within ``group_wait_s`` go out as one message (a digest when
  there are several); after a message, the next one to that receiver waits at least
  ``group_interval_s`` (Alertmanager's group_wait / group_interval).
* **Escalation.** While nobody has responded (handling stage ``pending``), the town
  tier is told ``town_after_s`` after detection and the county tier ``county_after_s``
  after it (per level; ``None`` = never).  A response (acknowledge, dispatch, ...)
  stops escalation and repeats.  Escalation goes on after the condition resolved by
  itself: an alert nobody answered is still unanswered (推送 must be answered by
  核实处置 even when the reading went back to normal).
* **Repeats.** Every ``repeat_interval_s`` while unanswered and still firing, every
  tier told so far is reminded.  Reminders and escalations that fall due at one tick
  for one enterprise and receiver go out as one digest.
* **Condition changes.** Tiers told so far hear of a resolution, a reopening and
  of the alert starting to flap; while it flaps, resolutions and reopenings are not
  sent (one flapping message instead of a storm).  Closing (销号) is announced too.
* **Silences** (:mod:`alerting.silences`) mute: the notifications are still made and
  returned as ``muted`` (recorded, never sent), and the alert's audit trail says which
  silence muted it.  **Inhibited** alerts (``inhibited_by`` a parent alert, e.g. a
  device offline while its whole site is silent, :mod:`alerting.inhibition`) are muted
  the same way: the parent's receivers hear of the parent only.  Both are judged when
  a message goes out, so a parent raised during the group wait still holds the child
  back.

Every notification has a deterministic key (:func:`~alerting.messages.
build_notification`), so deciding the same thing again after a restart writes nothing
new to the outbox.  :meth:`NotificationEngine.restore` rebuilds the schedule of open
alerts from the store and the outbox.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from alerting.channels.config import channel_name
from alerting.inhibition import INHIBITED_BY
from alerting.messages import build_notification
from alerting.models import Alert
from alerting.notification import TIERS, Notification, Reason, Tier
from alerting.routing import Receiver, RouteDecision, RoutingTree
from alerting.silences import Silence, silenced_by
from alerting.workflow import AuditEvent, system_event_key

SYSTEM = "system"


@dataclass(slots=True)
class EngineOutput:
    """What one call decided: notifications to send, muted ones to record, audit events."""

    notifications: list[Notification] = field(default_factory=list)
    muted: list[Notification] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    def extend(self, other: EngineOutput) -> None:
        self.notifications += other.notifications
        self.muted += other.muted
        self.events += other.events

    def __bool__(self) -> bool:
        return bool(self.notifications or self.muted or self.events)


@dataclass(slots=True)
class _Track:
    """The notification state of one alert the engine still has to care about."""

    alert: Alert
    decision: RouteDecision
    told: set[Tier]
    """Tiers whose receivers have been told of the alert."""
    escalate_at: dict[Tier, float]
    """Pending escalations: tier -> event time."""
    next_repeat: float
    repeats: int = 0

    @property
    def answered(self) -> bool:
        return self.alert.stage != "pending"


@dataclass(slots=True)
class _Group:
    """Alerts of one enterprise waiting to be told to one enterprise-tier receiver."""

    receiver: Receiver
    pending: list[Alert] = field(default_factory=list)
    flush_at: float = math.inf
    last_flush: float = -math.inf


@dataclass(slots=True)
class _Held:
    receiver: Receiver
    alerts: list[Alert]
    at: float
    seq: int


class _Batch(dict[tuple[str, str, Reason], _Held]):
    """Reminders and escalations of one tick, by (enterprise, receiver, reason): a town
    station whose five unanswered alerts of one enterprise escalate at once gets one
    digest, not five messages."""

    def add(self, alert: Alert, receiver: Receiver, reason: Reason, at: float,
            seq: int) -> None:
        key = (alert.subject.enterprise_id, receiver.name, reason)
        held = self.get(key)
        if held is None:
            self[key] = _Held(receiver, [alert], at, seq)
        else:
            held.alerts.append(alert)
            held.at, held.seq = min(held.at, at), max(held.seq, seq)


class NotificationEngine:
    """Decides notifications from alert changes and time; see the module docstring.

    ``silences`` is called whenever the engine needs the current silences (the service
    keeps them in memory and reloads them when the API changes one).
    """

    def __init__(self, tree: RoutingTree,
                 silences: Callable[[], Sequence[Silence]] = tuple, *,
                 keep_resolved_s: float = 86_400.0) -> None:
        self._tree = tree
        self.keep_resolved_s = keep_resolved_s
        """How long a resolved, unclosed alert is remembered (to announce its closing or
        a late reopening); escalations still pending keep it longer."""
        self._silences = silences
        self._tracks: dict[str, _Track] = {}
        self._groups: dict[tuple[str, str], _Group] = {}

    # -- inputs ------------------------------------------------------------------------

    def observe(self, alerts: Iterable[Alert], now: float) -> EngineOutput:
        """Alerts created or changed (by detectors or people), then whatever is due."""
        out = EngineOutput()
        for alert in alerts:
            track = self._tracks.get(alert.id)
            if track is None:
                self._start(alert, now, out)
            else:
                self._change(track, alert, now, out)
        out.extend(self.tick(now))
        return out

    def tick(self, now: float) -> EngineOutput:
        """Time passed to ``now``: flush groups, escalate, repeat."""
        out = EngineOutput()
        for key, group in list(self._groups.items()):
            if group.pending and group.flush_at <= now:
                self._flush(key, group, now, out)
        batch = _Batch()
        for track in list(self._tracks.values()):
            # Reminders first: a tier escalated to at this instant is not reminded yet.
            if self._repeating(track) and track.next_repeat <= now:
                track.repeats += 1
                for receiver in self._receivers(track, track.told):
                    batch.add(track.alert, receiver, "repeat", now, track.repeats)
                track.next_repeat = now + track.decision.repeat_interval_s
            for tier, due in sorted(track.escalate_at.items(), key=lambda kv: kv[1]):
                if due <= now:
                    del track.escalate_at[tier]
                    self._escalate(track, tier, due, out, batch)
            if self._finished(track, now):
                del self._tracks[track.alert.id]
        for (_, _, reason), held in batch.items():
            self._send(held.alerts, held.receiver, reason, held.at, out, seq=held.seq)
        return out

    @property
    def next_due(self) -> float:
        """Earliest event time at which :meth:`tick` has something to do (inf: none)."""
        due = [g.flush_at for g in self._groups.values() if g.pending]
        for track in self._tracks.values():
            due += track.escalate_at.values()
            if self._repeating(track):
                due.append(track.next_repeat)
        return min(due, default=math.inf)

    def restore(self, alerts: Iterable[Alert], told: Mapping[str, Iterable[str]],
                now: float) -> EngineOutput:
        """Pick up alerts from the store after a restart.

        ``told`` maps an alert id to the names of the receivers the outbox already
        holds a notification for (any reason).  A tier is told when any of its
        receivers is; an unanswered alert whose enterprise tier was never told (the
        service stopped while its group waited) is grouped again.  Escalations that
        fell due while the service was down are sent at once.
        """
        out = EngineOutput()
        for alert in alerts:
            if alert.stage == "closed" or alert.id in self._tracks:
                continue
            decision = self._tree.route(alert)
            names = set(told.get(alert.id, ()))
            tiers = {tier for tier in TIERS
                     if any(r.name in names for r in decision.receivers(tier))}
            track = _Track(alert, decision, tiers, {},
                           next_repeat=now + decision.repeat_interval_s)
            self._tracks[alert.id] = track
            if "enterprise" not in tiers and not track.answered and alert.is_open:
                self._group_add(track, now, out)
            if not track.answered:
                self._schedule_escalation(track)
        out.extend(self.tick(now))
        return out

    # -- alert changes -----------------------------------------------------------------

    def _start(self, alert: Alert, now: float, out: EngineOutput) -> None:
        if alert.stage == "closed":
            return
        decision = self._tree.route(alert)
        track = _Track(alert, decision, set(), {},
                       next_repeat=now + decision.repeat_interval_s)
        self._tracks[alert.id] = track
        self._event(out, alert, "created", alert.detected_at,
                    data={"level": alert.level, "receivers": [
                        r.name for r in decision.all_receivers], "routes": list(
                        decision.matched)})
        if alert.resolved_at is not None:  # created and resolved within one batch
            self._event(out, alert, "resolved", alert.resolved_at)
        if not track.answered:
            self._group_add(track, now, out)
            self._schedule_escalation(track)

    def _change(self, track: _Track, alert: Alert, now: float, out: EngineOutput) -> None:
        before, track.alert = track.alert, alert
        if alert.stage == "closed" and before.stage != "closed":
            self._tell(track, track.told, "closed", now, out)
            del self._tracks[alert.id]
            return
        if track.answered and before.stage == "pending":
            track.escalate_at.clear()  # a response stops escalation and repeats
        if alert.reopen_count > before.reopen_count:
            self._event(out, alert, "reopened", alert.updated_at,
                        extra=alert.reopen_count, data={"reopen_count": alert.reopen_count})
            track.next_repeat = now + track.decision.repeat_interval_s
            if not alert.flapping:
                self._tell(track, track.told, "reopened", now, out, seq=alert.reopen_count)
        if alert.flapping and not before.flapping:
            self._event(out, alert, "flapping", alert.updated_at)
            self._tell(track, track.told, "flapping", now, out,
                       seq=alert.reopen_count)
        elif before.flapping and not alert.flapping:
            self._event(out, alert, "flapping_ended", alert.updated_at)
        if alert.resolved_at is not None and before.resolved_at != alert.resolved_at:
            self._event(out, alert, "resolved", alert.resolved_at,
                        extra=alert.reopen_count)
            if not alert.flapping:
                self._tell(track, track.told, "resolved", now, out, seq=alert.reopen_count)
        if alert.level != before.level:
            self._event(out, alert, "updated", alert.updated_at,
                        extra=(before.level, alert.level),
                        data={"level": alert.level, "previous_level": before.level})

    # -- scheduling --------------------------------------------------------------------

    def _schedule_escalation(self, track: _Track) -> None:
        limits = track.decision.escalation
        for tier in ("town", "county"):
            after = limits.after(tier)
            if after is not None and track.decision.receivers(tier) and tier not in track.told:
                track.escalate_at[tier] = track.alert.detected_at + after

    def _repeating(self, track: _Track) -> bool:
        alert = track.alert
        return bool(track.told) and not track.answered and alert.resolved_at is None

    def _finished(self, track: _Track, now: float) -> bool:
        """Resolved long ago with no escalation pending: forget the alert (a closing
        later is announced to nobody; the store and the audit trail still have it)."""
        resolved = track.alert.resolved_at
        return (not track.escalate_at and resolved is not None
                and resolved < now - self.keep_resolved_s)

    def _group_add(self, track: _Track, now: float, out: EngineOutput) -> None:
        receivers = track.decision.enterprise
        if not receivers:
            return
        eid = track.alert.subject.enterprise_id
        for receiver in receivers:
            group = self._groups.setdefault((eid, receiver.name), _Group(receiver))
            if not group.pending:
                group.flush_at = max(now + track.decision.group_wait_s,
                                     group.last_flush + track.decision.group_interval_s)
            group.pending.append(track.alert)
        track.told.add("enterprise")  # decided; the group's flush sends it

    def _flush(self, key: tuple[str, str], group: _Group, now: float,
               out: EngineOutput) -> None:
        # The newest version of each (it may have changed while it waited).
        alerts = [self._tracks[a.id].alert if a.id in self._tracks else a
                  for a in group.pending]
        group.pending.clear()
        group.last_flush = now
        if not alerts:
            return
        live = [a for a in alerts if a.stage != "closed"]
        if live:
            reason: Reason = "firing" if len(live) == 1 else "group"
            self._send(live, group.receiver, reason, now, out, seq=0)

    def _escalate(self, track: _Track, tier: Tier, due: float, out: EngineOutput,
                  batch: _Batch) -> None:
        if track.answered or tier in track.told:
            return
        track.told.add(tier)
        self._event(out, track.alert, "escalated", due, extra=tier,
                    data={"tier": tier, "receivers": [
                        r.name for r in track.decision.receivers(tier)]})
        for receiver in track.decision.receivers(tier):
            batch.add(track.alert, receiver, "escalated", due, 0)

    @staticmethod
    def _receivers(track: _Track, tiers: Iterable[Tier]) -> list[Receiver]:
        """The receivers of ``tiers``, enterprise first."""
        wanted = set(tiers)
        return [r for tier in TIERS if tier in wanted for r in track.decision.receivers(tier)]

    def _tell(self, track: _Track, tiers: Iterable[Tier], reason: Reason, now: float,
              out: EngineOutput, seq: int = 0) -> None:
        for receiver in self._receivers(track, tiers):
            self._send([track.alert], receiver, reason, now, out, seq=seq)

    def _send(self, alerts: Sequence[Alert], receiver: Receiver, reason: Reason, now: float,
              out: EngineOutput, *, seq: int) -> None:
        """Render one notification per channel of ``receiver``: sent for the alerts no
        silence or parent alert holds back, recorded as muted for the others."""
        silences = self._silences()
        why = {a.id: self._held_back(a, silences, now) for a in alerts}
        loud = [a for a in alerts if why[a.id] is None]
        quiet = [a for a in alerts if why[a.id] is not None]
        for part, target in ((loud, out.notifications), (quiet, out.muted)):
            if not part:
                continue
            for channel in receiver.channels:
                target.append(build_notification(
                    part, receiver=receiver.name, tier=receiver.tier,
                    channel=channel_name(channel), reason=reason if len(part) == 1 or
                    reason != "firing" else "group", created_at=now,
                    locale=receiver.locale, seq=seq))
        for alert in quiet:
            action, data = why[alert.id] or ("", {})
            self._event(out, alert, action, now, extra=(data, receiver.name, reason, seq),
                        data={**data, "receiver": receiver.name, "reason": reason})

    @staticmethod
    def _held_back(alert: Alert, silences: Sequence[Silence], now: float
                   ) -> tuple[str, dict[str, str]] | None:
        """Why ``alert`` is not to be sent now: a parent alert that explains it
        (inhibition: one "site silent while running" alert, not one per device) or a
        silence; ``None`` when nothing holds it back."""
        parent = alert.evidence.get(INHIBITED_BY)
        if parent:
            return "inhibited", {"inhibited_by": str(parent)}
        silence = silenced_by(alert, silences, now)
        if silence is not None:
            return "silenced", {"silence": silence.id}
        return None

    @staticmethod
    def _event(out: EngineOutput, alert: Alert, action: str, at: float, *,
               extra: object = None, data: Mapping[str, object] | None = None) -> None:
        out.events.append(AuditEvent(
            alert_id=alert.id, at=at, actor=SYSTEM, action=action, data=dict(data or {}),
            key=system_event_key(alert.id, action, at, extra)))
