"""`riskwatch score` on a replayed recording with hand-written ground truth."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from gateway.cli import app
from gateway.registry import Registry
from gateway.replay import ReplayOptions, replay_recording
from simulators.basic import BasicSimulator, Excursion, Outage
from simulators.labels import Label, write_labels

START = 1_795_478_400.0


def make_run(tmp_path: Path, registry: Registry) -> tuple[Path, Path]:
    incidents = [Excursion("DC1", "dp", START + 600, START + 1200, 2300.0),
                 Outage("GD-CO1", START + 1800, START + 2400)]
    recording = tmp_path / "rec.jsonl"
    with recording.open("wb") as out:
        for topic, payload in BasicSimulator(registry.spec, seed=3, incidents=incidents).messages(
                START, START + 3600):
            out.write(orjson.dumps({"topic": topic, "payload": payload}) + b"\n")
    alerts = tmp_path / "alerts.jsonl"
    replay_recording(registry, recording, alerts, options=ReplayOptions(progress=False))
    labels = tmp_path / "labels.jsonl"
    write_labels(labels, [
        Label("E370829001", "DC1", "threshold", START + 600, START + 1200, point="dp",
              scenario="abnormal.filter_clogging"),
        Label("E320583002", "GD-CO1", "device_offline", START + 1800, START + 2400),
        Label("E320583002", None, "hidden_operation", START + 100, START + 200),
    ])
    return labels, alerts


def test_score_table_and_json(
    tmp_path: Path, small_registry: Registry, small_registry_path: Path
) -> None:
    labels, alerts = make_run(tmp_path, small_registry)
    runner = CliRunner()
    table = runner.invoke(app, ["score", "-l", str(labels), "-a", str(alerts),
                                "--registry", str(small_registry_path)])
    assert table.exit_code == 0, table.output
    assert "threshold" in table.output
    assert "hidden_operation" in table.output

    result = runner.invoke(app, ["score", "-l", str(labels), "-a", str(alerts), "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert kinds["threshold"]["event_recall"] == 1.0
    assert kinds["threshold"]["event_precision"] == 1.0
    assert kinds["device_offline"]["detected"] == 1
    assert kinds["hidden_operation"]["event_recall"] == 0.0  # nothing detects it yet


def test_score_names_a_bad_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"enterprise_id": "E1"}\n', encoding="utf-8")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["score", "-l", str(labels), "-a", str(alerts)])
    assert result.exit_code == 2
    assert "labels.jsonl:1" in result.output
