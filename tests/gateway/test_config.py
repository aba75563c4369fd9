"""Settings precedence (CLI > environment > file > defaults) and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_and_relative_registry(tmp_path: Path) -> None:
    config = write(tmp_path / "rw.yaml", "registry: sites.yaml\nbroker_url: mqtt://broker:1884\n")
    settings = load_settings(config)
    assert settings.registry == (tmp_path / "sites.yaml").resolve()
    assert settings.broker().host == "broker"
    assert settings.broker().port == 1884
    assert settings.locale == "zh"


def test_environment_beats_file_and_cli_beats_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "rw.yaml", "registry: sites.yaml\napi_port: 8100\n")
    monkeypatch.setenv("RISKWATCH_API_PORT", "8200")
    assert load_settings(config).api_port == 8200
    assert load_settings(config, api_port=8300).api_port == 8300


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    config = write(tmp_path / "rw.yaml", "registry: sites.yaml\nbroker: mqtt://x\n")
    with pytest.raises(ConfigError, match=r"rw\.yaml: broker: Extra inputs"):
        load_settings(config)


def test_bad_broker_scheme(tmp_path: Path) -> None:
    config = write(tmp_path / "rw.yaml", "registry: r.yaml\nbroker_url: http://x\n")
    with pytest.raises(ConfigError, match="broker_url"):
        load_settings(config)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(Path("/nonexistent/rw.yaml"))


def test_password_never_rendered(tmp_path: Path) -> None:
    config = write(tmp_path / "rw.yaml",
                   "registry: r.yaml\nbroker_url: mqtt://gw:s3cret@broker:1883\n")
    settings = load_settings(config)
    broker = settings.broker()
    assert broker.username == "gw"
    assert broker.password == "s3cret"
    assert "s3cret" not in repr(broker)
    assert "s3cret" not in repr(load_settings(config, mqtt_password="other"))


def test_the_shipped_example_configuration_loads() -> None:
    from gateway.registry import load_registry

    example = Path(__file__).resolve().parents[2] / "deploy" / "riskwatch.example.yaml"
    settings = load_settings(example)
    assert settings.registry.is_file()
    assert load_registry(settings.registry).index.n_enterprises >= 1
    assert settings.locale == "zh"


def test_the_demo_registry_loads() -> None:
    from gateway.demo import demo_registry_path
    from gateway.registry import load_registry

    registry = load_registry(demo_registry_path())
    assert registry.index.n_enterprises == 3
