"""Replay: a recording through the same pipeline, deterministic, with quarantine."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.registry import Registry
from gateway.replay import ReplayOptions, replay_recording
from simulators.basic import BasicSimulator, Excursion, Outage

START = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00, a Tuesday


def record(path: Path, registry: Registry, hours: float = 1.0, **kwargs: object) -> Path:
    incidents = [
        Excursion("DC1", "dp", START + 600, START + 1200, 2300.0),
        Outage("GD-CO1", START + 1800, START + 2400),
    ]
    simulator = BasicSimulator(registry.spec, seed=3, incidents=incidents, **kwargs)  # type: ignore[arg-type]
    with path.open("wb") as out:
        for topic, payload in simulator.messages(START, START + hours * 3600):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_raises_and_resolves_the_injected_incidents(
    tmp_path: Path, small_registry: Registry
) -> None:
    recording = record(tmp_path / "rec.jsonl", small_registry)
    report = replay_recording(small_registry, recording, tmp_path / "alerts.jsonl",
                              options=ReplayOptions(progress=False))
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    by_kind = {(a["kind"], a["device_id"], a["point"]): a for a in alerts}

    dp = by_kind[("threshold", "DC1", "dp")]
    assert dp["level"] == 2  # above hihi 2000 Pa: orange
    assert dp["state"] == "resolved"
    assert "压差" in str(dp["title"])
    # The differential-pressure default on-delay is 30 s: detection lags the first
    # anomalous sample (started_at) by at least that, and by less than 30 s + 1 sample.
    started = _epoch(dp["started_at"])
    detected = _epoch(dp["detected_at"])
    assert START + 600 <= started < START + 610
    assert 30 <= detected - started < 40
    assert START + 1200 <= _epoch(dp["resolved_at"]) < START + 1210

    offline = by_kind[("device_offline", "GD-CO1", None)]
    assert offline["level"] == 3
    assert offline["state"] == "resolved"
    silent_after = _epoch(offline["detected_at"]) - _epoch(offline["started_at"])
    assert 30 < silent_after <= 35 + 10  # k=3 × 10 s, plus a sweep and a sample period
    assert report.rejected == 0
    assert report.samples > 1000
    assert len(alerts) == 2, alerts


def test_replay_is_deterministic_and_batching_independent(
    tmp_path: Path, small_registry: Registry
) -> None:
    recording = record(tmp_path / "rec.jsonl", small_registry, hours=0.8)
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    replay_recording(small_registry, recording, out_a, options=ReplayOptions(progress=False))
    replay_recording(small_registry, recording, out_b, options=ReplayOptions(progress=False))
    assert out_a.read_bytes() == out_b.read_bytes()
    assert out_a.read_bytes()


def test_cli_replay_quarantines_bad_lines_and_reports(
    tmp_path: Path, small_registry_path: Path, small_registry: Registry
) -> None:
    recording = record(tmp_path / "rec.jsonl", small_registry, hours=0.2)
    with recording.open("ab") as out:
        out.write(b"not json\n")
        out.write(b'{"payload": {}}\n')
        out.write(b'{"topic": "rw/v1/E370829001/GHOST/telemetry", "payload": {"ts": 1}}\n')
    alerts_out = tmp_path / "out" / "alerts.jsonl"
    result = CliRunner().invoke(app, [
        "replay", "--registry", str(small_registry_path), "--input", str(recording),
        "--alerts-out", str(alerts_out), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert "3 refused" in result.output
    quarantine = read_jsonl(alerts_out.with_suffix(".quarantine.jsonl"))
    assert [q["reason"] for q in quarantine] == ["bad_json", "bad_json", "unknown_device"]
    assert "line" in str(quarantine[0]["detail"])


def test_cli_replay_names_registry_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("enterprises:\n  - id: E1\n    nmae: x\n", encoding="utf-8")
    recording = tmp_path / "rec.jsonl"
    recording.write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, [
        "replay", "-r", str(bad), "-i", str(recording), "-o", str(tmp_path / "a.jsonl"),
    ])
    assert result.exit_code == 2
    assert "bad.yaml:2: enterprises[0].name: missing" in result.output
    assert "bad.yaml:3: enterprises[0].nmae: unknown key" in result.output


@pytest.mark.parametrize("records", [1, 5])
def test_batched_and_single_messages_give_the_same_alert_kinds(
    tmp_path: Path, small_registry: Registry, records: int
) -> None:
    recording = record(tmp_path / "rec.jsonl", small_registry, records_per_message=records)
    replay_recording(small_registry, recording, tmp_path / "a.jsonl",
                     options=ReplayOptions(progress=False))
    kinds = sorted((a["kind"], a["device_id"]) for a in read_jsonl(tmp_path / "a.jsonl"))
    assert kinds == [("device_offline", "GD-CO1"), ("threshold", "DC1")]


def _epoch(value: object) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(value)).timestamp()


def test_the_last_minute_of_a_recording_is_judged_too(tmp_path: Path,
                                                       small_registry: Registry) -> None:
    """A hopper temperature starts climbing 3 K/min 200 s before the recording ends:
    the rate rule holds its last 30 s of samples, and the replay must still judge them
    (the alert fires in the final seconds)."""
    recording = tmp_path / "ramp.jsonl"
    ts = [START + 10.0 * i for i in range(60)]  # 10 minutes, every 10 s
    with recording.open("wb") as out:
        for i, t in enumerate(ts):
            climb = max(0.0, (t - ts[-1] + 200.0) / 60.0) * 3.0
            payload = {"ts": t * 1000, "values": {"hopper_temp": 40.0 + climb + 0.01 * (i % 3),
                                                  "dp": 900.0 + i % 5, "fan_run": 1}}
            out.write(orjson.dumps({"topic": "rw/v1/E370829001/DC1/telemetry",
                                    "payload": payload}) + b"\n")
    alerts = tmp_path / "alerts.jsonl"
    replay_recording(small_registry, recording, alerts, options=ReplayOptions(progress=False))

    rate = [a for a in read_jsonl(alerts) if a["kind"] == "rate_of_change"]
    assert len(rate) == 1
    assert _epoch(rate[0]["detected_at"]) > ts[-1] - 30.0  # in the held last half minute


def test_a_device_that_says_it_goes_offline_has_its_word_in_the_evidence(
        tmp_path: Path, small_registry: Registry) -> None:
    """The gas detector announces "offline, 停电检修" and falls silent while the cooling
    loop keeps reporting: its ``device_offline`` alert quotes the claim; the cooling
    loop, which claimed nothing, has none."""
    recording = tmp_path / "claim.jsonl"
    lines: list[dict[str, object]] = []
    for i in range(120):  # 20 minutes, every 10 s
        t = START + 10.0 * i
        lines.append({"topic": "rw/v1/E320583002/CW1/telemetry",
                      "payload": {"ts": t * 1000, "values": {"flow_in": 20.0, "flow_out": 20.0,
                                                             "temp_out": 30.0, "pressure": 0.3}}})
        if i < 30:
            lines.append({"topic": "rw/v1/E320583002/GD-CO1/telemetry",
                          "payload": {"ts": t * 1000, "values": {"co": 3.0}}})
        if i == 30:
            lines.append({"topic": "rw/v1/E320583002/GD-CO1/status",
                          "payload": {"ts": t * 1000, "online": False, "reason": "停电检修"}})
    with recording.open("wb") as out:
        out.writelines(orjson.dumps(line) + b"\n" for line in lines)
    alerts = tmp_path / "alerts.jsonl"
    replay_recording(small_registry, recording, alerts, options=ReplayOptions(progress=False))

    offline = {a["device_id"]: a for a in read_jsonl(alerts) if a["kind"] == "device_offline"}
    claim = offline["GD-CO1"]["evidence"]["status_claim"]  # type: ignore[index]
    assert claim["online"] is False
    assert claim["reason"] == "停电检修"
    assert _epoch(claim["at"]) == START + 300.0
    assert "CW1" not in offline


ROUTING = """
receivers:
  screen: {tier: enterprise, channels: [{type: mqtt}]}
  town-370829101: {tier: town, channels: [{type: webhook, url: "http://127.0.0.1:9/t"}]}
  county-370829: {tier: county, channels: [{type: webhook, url: "http://127.0.0.1:9/c"}]}
