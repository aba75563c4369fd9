"""The console commands as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
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


def test_run_says_which_port_is_taken(small_registry_path: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, [
            "run", "--registry", str(small_registry_path), "--port", str(port),
            "--db", f"sqlite+aiosqlite:///{tmp_path / 'rw.db'}",
        ])
    assert result.exit_code == 2
    assert f"cannot listen for the API on 127.0.0.1:{port}" in result.output


def test_run_says_the_database_is_unreachable_without_leaking_its_password(
    small_registry_path: Path,
) -> None:
    dead = free_port()
    result = CliRunner().invoke(app, [
        "run", "--registry", str(small_registry_path), "--port", "0",
        "--db", f"postgresql+asyncpg://rw:s3cret@127.0.0.1:{dead}/rw",
    ])
    assert result.exit_code == 2
    assert f"cannot use the database postgresql+asyncpg://rw:***@127.0.0.1:{dead}/rw" in (
        result.output)
    assert "s3cret" not in result.output


@pytest.mark.integration
def test_run_command_on_the_real_broker_until_sigterm(
    mosquitto: tuple[str, int], small_registry_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "RISKWATCH_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'rw.db'}",
           "RISKWATCH_MQTT_CLIENT_ID": f"rw-cli-{port}", "RISKWATCH_MQTT_SESSION_EXPIRY_S": "5"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--registry", str(small_registry_path),
         "--broker", f"mqtt://{mosquitto[0]}:{mosquitto[1]}", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        healthy = False
        while not healthy and time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                healthy = reply.status_code == 200
            except httpx.TransportError:
                continue
        assert healthy, "service did not become healthy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert (tmp_path / "rw.db").exists()  # the environment variable took effect
    finally:
        if process.poll() is None:
            process.kill()
