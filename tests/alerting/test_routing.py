"""The routing tree: which receivers per tier, timings and escalation limits per alert.

The table tests run a realistic two-town county tree against many alerts; the other
tests pin one rule each (continue, accumulation, inheritance, escalation, validation).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerting.models import Alert, Subject
from alerting.routing import (
    DEFAULT_ROUTING,
    EscalationLimits,
    RoutingConfig,
    RoutingConfigError,
    RoutingTree,
    lint,
    region_path,
)

MQTT = [{"type": "mqtt"}]
HOOK = [{"type": "webhook", "url": "https://example.test/hook"}]


def alert(kind: str = "threshold", level: int = 2, region: str = "370829101",
          industry: str = "dust", enterprise: str = "E370829001") -> Alert:
    subject = Subject(enterprise_id=enterprise, enterprise_name="示例", industry=industry,
                      region=region_path(region) if region else (),
                      timezone="Asia/Shanghai", device_id="DC1", point="dp")
    return Alert(id="a1", fingerprint="f1", kind=kind, subject=subject, level=level,
                 state="firing", started_at=0.0, detected_at=0.0, resolved_at=None,
                 updated_at=0.0, title="", evidence={})


def receivers(**tiers: str) -> dict[str, Any]:
    """``receivers(screen="enterprise", t101="town")``: webhook receivers by name."""
    return {name.replace("_", "-"): {"tier": tier, "channels": HOOK}
            for name, tier in tiers.items()}


def config(route: dict[str, Any], **extra: Any) -> RoutingConfig:
    data: dict[str, Any] = {
        "receivers": receivers(screen="enterprise", a="enterprise", b="town", c="county"),
        "route": route,
    }
    data.update(extra)
    return RoutingConfig.model_validate(data)


def names(decision_receivers: tuple[Any, ...]) -> list[str]:
    return [r.name for r in decision_receivers]


# --- the routing table ----------------------------------------------------------------

COUNTY_TREE: dict[str, Any] = {
    "receivers": {
        **receivers(screen="enterprise", town_101="town", town_102="town",
                    county="county", county_metal="county", province="county",
                    watch_e9="town"),
    },
    "route": {
        "receivers": ["screen"],
        "routes": [
            {"match": {"kind": ["hidden_operation", "fake_offline"]},
             "receivers": ["province"], "continue": True},
            {"match": {"enterprise": ["E370829009"]}, "receivers": ["watch-e9"],
             "continue": True},
            {"match": {"region": ["370829"]}, "routes": [
                {"match": {"level": [1, 2]}, "receivers": ["county"], "continue": True},
                {"match": {"industry": ["metallurgy"], "level": [1, 2, 3]},
                 "receivers": ["county-metal"], "continue": True},
                {"match": {"region": ["370829101"]}, "receivers": ["town-101"]},
                {"match": {"region": ["370829102"]}, "receivers": ["town-102"]},
            ]},
        ],
    },
}

TABLE = [
    # (id, alert, enterprise tier, town tier, county tier)
    ("blue in town 101", alert(level=4), ["screen"], ["town-101"], []),
    ("yellow in town 101", alert(level=3), ["screen"], ["town-101"], []),
    ("orange in town 101", alert(level=2), ["screen"], ["town-101"], ["county"]),
    ("red in town 102", alert(level=1, region="370829102"), ["screen"], ["town-102"],
     ["county"]),
    ("red, county-level enterprise", alert(level=1, region="370829"), ["screen"], [],
     ["county"]),
    ("other county", alert(level=1, region="370830101"), ["screen"], [], []),
    ("no region at all", alert(level=1, region=""), ["screen"], [], []),
    ("metallurgy yellow", alert(level=3, industry="metallurgy"), ["screen"], ["town-101"],
     ["county-metal"]),
    ("metallurgy red", alert(level=1, industry="metallurgy", region="370829102"), ["screen"],
     ["town-102"], ["county", "county-metal"]),
    ("metallurgy blue", alert(level=4, industry="metallurgy"), ["screen"], ["town-101"], []),
    ("hidden operation in town", alert("hidden_operation", 2), ["screen"], ["town-101"],
     ["province", "county"]),
    ("fake offline elsewhere", alert("fake_offline", 2, region="410000"), ["screen"], [],
     ["province"]),
    ("watched enterprise", alert(level=3, enterprise="E370829009"), ["screen"],
     ["watch-e9", "town-101"], []),
    ("watched enterprise, hidden", alert("hidden_operation", 1, enterprise="E370829009"),
     ["screen"], ["watch-e9", "town-101"], ["province", "county"]),
    ("unknown kind", alert("no_such_kind", 4, region="370829102"), ["screen"], ["town-102"],
     []),
]


@pytest.mark.parametrize(("the_alert", "enterprise", "town", "county"),
                         [case[1:] for case in TABLE], ids=[case[0] for case in TABLE])
def test_routing_table(the_alert: Alert, enterprise: list[str], town: list[str],
                       county: list[str]) -> None:
    tree = RoutingTree(RoutingConfig.model_validate(COUNTY_TREE))

    decision = tree.route(the_alert)

    assert (names(decision.enterprise), names(decision.town), names(decision.county)) == (
        enterprise, town, county)
    assert decision.matched[0] == "route"
    assert all(r.tier == "town" for r in decision.town)
    assert decision.receivers("county") == decision.county


def test_matched_paths_explain_the_decision() -> None:
    tree = RoutingTree(RoutingConfig.model_validate(COUNTY_TREE))

    decision = tree.route(alert("hidden_operation", 2, industry="metallurgy"))

    assert decision.matched == ("route", "route.routes[0]", "route.routes[2]",
                                "route.routes[2].routes[0]", "route.routes[2].routes[1]",
                                "route.routes[2].routes[2]")


# --- continue and accumulation ------------------------------------------------------


def test_the_first_matching_child_wins_without_continue() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [1, 2]}, "receivers": ["b"]},
        {"match": {"level": [2]}, "receivers": ["c"]},
    ]}))

    assert names(tree.route(alert(level=2)).all_receivers) == ["screen", "b"]
    assert names(tree.route(alert(level=1)).all_receivers) == ["screen", "b"]
    assert tree.route(alert(level=2)).matched == ("route", "route.routes[0]")


def test_continue_tries_the_later_siblings_too() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [1, 2]}, "receivers": ["b"], "continue": True},
        {"match": {"kind": ["spark"]}, "receivers": ["a"]},
        {"match": {"level": [2]}, "receivers": ["c"]},
    ]}))

    assert names(tree.route(alert(level=2)).all_receivers) == ["screen", "b", "c"]
    # routes[1] matched without continue: routes[2] is skipped
    assert names(tree.route(alert("spark", 2)).all_receivers) == ["screen", "a", "b"]
    assert tree.route(alert("spark", 2)).matched == ("route", "route.routes[0]",
                                                    "route.routes[1]")


def test_continue_of_a_child_that_did_not_match_changes_nothing() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [1]}, "receivers": ["b"], "continue": True},
        {"match": {"level": [2]}, "receivers": ["c"]},
        {"match": {"level": [2]}, "receivers": ["a"]},
    ]}))

    assert names(tree.route(alert(level=2)).all_receivers) == ["screen", "c"]


def test_a_match_needs_every_key_and_any_value_of_a_key() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [1, 2], "kind": ["threshold", "spark"],
                   "region": ["370829102", "370829101"]}, "receivers": ["b"]},
    ]}))

    assert names(tree.route(alert("spark", 1)).town) == ["b"]
    assert names(tree.route(alert("spark", 3)).town) == []
    assert names(tree.route(alert("leak", 1)).town) == []
    assert names(tree.route(alert("spark", 1, region="370829103")).town) == []


def test_receivers_accumulate_once_each_in_first_seen_order() -> None:
    tree = RoutingTree(config({"receivers": ["screen", "c", "screen"], "routes": [
        {"match": {"level": [2]}, "receivers": ["b", "a", "screen"], "continue": True},
        {"match": {"kind": ["threshold"]}, "receivers": ["c", "b"]},
    ]}))

    decision = tree.route(alert(level=2))

    assert names(decision.enterprise) == ["screen", "a"]
    assert names(decision.town) == ["b"]
    assert names(decision.county) == ["c"]


def test_a_scalar_is_a_list_of_one() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": 1, "region": "370829"}, "receivers": ["c"]}]}))

    assert names(tree.route(alert(level=1)).county) == ["c"]
    assert names(tree.route(alert(level=2)).county) == []


def test_an_empty_match_and_a_missing_match_catch_everything() -> None:
    for child in ({"match": {}, "receivers": ["b"]}, {"receivers": ["b"]}):
        tree = RoutingTree(config({"receivers": ["screen"], "routes": [child]}))
        assert names(tree.route(alert("anything", 4, region="")).town) == ["b"]


def test_receiver_locale_falls_back_to_the_file_default() -> None:
    tree = RoutingTree(RoutingConfig.model_validate({
        "defaults": {"locale": "en"},
        "receivers": {"x": {"tier": "enterprise", "channels": MQTT},
                      "y": {"tier": "town", "channels": MQTT, "locale": "zh"}},
        "route": {"receivers": ["x", "y"]},
    }))

    decision = tree.route(alert())

    assert [(r.name, r.locale) for r in decision.all_receivers] == [("x", "en"), ("y", "zh")]
    assert tree.receivers["y"].channels[0].type == "mqtt"


# --- timings ----------------------------------------------------------------------------


def test_timings_default_when_nothing_overrides() -> None:
    decision = RoutingTree(config({"receivers": ["screen"]})).route(alert())

    assert (decision.group_wait_s, decision.group_interval_s, decision.repeat_interval_s) == (
        30.0, 300.0, 1800.0)


def test_timings_are_inherited_and_the_deepest_matched_node_wins() -> None:
    tree = RoutingTree(config(
        {"receivers": ["screen"], "group_wait_s": 20, "routes": [
            {"match": {"region": ["370829"]}, "group_wait_s": 60, "repeat_interval_s": 900,
             "routes": [
                 {"match": {"level": [1]}, "group_wait_s": 5, "receivers": ["c"]},
                 {"match": {"level": [2]}, "group_interval_s": 120, "receivers": ["b"]},
             ]},
        ]},
        defaults={"group_interval_s": 600},
    ))

    def timing(a: Alert) -> tuple[float, float, float]:
        d = tree.route(a)
        return d.group_wait_s, d.group_interval_s, d.repeat_interval_s

    assert timing(alert(level=1)) == (5, 600, 900)
    assert timing(alert(level=2)) == (60, 120, 900)
    # the region node is the deepest match: its 60 s wins over the root's 20 s
    assert timing(alert(level=3)) == (60, 600, 900)
    assert timing(alert(level=3, region="410000")) == (20, 600, 1800)


def test_several_matched_paths_take_the_shortest_of_each_interval() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [1]}, "group_wait_s": 0, "repeat_interval_s": 3600,
         "continue": True},
        {"match": {"region": ["370829"]}, "group_wait_s": 45, "repeat_interval_s": 600,
         "receivers": ["c"]},
    ]}))

    decision = tree.route(alert(level=1))

    assert (decision.group_wait_s, decision.group_interval_s, decision.repeat_interval_s) == (
        0, 300, 600)


# --- escalation -------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "town", "county"), [
    (1, 600, 1800), (2, 1800, 7200), (3, 7200, None), (4, None, None)])
def test_escalation_defaults_per_level(level: int, town: float | None,
                                      county: float | None) -> None:
    decision = RoutingTree(config({"receivers": ["screen"]})).route(alert(level=level))

    assert decision.escalation == EscalationLimits(town, county)
    assert decision.escalation.after("enterprise") == 0
    assert decision.escalation.after("town") == town
    assert decision.escalation.after("county") == county


def test_escalation_overrides_keep_the_defaults_of_what_they_leave_out() -> None:
    cfg = config({"receivers": ["screen"]}, escalation={
        1: {"town_after_s": 300}, "3": {"county_after_s": 14400}, 4: None,
        2: {"county_after_s": None}})

    limits = {level: (spec.town_after_s, spec.county_after_s)
              for level, spec in cfg.escalation.items()}

    assert limits == {1: (300, 1800), 2: (1800, None), 3: (7200, 14400), 4: (None, None)}
    assert RoutingTree(cfg).route(alert(level=3)).escalation == EscalationLimits(7200, 14400)


def test_a_route_overrides_escalation_for_what_it_matches() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"kind": ["hidden_operation"]}, "receivers": ["c"],
         "escalation": {"town_after_s": 0, "county_after_s": 0}},
        {"match": {"region": ["370829"]}, "escalation": {"county_after_s": 3600},
         "routes": [{"match": {"level": [3]}, "escalation": {"town_after_s": 900}}]},
    ]}))

    assert tree.route(alert("hidden_operation", 4)).escalation == EscalationLimits(0, 0)
    assert tree.route(alert(level=2)).escalation == EscalationLimits(1800, 3600)
    assert tree.route(alert(level=3)).escalation == EscalationLimits(900, 3600)
    assert tree.route(alert(level=3, region="410000")).escalation == EscalationLimits(7200, None)


def test_several_paths_take_the_earliest_escalation_and_the_town_is_never_later() -> None:
    tree = RoutingTree(config({"receivers": ["screen"], "routes": [
        {"match": {"level": [2]}, "escalation": {"town_after_s": 600, "county_after_s": None},
         "continue": True},
        {"match": {"kind": ["threshold"]}, "escalation": {"county_after_s": 300}},
    ]}))

    # paths: (600, never) and (1800, 300): earliest town 600, county 300 -> town 300
    assert tree.route(alert(level=2)).escalation == EscalationLimits(300, 300)


def test_a_level_outside_1_to_4_escalates_like_red() -> None:
    decision = RoutingTree(config({"receivers": ["screen"]})).route(alert(level=7))

    assert decision.escalation == EscalationLimits(600, 1800)


# --- the default configuration ----------------------------------------------------------


def test_default_routing_tells_only_the_enterprise_screen_over_mqtt() -> None:
    decision = RoutingTree(DEFAULT_ROUTING).route(alert("hidden_operation", 1))

    assert names(decision.enterprise) == ["enterprise-screen"]
    assert decision.town == decision.county == ()
    (channel,) = decision.enterprise[0].channels
    assert channel.type == "mqtt"
    assert channel.topic == "rw/v1/{enterprise_id}/alerts"
    assert DEFAULT_ROUTING.smtp is None
    assert DEFAULT_ROUTING.sms_gateway is None


# --- validation -------------------------------------------------------------------------


def problems(data: dict[str, Any]) -> list[str]:
    """``key: message`` of every validation problem, cross-reference ones expanded."""
    with pytest.raises(ValidationError) as info:
        RoutingConfig.model_validate(data)
    found: list[str] = []
    for error in info.value.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, RoutingConfigError):
            found += [".".join(map(str, loc)) + ": " + message for loc, message in cause.problems]
        else:
            found.append(".".join(map(str, error["loc"])) + ": " + error["msg"])
    return found


def valid(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"receivers": receivers(screen="enterprise", b="town"),
                            "route": {"receivers": ["screen"]}}
    data.update(changes)
    return data


def test_every_referenced_receiver_must_exist() -> None:
    found = problems(valid(route={"receivers": ["screen", "scren"], "routes": [
        {"receivers": ["nobody"]}]}))

    assert found == [
        "route.receivers.1: unknown receiver 'scren'; defined: b, screen",
        "route.routes.0.receivers.0: unknown receiver 'nobody'; defined: b, screen",
    ]


def test_channel_names_are_unique_within_a_receiver() -> None:
    found = problems(valid(receivers={
        "screen": {"tier": "enterprise", "channels": [*HOOK, *HOOK]},
        "b": {"tier": "town", "channels": [*HOOK, {**HOOK[0], "name": "hook2"}]}}))

    assert found == ["receivers.screen.channels.1: channel name 'webhook' is already used "
                     "by channels[0]; give one a 'name'"]


def test_email_needs_smtp_and_sms_needs_a_gateway() -> None:
    channels = [{"type": "email", "to": ["duty@example.test"]},
                {"type": "sms", "to": ["13800000000"]}]
    data = valid(receivers={"screen": {"tier": "county", "channels": channels}})

    assert problems(data) == [
        "receivers.screen.channels.0: an email channel needs the top-level 'smtp' server",
        "receivers.screen.channels.1: an sms channel needs the top-level 'sms_gateway'",
    ]
    RoutingConfig.model_validate({**data, "smtp": {}, "sms_gateway": {"url": "https://s.test"}})


@pytest.mark.parametrize("code", ["37082", "3708291", "37082910", "3708291011", "37O829", ""])
def test_region_codes_have_6_or_9_digits(code: str) -> None:
    found = problems(valid(route={"receivers": ["screen"], "routes": [
        {"match": {"region": [code]}}]}))

    assert len(found) == 1
    assert found[0].startswith("route.routes.0.match.region.0: ")


@pytest.mark.parametrize(("match", "where"), [
    ({"level": [0]}, "match.level.0"),
    ({"level": [5]}, "match.level.0"),
    ({"industry": ["chemical"]}, "match.industry.0"),
    ({"kind": ["Hidden Operation"]}, "match.kind.0"),
    ({"enterprise": ["E 1"]}, "match.enterprise.0"),
    ({"level": []}, "match.level"),
    ({"levle": [1]}, "match.levle"),
])
def test_bad_match_values(match: dict[str, Any], where: str) -> None:
    found = problems(valid(route={"receivers": ["screen"], "routes": [{"match": match}]}))

    assert [f.split(": ")[0] for f in found] == [f"route.routes.0.{where}"]


def test_the_root_matches_everything_and_needs_a_receiver() -> None:
    assert problems(valid(route={"match": {"level": [1]}, "receivers": ["screen"]})) == [
        "route.match: the root route matches every alert; put the match on a child in "
        "'routes'"]
    assert problems(valid(route={"routes": [{"receivers": ["screen"]}]})) == [
        "route: the root route needs at least one receiver, so that every alert reaches "
        "somebody"]


def test_structure_errors() -> None:
    assert problems({"receivers": {}, "route": {"receivers": []}})[0].startswith("receivers: ")
    assert problems(valid(route={"receivers": ["screen"], "continu": True})) == [
        "route.continu: Extra inputs are not permitted"]
    assert problems(valid(receivers={"screen": {"tier": "town", "channels": []}}))[0] \
        .startswith("receivers.screen.channels: ")
    assert problems(valid(receivers={"screen": {"tier": "province", "channels": MQTT}}))[0] \
        .startswith("receivers.screen.tier: ")
    assert problems(valid(receivers={"a b": {"tier": "town", "channels": MQTT}}))[0] \
        .startswith("receivers.a b.[key]: ")
    assert problems(valid(defaults={"group_interval_s": 0}))[0].startswith(
        "defaults.group_interval_s: ")
    assert problems(valid(defaults={"locale": "fr"}))[0].startswith("defaults.locale: ")


def test_escalation_must_not_reach_the_county_before_the_town() -> None:
    assert problems(valid(escalation={2: {"county_after_s": 900}})) == [
        "escalation.2: Value error, county_after_s (900) must not be earlier than "
        "town_after_s (1800): the town station comes first"]
    assert problems(valid(escalation={5: {"town_after_s": 1}}))[0].startswith(
        "escalation.5.[key]: ")
    assert problems(valid(escalation={1: {"town_after_s": -1}}))[0].startswith(
        "escalation.1.town_after_s: ")
    # equal is allowed: both told at once
    config({"receivers": ["screen"]}, escalation={1: {"town_after_s": 0, "county_after_s": 0}})


def test_unused_receivers_are_fine() -> None:
    cfg = RoutingConfig.model_validate(valid())

    assert set(cfg.receivers) == {"screen", "b"}
    assert lint(cfg) == []


def test_the_model_error_message_names_every_cross_reference_problem() -> None:
    with pytest.raises(ValidationError, match=r"route\.receivers\[0\]: unknown receiver 'x'"):
        RoutingConfig.model_validate(valid(route={"receivers": ["x"]}))


# --- lint -------------------------------------------------------------------------------


def test_lint_warns_of_unknown_kinds_unreachable_routes_and_a_root_continue() -> None:
    cfg = config({"receivers": ["screen"], "continue": True, "routes": [
        {"match": {"kind": ["hidden_operaton", "threshold"]}, "receivers": ["b"]},
        {"receivers": ["c"]},
        {"match": {"level": [1]}, "receivers": ["a"]},
    ]})

    warnings = lint(cfg)

    assert [loc for loc, _ in warnings] == [
        ("route", "continue"), ("route", "routes", 0, "match", "kind"), ("route", "routes", 2)]
    assert "'hidden_operaton' is not an alert kind" in warnings[1][1]
    assert "routes[1] before it matches every alert" in warnings[2][1]


# --- properties -------------------------------------------------------------------------

CODES = ["370000", "370800", "370829", "370829101", "370829102", "410000", "410100"]

alerts = st.builds(
    lambda kind, level, region, industry, enterprise: Alert(
        id="p", fingerprint="p", kind=kind, level=level, state="firing", started_at=0.0,
        detected_at=0.0, resolved_at=None, updated_at=0.0, title="", evidence={},
        subject=Subject(enterprise_id=enterprise, enterprise_name="", industry=industry,
                        region=tuple(region), timezone="Asia/Shanghai")),
    kind=st.sampled_from(["threshold", "hidden_operation", "fake_offline", "spark"]) | st.text(),
    level=st.integers(-3, 9),
    region=st.lists(st.sampled_from(CODES) | st.text(max_size=12), max_size=5),
    industry=st.sampled_from(["dust", "metallurgy", ""]) | st.text(max_size=5),
    enterprise=st.sampled_from(["E370829001", "E370829009", ""]) | st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(alerts)
def test_route_never_raises_and_always_includes_the_root_receivers(a: Alert) -> None:
    tree = RoutingTree(RoutingConfig.model_validate(COUNTY_TREE))

    decision = tree.route(a)

    assert names(decision.enterprise)[:1] == ["screen"]
    assert decision.matched[0] == "route"
    for tier in ("enterprise", "town", "county"):
        tier_names = names(decision.receivers(tier))
        assert len(tier_names) == len(set(tier_names))
        assert all(r.tier == tier for r in decision.receivers(tier))
    limits = decision.escalation
    if limits.town_after_s is not None and limits.county_after_s is not None:
        assert limits.town_after_s <= limits.county_after_s
    assert decision.group_wait_s >= 0
    assert decision.repeat_interval_s > 0
