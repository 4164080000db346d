"""Running detectors over case files (shared by the case, branch and conformance tests)."""

from __future__ import annotations

import functools
import gzip
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from shopwatch.contract import ALERT_SCHEMA
from shopwatch.detect.profiles import PROFILE_FIELDS, Profiler
from shopwatch.detect.registry import Detector
from shopwatch.detect.state import KeyedState
from shopwatch.enrich.logins import LoginReader
from shopwatch.enrich.platforms import Platform, load_platforms, select_platforms
from shopwatch.parse import parse_file

CASES = Path(__file__).resolve().parent / "cases"
CASE_YEAR = 2026


@functools.cache
def _enrichers() -> tuple[Any, ...]:
    """The offline enrichment a batch gets before detection: geo/ASN, then user agent."""
    from types import SimpleNamespace

    from shopwatch.enrich.geo import GeoEnricher
    from shopwatch.enrich.useragent import UserAgentEnricher

    return (
        GeoEnricher.from_settings(SimpleNamespace(enrich={"geo": {}})),
        UserAgentEnricher.from_settings(SimpleNamespace(enrich={"user_agent": {}})),
    )


@functools.cache
def _platforms() -> tuple[Platform, ...]:
    return tuple(select_platforms(load_platforms(), None))


def _logins() -> LoginReader:
    """The pipeline's login reading of every shipped platform (a fresh one: it holds rows)."""
    return LoginReader(_platforms())


def read_events(path: Path) -> pl.DataFrame:
    """Every event of a case file (format sniffed), in event-time order; no rejects allowed.

    Enriched as the pipeline does before detection (network, organisation and user-agent
    fields a rule may read), fields the file gives itself kept, and its access-log logins
    read by the shipped platform files (the file is the whole stream).
    """
    parts = list(parse_file(path, "auto", year=CASE_YEAR))
    rejects = pl.concat([p.rejects for p in parts])
    assert rejects.height == 0, f"{path} has lines the parser rejects: {rejects.head(3)}"
    events = pl.concat([p.batch for p in parts]).sort("@timestamp", maintain_order=True)
    enriched = events
    for enricher in _enrichers():
        enriched = enricher.enrich(enriched)
    given = [c for c in events.columns if events[c].null_count() < events.height]
    enriched = _logins().read_all(enriched.with_columns(events.select(given)))
    # What the accounts' profiles say, learnt over the file in event time as the engine does.
    profiler = Profiler()
    return profiler.annotate(enriched, profiler.new_state())


def reads_profiles(detector: Detector) -> bool:
    """Whether a rule reads what account profiles say (``shop.profile.*``)."""
    return bool(detector.needs & set(PROFILE_FIELDS))


def clauses(detector: Detector) -> list[dict[str, Any]]:
    """The ``where`` clauses that decide whether an event counts (a sequence's: its steps)."""
    steps = getattr(detector.spec, "steps", None)
    if steps is not None:
        return [step.where for step in steps]
    return [detector.spec.where]


def case_file(case: str, stem: str) -> Path:
    """``fires`` or ``benign`` file of a case, whatever its extension."""
    found = sorted((CASES / case).glob(f"{stem}.*"))
    assert found, f"case {case} has no {stem}.* file"
    return found[0]


def fires_files(case: str) -> list[Path]:
    """Every ``fires.*`` file of a case (``fires.log`` and ``fires.jsonl`` may sit side by side)."""
    found = sorted((CASES / case).glob("fires.*"))
    assert found, f"case {case} has no fires.* file"
    return found


def read_expect(case: str) -> dict[str, Any]:
    """The case's ``expect.yaml``."""
    loaded = yaml.safe_load((CASES / case / "expect.yaml").read_text())
    assert isinstance(loaded, dict), f"{case}/expect.yaml is not a mapping"
    return loaded


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a fires file."""

    case: str
    file: str  # the file's name inside the case folder, e.g. ``fires.log``
    no: int  # 1-based
    text: str

    def events(self) -> pl.DataFrame:
        """The events of this line alone, parsed as its file would be.

        For rules that read account profiles, the line's event as the whole file leaves
        it (its profile fields learnt from the lines before it): those need the history.
        """
        alone = _parse_alone(self.file, self.text)
        if not _profiled_case(self.case) or "event.id" not in alone.columns:
            return alone
        whole = _read_cached(CASES / self.case / self.file)
        return whole.filter(pl.col("event.id").is_in(alone["event.id"].to_list()))


def ours(detectors: Iterable[Detector]) -> list[Detector]:
    """The detectors of our own rules: not those of a rule set shipped from elsewhere (the
    SigmaHQ rules, tested in tests/detect/test_sigma_content.py)."""
    return [d for d in detectors if not (d.spec.origin or {}).get("ruleset")]


@functools.cache
def _read_cached(path: Path) -> pl.DataFrame:
    return read_events(path)


@functools.cache
def _profiled_case(case: str) -> bool:
    from shopwatch.detect.content import load_detectors

    found = [d for d in load_detectors().detectors if d.id == case]
    return bool(found) and reads_profiles(found[0])


def _text(path: Path) -> str:
    """A case file's text (gzip files, for the long traffic a learned model needs, too)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def fires_lines(case: str) -> list[Line]:
    """Every non-empty line of the case's fires files, in file order."""
    return [
        Line(case, path.name, no, text)
        for path in fires_files(case)
        for no, text in enumerate(_text(path).splitlines(), start=1)
        if text.strip()
    ]


@functools.cache
def _parse_alone(name: str, text: str) -> pl.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name.removesuffix(".gz")
        path.write_text(text + "\n")
        return read_events(path)


def run(
    detector: Detector, batches: Iterable[pl.DataFrame], state: KeyedState | None = None
) -> pl.DataFrame:
    """Alerts of one detector over consecutive batches, with one state, then what it still
    holds released (the batches are the whole stream)."""
    state = state or KeyedState(detector.keys)
    out = [detector.detect(b, state) for b in batches]
    release = getattr(detector, "flush", None)
    if release is not None:
        out.append(release(state))
    out = [o for o in out if o.height]
    return pl.concat(out) if out else pl.DataFrame(schema=ALERT_SCHEMA)


def shipped(rule_id: str) -> Detector:
    """The shipped rule ``rule_id``, loaded as the product loads it (no SigmaHQ rules)."""
    from shopwatch.detect.content import load_detectors

    return next(d for d in load_detectors(sigma_rules=False).detectors if d.id == rule_id)
