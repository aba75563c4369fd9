"""The routing tree: who is told about an alert, how soon, and when it escalates.

A routing file (YAML, loaded by :mod:`gateway.routing_file`) names *receivers* (a duty
desk or a system, with its channels and its tier) and a tree of *routes* that match
alerts by region, industry, kind, level and enterprise.  The ideas are Prometheus
Alertmanager's (a tree of matchers, ``continue``, inherited timing settings), with the
differences a regulator's escalation chain needs.  Semantics, and why:

* **The root matches every alert** and may not carry a ``match``.  Every alert reaches
  at least the root's receivers, so nothing is dropped silently (DESIGN.md).
* **Children are tried in order; the first matching child is descended into and later
  siblings are skipped, unless that child says ``continue: true``.**  As in
  Alertmanager: most siblings are alternatives (this town or that town), and
  ``continue`` makes the overlapping ones (a county rule by level beside a provincial
  rule by kind) explicit in the file rather than a surprise.
* **Within a ``match``** every key given must hold; within a key any listed value
  will do.  ``region`` holds when any code of the enterprise's region path (province,
  city, county, town) is listed, so a county code catches all its towns.
* **Receivers accumulate along every matched path** (Alertmanager notifies only the
  deepest node).  Tiers stack: the enterprise screen comes from the root, the town
  station from a region child, the county bureau from a level grandchild; with
  deepest-only semantics every leaf would have to repeat its ancestors' receivers.
* **A receiver's tier says when it is told**: ``enterprise`` receivers at once,
  ``town`` and ``county`` receivers when the alert is still unacknowledged after the
  escalation limit of its level (``town_after_s``, ``county_after_s``; ``null`` =
  never).  Routing decides *who* is on each tier; the escalation timer in the engine
  decides *whether* a tier is reached.  A route's own ``escalation`` overrides the
  limits for the alerts it matches (hidden operation: the enterprise is the party that
  hides, so waiting for it to acknowledge defeats the purpose).
* **Timing settings are inherited** from the parent; the deepest matched node's values
  win.  When several paths matched (``continue``), the **shortest** of each interval
  and the **earliest** escalation win: a path that asks for urgency must not be slowed
  by a calmer one.  The town is never reached later than the county.
* A level outside 1..4 (only a malformed stored alert can have one) escalates like
  level 1: a bad alert is told to more people rather than to fewer.

:class:`RoutingTree` compiles a validated :class:`RoutingConfig` once: inherited
timings and per-level escalation limits are resolved per node at compile time, so
:meth:`RoutingTree.route` is a walk over frozensets.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from alerting.channels.config import (
    ChannelConfig,
    EmailChannel,
    SmsChannel,
    SmsGateway,
    SmtpServer,
    channel_name,
)
from alerting.models import LEVEL_COLORS, Alert
from alerting.notification import TIERS, Tier

__all__ = [
    "DEFAULT_ESCALATION",
    "DEFAULT_ROUTING",
    "KNOWN_ALERT_KINDS",
    "Defaults",
    "EscalationLimits",
    "EscalationSpec",
    "Match",
    "Receiver",
    "ReceiverConfig",
    "RouteDecision",
    "RouteNode",
    "RoutingConfig",
    "RoutingConfigError",
    "RoutingTree",
    "lint",
    "region_path",
]

Loc = tuple[str | int, ...]
"""A location in the routing document: mapping keys and list indices, outermost first."""

Locale = Literal["zh", "en"]
Industry = Literal["dust", "metallurgy"]

KNOWN_ALERT_KINDS: frozenset[str] = frozenset({
    "hidden_operation", "fake_offline", "device_offline", "interlock_violation",
    "threshold", "rate_of_change", "flatline", "replay", "abnormal_condition", "spark",
    "leak",
})
"""Alert kinds riskwatch raises (CONTRACT.md §4).  The contract may grow, so another
kind in a ``match`` is a :func:`lint` warning, not an error."""

DEFAULT_ESCALATION: Mapping[int, tuple[float | None, float | None]] = {
    1: (600.0, 1800.0),
    2: (1800.0, 7200.0),
    3: (7200.0, None),
    4: (None, None),
}
"""``(town_after_s, county_after_s)`` per level when the file does not say: red reaches
the town after 10 min and the county after 30 min unacknowledged, blue never leaves the
enterprise."""


def _check_level(level: int) -> int:
    if level not in LEVEL_COLORS:
        raise ValueError("level must be 1 (red), 2 (orange), 3 (yellow) or 4 (blue)")
    return level


Level = Annotated[int, AfterValidator(_check_level)]
Seconds = Annotated[float, Field(ge=0, strict=True)]
"""Strict: YAML ``true`` or ``"30"`` is a mistake, not one second or thirty."""
Interval = Annotated[float, Field(gt=0, strict=True)]
RegionCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3})?$")]
"""GB/T 2260 county-or-above code (6 digits) or a town code (9 digits), as in the
registry's ``region`` path."""
EnterpriseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
AlertKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ReceiverName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Strict(BaseModel):
    """Unknown keys are an error: a misspelt ``continu:`` must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    """File-wide settings that routes and receivers inherit."""

    locale: Locale = "zh"
    group_wait_s: Seconds = 30.0
    """Collect an enterprise's alerts this long before the first notification."""
    group_interval_s: Interval = 300.0
    """Then send news of the same group at most this often."""
    repeat_interval_s: Interval = 1800.0
    """Remind the receivers of an alert nobody has acknowledged this often."""


