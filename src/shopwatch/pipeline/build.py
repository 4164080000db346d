"""Building an Engine from Settings: detectors from content and config, enrichers in order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from shopwatch.config import Settings
from shopwatch.detect.content import load_detectors
from shopwatch.enrich.base import Enricher
from shopwatch.errors import ConfigError
from shopwatch.pipeline.engine import AlertSink, Engine

__all__ = ["build_engine", "build_enrichers"]

log = structlog.get_logger("shopwatch.pipeline")


def build_enrichers(settings: Settings) -> list[Enricher]:
    """The enrichment chain configured in ``settings.enrich`` (empty when nothing is set)."""
    return []


def build_engine(
    settings: Settings,
    *,
    sinks: Iterable[AlertSink] = (),
    enrichers: Sequence[Enricher] | None = None,
    strict: bool = False,
) -> Engine:
    """An Engine with every enabled detector; content errors are logged (raised if ``strict``)."""
    loaded = load_detectors(settings.rules_dirs, settings.detectors)
    for problem in loaded.errors:
        log.warning("rule_skipped", problem=str(problem))
    if strict and loaded.errors:
        raise ConfigError("; ".join(str(e) for e in loaded.errors))
    if not loaded.detectors:
        raise ConfigError("no detector is enabled: check the rules folders and detectors: config")
    log.info("detectors_loaded", loaded=len(loaded.detectors), skipped=len(loaded.errors))
    chain = build_enrichers(settings) if enrichers is None else list(enrichers)
    return Engine(loaded.detectors, chain, runtime=settings.runtime, sinks=sinks)
