"""The Detector interface, the registry of kinds, and the rule spec every kind extends.

Python adds *kinds* (``@kind("threshold")``); content files choose a kind and give its
parameters. ``build`` validates a rule's mapping against its kind's pydantic model (typos
are errors naming the file) and returns a Detector with frozen parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shopwatch.contract import (
    CATEGORIES,
    ENTITY_FIELDS,
    EVENT_SCHEMA,
    Category,
    Severity,
    stable_id,
)
from shopwatch.detect.conditions import ConditionError, check_where
from shopwatch.detect.state import KeyedState
from shopwatch.errors import ContentError, RegistryError

__all__ = [
    "BASE_RISK",
    "KINDS",
    "CampaignSpec",
    "CompromiseSpec",
    "Detector",
    "RuleSpec",
    "alert_record",
    "build",
    "horizon_of",
    "kind",
    "memory_of",
    "parse_duration",
    "with_origin",
]

BASE_RISK = {"low": 25, "medium": 50, "high": 75, "critical": 90}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> timedelta:
    """``"10m"`` → 10 minutes. Bare numbers are refused: a duration carries its unit.

    >>> parse_duration("90s")
    datetime.timedelta(seconds=90)
    """
    if isinstance(text, (int, float)):
        raise ValueError(f"duration {text!r} has no unit; write e.g. '{text}s' or '{text}m'")
    found = _DURATION.match(text)
    if not found and text.strip().replace(".", "", 1).isdigit():
        raise ValueError(f"duration {text!r} has no unit; write e.g. '{text.strip()}m'")
    if not found:
        raise ValueError(f"duration {text!r} is not of the form <number><ms|s|m|h|d>")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def _checked_duration(value: str) -> str:
    parse_duration(value)
    return value


def _checked_where(value: dict[str, Any]) -> dict[str, Any]:
    check_where(value)
    return value


#: A rule parameter holding a duration with its unit (``"10m"``), validated on load.
Duration = Annotated[str, AfterValidator(_checked_duration)]
#: A rule's ``where`` clause (see :mod:`shopwatch.detect.conditions`), run through Polars on load.
WhereClause = Annotated[dict[str, Any], AfterValidator(_checked_where)]


def human_duration(delta: timedelta) -> str:
    """The shortest exact ``<n><unit>`` form of ``delta``.

    >>> human_duration(timedelta(minutes=90)), human_duration(timedelta(hours=2))
    ('90m', '2h')
    """
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def render_message(template: str, values: dict[str, Any]) -> str:
    """Fill ``{field.name}`` placeholders (dotted names allowed); unknown ones stay as is.

    >>> render_message("{count} failures from {source.ip}", {"count": 3, "source.ip": "1.2.3.4"})
    '3 failures from 1.2.3.4'
    """

    def sub(found: re.Match[str]) -> str:
        name = found.group(1)
        return str(values[name]) if name in values else found.group(0)

    return _PLACEHOLDER.sub(sub, template)


class CompromiseSpec(BaseModel):
    """What a campaign won: events (``where``) from one of its ``by`` values, naming ``name``.

    For a stuffing campaign: successful logins on a device new to the account, from an
    address that tried the campaign's logins; the accounts are the ones it broke into.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    where: WhereClause
    by: str = "source.ip"
    name: str = "user.name"


class CampaignSpec(BaseModel):
    """How a rule's alerts fold into campaigns (:mod:`shopwatch.detect.campaign`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within: Duration = "1h"
    hold: Duration = "1m"
    at_most: Duration = "24h"
    compromised: CompromiseSpec | None = None


def alert_record(
    spec: RuleSpec,
    *,
    at: datetime,
    key: Sequence[Any],
    entity: Mapping[str, Any],
    event_ids: Sequence[str],
    message: str,
    details: Mapping[str, Any],
    risk: int | None = None,
    severity: str | None = None,
) -> dict[str, Any]:
    """One ALERT_SCHEMA row of ``spec``'s rule: its id from the rule, ``key`` and ``at``.

    ``entity`` names some entity fields (the others are null); ``details`` is written as
    sorted JSON.
    """
    return {
        "alert.id": stable_id(spec.id, *key, at.isoformat()),
        "@timestamp": at,
        "rule.id": spec.id,
        "rule.name": spec.title,
        "rule.category": spec.category,
        "severity": severity or spec.severity,
        "risk_score": spec.base_risk if risk is None else risk,
        "entity": {f: entity.get(f) for f in ENTITY_FIELDS},
        "event.ids": list(event_ids),
        "threat.technique.id": spec.technique,
        "message": message,
        "details": json.dumps(details, sort_keys=True),
    }


def with_origin(alerts: pl.DataFrame, origin: Mapping[str, str]) -> pl.DataFrame:
    """``alerts`` with the rule's origin in ``details.rule_origin`` (the licence's notice)."""

    def add(details: str | None) -> str:
        try:
            parsed = json.loads(details) if details else {}
        except json.JSONDecodeError:
            parsed = {"text": details}
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        parsed["rule_origin"] = dict(origin)
        return json.dumps(parsed, sort_keys=True)

    return alerts.with_columns(
        pl.Series("details", [add(d) for d in alerts["details"].to_list()], dtype=pl.String)
    )


class RuleSpec(BaseModel):
    """Fields every rule has, whatever its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    kind: str
    name: str = ""
    category: Category
    severity: Severity = "medium"
    description: str = ""
    technique: str | None = Field(default=None, pattern=r"^T\d{4}(\.\d{3})?$")
    enabled: bool = True
    risk_score: int | None = Field(default=None, ge=0, le=100)
    tags: tuple[str, ...] = ()
    #: Fold the rule's alerts for many entities into one campaign alert and its updates.
    campaign: CampaignSpec | None = None
    #: Where a rule written elsewhere comes from (a Sigma rule's id, author, rule set, link
    #: and licence); every alert of the rule carries it in ``details.rule_origin``.
    origin: dict[str, str] | None = None

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r}; known: {', '.join(CATEGORIES)}")
        return value

    @property
    def title(self) -> str:
        """The human rule name (``name`` or the id made readable)."""
        return self.name or self.id.split(".", 1)[-1].replace("_", " ").capitalize()

    @property
    def base_risk(self) -> int:
        """Risk score of a plain hit of this rule."""
        return self.risk_score if self.risk_score is not None else BASE_RISK[self.severity]


