"""The one Settings object: defaults < config file < environment (SHOPWATCH_*) < CLI flags.

Built once by the CLI and passed down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shopwatch.errors import ConfigError

__all__ = [
    "DetectSettings",
    "DetectorOverride",
    "FeedConfig",
    "FileSource",
    "HttpIngestSettings",
    "IntelSettings",
    "RuntimeSettings",
    "Settings",
    "SourcesSettings",
    "StoreSettings",
    "SyslogSource",
    "WebSettings",
    "describe_errors",
    "load_settings",
    "mask_secrets",
    "parse_duration",
    "redact",
    "safe_url",
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

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        yield "url", safe_url(self.url) if self.url else None


class WebSettings(_Strict):
    """The analyst web UI and JSON API."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the API; a random one is generated at start when unset.",
    )
    allowed_hosts: list[str] = Field(
        default=[],
        description="Host names the UI may be reached by, besides localhost and the bound "
        "address (requests naming another host are refused: DNS rebinding).",
    )


class HttpIngestSettings(_Strict):
    """The NDJSON ingest endpoint (``POST /ingest``)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8081
    token: SecretStr | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Bytes of request bodies being read and checked at once; past it, 429.",
    )
    max_queued_events: int = 200_000
    max_events_per_request: int = Field(
        default=50_000,
        gt=0,
        description="Events in one request; more is a 413 (capped at max_queued_events).",
    )
    allowed_hosts: list[str] = Field(
        default=[],
        description="Host names ingest may be reached by, besides localhost and the bound address.",
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
    """Micro-batching, event time and keyed state bounds.

    Event time is data an attacker controls. Live, an event from a network listener
    (syslog, HTTP ingest) later than its arrival by more than ``max_future_skew_s``, or
    older than ``max_past_age_s``, is rejected and counted (tailed files are not: they are
    the shop's own servers' logs, often a backfill) (``shopwatch_pipeline_events_out_of_bounds_total``). Each source has its own
    watermark, which the newest ``watermark_outliers`` events of the source cannot move;
    the engine's is the lowest of its active sources' (live, a source is active until it
    has been silent for ``source_idle_s``). A detector's state is kept for the longer of
    ``state_max_age_s`` and the history its rule needs (its window), and a rule that needs
    more than ``state_max_window_s`` is refused at load. Detector state is held under
    ``state_max_bytes`` in total: past it the least recently seen keys are shed, counted.
    The hand-off queue between the sources and the pipeline holds at most
    ``queue_max_bytes`` characters of raw lines; past it sources wait (files) or are
    refused (ingest answers 429, syslog counts a drop). ``None`` switches a time bound off
    (the demo's simulator runs ahead of the clock). The whole process is held under
    ``memory_max_bytes`` of resident memory (:mod:`shopwatch.pipeline.memory`: input is
    held back near it, batches shrink, state is shed); ``None`` switches that off. The
    state and queue bounds must leave room in it for the process itself and one batch.
    Account profiles (:mod:`shopwatch.detect.profiles`, built only when a rule reads a
    ``shop.profile.*`` field) live ``profile_max_age_s`` after an account's last activity,
    call nothing new before an account is ``profile_settle_s`` old, count a value as new for
    ``profile_recent_s`` after it was first used, and keep ``profile_max_values`` values per
    account and attribute; they count towards ``state_max_bytes``.
    """

    batch_max_events: int = 50_000
    batch_max_latency_ms: int = 100
    allowed_lateness_s: float = 30.0
    state_max_keys: int = 200_000
    state_max_age_s: float = 3600.0
    state_max_window_s: float = Field(default=7 * 86400.0, gt=0)
    state_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    queue_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    memory_max_bytes: int | None = Field(default=2 * 1024**3, ge=256 * 1024**2)
    snapshot_interval_s: float = 30.0
    max_future_skew_s: float | None = Field(default=300.0, ge=0)
    max_past_age_s: float | None = Field(default=366 * 86400.0, gt=0)
    watermark_outliers: int = Field(default=8, ge=0, le=1000)
    source_idle_s: float = Field(default=300.0, gt=0)
    profile_max_age_s: float = Field(default=90 * 86400.0, gt=0)
    profile_settle_s: float = Field(default=7 * 86400.0, ge=0)
    profile_recent_s: float = Field(default=86400.0, gt=0)
    profile_max_values: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds_fit_ceiling(self) -> RuntimeSettings:
        ceiling = self.memory_max_bytes
        if ceiling is not None and self.state_max_bytes + self.queue_max_bytes > 0.6 * ceiling:
            mb = 2**20
            raise ValueError(
                f"runtime.state_max_bytes ({self.state_max_bytes // mb} MiB) + "
                f"runtime.queue_max_bytes ({self.queue_max_bytes // mb} MiB) must stay under "
                f"60% of runtime.memory_max_bytes ({ceiling // mb} MiB): the process and the "
                "batch being run need the rest; raise the ceiling or lower the bounds"
            )
        return self


class FixedExemption(_Strict):
    """One field of one endpoint that signatures do not read (see detect.exemptions)."""

    endpoint: str = Field(
        description="The endpoint template: the path with ids as {n} and {id}, "
        "e.g. /api/reviews or /api/orders/{n}/notes.",
        pattern=r"^/",
    )
    field: str = Field(
        description="query:<name>, body:<name> (a form field, or the JSON key holding "
        "the string) or path.",
        pattern=r"^(path|query:.+|body:.+)$",
    )
    rules: list[str] | None = Field(
        default=None,
        description="The rule ids (or Sigma UUIDs as sigma.<uuid>) it applies to; "
        "every web signature when unset.",
    )


class ExemptionSettings(_Strict):
    """Per-field exemptions of web signatures (the ``detect.exemptions:`` section)."""

    enabled: bool = Field(default=True, description="Apply exemptions at all.")
    learn: bool = Field(
        default=True,
        description="Learn exemptions from answered requests; false keeps only `fixed`.",
    )
    min_sources: int = Field(
        default=10,
        ge=2,
        description="Client networks (IPv4 /24, IPv6 /48) whose answered requests matched "
        "a rule in one field of one endpoint before that field is exempt from it.",
    )
    max_hits_per_source: int = Field(
        default=3,
        ge=1,
        description="A network that matched there more often is probing and does not count.",
    )
    forget_after_days: float = Field(
        default=30.0, gt=0, description="What was not seen for this long is forgotten."
    )
    fixed: list[FixedExemption] = Field(default=[], description="Exemptions you write.")
    never: list[FixedExemption] = Field(
        default=[],
        description="Exemptions never applied, learned or not (revoke a learned one here).",
    )
    learn_rules: list[str] | None = Field(
        default=[
            "web.sqli_probe",
            "web.xss_probe",
            "web.injection_tokenizer",
            "sigma.5513deaf_f49a_46c2_a6c8_3f111b5cb453",  # SQL Injection Strings In URI
            "sigma.65354b83_a2ea_4ea6_8414_3ab38be0d409",  # Cross Site Scripting Strings
        ],
        description="The rules that learn exemptions (ids or Sigma UUIDs): those that fire "
        "on prose (SQL and HTML look-alikes). A probe for one flaw (a CVE path, Log4Shell, an "
        "open proxy) is answered by many servers and learns nothing; null lets every "
        "web-attack rule learn.",
    )


class ProbeSeriesSettings(_Strict):
    """One growing alert per probing address (the ``detect.probe_series:`` section)."""

    enabled: bool = Field(
        default=True,
        description="Fold the repeats of a source's web-attack (and, apart, scanner) "
        "signature alerts into one series; what brings news is raised (pipeline.series).",
    )
    within_minutes: float = Field(
        default=30.0, gt=0, description="A series ends after this long without an alert."
    )
    remind_minutes: float = Field(
        default=60.0,
        gt=0,
        description="A series that raised nothing this long raises its next alert anyway.",
    )
    at_most_hours: float = Field(
        default=24.0, gt=0, description="A series older than this ends; the next alert starts one."
    )


class DetectSettings(_Strict):
    """How access logs are read before detection (the ``detect:`` section)."""

    exemptions: ExemptionSettings = ExemptionSettings()
    probe_series: ProbeSeriesSettings = ProbeSeriesSettings()

    login_platforms: list[str] | None = Field(
        default=None,
        description="Shop platforms whose login endpoints are read from access logs "
        "(content/platforms, by id, e.g. [magento, api]); all known when unset, none when [].",
    )
    platforms_dirs: list[Path] = Field(
        default=[], description="Folders of your own platform files (overlay ours by id)."
    )
    sigma_rules: bool = Field(
        default=True,
        description="Load the SigmaHQ rules shipped with shopwatch (content/rules/sigma); "
        "your own Sigma rules in rules_dirs load either way.",
    )
    vendor_inventory: Path | None = Field(
        default=None,
        description="The shop's vendor inventory (YAML: each third party's domains and the "
        "personal data it may receive; docs/vendors.md). Unset: no vendor may receive "
        "personal data, and new vendors are learned from the traffic.",
    )


class DetectorOverride(_Strict):
    """Enable, disable or tune one detector by id (params overlay the rule's own)."""

    enabled: bool = True
    params: dict[str, Any] = {}

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        yield "enabled", self.enabled
        yield "params", mask_secrets(self.params)


# --------------------------------------------------------------------------------------
# Secrets: how they are shown (never in clear)

_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
_SECRET_NAME = re.compile(
    r"pass|secret|token|api[-_]?key|apikey|auth|credential|private[-_]?key|"
    r"license[-_]?key|access[-_]?key|signature|^sig$|^key$",
    re.IGNORECASE,
)
_MASK = "***"


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def safe_url(url: str) -> str:
    """``url`` fit to show or log: no user info, secret-looking query values masked.

    >>> safe_url("https://bob:pw@feeds.example:8443/x.csv?apikey=abc&day=1")
    'https://***@feeds.example:8443/x.csv?apikey=***&day=1'
    >>> safe_url("http://feeds.example/drop.txt")
    'http://feeds.example/drop.txt'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL we can take apart: mask anything like user:pass@
        return _USERINFO.sub(f"{_MASK}@", url)
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    if "@" in parts.netloc:
        netloc = f"{_MASK}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_query(parts.query), ""))


def _mask_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret_name(k) for k, _ in pairs):
        return query
    return urlencode([(k, _MASK if _is_secret_name(k) else v) for k, v in pairs], safe="*")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every one of ``secrets`` and any URL user info replaced by ``***``.

    For messages that may echo a URL or a header (exception texts, server answers).

    >>> redact("GET http://u:pw@h/x failed: token tok123 refused", ["tok123"])
    'GET http://***@h/x failed: token *** refused'
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return _USERINFO.sub(f"{_MASK}@", text)


def mask_secrets(data: Any, *, key: str = "") -> Any:
    """A JSON-ready structure with secrets masked: values under secret-looking keys
    (``password``, ``token``, ``api_key``, ...) and user info or secret query values of URLs.

    The last line of defence for untyped parts (detector params, enricher options); typed
    secrets are :class:`~pydantic.SecretStr` and dump as ``**********`` before this runs.

    >>> mask_secrets({"params": {"api_key": "k1", "n": 3}, "url": "http://a:b@h/"})
    {'params': {'api_key': '***', 'n': 3}, 'url': 'http://***@h/'}
    """
    if isinstance(data, dict):
        return {k: mask_secrets(v, key=str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v, key=key) for v in data]
    if isinstance(data, str):
        if key and _is_secret_name(key) and data and set(data) != {"*"}:
            return _MASK
        if "://" in data:
            return safe_url(data) if data.strip() == data and " " not in data else redact(data)
    return data


# --------------------------------------------------------------------------------------
# Threat-intel feeds (the ``intel:`` section)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FEED_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

FeedFormat = Literal[
    "plain",
    "ipset",
    "netset",
    "spamhaus",
    "abusech_csv",
    "tor_exit_addresses",
    "stix2",
    "misp",
    "taxii",
]


def parse_duration(text: str) -> timedelta:
    """``"12h"`` → 12 hours; a duration carries its unit (ValueError otherwise).

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    """
    found = _DURATION.match(str(text))
    if not found:
        raise ValueError(f"duration {text!r} is not of the form <number><ms|s|m|h|d>, e.g. '12h'")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


class FeedConfig(BaseModel):
    """One feed: where it is, its format, and how much to trust it.

    Exactly one of ``url`` (http or https) and ``path`` (a file; for ``misp`` also a
    folder holding ``manifest.json``). Durations carry a unit (``30d``, ``12h``, ``10s``).
    ``ttl``: how long an indicator stays valid after the feed last saw it (or, when the
    feed gives no date, after the feed was last fetched or confirmed unchanged); null
    means never. ``type`` says what listed entities are (``botnet_c2``, ``anonymizer``,
    ``spam``, ...) and is shown with matches.

    Credentials (``username``/``password``, ``token``, ``headers``) are sent only to the
    URL's origin (scheme, host and port). ``user:password@`` in the URL is moved into
    ``username``/``password`` when the config is read, so the URL itself never holds a
    secret. ``allow_private`` lets the configured origin be a private, loopback or
    link-local address (an internal mirror); other origins a feed leads to never may,
    unless ``intel.allow_private_networks`` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_FEED_NAME)
    url: str | None = None
    path: Path | None = None
    format: FeedFormat
    confidence: int = Field(default=50, ge=0, le=100)
    type: str = "malicious"
    ttl: str | None = "30d"
    refresh: str = "1h"
    timeout: str = "10s"
    enabled: bool = True
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    collection: str | None = Field(default=None, description="TAXII collection id or title.")
    username: SecretStr | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="Bearer token for the URL.")
    headers: dict[str, SecretStr] = Field(
        default={}, description="Extra request headers (e.g. an API key), sent to the origin only."
    )
    ids_only: bool = Field(default=True, description="MISP: only attributes flagged to_ids.")
    allow_private: bool = Field(
        default=False,
        description="The configured origin may be a private, loopback or link-local address.",
    )

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        url = data["url"]
        try:
            parts = urlsplit(url)
            user, password = parts.username, parts.password
            host, port = parts.hostname or "", parts.port
        except ValueError as err:
            raise ValueError(f"feed url is not a URL: {redact(str(err))}") from err
        if "@" not in parts.netloc:
            return data
        if data.get("username") is not None or data.get("password") is not None:
            raise ValueError(
                "feed gives credentials both in its url and in username/password; keep one"
            )
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{port}" if port else host
        moved = {**data, "url": urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))}
        moved["username"] = unquote(user or "")
        if password is not None:
            moved["password"] = unquote(password)
        return moved

    @field_validator("ttl", "refresh", "timeout")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FeedConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError(f"feed {self.name!r} needs exactly one of url and path")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"feed {self.name!r}: url must be http or https with a host, "
                    f"not {safe_url(self.url)!r}"
                )
        if self.format == "taxii" and self.url is None:
            raise ValueError(f"feed {self.name!r}: format taxii needs a url")
        return self

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (safe_url(value) if name == "url" and value else value)

    @property
    def ttl_delta(self) -> timedelta | None:
        """``ttl`` as a timedelta (None: never expires)."""
        return parse_duration(self.ttl) if self.ttl else None

    @property
    def source(self) -> str:
        """Where the feed comes from, safe to show (no credentials)."""
        return str(self.path) if self.url is None else safe_url(self.url)

    @property
    def has_credentials(self) -> bool:
        """Whether requests of this feed carry anything secret."""
        return bool(self.username or self.password or self.token or self.headers)

    def credential_headers(self) -> dict[str, str]:
        """The headers that carry this feed's credentials (for its origin only)."""
        out = {k: v.get_secret_value() for k, v in self.headers.items()}
        if self.token is not None:
            out["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        elif self.username is not None or self.password is not None:
            pair = f"{self._user()}:{self._password()}".encode()
            out["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return out

    def secret_values(self) -> list[str]:
        """Every secret this feed holds, as it could appear in a message (for :func:`redact`)."""
        out = [v.get_secret_value() for v in self.headers.values()]
        for secret in (self.token, self.password):
            if secret is not None:
                out.append(secret.get_secret_value())
        out.extend(v for v in self.credential_headers().values())
        out.extend(v.split(" ", 1)[1] for v in self.credential_headers().values() if " " in v)
        if self.password is not None:
            out.append(quote(self._password(), safe=""))
        if len(self._user()) >= 4:  # a short user name would blank out ordinary words
            out.append(self._user())
        if self.url is not None:
            out.extend(
                v for k, v in parse_qsl(urlsplit(self.url).query) if _is_secret_name(k) and v
            )
        return [v for v in out if v]

    def _user(self) -> str:
        return self.username.get_secret_value() if self.username is not None else ""

    def _password(self) -> str:
        return self.password.get_secret_value() if self.password is not None else ""


class IntelSettings(_Strict):
    """The ``intel:`` section of the settings."""

    enabled: bool = True
    builtin: bool = Field(default=True, description="Load the feed list shipped with shopwatch.")
    feeds_file: Path | None = Field(default=None, description="A YAML list of feeds.")
    feeds: list[FeedConfig] = []
    match_private: bool = Field(
        default=False, description="Match private and other non-global addresses too."
    )
    state_dir: Path | None = Field(
        default=None, description="Feed cache and status; data_dir/intel by default."
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Let every feed reach private, loopback and link-local addresses "
        "(redirects and linked documents included); off, only a feed's own origin may, "
        "with allow_private.",
    )


#: The sections of ``enrich:`` (each enricher validates its own options when built).
ENRICHERS = ("geo", "user_agent", "crawler_dns", "intel", "yara")


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
    detect: DetectSettings = DetectSettings()
    rules_dirs: list[Path] = []
    intel: IntelSettings = IntelSettings()
    enrich: dict[str, dict[str, Any]] = Field(
        default={}, description="Options per enricher (each enricher checks its own)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """A zone name the parsers can use (a typo would fail every zone-less line)."""
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
            ) from err
        return value

    @field_validator("enrich")
    @classmethod
    def _known_enrichers(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(ENRICHERS))
        if unknown:
            raise ValueError(f"unknown enrich sections {unknown}; known: {', '.join(ENRICHERS)}")
        return value

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

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (mask_secrets(value) if name == "enrich" else value)

    def masked(self) -> dict[str, Any]:
        """A JSON-ready dump with secrets masked (``config show``).

        Typed secrets dump as ``**********``; the store URL's password, URL user info,
        secret query values and values under secret-looking keys become ``***``.
        """
        data = self.model_dump(mode="json")
        for feed in data["intel"]["feeds"]:
            if feed.get("username") is not None:
                feed["username"] = _MASK
        masked: dict[str, Any] = mask_secrets(data)
        if self.store.url:  # the database user stays visible, its password does not
            from shopwatch.store import mask_url

            shown, _, query = mask_url(self.store.url).partition("?")
            masked["store"]["url"] = f"{shown}?{_mask_query(query)}" if query else shown
        return masked


def describe_errors(err: ValidationError) -> str:
    """One line per problem, ``where: what``, without echoing the value (it may be a secret).

    >>> try:
    ...     FeedConfig.model_validate({"name": "x", "path": "f", "format": "plain", "pasword": "pw"})
    ... except ValidationError as err:
    ...     print(describe_errors(err))
      pasword: Extra inputs are not permitted
    """
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc']) or '<top>'}: {redact(e['msg'])}"
        for e in err.errors(include_input=False, include_url=False)
    )


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
        raise ConfigError(f"invalid settings{where}:\n{describe_errors(err)}") from err
