"""`riskwatch simulate` as a tester calls it: deterministic files, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from gateway.registry import load_registry
from simulators.labels import read_labels

runner = CliRunner()


def simulate(folder: Path, *extra: str) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    result = runner.invoke(app, [
        "simulate", "--sites", "3", "--days", "2", "--no-progress",
        "--out", str(folder / "rec.jsonl"), "--labels", str(folder / "labels.jsonl"),
        "--registry-out", str(folder / "reg.yaml"), *extra])
    return result.exit_code, result.output


def digest(folder: Path) -> list[str]:
    return [hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in ("rec.jsonl", "labels.jsonl", "reg.yaml")]


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    assert simulate(tmp_path / "a", "--seed", "4")[0] == 0
    assert simulate(tmp_path / "b", "--seed", "4")[0] == 0
    assert simulate(tmp_path / "c", "--seed", "5")[0] == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")[0] != digest(tmp_path / "c")[0]


def test_outputs_fit_together(tmp_path: Path) -> None:
    code, output = simulate(tmp_path, "--seed", "2", "--scenario", "hidden_operation")
    assert code == 0, output
    registry = load_registry(tmp_path / "reg.yaml")
    known = {e.id for e in registry.spec.enterprises}
    labels = read_labels(tmp_path / "labels.jsonl")
    assert {lb.enterprise_id for lb in labels} <= known
    assert any(lb.kind == "hidden_operation" for lb in labels)
    assert "3 sites × 2 days" in output


def test_no_scenarios_gives_only_impairment_labels(tmp_path: Path) -> None:
    code, output = simulate(tmp_path, "--scenario", "none")
    assert code == 0, output
    scenarios = {lb.scenario for lb in read_labels(tmp_path / "labels.jsonl")}
    assert scenarios <= {"impairment.network_outage"}


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, output = simulate(tmp_path, "--scenario", "no_such_thing")
    assert code == 2
    assert "unknown scenario 'no_such_thing'" in output
    code, output = simulate(tmp_path, "--start", "2026-11-02")
    assert code == 2
    assert "needs a UTC offset" in output
    code, output = simulate(tmp_path, "--sites", "0")
    assert code == 2
    assert "at least one site" in output

    nothing = runner.invoke(app, ["simulate", "--sites", "1"])
    assert nothing.exit_code == 2
    assert "nothing to do" in nothing.output
    half = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x.jsonl")])
    assert half.exit_code == 2
    assert "--labels and --registry-out" in half.output
    bad_url = runner.invoke(app, ["simulate", "--publish", "http://host:1883"])
    assert bad_url.exit_code == 2
    assert "mqtt://" in bad_url.output


def test_replay_needs_a_registry_unless_it_publishes(tmp_path: Path) -> None:
    recording = tmp_path / "r.jsonl"
    recording.write_bytes(b"")
    result = runner.invoke(app, ["replay", str(recording)])
    assert result.exit_code == 2
    assert "--registry and --alerts-out" in result.output
    missing = runner.invoke(app, ["replay", str(tmp_path / "nope.jsonl"), "--publish",
                                  "mqtt://127.0.0.1:1"])
    assert missing.exit_code == 2
    assert "recording not found" in missing.output
