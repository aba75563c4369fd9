"""Shared fixtures: the registry fixture and real servers.

Integration tests talk to real servers on loopback (Mosquitto on 1883, PostgreSQL on
5432).  When one is absent they skip with the reason, unless
``RISKWATCH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns the skip into a failure,
so CI can never pass by silently skipping the tests that matter.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gateway.registry import Registry, load_registry

FIXTURES = Path(__file__).parent / "fixtures"
MOSQUITTO = ("127.0.0.1", 1883)


def services_required() -> bool:
    return os.environ.get("RISKWATCH_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when CI requires the real services."""
    if services_required():
        pytest.fail(f"{reason} (RISKWATCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def small_registry_path() -> Path:
    return FIXTURES / "registry_small.yaml"


@pytest.fixture
def small_registry(small_registry_path: Path) -> Registry:
    return load_registry(small_registry_path)


@pytest.fixture
def mosquitto() -> tuple[str, int]:
    """The machine's Mosquitto broker (CI installs and starts it when missing)."""
    if not port_open(*MOSQUITTO):
        unavailable(f"no MQTT broker on {MOSQUITTO[0]}:{MOSQUITTO[1]} (install mosquitto)")
    return MOSQUITTO
