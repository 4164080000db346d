"""User agent parsing: browser, OS, device, claimed bot or tool, headless browsers.

``ua-parser`` (with its shipped ``ua-parser-builtins`` rules and the ``ua-parser-rs``
native matcher) names the browser, OS and device. The bots, tools, scanners and headless
browsers a user agent *claims* are data: ``content/useragents/bots.yaml``, matched in
order. A claim is only a claim: ``enrich.dns`` verifies search-engine crawlers.

Each batch is parsed on its unique user agents only (a busy access log holds a few
hundred per 50k lines), through a bounded per-string cache shared across batches, and
joined back.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopwatch.errors import ConfigError, ContentError

__all__ = [
    "BotPattern",
    "BotPatterns",
    "UserAgentEnricher",
    "load_bot_patterns",
    "parse_user_agent",
]

log = structlog.get_logger(__name__)

#: Columns this stage fills, with their contract dtypes.
_OUTPUTS: dict[str, pl.DataType] = {
    "user_agent.name": pl.String(),
    "user_agent.os.name": pl.String(),
    "user_agent.device.name": pl.String(),
    "user_agent.bot.name": pl.String(),
    "user_agent.headless": pl.Boolean(),
}
_SOURCE = "user_agent.original"
_CACHE_SIZE = 100_000
_UNKNOWN = frozenset({"Other", ""})

Kind = Literal[
    "search_engine",
    "crawler",
    "ai_crawler",
    "seo",
    "social",
    "monitor",
    "tool",
    "scanner",
    "headless",
]


class BotPattern(BaseModel):
    """One entry of ``bots.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: Kind
    match: str = Field(min_length=1)
    headless: bool = False
    verify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BotPatterns:
    """The ordered bot patterns, compiled for Python (one string) and Polars (many)."""

    entries: tuple[BotPattern, ...]
    compiled: tuple[re.Pattern[str], ...]
    where: str

    def claim(self, ua: str) -> BotPattern | None:
        """The first entry whose pattern matches ``ua``, else None (one string, ~100 µs)."""
        for entry, pattern in zip(self.entries, self.compiled, strict=True):
            if pattern.search(ua):
                return entry
        return None

    def claim_many(self, uas: pl.Series) -> pl.Series:
        """Index into ``entries`` of the first matching entry per string (null for none).

        Vectorized: every pattern runs as a Polars (Rust regex) expression over ``uas``.
        """
        if not self.entries or uas.len() == 0:
            return pl.Series("claim", [None] * uas.len(), dtype=pl.UInt32)
        col = pl.col("ua")
        hits = (
            uas.cast(pl.String)
            .to_frame("ua")
            .select(
                col.str.contains(_polars_regex(e.match)).fill_null(False).alias(str(i))
                for i, e in enumerate(self.entries)
            )
            .to_numpy()
        )
        first = hits.argmax(axis=1).astype(np.uint32)
        return pl.Series("claim", first, dtype=pl.UInt32).set(
            pl.Series(~hits.any(axis=1)),
            None,
        )

    def verifiable(self) -> dict[str, tuple[str, ...]]:
        """Bot name -> the PTR domains that verify it (search engines only)."""
        return {e.name: e.verify for e in self.entries if e.verify}


def _polars_regex(pattern: str) -> str:
    return f"(?i){pattern}"


def _default_path() -> Path:
    return Path(str(resources.files("shopwatch") / "content" / "useragents" / "bots.yaml"))


