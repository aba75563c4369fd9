"""Service settings: one object built at start-up and passed down (no globals).

Precedence, highest first: command-line options, ``RISKWATCH_*`` environment variables,
the YAML file given with ``--config``, then the defaults below.  Secrets are
``SecretStr`` so they never print in logs or errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKWATCH_", extra="forbid")

    registry: Path = Field(description="Registry YAML (CONTRACT.md §2)")
    broker_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="mqtt://[user:password@]host:port of the broker to subscribe to",
    )
    mqtt_client_id: str = Field(default="riskwatch-gateway", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """``auto`` tries MQTT 5 and falls back to 3.1.1 for brokers that refuse it."""
    mqtt_session_expiry_s: int = Field(default=86_400, ge=0)
    """How long the broker keeps our subscription and queued QoS 1 messages while we
    are away (MQTT 5); with MQTT 3.1.1 the session persists until we return."""
    db_url: str = "sqlite+aiosqlite:///./riskwatch.sqlite3"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    routing: Path | None = Field(
        default=None,
        description="Routing YAML (docs/routing.md): who is told of which alert; "
                    "without it each enterprise's screen is told over MQTT only",
    )
    notify: bool = Field(default=True, description="Send notifications (the outbox "
                                                   "records them either way)")
    locale: Literal["zh", "en"] = "zh"
    api_anonymous_read: bool = Field(default=False, description=(
        "Let callers without a login read everything (never act): for the demo on "
        "loopback, never on a network"))
    api_secure_cookie: bool = Field(default=False, description=(
        "Mark the session cookie Secure: set it when a proxy serves the API over HTTPS"))
    session_ttl_s: float = Field(default=43_200.0, gt=0, description=(
        "How long a login lasts (a shift, by default 12 h)"))
    history_retention_days: float = Field(default=30.0, ge=0, description=(
        "Days of minute history (the dashboard's charts) kept in the database; older "
        "minutes are deleted hourly. 0 keeps everything"))
    sweep_interval_s: float = Field(default=5.0, gt=0, le=300)
    silence_k: float = Field(default=3.0, ge=1)
    max_future_s: float = Field(default=300.0, gt=0)
    max_batch_samples: int = Field(default=20_000, ge=1)

    @field_validator("broker_url")
    @classmethod
    def _mqtt_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError("broker_url must start with mqtt:// or mqtts://")
        return value

    def __repr_args__(self) -> Any:
        # URLs may carry credentials (mqtt://user:pw@..., postgresql://user:pw@...).
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("broker_url", "db_url") else value

    def broker(self) -> BrokerAddress:
        address = BrokerAddress.from_url(self.broker_url)
        if self.mqtt_username:
            address.username = self.mqtt_username
        if self.mqtt_password:
            address.password = self.mqtt_password.get_secret_value()
        return address


class BrokerAddress:
    """Where and how to connect; ``password`` is only held, never rendered."""

    def __init__(self, host: str, port: int, tls: bool, username: str | None,
                 password: str | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """``mqtt[s]://[user[:password]@]host[:port]``; ``ValueError`` names what is wrong.

        >>> BrokerAddress.from_url("mqtts://ops:s3cret@broker.example")
        BrokerAddress(mqtts://ops:***@broker.example:8883)
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"broker URL must start with mqtt:// or mqtts://, not {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"broker URL has a bad port: {redact_url(url)!r}") from None
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __repr__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"BrokerAddress({scheme}://{user}{self.host}:{self.port})"


def redact_url(url: object) -> object:
    """``scheme://user:***@host...`` for logs and reprs; other values unchanged."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from a YAML file, the environment and explicit overrides.

    ``None`` overrides are ignored so CLI options left unset fall through.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"{config_file}: configuration file not found")
    # Relative paths written in the file are relative to the file, not to the cwd.

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
            return tuple(sources)

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = _Layered(**given)
    except ValidationError as exc:
        where = str(config_file) if config_file else "settings"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
    if config_file is not None:
        for key in ("registry", "routing"):
            path = getattr(settings, key)
            from_file = key not in given and f"RISKWATCH_{key.upper()}" not in os.environ
            if from_file and path is not None and not path.is_absolute():
                setattr(settings, key, (config_file.parent / path).resolve())
    return settings
