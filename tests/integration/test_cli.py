"""The console commands as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from gateway.cli import app
from tests.helpers import free_port


def test_demo_command_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    api_port, broker_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(api_port),
         "--broker-port", str(broker_port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        banner = ""
        while "open http" not in banner and time.monotonic() < deadline:
            banner = process.stdout.readline()
        assert f"http://127.0.0.1:{api_port}/" in banner
        health = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health", timeout=5)
        assert health.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_run_names_a_broken_config_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "rw.yaml"
    config.write_text("registry: missing.yaml\nbroker_url: ftp://x\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "rw.yaml: broker_url" in result.output


def test_run_names_a_missing_registry(tmp_path: Path) -> None:
    config = tmp_path / "rw.yaml"
    config.write_text("registry: missing.yaml\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "missing.yaml" in result.output