class EscalationSpec(_Strict):
    """Seconds an alert may stay unacknowledged before its town or county tier is told;
    ``null`` = never.  In a route, a key left out keeps the inherited value."""

    town_after_s: Seconds | None = None
    county_after_s: Seconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> EscalationSpec:
        town, county = self.town_after_s, self.county_after_s
        if town is not None and county is not None and county < town:
            raise ValueError(f"county_after_s ({county:g}) must not be earlier than "
                             f"town_after_s ({town:g}): the town station comes first")
        return self


def _as_list(value: object) -> object:
    """``level: 1`` is shorthand for ``level: [1]``."""
    return value if isinstance(value, list | tuple) or value is None else [value]


_C = TypeVar("_C", bound=Collection[object])


def _at_least_one(message: str) -> AfterValidator:
    """A validator rather than ``min_length``: pydantic would add a second "too short"
    error to a list whose only entry is invalid."""
    def check(values: _C) -> _C:
        if not values:
            raise ValueError(message)
        return values
    return AfterValidator(check)


_Listed = BeforeValidator(_as_list)
_NonEmpty = _at_least_one("list at least one value, or leave the key out")
Regions = Annotated[Annotated[tuple[RegionCode, ...], _NonEmpty] | None, _Listed]
Industries = Annotated[Annotated[tuple[Industry, ...], _NonEmpty] | None, _Listed]
Kinds = Annotated[Annotated[tuple[AlertKind, ...], _NonEmpty] | None, _Listed]
Levels = Annotated[Annotated[tuple[Level, ...], _NonEmpty] | None, _Listed]
Enterprises = Annotated[Annotated[tuple[EnterpriseId, ...], _NonEmpty] | None, _Listed]


class Match(_Strict):
    """Conditions on an alert: every key given must hold, any listed value will do."""

    region: Regions = None
    """Holds when any code of the enterprise's region path is listed."""
    industry: Industries = None
    kind: Kinds = None
    level: Levels = None
    enterprise: Enterprises = None

    def is_catch_all(self) -> bool:
        return all(getattr(self, key) is None for key in type(self).model_fields)


class RouteNode(_Strict):
    """One node of the routing tree; the file's ``route`` is the root."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: Match | None = None
    receivers: tuple[ReceiverName, ...] = ()
    continue_: bool = Field(default=False, alias="continue")
    """After this child matched, try its later siblings too."""
    group_wait_s: Seconds | None = None
    group_interval_s: Interval | None = None
    repeat_interval_s: Interval | None = None
    escalation: EscalationSpec | None = None
    """Overrides the level's escalation limits for the alerts this route matches."""
    routes: tuple[RouteNode, ...] = ()


class ReceiverConfig(_Strict):
    """A duty desk or a system to tell, with the channels that reach it."""

    tier: Tier
    channels: Annotated[tuple[ChannelConfig, ...], _at_least_one("list at least one channel")]
    locale: Locale | None = None
    """Overrides ``defaults.locale`` for this receiver's messages."""


