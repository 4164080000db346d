"""Loading threat-intel feeds from files and URLs, and refreshing them in the background.

Configuration (``intel:`` in the settings, schema :class:`IntelSettings`)::

    intel:
      builtin: true                  # the feed list shipped in content/feeds/feeds.yaml
      feeds_file: /etc/shopwatch/feeds.yaml   # a YAML list of feeds (FeedConfig)
      feeds:                         # and/or feeds given inline
        - name: spamhaus_drop
          url: https://www.spamhaus.org/drop/drop.txt
          format: spamhaus
          confidence: 80
          ttl: 2d
          refresh: 12h

A feed that cannot be read (missing file, unreachable URL, an error status, a response
slower than its ``timeout``, a body that is mostly not the format) never stops anything:
the feed keeps its previous content, the failure is logged, counted in
``shopwatch_enrich_feed_errors_total{feed,reason}`` and shown by ``shopwatch intel
status``. URLs are asked conditionally (``If-None-Match`` / ``If-Modified-Since``), so an
unchanged feed costs a 304 and nothing else; an unchanged file (same size and mtime) is
not read again. With a ``state_dir``, the last good body of each remote feed, its
validators and the status are kept on disk, so a restart starts from them offline.

A feed's credentials (``username``/``password``, ``token``, ``headers``) go to its
configured origin only, and remote feeds reach public addresses only: every request and
redirect hop passes :class:`~shopwatch.enrich.feeds.guard.GuardedTransport`. A MISP
manifest names events by uuid (other keys are rejects), and a link or redirect of a feed
with credentials to another origin is refused as a feed error ``cross_origin``; an
address in a private, loopback or link-local range is a feed error ``blocked_address``
unless ``allow_private`` (the feed's own origin) or ``intel.allow_private_networks``
allows it. Error messages are kept and logged with the feed's secrets masked.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import structlog
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from shopwatch.config import (
    FeedConfig,
    IntelSettings,
    describe_errors,
    parse_duration,
    redact,
)
from shopwatch.enrich.feeds import FeedContent, FeedFetchError, parse_feed
from shopwatch.enrich.feeds.guard import GuardedTransport, RequestRefused
from shopwatch.enrich.feeds.misp import manifest_events, parse_misp_event
from shopwatch.enrich.feeds.stix import stix_objects
from shopwatch.enrich.feeds.taxii import poll_collection
from shopwatch.enrich.intel import FeedSnapshot, IndicatorIndex
from shopwatch.errors import ConfigError, ContentError

__all__ = [
    "FeedConfig",
    "FeedManager",
    "FeedMetrics",
    "FeedStatus",
    "IntelSettings",
    "builtin_feeds_file",
    "load_feed_configs",
    "read_status",
]

log = structlog.get_logger(__name__)

_RETRY_AFTER_ERROR = timedelta(minutes=5)
_EXPIRY_CHECK = timedelta(minutes=1)


def builtin_feeds_file() -> Path:
    """The feed list shipped with the package."""
    return Path(str(resources.files("shopwatch") / "content" / "feeds" / "feeds.yaml"))


def load_feed_configs(path: Path) -> list[FeedConfig]:
    """Feeds of a YAML list file; relative ``path`` entries are resolved against its folder.

    Raises :class:`ContentError` naming the file (and the feed's position) when invalid.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ContentError("feed list does not exist", str(path)) from err
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        raise ContentError(f"not valid YAML: {err.problem}", f"{path}:{line}") from err
    if data is None:
        return []
    if isinstance(data, dict) and "feeds" in data:
        data = data["feeds"]
    if not isinstance(data, list):
        raise ContentError("a feed list is a YAML list of feeds", str(path))
    out: list[FeedConfig] = []
    for position, item in enumerate(data, start=1):
        try:
            feed = FeedConfig.model_validate(item)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<feed>'}: {e['msg']}"
                for e in err.errors()
            )
            raise ContentError(f"feed #{position} is invalid: {problems}", str(path)) from err
        if feed.path is not None and not feed.path.is_absolute():
            feed = feed.model_copy(update={"path": (path.parent / feed.path)})
        out.append(feed)
    return out


# --------------------------------------------------------------------------------------
# Metrics and status