@runtime_checkable
class Detector(Protocol):
    """One detection. ``detect`` returns ALERT_SCHEMA rows and keeps memory only in state."""

    id: str
    category: str
    keys: tuple[str, ...]
    needs: frozenset[str]
    spec: RuleSpec

    #: True when one matching event alone can raise an alert (a signature), False when
    #: an alert needs several (a count, a sequence).
    single_event: bool

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame: ...


def memory_of(detector: Detector) -> timedelta:
    """How long a detector's per-entity memory lives after the entity's last event (a
    learned profile's weeks; none when the detector only reads its horizon)."""
    memory = getattr(detector, "memory", None)
    return memory if isinstance(memory, timedelta) else timedelta(0)


def horizon_of(detector: Detector) -> timedelta:
    """How much event-time history a detector reads (its ``horizon``; none when it has none)."""
    horizon = getattr(detector, "horizon", None)
    return horizon if isinstance(horizon, timedelta) else timedelta(0)


class DetectorKind(Protocol):
    """A class registered with :func:`kind`: built from its ``Spec``."""

    Spec: ClassVar[type[RuleSpec]]

    def __call__(self, spec: Any) -> Detector: ...


K = TypeVar("K", bound=type)
KINDS: dict[str, Any] = {}


def kind(name: str) -> Callable[[K], K]:
    """Register a detector class under ``name``; content selects it with ``kind: name``."""

    def add(factory: K) -> K:
        if name in KINDS:
            raise RegistryError(f"detector kind {name!r} is registered twice")
        spec_cls = getattr(factory, "Spec", None)
        if spec_cls is None or not issubclass(spec_cls, RuleSpec):
            raise RegistryError(f"detector kind {name!r} has no Spec (a RuleSpec subclass)")
        KINDS[name] = factory
        return factory

    return add


#: Where a key of a rule file is: key path (``("count", "within")``) → line number.
Lines = Mapping[tuple[str | int, ...], int]


def _error_path(error: Any) -> tuple[str | int, ...]:
    """The key path of one pydantic error, down into the ``where`` clause when it says where."""
    loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConditionError) and cause.path:
        return (*loc, *cause.path)
    return loc


def _located(where: str, lines: Lines | None, path: tuple[str | int, ...]) -> str:
    """``where`` with the line of the deepest known key of ``path`` (file:line)."""
    if not lines or not where:
        return where
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return f"{where}:{line}"
    return where


def _problem(error: Any) -> str:
    """One pydantic error as ``key.path: message`` (pydantic's ``Value error,`` dropped)."""
    loc = ".".join(str(p) for p in error["loc"]) or "<rule>"
    cause = (error.get("ctx") or {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else str(error["msg"])
    return f"{loc}: {message}"


def build(raw: dict[str, Any], where: str = "", lines: Lines | None = None) -> Detector:
    """Validate ``raw`` (one rule's mapping) and build its Detector.

    Raises ContentError naming ``where`` and, for an unknown kind, the known ones. With
    ``lines`` (key paths of the rule's file → line numbers), ``where`` gets the line of the
    first problem: the pattern's line for a regex Polars refuses.
    """
    import shopwatch.detect.kinds  # noqa: F401  (fills KINDS on first use)

    kind_name = raw.get("kind")
    factory = KINDS.get(str(kind_name))
    if factory is None:
        known = ", ".join(sorted(KINDS)) or "none"
        raise ContentError(
            f"unknown detector kind {kind_name!r} (known kinds: {known})",
            _located(where, lines, ("kind",)),
        )
    try:
        spec = factory.Spec.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()
        problems = "; ".join(_problem(e) for e in errors)
        at = _located(where, lines, _error_path(errors[0]) if errors else ())
        raise ContentError(f"invalid rule {raw.get('id', '?')!r}: {problems}", at) from err
    detector: Detector = factory(spec)
    unknown = sorted(detector.needs - EVENT_SCHEMA.keys())
    if unknown:
        raise ContentError(
            f"rule {spec.id!r} reads fields not in the contract: {unknown}",
            _located(where, lines, ()),
        )
    return detector
