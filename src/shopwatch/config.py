"""The one Settings object: defaults < config file < environment (SHOPWATCH_*) < CLI flags.

Built once by the CLI and passed down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shopwatch.errors import ConfigError

__all__ = [
    "DetectorOverride",
    "FileSource",
    "HttpIngestSettings",
    "RuntimeSettings",
    "Settings",
    "SourcesSettings",
    "StoreSettings",
    "SyslogSource",
    "WebSettings",
    "load_settings",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Strict):
    """Where alerts, incidents, decisions and feedback live."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite file in data_dir when unset "
        "(e.g. postgresql+psycopg://user@127.0.0.1:5432/shopwatch).",
    )


class WebSettings(_Strict):
    """The analyst web UI and JSON API."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the API; a random one is generated at start when unset.",
    )


class HttpIngestSettings(_Strict):
    """The NDJSON ingest endpoint (``POST /ingest``)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8081
    token: SecretStr | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_queued_events: int = 200_000
    max_events_per_request: int = Field(
        default=50_000,
        gt=0,
        description="Events in one request; more is a 413 (capped at max_queued_events).",
    )


class FileSource(_Strict):
    """One file (or glob) to tail."""

    path: str
    format: str = "auto"
    from_beginning: bool = True


class SyslogSource(_Strict):
    """A syslog listener (RFC 3164 and RFC 5424)."""

    host: str = "127.0.0.1"
    port: int = 5514
    protocols: list[Literal["udp", "tcp"]] = ["udp", "tcp"]
    max_message_bytes: int = Field(default=64 * 1024, gt=0)
    max_connections: int = Field(
        default=256, gt=0, description="TCP connections at once, all senders together."
    )
    max_connections_per_ip: int = Field(
        default=64, gt=0, description="TCP connections at once from one sender address."
    )
    idle_timeout_s: float = Field(
        default=60.0, gt=0, description="A TCP connection silent this long is closed."
    )
    min_idle_to_evict_s: float = Field(
        default=1.0,
        ge=0,
        description="At a connection limit, the longest-silent connection is closed for the "
        "newcomer once it has been silent this long; otherwise the newcomer is refused.",
    )


class SourcesSettings(_Strict):
    """Live sources for ``shopwatch run``."""

    files: list[FileSource] = []
    syslog: SyslogSource | None = None
    http: HttpIngestSettings = HttpIngestSettings()


class RuntimeSettings(_Strict):
    """Micro-batching, event time and keyed state bounds."""

    batch_max_events: int = 50_000
    batch_max_latency_ms: int = 100
    allowed_lateness_s: float = 30.0
    state_max_keys: int = 200_000
    state_max_age_s: float = 3600.0
    snapshot_interval_s: float = 30.0


class DetectorOverride(_Strict):
    """Enable, disable or tune one detector by id (params overlay the rule's own)."""

    enabled: bool = True
    params: dict[str, Any] = {}


class Settings(BaseSettings):
    """Everything configurable. See ``shopwatch config show``."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    data_dir: Path = Path("data")
    datasets_dir: Path | None = None
    timezone: str = "UTC"
    year: int | None = None
    store: StoreSettings = StoreSettings()
    web: WebSettings = WebSettings()
    sources: SourcesSettings = SourcesSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    detectors: dict[str, DetectorOverride] = {}
    rules_dirs: list[Path] = []
    intel: dict[str, Any] = {}
    enrich: dict[str, Any] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL in force (SQLite in data_dir by default)."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.data_dir / 'shopwatch.db').resolve()}"

    def masked(self) -> dict[str, Any]:
        """A JSON-ready dump with secrets masked (``config show``)."""
        data = self.model_dump(mode="json")
        if self.store.url:
            from shopwatch.store import mask_url

            data["store"]["url"] = mask_url(self.store.url)
        return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from an optional YAML file, the environment and ``overrides``."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(f"config file {config_file} does not exist") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {config_file} is not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping at the top")
        data.update(loaded or {})
    try:
        settings = Settings(**data)
        flags = {key: value for key, value in overrides.items() if value is not None}
        if not flags:
            return settings
        for key, value in flags.items():  # CLI flags beat the environment (validated setattr)
            setattr(settings, key, value)
        return settings
    except ValidationError as err:
        where = f" in {config_file}" if config_file else ""
        raise ConfigError(f"invalid settings{where}:\n{err}") from err