class FeedMetrics:
    """The feeds' Prometheus metrics, in a registry of their own (``registry``).

    Labels: ``feed`` is a configured feed name; ``reason`` one of ``missing``,
    ``unreachable``, ``timeout``, ``http_status``, ``malformed``, ``too_large``,
    ``cross_origin`` (a link or redirect to another origin of a feed with credentials),
    ``blocked_address`` (a private, loopback or link-local address not allowed), ``internal``;
    ``result`` one of ``updated``, ``not_modified``, ``error``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.errors = Counter(
            "shopwatch_enrich_feed_errors",
            "Feed refreshes that failed, by reason.",
            ["feed", "reason"],
            registry=r,
        )
        self.refreshes = Counter(
            "shopwatch_enrich_feed_refreshes",
            "Feed refresh attempts, by result.",
            ["feed", "result"],
            registry=r,
        )
        self.rejected = Counter(
            "shopwatch_enrich_feed_rejected",
            "Feed lines or objects refused, by reason.",
            ["feed", "reason"],
            registry=r,
        )
        self.indicators = Gauge(
            "shopwatch_enrich_feed_indicators", "Live indicators per feed.", ["feed"], registry=r
        )
        self.expired = Gauge(
            "shopwatch_enrich_feed_expired",
            "Indicators past their expiry per feed.",
            ["feed"],
            registry=r,
        )


@dataclass(slots=True)
class FeedStatus:
    """What ``intel status`` shows for one feed (JSON-ready via :meth:`to_dict`)."""

    name: str
    format: str
    source: str
    type: str
    confidence: int
    enabled: bool = True
    entries: int = 0
    expired: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    last_refresh: datetime | None = None
    last_change: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_at: datetime | None = None
    errors: int = 0
    next_refresh: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The status as a JSON-ready mapping (datetimes in ISO 8601)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


def read_status(state_dir: Path) -> list[dict[str, Any]] | None:
    """The status a running loader last wrote into ``state_dir`` (None when there is none)."""
    path = state_dir / "status.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data.get("feeds") if isinstance(data, dict) else None


@dataclass(slots=True)
class _State:
    """Everything the loader remembers about one feed."""

    config: FeedConfig
    snapshot: FeedSnapshot | None = None
    etag: str | None = None
    last_modified: str | None = None
    file_key: tuple[int, int] | None = None
    taxii_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    taxii_added_last: str | None = None
    rejected: int = 0
    last_change: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_at: datetime | None = None
    errors: int = 0
    next_due: datetime | None = None


# --------------------------------------------------------------------------------------
# The loader


class FeedManager:
    """Keeps every configured feed loaded and the :class:`IndicatorIndex` built from them.

    :meth:`refresh` loads the feeds that are due (all on the first call) and rebuilds the
    index when a feed changed or an indicator expired; :meth:`start` does that in a daemon
    thread until :meth:`stop`. ``index`` is swapped whole, so readers need no lock.
    ``clock`` gives the wall-clock time (feeds expire in real time, not event time).
    With a ``state_dir``, cached bodies found there are the starting content; with
    ``persist`` too, fetched bodies, validators and the status are written there.
    """

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        *,
        state_dir: Path | None = None,
        persist: bool = True,
        match_private: bool = False,
        allow_private_networks: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: FeedMetrics | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        names = [f.name for f in feeds]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"intel feeds are named twice: {duplicates}; names must be unique")
        self.state_dir = state_dir
        self.persist = persist
        self.match_private = match_private
        self.allow_private_networks = allow_private_networks
        self.clock = clock
        self.metrics = metrics or FeedMetrics()
        self._transport = transport
        self._states = {f.name: _State(f) for f in feeds}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = IndicatorIndex.empty(clock())
        if state_dir is not None:
            self._load_cache()

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> FeedManager:
        """Build from ``settings.intel`` (:class:`IntelSettings`); ``data_dir`` holds the state.

        Raises :class:`ConfigError` for an invalid ``intel`` section or feed list.
        """
        raw = getattr(settings, "intel", None)
        if isinstance(raw, IntelSettings):
            intel = raw
        else:
            try:
                intel = IntelSettings.model_validate(raw or {})
            except ValidationError as err:
                raise ConfigError(f"invalid intel settings:\n{describe_errors(err)}") from err
        feeds: list[FeedConfig] = []
        try:
            if intel.builtin:
                feeds.extend(load_feed_configs(builtin_feeds_file()))
            if intel.feeds_file is not None:
                feeds.extend(load_feed_configs(intel.feeds_file))
        except ContentError as err:
            raise ConfigError(str(err)) from err
        feeds.extend(intel.feeds)
        if not intel.enabled:
            feeds = []
        by_name = {f.name: f for f in feeds}  # later lists overlay earlier ones by name
        data_dir = getattr(settings, "data_dir", None)
        state_dir = intel.state_dir or (Path(data_dir) / "intel" if data_dir is not None else None)
        return cls(
            list(by_name.values()),
            state_dir=state_dir,
            match_private=intel.match_private,
            allow_private_networks=intel.allow_private_networks,
            **kwargs,
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def index(self) -> IndicatorIndex:
        """The index in force (an empty one until the first refresh)."""
        return self._index

    @property
    def feeds(self) -> list[FeedConfig]:
        """The configured feeds, in order."""
        return [s.config for s in self._states.values()]

    def status(self) -> list[FeedStatus]:
        """One :class:`FeedStatus` per configured feed, in configuration order."""
        stats = self._index.stats
        out: list[FeedStatus] = []
        for name, st in self._states.items():
            cfg = st.config
            counted = stats.get(name)
            out.append(
                FeedStatus(
                    name=name,
                    format=cfg.format,
                    source=cfg.source,
                    type=cfg.type,
                    confidence=cfg.confidence,
                    enabled=cfg.enabled,
                    entries=counted.entries if counted else 0,
                    expired=counted.expired if counted else 0,
                    rejected=st.rejected,
                    by_type=dict(counted.by_type) if counted else {},
                    last_refresh=st.snapshot.fetched_at if st.snapshot else None,
                    last_change=st.last_change,
                    last_attempt=st.last_attempt,
                    last_error=st.last_error,
                    last_error_reason=st.last_error_reason,
                    last_error_at=st.last_error_at,
                    errors=st.errors,
                    next_refresh=st.next_due,
                )
            )
        return out

    # -- refreshing --------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> bool:
        """Refresh the feeds that are due (every feed when ``force``); True if the index changed.

        Never raises for a feed's failure: it is logged, counted and kept in the status.
        """
        with self._lock:
            now = self.clock()
            changed = False
            attempted = 0
            for st in self._states.values():
                if not st.config.enabled:
                    continue
                if not force and st.next_due is not None and now < st.next_due:
                    continue
                attempted += 1
                changed |= self._refresh_one(st, now)
            expiry = self._index.next_expiry
            if changed or (expiry is not None and now >= expiry):
                self._rebuild(now)
                changed = True
            if attempted:
                self._write_status()
            return changed

    def _rebuild(self, now: datetime) -> None:
        snapshots = [
            s.snapshot for s in self._states.values() if s.snapshot is not None and s.config.enabled
        ]
        started = time.perf_counter()
        index = IndicatorIndex.build(snapshots, now=now, match_private=self.match_private)
        self._index = index
        for name in self._states:
            counted = index.stats.get(name)
            self.metrics.indicators.labels(name).set(counted.entries if counted else 0)
            self.metrics.expired.labels(name).set(counted.expired if counted else 0)
        log.info(
            "intel_index_built",
            feeds=len(snapshots),
            indicators=index.size,
            expired=sum(s.expired for s in index.stats.values()),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _refresh_one(self, st: _State, now: datetime) -> bool:
        cfg = st.config
        st.last_attempt = now
        refresh = parse_duration(cfg.refresh)
        try:
            content = self._fetch(st)
        except (FeedFetchError, RequestRefused) as err:
            self._failed(st, now, err.reason, str(err))
            st.next_due = now + min(refresh, _RETRY_AFTER_ERROR)
            return False
        except Exception as err:  # a bug in one feed's reader must not stop the others
            trace = "".join(traceback.format_exception(err))
            log.error(
                "feed_refresh_crashed", feed=cfg.name, traceback=redact(trace, cfg.secret_values())
            )
            self._failed(st, now, "internal", f"{type(err).__name__}: {err}")
            st.next_due = now + min(refresh, _RETRY_AFTER_ERROR)
            return False
        st.next_due = now + refresh
        if content is None:  # unchanged: the content is confirmed as of now
            if st.snapshot is not None:
                st.snapshot = _replace_fetched(st.snapshot, now)
            self.metrics.refreshes.labels(cfg.name, "not_modified").inc()
            log.info("feed_unchanged", feed=cfg.name)
            self._clear_error(st)
            return st.snapshot is not None and cfg.ttl is not None
        for reject in content.rejects:
            self.metrics.rejected.labels(cfg.name, reject.reason).inc()
        if content.rejects and len(content.rejects) > len(content.indicators):
            self._failed(
                st,
                now,
                "malformed",
                f"{len(content.rejects)} of {len(content.rejects) + len(content.indicators)} entries are not "
                f"{cfg.format} (first at line {content.rejects[0].line_no}: {content.rejects[0].reason}); "
                "kept the previous content",
            )
            st.next_due = now + min(refresh, _RETRY_AFTER_ERROR)
            return False
        st.rejected = len(content.rejects)
        st.snapshot = FeedSnapshot(
            name=cfg.name,
            confidence=cfg.confidence,
            indicators=tuple(content.indicators),
            fetched_at=now,
            ttl=cfg.ttl_delta,
            type=cfg.type,
        )
        st.last_change = now
        self._clear_error(st)
        self.metrics.refreshes.labels(cfg.name, "updated").inc()
        log.info(
            "feed_loaded",
            feed=cfg.name,
            indicators=len(content.indicators),
            rejected=len(content.rejects),
        )
        return True

    def _failed(self, st: _State, now: datetime, reason: str, message: str) -> None:
        """Count and log a failed refresh; ``message`` may echo URLs or server answers,
        so it is kept and logged with every secret of the feed masked."""
        message = redact(message, st.config.secret_values())
        st.last_error, st.last_error_reason, st.last_error_at = message, reason, now
        st.errors += 1
        self.metrics.errors.labels(st.config.name, reason).inc()
        self.metrics.refreshes.labels(st.config.name, "error").inc()
        log.warning("feed_refresh_failed", feed=st.config.name, reason=reason, error=message)

    @staticmethod
    def _clear_error(st: _State) -> None:
        st.last_error = st.last_error_reason = None

    # -- fetching ----------------------------------------------------------------------------

    def _fetch(self, st: _State) -> FeedContent | None:
        """New content, or None when the source is unchanged since the last read."""
        cfg = st.config
        if cfg.path is not None:
            return self._fetch_path(st, cfg.path)
        assert cfg.url is not None
        with self._client(cfg) as client:
            if cfg.format == "taxii":
                return self._fetch_taxii(st, client, cfg.url)
            body = self._get(st, client, cfg.url, conditional=st.snapshot is not None)
            if body is None:
                return None
            text = _decode(body, cfg)
            if cfg.format == "misp" and _is_manifest(cfg.url, text):
                content = FeedContent()
                uuids = manifest_events(text, rejects=content)
                if not uuids:
                    raise FeedFetchError("malformed", f"MISP manifest {cfg.source} lists no events")
                for uuid in uuids:  # uuids only: a key cannot name another path or host
                    event = self._get(
                        st,
                        client,
                        urljoin(cfg.url, f"{uuid}.json"),
                        conditional=False,
                        validators=False,
                    )
                    content.extend(
                        parse_misp_event(_decode(event or b"", cfg), ids_only=cfg.ids_only)
                    )
            else:
                content = self._parse(cfg, text)
        self._save_cache(cfg.name, body, st)
        return content

    def _parse(self, cfg: FeedConfig, text: str) -> FeedContent:
        if cfg.format == "misp":
            return parse_misp_event(text, ids_only=cfg.ids_only)
        return parse_feed(cfg.format, text)

    def _fetch_path(self, st: _State, path: Path) -> FeedContent | None:
        cfg = st.config
        manifest = path / "manifest.json" if path.is_dir() else path
        try:
            info = manifest.stat()
        except OSError as err:
            raise FeedFetchError(
                "missing", f"feed file {manifest} cannot be read: {err.strerror}"
            ) from err
        key = (info.st_mtime_ns, info.st_size)
        if st.snapshot is not None and st.file_key == key:
            return None
        if info.st_size > cfg.max_bytes:
            raise FeedFetchError(
                "too_large", f"feed file {manifest} is larger than {cfg.max_bytes} bytes"
            )
        text = _decode(manifest.read_bytes(), cfg)
        if cfg.format == "misp" and manifest.name == "manifest.json":
            content = FeedContent()
            uuids = manifest_events(text, rejects=content)
            if not uuids:
                raise FeedFetchError("malformed", f"MISP manifest {manifest} lists no events")
            for uuid in uuids:
                event = manifest.parent / f"{uuid}.json"
                try:
                    content.extend(
                        parse_misp_event(_decode(event.read_bytes(), cfg), ids_only=cfg.ids_only)
                    )
                except OSError as err:
                    raise FeedFetchError(
                        "missing", f"MISP event {event} cannot be read: {err.strerror}"
                    ) from err
        else:
            content = self._parse(cfg, text)
        st.file_key = key
        return content

    def _fetch_taxii(self, st: _State, client: httpx.Client, url: str) -> FeedContent | None:
        cfg = st.config
        poll = poll_collection(
            client,
            url,
            collection=cfg.collection,
            added_after=st.taxii_added_last,
            time_limit_s=max(parse_duration(cfg.timeout).total_seconds() * 6, 30.0),
        )
        if not poll.objects and st.snapshot is not None:
            st.taxii_added_last = poll.added_last or st.taxii_added_last
            return None
        for obj in poll.objects:
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                previous = st.taxii_objects.get(obj["id"])
                if previous is None or str(obj.get("modified", "")) >= str(
                    previous.get("modified", "")
                ):
                    st.taxii_objects[obj["id"]] = obj
        st.taxii_added_last = poll.added_last or st.taxii_added_last
        bundle = {"type": "bundle", "objects": list(st.taxii_objects.values())}
        self._save_cache(cfg.name, json.dumps(bundle).encode(), st)
        return stix_objects(st.taxii_objects.values())

    def _client(self, cfg: FeedConfig) -> httpx.Client:
        """A client whose every request and redirect hop passes :class:`GuardedTransport`:
        credentials to the configured origin only, non-public addresses refused."""
        assert cfg.url is not None
        seconds = parse_duration(cfg.timeout).total_seconds()
        transport = GuardedTransport(
            cfg.url,
            credentials=cfg.credential_headers(),
            allow_private_origin=cfg.allow_private,
            allow_private=self.allow_private_networks,
            inner=self._transport,
        )
        return httpx.Client(
            timeout=httpx.Timeout(seconds),
            headers={"User-Agent": "shopwatch-intel/1"},
            follow_redirects=True,
            max_redirects=5,
            transport=transport,
            trust_env=False,
        )

    def _get(
        self,
        st: _State,
        client: httpx.Client,
        url: str,
        *,
        conditional: bool,
        validators: bool = True,
    ) -> bytes | None:
        """The body at ``url``, None on 304; the whole exchange must fit in the timeout."""
        cfg = st.config
        headers: dict[str, str] = {}
        if conditional and st.etag:
            headers["If-None-Match"] = st.etag
        if conditional and st.last_modified:
            headers["If-Modified-Since"] = st.last_modified
        deadline = time.monotonic() + parse_duration(cfg.timeout).total_seconds()
        chunks: list[bytes] = []
        size = 0
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return None
                if response.status_code != 200:
                    raise FeedFetchError(
                        "http_status", f"{cfg.source} answered HTTP {response.status_code}"
                    )
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cfg.max_bytes:
                        raise FeedFetchError(
                            "too_large", f"{cfg.source} sent more than {cfg.max_bytes} bytes"
                        )
                    if time.monotonic() > deadline:
                        raise FeedFetchError(
                            "timeout", f"{cfg.source} took longer than {cfg.timeout}"
                        )
                    chunks.append(chunk)
                if validators:
                    st.etag = response.headers.get("ETag")
                    st.last_modified = response.headers.get("Last-Modified")
        except httpx.TimeoutException as err:
            raise FeedFetchError(
                "timeout", f"{cfg.source} did not answer within {cfg.timeout}"
            ) from err
        except httpx.TransportError as err:
            raise FeedFetchError("unreachable", f"{cfg.source} is unreachable: {err}") from err
        return b"".join(chunks)

    # -- the state folder ------------------------------------------------------------------

    def _save_cache(self, name: str, body: bytes, st: _State) -> None:
        if self.state_dir is None or not self.persist:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.state_dir / f"{name}.feed", body)
            meta = {
                "etag": st.etag,
                "last_modified": st.last_modified,
                "fetched_at": self.clock().isoformat(),
                "taxii_added_last": st.taxii_added_last,
                "url": st.config.source,
            }
            _write_atomic(self.state_dir / f"{name}.meta.json", json.dumps(meta).encode())
        except OSError as err:
            log.warning("feed_cache_not_written", feed=name, error=str(err))

    def _load_cache(self) -> None:
        """Start remote feeds from their last good body on disk (offline after a restart)."""
        assert self.state_dir is not None
        loaded = False
        for name, st in self._states.items():
            cfg = st.config
            if cfg.url is None:
                continue
            try:
                meta = json.loads(
                    (self.state_dir / f"{name}.meta.json").read_text(encoding="utf-8")
                )
                body = (self.state_dir / f"{name}.feed").read_bytes()
            except (OSError, ValueError):
                continue
            if meta.get("url") != cfg.source:
                continue
            fetched = datetime.fromisoformat(meta["fetched_at"])
            text = _decode(body, cfg)
            if cfg.format == "taxii":
                content = stix_objects(json.loads(text).get("objects", []))
                st.taxii_objects = {
                    o["id"]: o
                    for o in json.loads(text).get("objects", [])
                    if isinstance(o, dict) and "id" in o
                }
                st.taxii_added_last = meta.get("taxii_added_last")
            elif cfg.format == "misp" and _is_manifest(cfg.url, text):
                continue  # events are not cached one by one; fetch again
            else:
                content = self._parse(cfg, text)
            st.etag, st.last_modified = meta.get("etag"), meta.get("last_modified")
            st.rejected = len(content.rejects)
            st.snapshot = FeedSnapshot(
                cfg.name,
                cfg.confidence,
                tuple(content.indicators),
                fetched,
                cfg.ttl_delta,
                cfg.type,
            )
            loaded = True
        if loaded:
            self._rebuild(self.clock())

    def _write_status(self) -> None:
        if self.state_dir is None or not self.persist:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            data = {
                "written_at": self.clock().isoformat(),
                "feeds": [s.to_dict() for s in self.status()],
            }
            _write_atomic(self.state_dir / "status.json", json.dumps(data, indent=2).encode())
        except OSError as err:
            log.warning("feed_status_not_written", error=str(err))

    # -- the background thread --------------------------------------------------------------

    def start(self) -> None:
        """Refresh feeds in a daemon thread until :meth:`stop` (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shopwatch-intel-feeds", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the refresh thread (a fetch in progress ends at its own timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _seconds_to_next(self) -> float:
        now = self.clock()
        due = [
            s.next_due for s in self._states.values() if s.config.enabled and s.next_due is not None
        ]
        if self._index.next_expiry is not None:
            due.append(self._index.next_expiry)
        wake = min(due, default=now + _EXPIRY_CHECK)
        return min(max((wake - now).total_seconds(), 0.05), _EXPIRY_CHECK.total_seconds())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the loop must outlive any surprise; each is logged
                log.exception("feed_refresh_loop_failed")
            self._stop.wait(self._seconds_to_next())


def _replace_fetched(snapshot: FeedSnapshot, when: datetime) -> FeedSnapshot:
    return FeedSnapshot(
        snapshot.name, snapshot.confidence, snapshot.indicators, when, snapshot.ttl, snapshot.type
    )


def _decode(body: bytes, cfg: FeedConfig) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _is_manifest(url: str, text: str) -> bool:
    return urlsplit(url).path.endswith("manifest.json") or '"Event"' not in text[:4096]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