def _read_entries(where: str) -> list[tuple[BotPattern, re.Pattern[str]]]:
    """Validated, compiled entries of one pattern file."""
    try:
        raw = yaml.safe_load(Path(where).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ContentError(f"cannot read bot patterns: {err}", where=where) from err
    if not isinstance(raw, list):
        raise ContentError("must hold a list of bot entries", where=where)
    out: list[tuple[BotPattern, re.Pattern[str]]] = []
    for number, item in enumerate(raw, start=1):
        try:
            entry = BotPattern.model_validate(item)
            out.append((entry, re.compile(entry.match, re.IGNORECASE)))
            pl.Series([""]).str.contains(_polars_regex(entry.match))
        except pl.exceptions.ComputeError as err:  # valid for Python, not for Rust regex
            raise ContentError(
                f"entry {number} ({entry.name!r}) uses a regex feature Polars lacks "
                f"(look-around, back-reference): {err}",
                where=where,
            ) from err
        except ValidationError as err:
            raise ContentError(f"entry {number} is invalid: {err}", where=where) from err
        except re.error as err:
            raise ContentError(
                f"entry {number} ({item.get('name')!r}) has a bad regex: {err}", where=where
            ) from err
    names = [entry.name for entry, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ContentError(f"bot names listed twice: {twice}", where=where)
    return out


@functools.cache
def load_bot_patterns(overlay: Path | None = None) -> BotPatterns:
    """The shipped bot patterns, compiled, with a user's ``overlay`` file first.

    Overlay entries are tried before the shipped ones and replace shipped entries of the
    same name. Raises :class:`ContentError` naming the file and entry on a bad key or regex.
    """
    shipped = str(_default_path())
    pairs = _read_entries(shipped)
    where = shipped
    if overlay is not None:
        own = _read_entries(str(overlay))
        mine = {entry.name for entry, _ in own}
        pairs = own + [(e, c) for e, c in pairs if e.name not in mine]
        where = f"{overlay} + {shipped}"
    return BotPatterns(tuple(e for e, _ in pairs), tuple(c for _, c in pairs), where)


UAFields = tuple[str | None, str | None, str | None, str | None, bool]


def parse_user_agent(
    ua: str, patterns: BotPatterns | None = None, claim: BotPattern | bool | None = True
) -> UAFields:
    """``(name, os, device, bot, headless)`` of one user agent string (uncached).

    ``claim`` is the entry of ``patterns`` already found to match (None for none); the
    default True matches the patterns here.

    >>> parse_user_agent("curl/8.4.0")
    ('curl', None, None, 'curl', False)
    """
    import ua_parser

    if claim is True:
        claim = (patterns or load_bot_patterns()).claim(ua)
    result = ua_parser.parse(ua)
    name = _known(result.user_agent.family if result.user_agent else None)
    os_name = _known(result.os.family if result.os else None)
    device = _known(result.device.family if result.device else None)
    if isinstance(claim, BotPattern):
        return name, os_name, device, claim.name, claim.headless
    return name, os_name, device, name if device == "Spider" else None, False


def _known(value: str | None) -> str | None:
    return None if value is None or value in _UNKNOWN else value


class UserAgentEnricher:
    """Fills browser, OS, device, claimed bot and headless flag from ``user_agent.original``.

    Values a producer already gave are kept (only nulls are filled). A null user agent
    leaves every field null; a non-null one always gets ``user_agent.headless`` True or
    False. ``cache_size`` bounds the per-string cache kept across batches.
    """

    name = "user_agent"
    provides = frozenset(_OUTPUTS)

    def __init__(self, patterns_path: Path | None = None, cache_size: int = _CACHE_SIZE) -> None:
        """``patterns_path``: an overlay pattern file of the user's (see ``load_bot_patterns``)."""
        if cache_size < 1:
            raise ConfigError(f"enrich.user_agent.cache_size must be >= 1, not {cache_size}")
        self.patterns = load_bot_patterns(patterns_path)
        self.cache_size = cache_size
        self._cache: dict[str, UAFields] = {}
        self.parsed = 0  # strings parsed since start (cache misses)

    @classmethod
    def from_settings(cls, settings: Any) -> UserAgentEnricher:
        """Build from ``settings.enrich["user_agent"]`` (keys ``patterns``, ``cache_size``)."""
        options = dict((getattr(settings, "enrich", None) or {}).get("user_agent") or {})
        path = options.pop("patterns", None)
        size = int(options.pop("cache_size", _CACHE_SIZE))
        if options:
            raise ConfigError(
                f"enrich.user_agent has unknown keys {sorted(options)}; "
                "known: ['cache_size', 'patterns']"
            )
        return cls(patterns_path=Path(path) if path else None, cache_size=size)

    def parse_many(self, uas: Sequence[str]) -> pl.DataFrame:
        """The five fields for each string of ``uas`` (unique strings; cached per string).

        Cache misses have their bot patterns matched at once (vectorized) and are parsed
        by ua-parser one by one; the cache is emptied when it reaches ``cache_size``.
        """
        cache = self._cache
        missing = [ua for ua in uas if ua not in cache]
        if missing:
            claims = self.patterns.claim_many(pl.Series(missing, dtype=pl.String)).to_list()
            entries = self.patterns.entries
            fresh = {
                ua: parse_user_agent(ua, self.patterns, None if c is None else entries[c])
                for ua, c in zip(missing, claims, strict=True)
            }
            rows = [fresh[ua] if ua in fresh else cache[ua] for ua in uas]
            if len(cache) + len(fresh) > self.cache_size:
                cache.clear()
            cache.update(fresh)
            self.parsed += len(fresh)
        else:
            rows = [cache[ua] for ua in uas]
        columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 5
        return pl.DataFrame(
            {name: list(values) for name, values in zip(_OUTPUTS, columns, strict=True)},
            schema=_OUTPUTS,
        )

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with the user agent columns filled; rows and order unchanged."""
        batch = _ensure(batch)
        if _SOURCE not in batch.columns or batch.height == 0:
            return batch
        started = time.perf_counter()
        original = batch.get_column(_SOURCE).cast(pl.String, strict=False)
        unique = original.drop_nulls().unique()
        if unique.len() == 0:
            return batch
        parsed_before = self.parsed
        parsed = self.parse_many(unique.to_list())
        keys = parsed.rename({n: f"_{n}" for n in _OUTPUTS}).with_columns(unique.alias("_ua"))
        out = (
            batch.with_columns(original.alias("_ua"))
            .join(keys, on="_ua", how="left", maintain_order="left")
            .with_columns(pl.coalesce(pl.col(n), pl.col(f"_{n}")).alias(n) for n in _OUTPUTS)
            .drop("_ua", *(f"_{n}" for n in _OUTPUTS))
        )
        log.debug(
            "user_agents_parsed",
            rows=batch.height,
            unique=unique.len(),
            parsed=self.parsed - parsed_before,
            seconds=round(time.perf_counter() - started, 4),
        )
        return out


def _ensure(batch: pl.DataFrame) -> pl.DataFrame:
    """Add missing output columns as typed nulls; cast present ones to their dtype."""
    exprs = []
    for name, dtype in _OUTPUTS.items():
        if name not in batch.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif batch.schema[name] != dtype:
            exprs.append(pl.col(name).cast(dtype, strict=False))
    return batch.with_columns(exprs) if exprs else batch
