"""Read a routing YAML file into a :class:`~alerting.routing.RoutingConfig`, or say
exactly what is wrong.

The routing file decides who hears of an alert; a mistake in it is a regulator who is
never told, so every problem names the file, the line and the key (``routing.yaml:23:
receivers.town-370829101.channels[1].to[0]: String should match pattern ...``), all of
them at once.  The models live in :mod:`alerting.routing` (pure, no I/O); reading the
file and mapping errors to lines is I/O-side work and lives here, with the registry
loader's helpers (:mod:`gateway.registry.yaml_paths`).
"""

from __future__ import annotations

import os

import yaml
from pydantic import ValidationError

from alerting.channels.config import ChannelConfig, channel_name
from alerting.models import LEVEL_COLORS, Alert
from alerting.notification import TIERS
from alerting.routing import RouteDecision, RouteNode, RoutingConfig, RoutingConfigError, lint
from gateway.registry.yaml_paths import (
    Loc,
    LocatedError,
    from_pydantic,
    key_path,
    line_of,
    locate,
    parse_yaml,
    raise_all,
    read_text,
)

__all__ = [
    "RoutingError",
    "check_routing",
    "describe_routing",
    "explain_decision",
    "load_routing",
    "load_routing_data",
    "load_routing_text",
]

_TOP_KEYS = "'receivers' and 'route'"


class RoutingError(LocatedError):
    """A routing file that cannot be used, located as precisely as the input allows.

    ``str(err)`` is ``"{file}:{line}: {key}: {message}"``; :attr:`errors` holds every
    problem of the file in line order.

    >>> str(RoutingError("unknown receiver 'twon'", file="routing.yaml", line=31,
    ...                  key="route.routes[0].receivers[0]"))
    "routing.yaml:31: route.routes[0].receivers[0]: unknown receiver 'twon'"
    """


def load_routing(path: str | os.PathLike[str]) -> RoutingConfig:
    """Load and validate the routing file at ``path`` (UTF-8 YAML).

    Raises :class:`RoutingError` naming the file, line and key of the first problem.
    """
    return load_routing_text(read_text(path, RoutingError), source=os.fspath(path))


def load_routing_text(text: str, source: str = "<string>") -> RoutingConfig:
    """Load a routing configuration from YAML text; ``source`` names it in errors."""
    return _load(text, source)[0]


def load_routing_data(data: object, source: str = "<data>") -> RoutingConfig:
    """Validate already-parsed data (e.g. a JSON body); errors carry key paths only."""
    return _validate(data, None, source, [])


def check_routing(path: str | os.PathLike[str]) -> tuple[RoutingConfig, list[RoutingError]]:
    """Load the file and also return its warnings (legal but suspicious settings, see
    :func:`alerting.routing.lint`), located like errors."""
    source = os.fspath(path)
    config, root = _load(read_text(path, RoutingError), source)
    warnings = [_located(message, root, (), loc, source) for loc, message in lint(config)]
    return config, sorted(warnings, key=lambda w: w.line or 0)


def _load(text: str, source: str) -> tuple[RoutingConfig, yaml.Node]:
    root, data, duplicates = parse_yaml(text, source, RoutingError)
    if root is None:
        raise RoutingError(f"routing file is empty; expected a mapping with keys {_TOP_KEYS}",
                           file=source)
    if not isinstance(root, yaml.MappingNode):
        raise RoutingError(f"expected a mapping with keys {_TOP_KEYS} at the top level",
                           file=source, line=line_of(root))
    return _validate(data, root, source, duplicates), root


def _validate(data: object, root: yaml.Node | None, source: str,
              problems: list[RoutingError]) -> RoutingConfig:
    """Schema and cross-reference problems (and the duplicate keys found before) are
    raised together; a file is fixed in one round, not one error per run."""
    try:
        config = RoutingConfig.model_validate(data)
    except ValidationError as exc:
        for details in exc.errors():
            error = (details.get("ctx") or {}).get("error")
            if isinstance(error, RoutingConfigError):
                base: Loc = tuple(details["loc"])
                problems += [_located(message, root, base, loc, source)
                             for loc, message in error.problems]
            else:
                problems.append(from_pydantic(details, root, source, RoutingConfig,
                                              RoutingError))
        raise_all(problems, exc)
    if problems:
        raise_all(problems)
    return config


def _located(message: str, root: yaml.Node | None, base: Loc, loc: Loc,
             source: str) -> RoutingError:
    full = (*base, *loc)
    return RoutingError(message, file=source, line=locate(root, full), key=key_path(full))


# --- summaries for people (``riskwatch routing check`` / ``test``) ----------------------