class RoutingConfigError(ValueError):
    """Cross-reference problems of a routing file, each at its own location.

    Raised inside pydantic validation, so :class:`pydantic.ValidationError` carries it
    (``ctx["error"]``) and a loader can put every problem on its own line.
    """

    def __init__(self, problems: Iterable[tuple[Loc, str]]) -> None:
        self.problems: tuple[tuple[Loc, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{_key_path(loc)}: {msg}" for loc, msg in self.problems))


def _fill_escalation(value: object) -> object:
    """Complete the level table with :data:`DEFAULT_ESCALATION`: a level or key left out
    keeps its default, so ``escalation: {1: {town_after_s: 300}}`` changes one value."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return value
    merged: dict[object, object] = {
        level: {"town_after_s": town, "county_after_s": county}
        for level, (town, county) in DEFAULT_ESCALATION.items()
    }
    for key, step in value.items():
        level = int(key) if isinstance(key, str) and key.strip().isdigit() else key
        default = merged.get(level)
        if isinstance(default, dict) and isinstance(step, Mapping):
            merged[level] = {**default, **step}
        elif not (isinstance(default, dict) and step is None):
            merged[key] = step  # not a mapping, or not a level: validation says so
    return merged


class RoutingConfig(_Strict):
    """The routing file."""

    defaults: Defaults = Field(default_factory=Defaults)
    smtp: SmtpServer | None = None
    sms_gateway: SmsGateway | None = None
    escalation: Annotated[dict[Level, EscalationSpec], BeforeValidator(_fill_escalation)] = (
        Field(default_factory=lambda: {
            level: EscalationSpec(town_after_s=town, county_after_s=county)
            for level, (town, county) in DEFAULT_ESCALATION.items()}))
    """Limits per level 1..4, completed from :data:`DEFAULT_ESCALATION`."""
    receivers: Annotated[dict[ReceiverName, ReceiverConfig],
                         _at_least_one("define at least one receiver")]
    route: RouteNode

    @field_validator("escalation", mode="after")
    @classmethod
    def _in_level_order(cls, value: dict[int, EscalationSpec]) -> dict[int, EscalationSpec]:
        return dict(sorted(value.items()))

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        problems = [*_receiver_problems(self), *_route_problems(self)]
        if problems:
            raise RoutingConfigError(problems)
        return self


def _receiver_problems(config: RoutingConfig) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for name, receiver in config.receivers.items():
        first: dict[str, int] = {}
        for i, channel in enumerate(receiver.channels):
            loc: Loc = ("receivers", name, "channels", i)
            label = channel_name(channel)
            if label in first:
                problems.append((loc, f"channel name {label!r} is already used by "
                                      f"channels[{first[label]}]; give one a 'name'"))
            else:
                first[label] = i
            if isinstance(channel, EmailChannel) and config.smtp is None:
                problems.append((loc, "an email channel needs the top-level 'smtp' server"))
            if isinstance(channel, SmsChannel) and config.sms_gateway is None:
                problems.append((loc, "an sms channel needs the top-level 'sms_gateway'"))
    return problems


def _route_problems(config: RoutingConfig) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    if config.route.match is not None:
        problems.append((("route", "match"), "the root route matches every alert; put the "
                                             "match on a child in 'routes'"))
    if not config.route.receivers:
        problems.append((("route",), "the root route needs at least one receiver, so that "
                                     "every alert reaches somebody"))
    known = sorted(config.receivers)
    for loc, node in _walk(config.route, ("route",)):
        for i, name in enumerate(node.receivers):
            if name not in config.receivers:
                problems.append(((*loc, "receivers", i),
                                 f"unknown receiver {name!r}; defined: {', '.join(known)}"))
    return problems


def _walk(node: RouteNode, loc: Loc) -> Iterable[tuple[Loc, RouteNode]]:
    yield loc, node
    for i, child in enumerate(node.routes):
        yield from _walk(child, (*loc, "routes", i))


def lint(config: RoutingConfig) -> list[tuple[Loc, str]]:
    """Legal but suspicious settings, in document order, for ``riskwatch routing check``
    to warn about."""
    warnings: list[tuple[Loc, str]] = []
    if config.route.continue_:
        warnings.append((("route", "continue"), "the root route has no siblings; "
                                                "'continue' does nothing here"))

    def visit(node: RouteNode, loc: Loc, shadowed_by: int | None) -> None:
        if shadowed_by is not None:
            warnings.append((loc, f"never reached: routes[{shadowed_by}] before it matches "
                                  "every alert and has no 'continue: true'"))
        for kind in (node.match.kind or ()) if node.match else ():
            if kind not in KNOWN_ALERT_KINDS:
                warnings.append(((*loc, "match", "kind"),
                                 f"{kind!r} is not an alert kind riskwatch raises; known: "
                                 f"{', '.join(sorted(KNOWN_ALERT_KINDS))}"))
        catch_all: int | None = None
        for i, child in enumerate(node.routes):
            visit(child, (*loc, "routes", i), catch_all)
            if catch_all is None and not child.continue_ and (
                    child.match is None or child.match.is_catch_all()):
                catch_all = i

    visit(config.route, ("route",), None)
    return warnings


# --- compiled tree --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receiver:
    """A receiver as the engine uses it: its name and locale resolved."""

    name: str
    tier: Tier
    channels: tuple[ChannelConfig, ...]
    locale: Locale

    def __hash__(self) -> int:  # channels may hold dicts (webhook headers)
        return hash((self.name, self.tier))


@dataclass(frozen=True, slots=True)
class EscalationLimits:
    """When an unacknowledged alert reaches the town and county tiers (seconds after it
    fired; ``None`` = never)."""

    town_after_s: float | None
    county_after_s: float | None

    def after(self, tier: Tier) -> float | None:
        """Delay before ``tier`` is told; the enterprise is told at once."""
        if tier == "enterprise":
            return 0.0
        return self.town_after_s if tier == "town" else self.county_after_s


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where one alert goes, how its notifications are paced, and why."""

    enterprise: tuple[Receiver, ...]
    town: tuple[Receiver, ...]
    county: tuple[Receiver, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    escalation: EscalationLimits
    """Limits of the alert's level, after the matched routes' overrides."""
    matched: tuple[str, ...]
    """Paths of the matched nodes in visiting order, e.g. ``("route", "route.routes[0]")``."""

    def receivers(self, tier: Tier) -> tuple[Receiver, ...]:
        return self.enterprise if tier == "enterprise" else (
            self.town if tier == "town" else self.county)

    @property
    def all_receivers(self) -> tuple[Receiver, ...]:
        """Every receiver, tier by tier."""
        return self.enterprise + self.town + self.county


_Timing = tuple[float, float, float]
_Limits = tuple[float | None, float | None]


@dataclass(frozen=True, slots=True)
class _Node:
    path: str
    tests: tuple[Callable[[Alert], bool], ...]
    receivers: tuple[Receiver, ...]
    continue_: bool
    timing: _Timing
    """Effective (inherited) group_wait, group_interval, repeat_interval."""
    limits: Mapping[int, _Limits]
    """Effective escalation limits by level, after this node's and its ancestors'
    overrides."""
    children: tuple[_Node, ...]

    def matches(self, alert: Alert) -> bool:
        return all(test(alert) for test in self.tests)


def _tests(match: Match | None) -> tuple[Callable[[Alert], bool], ...]:
    """One predicate per key given; each closes over a frozenset."""
    if match is None:
        return ()
    tests: list[Callable[[Alert], bool]] = []
    if match.region is not None:
        regions = frozenset(match.region)
        tests.append(lambda alert: not regions.isdisjoint(alert.subject.region))
    if match.industry is not None:
        industries = frozenset(match.industry)
        tests.append(lambda alert: alert.subject.industry in industries)
    if match.kind is not None:
        kinds = frozenset(match.kind)
        tests.append(lambda alert: alert.kind in kinds)
    if match.level is not None:
        levels = frozenset(match.level)
        tests.append(lambda alert: alert.level in levels)
    if match.enterprise is not None:
        enterprises = frozenset(match.enterprise)
        tests.append(lambda alert: alert.subject.enterprise_id in enterprises)
    return tuple(tests)


def _override(limits: _Limits, spec: EscalationSpec | None) -> _Limits:
    if spec is None:
        return limits
    given = spec.model_fields_set
    return (spec.town_after_s if "town_after_s" in given else limits[0],
            spec.county_after_s if "county_after_s" in given else limits[1])


class RoutingTree:
    """A compiled :class:`RoutingConfig`; :meth:`route` decides per alert."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        defaults = config.defaults
        self.receivers: Mapping[str, Receiver] = {
            name: Receiver(name, spec.tier, spec.channels, spec.locale or defaults.locale)
            for name, spec in config.receivers.items()
        }
        timing = (defaults.group_wait_s, defaults.group_interval_s, defaults.repeat_interval_s)
        limits = {level: (spec.town_after_s, spec.county_after_s)
                  for level, spec in config.escalation.items()}
        self._root = self._compile(config.route, "route", timing, limits, is_root=True)

    def _compile(self, node: RouteNode, path: str, timing: _Timing,
                 limits: Mapping[int, _Limits], *, is_root: bool = False) -> _Node:
        own = (node.group_wait_s, node.group_interval_s, node.repeat_interval_s)
        timing = cast(_Timing, tuple(t if o is None else o for o, t in zip(own, timing,
                                                                         strict=True)))
        limits = {level: _override(value, node.escalation) for level, value in limits.items()}
        children = tuple(self._compile(child, f"{path}.routes[{i}]", timing, limits)
                         for i, child in enumerate(node.routes))
        return _Node(
            path=path,
            tests=() if is_root else _tests(node.match),
            receivers=tuple(self.receivers[name] for name in dict.fromkeys(node.receivers)),
            continue_=node.continue_,
            timing=timing,
            limits=limits,
            children=children,
        )

    def route(self, alert: Alert) -> RouteDecision:
        """Receivers per tier, timings and escalation limits for ``alert``; never raises
        for a well-formed :class:`Alert`."""
        matched: list[_Node] = []
        ends: list[_Node] = []
        self._visit(self._root, alert, matched, ends)
        by_tier: dict[Tier, dict[str, Receiver]] = {tier: {} for tier in TIERS}
        for node in matched:
            for receiver in node.receivers:
                by_tier[receiver.tier].setdefault(receiver.name, receiver)
        level = alert.level if alert.level in LEVEL_COLORS else 1
        town, county = _earliest(end.limits[level] for end in ends)
        if town is not None and county is not None:
            town = min(town, county)
        wait, interval, repeat = (min(values) for values in zip(*(end.timing for end in ends),
                                                               strict=True))
        return RouteDecision(
            enterprise=tuple(by_tier["enterprise"].values()),
            town=tuple(by_tier["town"].values()),
            county=tuple(by_tier["county"].values()),
            group_wait_s=wait,
            group_interval_s=interval,
            repeat_interval_s=repeat,
            escalation=EscalationLimits(town, county),
            matched=tuple(node.path for node in matched),
        )

    def _visit(self, node: _Node, alert: Alert, matched: list[_Node], ends: list[_Node]) -> None:
        matched.append(node)
        descended = False
        for child in node.children:
            if child.matches(alert):
                descended = True
                self._visit(child, alert, matched, ends)
                if not child.continue_:
                    break
        if not descended:
            ends.append(node)


def _earliest(limits: Iterable[_Limits]) -> _Limits:
    """Per tier the earliest limit of several paths; ``None`` (never) loses to any."""
    towns: list[float] = []
    counties: list[float] = []
    for town, county in limits:
        if town is not None:
            towns.append(town)
        if county is not None:
            counties.append(county)
    return (min(towns) if towns else None, min(counties) if counties else None)


def region_path(code: str) -> tuple[str, ...]:
    """The region path down to ``code`` by its GB/T 2260 digits, for tests and the CLI
    (the service takes the path from the registry).

    >>> region_path("370829101")
    ('370000', '370800', '370829', '370829101')
    >>> region_path("370800")
    ('370000', '370800')
    """
    parts = [code[:2] + "0000", code[:4] + "00", code[:6]] + ([code] if len(code) > 6 else [])
    path = tuple(dict.fromkeys(parts))
    return path[:path.index(code) + 1] if code in path else path


def _key_path(loc: Loc) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


DEFAULT_ROUTING: RoutingConfig = RoutingConfig.model_validate({
    "receivers": {
        "enterprise-screen": {
            "tier": "enterprise",
            "channels": [{"type": "mqtt", "topic": "rw/v1/{enterprise_id}/alerts"}],
        },
    },
    "route": {"receivers": ["enterprise-screen"]},
})
"""Used when no routing file is configured: every alert goes to the enterprise's own
screen over MQTT and nothing external is contacted.  The town and county tiers are
empty, so escalation reaches nobody until a file names them."""
