"""Building an Engine from Settings: detectors from content and config, enrichers in order,
the login reading of the configured shop platforms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from types import SimpleNamespace

import structlog

from shopwatch.config import Settings
from shopwatch.detect.content import load_detectors
from shopwatch.detect.exemptions import Exemption, ExemptionRules
from shopwatch.detect.registry import Detector
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.logins import LoginReader
from shopwatch.enrich.platforms import load_platforms, select_platforms
from shopwatch.errors import ConfigError
from shopwatch.pipeline.engine import AlertSink, Engine
from shopwatch.pipeline.series import SeriesRules

__all__ = ["build_engine", "build_enrichers", "build_login_reader"]

log = structlog.get_logger("shopwatch.pipeline")


def _options(settings: Settings, name: str, *, default_on: bool) -> SimpleNamespace | None:
    """``settings.enrich[name]`` without its ``enabled`` switch, or None when switched off."""
    options = dict(settings.enrich.get(name) or {})
    if not options.pop("enabled", default_on):
        return None
    return SimpleNamespace(enrich={name: options})


def build_enrichers(settings: Settings, *, live: bool = False) -> list[Enricher]:
    """The enrichment chain: geo/ASN, user agent, crawler DNS, threat intel, YARA.

    Every enricher can be switched off with ``enrich: {<name>: {enabled: false}}``. The DNS
    check of claimed crawlers asks a resolver, so replay leaves it off unless enabled:
    replay must give the same alerts run after run, without the network. Threat-intel feeds
    are loaded once (and, live, refreshed in the background) from ``settings.intel``.
    """
    from shopwatch.enrich.dns import CrawlerVerifier
    from shopwatch.enrich.geo import GeoEnricher
    from shopwatch.enrich.intel import IntelEnricher
    from shopwatch.enrich.useragent import UserAgentEnricher
    from shopwatch.enrich.yara import YaraEnricher

    known = ("geo", "user_agent", "crawler_dns", "intel", "yara")
    unknown = set(settings.enrich) - set(known)
    if unknown:
        raise ConfigError(
            f"enrich has unknown sections {sorted(unknown)}; known: {', '.join(known)}"
        )
    chain: list[Enricher] = []
    for name, factory, default_on in (
        ("geo", GeoEnricher, True),
        ("user_agent", UserAgentEnricher, True),
        ("crawler_dns", CrawlerVerifier, live),
        ("yara", YaraEnricher, True),
    ):
        options = _options(settings, name, default_on=default_on)
        if options is not None:
            chain.append(factory.from_settings(options))
    if _options(settings, "intel", default_on=True) is not None:
        chain.append(IntelEnricher.from_settings(settings, live=live))
    return chain


def build_login_reader(settings: Settings, *, strict: bool = False) -> LoginReader | None:
    """The login reading of ``detect.login_platforms`` (all known platforms by default).

    A platform file that cannot be used is logged and skipped (raised if ``strict``); a
    name no file carries is a :class:`ConfigError`. ``None`` when no platform is chosen.
    """
    loaded = load_platforms(settings.detect.platforms_dirs)
    for problem in loaded.errors:
        log.warning("platform_skipped", problem=str(problem))
    if strict and loaded.errors:
        raise ConfigError("; ".join(str(e) for e in loaded.errors))
    platforms = select_platforms(loaded, settings.detect.login_platforms)
    if not platforms:
        return None
    log.info("login_platforms_loaded", platforms=[p.id for p in platforms])
    return LoginReader(platforms)


def build_engine(
    settings: Settings,
    *,
    sinks: Iterable[AlertSink] = (),
    enrichers: Sequence[Enricher] | None = None,
    strict: bool = False,
    live: bool = False,
) -> Engine:
    """An Engine with every enabled detector; content errors are logged (raised if ``strict``)."""
    loaded = load_detectors(
        settings.rules_dirs,
        settings.detectors,
        max_window=timedelta(seconds=settings.runtime.state_max_window_s),
        sigma_rules=settings.detect.sigma_rules,
    )
    for problem in loaded.errors:
        log.warning("rule_skipped", problem=str(problem))
    if strict and loaded.errors:
        raise ConfigError("; ".join(str(e) for e in loaded.errors))
    if not loaded.detectors:
        raise ConfigError("no detector is enabled: check the rules folders and detectors: config")
    log.info("detectors_loaded", loaded=len(loaded.detectors), skipped=len(loaded.errors))
    use_vendor_inventory(loaded.detectors, settings)
    chain = build_enrichers(settings, live=live) if enrichers is None else list(enrichers)
    return Engine(
        loaded.detectors,
        chain,
        runtime=settings.runtime,
        sinks=sinks,
        logins=build_login_reader(settings, strict=strict),
        exemptions=exemption_rules(settings),
        series=series_rules(settings),
    )


def use_vendor_inventory(detectors: Iterable[Detector], settings: Settings) -> None:
    """Hand ``detect.vendor_inventory`` (when set) to every rule that reads one."""
    path = settings.detect.vendor_inventory
    if path is None:
        return
    from shopwatch.detect.vendors import load_inventory

    inventory = load_inventory(path)
    readers = [d for d in detectors if hasattr(d, "use_inventory")]
    for detector in readers:
        detector.use_inventory(inventory)
    log.info("vendor_inventory_loaded", path=str(path), vendors=len(inventory.vendors))


def series_rules(settings: Settings) -> SeriesRules | None:
    """The ``detect.probe_series`` settings as the engine reads them (None: switched off)."""
    options = settings.detect.probe_series
    if not options.enabled:
        return None
    return SeriesRules(
        within=timedelta(minutes=options.within_minutes),
        remind=timedelta(minutes=options.remind_minutes),
        at_most=timedelta(hours=options.at_most_hours),
    )


def exemption_rules(settings: Settings) -> ExemptionRules | None:
    """The ``detect.exemptions`` settings as the engine reads them (None: switched off)."""
    options = settings.detect.exemptions
    if not options.enabled:
        return None
    return ExemptionRules(
        learn=options.learn,
        min_sources=options.min_sources,
        max_hits_per_source=options.max_hits_per_source,
        forget_after=timedelta(days=options.forget_after_days),
        max_keys=min(20_000, settings.runtime.state_max_keys),
        fixed=tuple(
            Exemption(f.endpoint, f.field, frozenset(f.rules) if f.rules is not None else None)
            for f in options.fixed
        ),
        never=tuple(
            Exemption(f.endpoint, f.field, frozenset(f.rules) if f.rules is not None else None)
            for f in options.never
        ),
        learn_rules=frozenset(options.learn_rules) if options.learn_rules is not None else None,
    )