def describe_routing(config: RoutingConfig) -> str:
    """Receivers per tier, escalation limits, defaults and the tree, one item a line:
    what an operator checks before deploying a file."""
    used = {name for _, node in _nodes(config.route, "route") for name in node.receivers}
    lines = [f"receivers ({len(config.receivers)}):"]
    width = max(len(name) for name in config.receivers)
    for tier in TIERS:
        for name, receiver in config.receivers.items():
            if receiver.tier != tier:
                continue
            channels = ", ".join(_channel(c) for c in receiver.channels)
            locale = f"  [locale {receiver.locale}]" if receiver.locale else ""
            unused = "  (unused)" if name not in used else ""
            lines.append(f"  {tier:<10}  {name:<{width}}  {channels}{locale}{unused}")
    lines.append("escalation (unacknowledged for):")
    for level, step in config.escalation.items():
        lines.append(f"  level {level} {LEVEL_COLORS[level]:<6}  town {_after(step.town_after_s)}"
                     f", county {_after(step.county_after_s)}")
    d = config.defaults
    lines.append(f"defaults: locale {d.locale}, group_wait {span(d.group_wait_s)}, "
                 f"group_interval {span(d.group_interval_s)}, "
                 f"repeat_interval {span(d.repeat_interval_s)}")
    lines.append("tree:")
    for path, node in _nodes(config.route, "route"):
        indent = "  " * (path.count(".routes[") + 1)
        parts = [f"{indent}{path}"]
        if node.match is not None:
            parts.append(_match(node))
        if node.receivers:
            parts.append("-> " + ", ".join(node.receivers))
        parts += _settings(node)
        lines.append("  ".join(parts))
    return "\n".join(lines)


def explain_decision(alert: Alert, decision: RouteDecision) -> str:
    """Where ``alert`` goes, when each tier is told, and which routes decided it."""
    subject = alert.subject
    color = LEVEL_COLORS.get(alert.level, "?")
    lines = [
        f"alert: kind={alert.kind} level={alert.level} ({color}) "
        f"enterprise={subject.enterprise_id or '-'} industry={subject.industry or '-'} "
        f"region={' > '.join(subject.region) or '-'}",
        "matched: " + " -> ".join(decision.matched),
    ]
    for tier in TIERS:
        after = decision.escalation.after(tier)
        when = ("at once" if after == 0 else f"never at level {alert.level}" if after is None
                else f"after {span(after)} unacknowledged")
        names = ", ".join(f"{r.name} ({', '.join(channel_name(c) for c in r.channels)})"
                          for r in decision.receivers(tier)) or "(nobody)"
        lines.append(f"  {tier:<10}  {when:<29}  {names}")
    lines.append(f"timing: group_wait {span(decision.group_wait_s)}, "
                 f"group_interval {span(decision.group_interval_s)}, "
                 f"repeat_interval {span(decision.repeat_interval_s)}")
    return "\n".join(lines)


def span(seconds: float) -> str:
    """Seconds in the largest whole unit: ``1800`` -> ``30 min``, ``7200`` -> ``2 h``.

    >>> [span(s) for s in (0, 45, 600, 5400, 7200, 2.5)]
    ['0 s', '45 s', '10 min', '90 min', '2 h', '2.5 s']
    """
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _after(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return "at once" if seconds == 0 else f"after {span(seconds)}"


def _channel(channel: ChannelConfig) -> str:
    name = channel_name(channel)
    return name if name == channel.type else f"{name} ({channel.type})"


def _match(node: RouteNode) -> str:
    assert node.match is not None
    given = node.match.model_dump(exclude_none=True)
    return " ".join(f"{key}={','.join(str(v) for v in values)}" for key, values in given.items())


def _settings(node: RouteNode) -> list[str]:
    settings = [f"{key.removesuffix('_s')} {span(value)}" for key, value in (
        ("group_wait_s", node.group_wait_s), ("group_interval_s", node.group_interval_s),
        ("repeat_interval_s", node.repeat_interval_s)) if value is not None]
    if node.escalation is not None:
        given = node.escalation.model_fields_set
        settings += [f"{key.removesuffix('_after_s')} {_after(getattr(node.escalation, key))}"
                     for key in ("town_after_s", "county_after_s") if key in given]
    if node.continue_:
        settings.append("continue")
    return ["(" + "; ".join(settings) + ")"] if settings else []


def _nodes(node: RouteNode, path: str) -> list[tuple[str, RouteNode]]:
    found = [(path, node)]
    for i, child in enumerate(node.routes):
        found += _nodes(child, f"{path}.routes[{i}]")
    return found
