"""A mistake in the routing YAML is named by file, line and key; the sample file loads;
``riskwatch routing check`` and ``riskwatch routing test`` report what an operator needs.

Line numbers count from the first line of the YAML text (``\\`` after the opening
quotes keeps the text starting on line 1).
"""

from __future__ import annotations

import json
import textwrap
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerting.models import Alert, Subject
from alerting.routing import RoutingTree, region_path
from gateway.cli import app
from gateway.routing_file import (
    RoutingError,
    check_routing,
    load_routing,
    load_routing_data,
    load_routing_text,
)

SAMPLE = Path(str(resources.files("gateway").joinpath("samples/routing.yaml")))

runner = CliRunner()

MINIMAL = """\
receivers:
  screen:
    tier: enterprise
    channels:
      - type: mqtt
route:
  receivers: [screen]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[Path, RoutingError]:
    path = write(tmp_path, text)
    with pytest.raises(RoutingError) as info:
        load_routing(path)
    return path, info.value


def alert(kind: str, level: int, region: str) -> Alert:
    subject = Subject(enterprise_id="E370829001", enterprise_name="示例", industry="dust",
                      region=region_path(region), timezone="Asia/Shanghai")
    return Alert(id="a", fingerprint="f", kind=kind, subject=subject, level=level,
                 state="firing", started_at=0.0, detected_at=0.0, resolved_at=None,
                 updated_at=0.0, title="", evidence={})


# --- the sample -------------------------------------------------------------------------


def test_the_sample_file_loads_without_warnings() -> None:
    config, warnings = check_routing(SAMPLE)

    assert warnings == []
    assert set(config.receivers) == {"enterprise-screen", "town-370829101", "county-370829",
                                     "province-platform"}
    assert config.smtp is not None
    assert config.sms_gateway is not None


@pytest.mark.parametrize(("kind", "level", "region", "expected", "limits"), [
    ("threshold", 4, "370829101",
     (["enterprise-screen"], ["town-370829101"], []), (None, None)),
    ("threshold", 2, "370829101",
     (["enterprise-screen"], ["town-370829101"], ["county-370829"]), (1800, 7200)),
    ("interlock_violation", 1, "370829102",
     (["enterprise-screen"], [], ["county-370829"]), (600, 1800)),
    ("hidden_operation", 2, "370829101",
     (["enterprise-screen"], ["town-370829101"], ["province-platform", "county-370829"]),
     (0, 0)),
    ("fake_offline", 2, "410102",
     (["enterprise-screen"], [], ["province-platform"]), (0, 0)),
])
def test_the_sample_routes_as_its_comments_say(
    kind: str, level: int, region: str, expected: tuple[list[str], ...],
    limits: tuple[float | None, float | None],
) -> None:
    decision = RoutingTree(load_routing(SAMPLE)).route(alert(kind, level, region))

    got = tuple([r.name for r in decision.receivers(tier)]
                for tier in ("enterprise", "town", "county"))
    assert got == expected
    assert (decision.escalation.town_after_s, decision.escalation.county_after_s) == limits


def test_red_alerts_in_the_sample_are_not_batched() -> None:
    decision = RoutingTree(load_routing(SAMPLE)).route(alert("threshold", 1, "370829101"))

    assert (decision.group_wait_s, decision.repeat_interval_s) == (0, 600)


# --- errors name file, line and key -----------------------------------------------------


def test_a_misspelt_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path, err = load_error(tmp_path, """\
        receivers:
          screen: {tier: enterprise, channels: [{type: mqtt}]}
        route:
          receivers: [screen]
          routes:
            - match: {level: [1]}
              continu: true
        """)

    assert str(err) == (f"{path}:7: route.routes[0].continu: unknown key; "
                        "did you mean 'continue'?")


def test_an_unknown_receiver_is_named_on_its_line(tmp_path: Path) -> None:
    path, err = load_error(tmp_path, """\
        receivers:
          screen: {tier: enterprise, channels: [{type: mqtt}]}
          town-1: {tier: town, channels: [{type: mqtt}]}
        route:
          receivers: [screen]
          routes:
            - match: {region: ["370829101"]}
              receivers:
                - twon-1
        """)

    assert (err.file, err.line, err.key) == (str(path), 9, "route.routes[0].receivers[0]")
    assert err.message == "unknown receiver 'twon-1'; defined: screen, town-1"


def test_channel_errors_name_the_channel_not_the_union_tag(tmp_path: Path) -> None:
    _, err = load_error(tmp_path, """\
        receivers:
          screen:
            tier: enterprise
            channels:
              - type: dingtalk
                secret_env: DINGTALK_SECRET
              - type: dingding
                url: https://example.test
              - url: https://example.test
              - type: sms
                to: ["call me"]
        route:
          receivers: [screen]
        """)

    found = [(e.line, e.key, e.message) for e in err.errors]
    assert found[0][:2] == (5, "receivers.screen.channels[0]")
    assert "give exactly one of url and url_env" in found[0][2]
    assert found[1] == (7, "receivers.screen.channels[1].type",
                        "unknown type 'dingding'; expected one of: webhook, email, dingtalk, "
                        "wecom, mqtt, sms")
    assert found[2] == (9, "receivers.screen.channels[2].type", "missing required key")
    assert found[3][:2] == (11, "receivers.screen.channels[3].to[0]")
    assert "'call me'" in found[3][2]


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    path, err = load_error(tmp_path, """\
        defaults:
          group_wait_s: soon
        receivers:
          duty:
            tier: county
            channels:
              - type: email
                to: [duty@example.test]
              - type: email
                to: [boss@example.test]
        route:
          receivers: [duty]
          routes:
            - match: {region: [370829], level: [5]}
        """)

    assert [(e.line, e.key) for e in err.errors] == [
        (2, "defaults.group_wait_s"),
        (14, "route.routes[0].match.region[0]"),
        (14, "route.routes[0].match.level[0]"),
    ]
    assert 'quote it in YAML, e.g. "370829"' in err.errors[1].message
    assert str(err).startswith(f"{path}:2: defaults.group_wait_s: ")
    # cross-references are checked once the schema is right
    _, err = load_error(tmp_path, """\
        receivers:
          duty:
            tier: county
            channels:
              - type: email
                to: [duty@example.test]
              - type: email
                to: [boss@example.test]
        route:
          receivers: [duty]
        """)
    assert [(e.line, e.key, e.message) for e in err.errors] == [
        (5, "receivers.duty.channels[0]", "an email channel needs the top-level 'smtp' server"),
        (7, "receivers.duty.channels[1]",
         "channel name 'email' is already used by channels[0]; give one a 'name'"),
        (7, "receivers.duty.channels[1]", "an email channel needs the top-level 'smtp' server"),
    ]


def test_duplicate_keys_are_errors_not_silent_overrides(tmp_path: Path) -> None:
    _, err = load_error(tmp_path, MINIMAL + "  receivers: [screen]\n")

    assert (err.line, err.key) == (8, "route.receivers")
    assert err.message == "duplicate key (first defined at line 7)"


def test_yaml_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    _, err = load_error(tmp_path, MINIMAL.replace("[screen]", "[screen"))

    assert err.line == 8
    assert err.message.startswith("invalid YAML: ")


def test_escalation_errors_name_the_level(tmp_path: Path) -> None:
    _, err = load_error(tmp_path, MINIMAL + textwrap.dedent("""\
        escalation:
          2: {town_after_s: 3600, county_after_s: 600}
          7: {town_after_s: 60}
        """))

    assert [(e.line, e.key) for e in err.errors] == [(9, "escalation[2]"), (10, "escalation[7]")]
    assert "must not be earlier than town_after_s" in err.errors[0].message
    assert err.errors[1].message.startswith("invalid name: level must be 1 (red)")


def test_the_root_must_not_match(tmp_path: Path) -> None:
    _, err = load_error(tmp_path, MINIMAL + "  match: {level: [1]}\n")

    assert (err.line, err.key) == (8, "route.match")


@pytest.mark.parametrize(("text", "message"), [
    ("", "routing file is empty; expected a mapping with keys 'receivers' and 'route'"),
    ("- a\n- b\n", "expected a mapping with keys 'receivers' and 'route' at the top level"),
    ("route:\n  receivers: [x]\n", "missing required key"),
])
def test_a_file_of_the_wrong_shape(text: str, message: str) -> None:
    with pytest.raises(RoutingError) as info:
        load_routing_text(text, "r.yaml")

    assert info.value.message == message


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="file not found"):
        load_routing(tmp_path / "nope.yaml")


def test_data_without_lines_still_names_the_key() -> None:
    with pytest.raises(RoutingError) as info:
        load_routing_data({"receivers": {"s": {"tier": "enterprise", "channels": [
            {"type": "mqtt"}]}}, "route": {"receivers": ["t"]}})

    assert (info.value.line, info.value.key) == (None, "route.receivers[0]")


def test_warnings_are_located_like_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  routes:\n    - match: {kind: [hiden_operation]}\n")

    _, warnings = check_routing(path)

    assert [str(w).split(": ")[:2] for w in warnings] == [
        [f"{path}:9", "route.routes[0].match.kind"]]


# --- the CLI ----------------------------------------------------------------------------


def test_cli_check_prints_the_receivers_escalation_and_tree() -> None:
    result = runner.invoke(app, ["routing", "check", str(SAMPLE)])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{SAMPLE}: valid" in out
    assert "  town        town-370829101     dingtalk, sms" in out
    assert "  level 3 yellow  town after 2 h, county never" in out
    assert "route.routes[2].routes[1]  region=370829101  -> town-370829101" in out


def test_cli_check_exits_1_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[screen]", "[scren, nobody]"))

    result = runner.invoke(app, ["routing", "check", str(path)])

    assert result.exit_code == 1
    assert "2 problems in the routing file" in result.output
    assert f"{path}:7: route.receivers[0]: unknown receiver 'scren'" in result.output
    assert f"{path}:7: route.receivers[1]: unknown receiver 'nobody'" in result.output


def test_cli_check_marks_unused_receivers(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("route:", textwrap.dedent("""\
          spare:
            tier: county
            locale: en
            channels: [{type: webhook, name: desk, url: "https://example.test"}]
        route:""")))

    result = runner.invoke(app, ["routing", "check", str(path)])

    assert result.exit_code == 0, result.output
    assert "  county      spare   desk (webhook)  [locale en]  (unused)" in result.stdout


def test_cli_check_prints_warnings_on_stderr(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  routes:\n    - match: {kind: [hiden_operation]}\n")

    result = runner.invoke(app, ["routing", "check", str(path)])

    assert result.exit_code == 0
    assert "warning: " in result.stderr
    assert "hiden_operation" in result.stderr


def test_cli_test_with_options() -> None:
    result = runner.invoke(app, ["routing", "test", str(SAMPLE), "--kind", "hidden_operation",
                                 "--level", "2", "--region", "370829101"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("alert: kind=hidden_operation level=2 (orange)")
    assert "region=370000 > 370800 > 370829 > 370829101" in lines[0]
    assert lines[1] == ("matched: route -> route.routes[1] -> route.routes[2] -> "
                        "route.routes[2].routes[0] -> route.routes[2].routes[1]")
    assert lines[2].split() == ["enterprise", "at", "once", "enterprise-screen", "(mqtt)"]
    assert lines[4].split() == ["county", "at", "once", "province-platform", "(province),",
                                "county-370829", "(wecom,", "email)"]
    assert lines[5] == "timing: group_wait 30 s, group_interval 5 min, repeat_interval 30 min"


def test_cli_test_with_an_alert_file_and_overrides(tmp_path: Path) -> None:
    stored = alert("threshold", 3, "370829101").to_json()
    single = tmp_path / "alert.json"
    single.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    lines = tmp_path / "alerts.jsonl"
    lines.write_text(json.dumps(stored) + "\n" + json.dumps({**stored, "level": 4}) + "\n")

    one = runner.invoke(app, ["routing", "test", str(SAMPLE), "--alert", str(single)])
    overridden = runner.invoke(app, ["routing", "test", str(SAMPLE), "-a", str(single),
                                     "--level", "1"])
    two = runner.invoke(app, ["routing", "test", str(SAMPLE), "-a", str(lines)])

    assert one.exit_code == 0, one.output
    assert "town        after 2 h unacknowledged       town-370829101" in one.stdout
    assert "county      never at level 3               (nobody)" in one.stdout
    assert "level=1 (red)" in overridden.stdout
    assert "county      after 30 min unacknowledged    county-370829" in overridden.stdout
    assert two.stdout.count("alert: ") == 2
    assert "never at level 4" in two.stdout


def test_cli_test_refuses_bad_options_with_exit_2(tmp_path: Path) -> None:
    bad_level = runner.invoke(app, ["routing", "test", str(SAMPLE), "--level", "5"])
    bad_region = runner.invoke(app, ["routing", "test", str(SAMPLE), "--region", "3708"])
    garbage = tmp_path / "a.json"
    garbage.write_text("{nope\n")
    bad_file = runner.invoke(app, ["routing", "test", str(SAMPLE), "--alert", str(garbage)])

    assert (bad_level.exit_code, bad_region.exit_code, bad_file.exit_code) == (2, 2, 2)
    assert "--level must be 1 (red)" in bad_level.output
    assert "a region code has 6 or 9 digits" in bad_region.output
    assert "not JSON or JSON Lines" in bad_file.output


def test_cli_test_of_a_bad_routing_file_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["routing", "test", str(tmp_path / "missing.yaml")])

    assert result.exit_code == 1
    assert "missing.yaml: file not found" in result.output