route:
  receivers: [screen]
  routes:
    - match: {region: ["370829101"]}
      receivers: [town-370829101]
      continue: true
    - match: {region: ["370829"]}
      receivers: [county-370829]
"""


def test_replay_writes_the_escalation_timeline_of_an_unanswered_alert_on_event_time(
    tmp_path: Path, small_registry: Registry
) -> None:
    """Level 2 (orange) with the default limits: the enterprise at once (after the
    30-s group wait), the town after 30 min, the county after 2 h, reminders every
    30 min; everyone told hears the resolution.  Three hours of data, no sleeping."""
    simulator = BasicSimulator(small_registry.spec, seed=3, incidents=[
        Excursion("DC1", "dp", START + 600, START + 9000, 2300.0)])
    recording = tmp_path / "rec.jsonl"
    with recording.open("wb") as out:
        for topic, payload in simulator.messages(START, START + 3 * 3600):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")

    result = CliRunner().invoke(app, [
        "replay", str(recording), "-r", "tests/fixtures/registry_small.yaml",
        "-o", str(tmp_path / "alerts.jsonl"), "--no-progress",
        "--routing", str(routing), "--notifications-out", str(tmp_path / "told.jsonl")])
    assert result.exit_code == 0, result.output

    [dp] = [a for a in read_jsonl(tmp_path / "alerts.jsonl") if a["point"] == "dp"]
    detected = _epoch(dp["detected_at"])
    told = [n for n in read_jsonl(tmp_path / "told.jsonl") if n["alert_ids"] == [dp["id"]]]
    timeline = [(n["receiver"], n["reason"], round(float(n["at"]) - detected))  # type: ignore[arg-type]
                for n in told]
    at: dict[tuple[str, str], int] = {}
    for receiver, why, t in timeline:  # the first of each
        at.setdefault((receiver, why), t)

    assert 30 <= at[("screen", "firing")] < 40  # group wait, on the 5-s sweep grid
    assert at[("town-370829101", "escalated")] == 1800
    assert at[("county-370829", "escalated")] == 7200
    assert 1800 <= at[("screen", "repeat")] < 1810
    assert 1800 <= at[("town-370829101", "repeat")] - 1800 < 1810  # reminded after told
    resolved = sorted(r for r, why, _ in timeline if why == "resolved")
    assert resolved == ["county-370829", "screen", "town-370829101"]
    assert all(not n["muted"] for n in told)
    assert len({n["key"] for n in told}) == len(told)
