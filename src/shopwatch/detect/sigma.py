"""Sigma rules, detection and correlation rules, compiled onto the ``threshold`` and ``sequence`` kinds.

pySigma reads the rules (``SigmaRule``, ``SigmaCorrelationRule``, references between them
by name or id) and applies our processing pipeline (``content/pipelines/shopwatch.yml``:
Sigma's field names per log source onto the contract's, the log source's dataset as an
added condition). What pySigma has no backend for, writing the result in our own rule
language, is done here: each rule becomes the mapping of one of our rules, which the
loader validates and builds like a rule file of ours.

- A detection rule alone is a ``threshold`` rule of one event (``at_least: 1``) per entity
  key of its log source (``source.ip`` for web servers), quiet for 10 minutes after an alert.
  A rule may name its own key and category with the custom attributes ``shopwatch.group_by``
  and ``shopwatch.category``.
- ``event_count`` is a ``threshold`` counting the events of its rules per ``group-by``
  within ``timespan``; ``value_count`` counts distinct values of its ``field``. ``gte N``
  fires at N, ``gt N`` at N + 1; "fewer than" (``lt``/``lte``) and ``eq`` are refused: they
  need absence detection, which we do not have.
- ``temporal`` is a ``sequence`` of its rules in any order, ``temporal_ordered`` in order.
- Rules a correlation references are its input only, unless it says ``generate: true``.

Anything without a faithful counterpart is a ContentError naming the file, the line and
the construct; a rule is converted whole or not at all.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from shopwatch.contract import EVENT_SCHEMA
from shopwatch.detect.conditions import ConditionError, check_where
from shopwatch.detect.content import RuleFile
from shopwatch.detect.registry import human_duration
from shopwatch.detect.sigma_meta import common_keys, origin
from shopwatch.detect.sigma_where import Unsupported, any_of, where_of
from shopwatch.errors import ContentError

__all__ = ["SINGLE_EVENT_WINDOW", "convert_sigma", "pipeline_file"]

#: How long one entity stays quiet after a detection rule's alert.
SINGLE_EVENT_WINDOW = "10m"
_DEFAULT_KEYS = ("source.ip",)
#: Suffix of the pipeline items that scope a log source to our events (one per source read).
_SCOPE = "_scope"

_COUNTS = {SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT}
_CHAINS = {SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED}


def pipeline_file() -> Path:
    """The processing pipeline that maps Sigma's field names onto the contract."""
    return Path(str(resources.files("shopwatch") / "content" / "pipelines" / "shopwatch.yml"))


def _pipeline() -> ProcessingPipeline:
    path = pipeline_file()
    try:
        return ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, SigmaError) as err:
        raise ContentError(f"Sigma processing pipeline cannot be used: {err}", str(path)) from err


@dataclass
class _Item:
    """One Sigma rule on its way: the file it came from, pySigma's rule, and what came of it."""

    file: RuleFile
    rule: SigmaRule | SigmaCorrelationRule
    where: dict[str, Any] | None = None
    error: ContentError | None = None

    def at(self, *path: str) -> str:
        """``file:line`` of the deepest known key of ``path`` in the rule's document."""
        lines = self.file.lines
        for end in range(len(path), -1, -1):
            line = lines.get(path[:end])
            if line is not None:
                return f"{self.file.path}:{line}"
        return self.file.path

    def fail(self, message: str, *path: str) -> None:
        self.error = ContentError(f"Sigma rule {self.rule.title!r}: {message}", self.at(*path))


def _parse(file: RuleFile) -> SigmaRule | SigmaCorrelationRule:
    raw = file.raw
    where = f"{file.path}:{file.lines.get((), 1)}"
    if "action" in raw:
        raise ContentError(
            "Sigma collection actions (action: global / repeat / reset) are not supported; "
            "write each rule whole",
            where,
        )
    if "filter" in raw and "detection" not in raw:
        raise ContentError(
            "Sigma meta filters are not supported; add the filter to the rule", where
        )
    try:
        if "correlation" in raw:
            return SigmaCorrelationRule.from_dict(copy.deepcopy(raw))
        return SigmaRule.from_dict(copy.deepcopy(raw))
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # SigmaError is a ValueError
        raise ContentError(f"not a valid Sigma rule: {err}", where) from err


def convert_sigma(files: Sequence[RuleFile]) -> tuple[list[RuleFile], list[ContentError]]:
    """Our rule mappings for the Sigma documents ``files`` (one collection: they may refer
    to each other across files), and an error for each rule that cannot be converted."""
    errors: list[ContentError] = []
    try:
        pipeline = _pipeline()
    except ContentError as err:
        return [], [err]
    items: list[_Item] = []
    for file in files:
        try:
            items.append(_Item(file, _parse(file)))
        except ContentError as err:
            errors.append(err)
    init: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = [i.rule for i in items]
    collection = SigmaCollection(init, resolve_references=False)
    silent: set[int] = set()  # rules that are only a correlation's input
    for item in items:
        if isinstance(item.rule, SigmaCorrelationRule):
            try:
                item.rule.resolve_rule_references(collection)
            except SigmaError as err:
                item.fail(str(err), "correlation", "rules")
                continue
            if not item.rule.generate:
                silent.update(id(ref.rule) for ref in item.rule.referenced_rules)
    # Detection rules first: a correlation's log source is that of the rules it references.
    ordered = sorted(items, key=lambda i: isinstance(i.rule, SigmaCorrelationRule))
    scopes = [
        i.identifier for i in pipeline.items if i.identifier and i.identifier.endswith(_SCOPE)
    ]
    for item in ordered:
        if item.error is None:
            try:
                pipeline.apply(item.rule)
            except SigmaError as err:
                item.fail(f"processing pipeline: {err}")
            else:
                _check_ingested(item, scopes)
    for item in ordered:
        if item.error is None and isinstance(item.rule, SigmaRule):
            _detection(item)
    by_rule = {id(i.rule): i for i in items}
    converted: list[RuleFile] = []
    for item in items:
        raw: dict[str, Any] | None = None
        if item.error is None and not (
            isinstance(item.rule, SigmaRule) and id(item.rule) in silent
        ):
            try:
                raw = (
                    _single(item)
                    if isinstance(item.rule, SigmaRule)
                    else _correlated(item, by_rule)
                )
            except Unsupported as err:
                item.fail(str(err), "correlation")
        if item.error is not None:
            errors.append(item.error)
        elif raw is not None:
            converted.append(RuleFile(raw, item.file.path, _lines(item.file.lines)))
    return converted, errors


def _check_ingested(item: _Item, scopes: Sequence[str]) -> None:
    """Fail a detection rule whose log source no ``*_scope`` item of the pipeline reads."""
    if not isinstance(item.rule, SigmaRule) or any(item.rule.was_processed_by(s) for s in scopes):
        return
    source = item.rule.logsource.to_dict()
    named = [f"{k} {source[k]}" for k in ("category", "product", "service") if source.get(k)]
    ingested = ", ".join(s.removesuffix(_SCOPE) for s in scopes)
    item.fail(
        f"log source {', '.join(named) or '(none)'} is not one shopwatch ingests "
        f"(the processing pipeline reads: {ingested})",
        "logsource",
    )


def _detection(item: _Item) -> None:
    """Set the item's ``where`` (its conditions, any of which fires) or its error."""
    assert isinstance(item.rule, SigmaRule)
    try:
        where = any_of([where_of(c.parsed) for c in item.rule.detection.parsed_condition])
        check_where(where)
    except Unsupported as err:
        path = ("detection", err.selection) if err.selection else ("detection",)
        source = item.rule.logsource
        named = [f"{k} {v}" for k, v in source.to_dict().items() if v]
        item.fail(f"{err} (log source: {', '.join(named) or 'none'})", *path)
    except ConditionError as err:
        item.fail(str(err), "detection")
    except SigmaError as err:
        item.fail(f"condition: {err}", "detection", "condition")
    else:
        item.where = where


# -- rule mappings -------------------------------------------------------------------


def _keys_phrase(keys: Sequence[str]) -> str:
    if list(keys) == ["global"]:
        return "the shop"
    return ", ".join(f"{k} {{{k}}}" for k in keys)


def _single(item: _Item) -> dict[str, Any]:
    """A detection rule alone: one matching event per entity key alerts."""
    assert isinstance(item.rule, SigmaRule)
    attributes = item.rule.custom_attributes
    keys = attributes.get("shopwatch.group_by", attributes.get("shopwatch.default_group_by"))
    keys = list(_DEFAULT_KEYS) if keys is None else [keys] if isinstance(keys, str) else list(keys)
    return {
        **common_keys(item.rule, [], origin(item.rule, item.file.path, item.file.ruleset)),
        "kind": "threshold",
        "where": item.where,
        "group_by": keys,
        "count": {"at_least": 1, "within": SINGLE_EVENT_WINDOW},
        "message": f"{item.rule.title} from {_keys_phrase(keys)}",
    }


def _at_least(condition: SigmaCorrelationCondition) -> int:
    """How many events (or values, or rules) a correlation's condition asks for, at least."""
    op, count = condition.op, condition.count
    if op is SigmaCorrelationConditionOperator.GTE:
        needed = math.ceil(count)
    elif op is SigmaCorrelationConditionOperator.GT:
        needed = math.floor(count) + 1
    else:
        raise Unsupported(
            f"condition '{op.name.lower()}: {count}': a correlation that fires on fewer "
            "(or exactly so many) events needs absence detection, which shopwatch does not "
            "have; write 'gte' or 'gt'"
        )
    if needed < 1:
        raise Unsupported(f"condition '{op.name.lower()}: {count}' holds without any event")
    return needed


def _group_by(rule: SigmaCorrelationRule) -> list[str]:
    """The correlation's key fields, aliases resolved (each must name one contract field)."""
    aliases = {alias.alias: alias for alias in rule.aliases}
    keys: list[str] = []
    for name in rule.group_by or []:
        field = name
        if name in aliases:
            fields = sorted(set(aliases[name].mapping.values()))
            if len(fields) != 1:
                raise Unsupported(
                    f"group-by alias {name!r} is a different field in each rule ({fields}); "
                    "a key is one field of the event contract"
                )
            field = fields[0]
        if field not in EVENT_SCHEMA:
            raise Unsupported(
                f"group-by field {field!r} is not in the event contract and the processing "
                "pipeline does not map it"
            )
        keys.append(field)
    return keys


def _correlated(item: _Item, by_rule: Mapping[int, _Item]) -> dict[str, Any]:
    """A correlation rule as a ``threshold`` (counts) or ``sequence`` (temporal) mapping."""
    rule = item.rule
    assert isinstance(rule, SigmaCorrelationRule)
    inputs: list[SigmaRule] = []
    wheres: list[dict[str, Any]] = []
    for ref in rule.referenced_rules:
        if isinstance(ref.rule, SigmaCorrelationRule):
            raise Unsupported(f"it correlates another correlation ({ref.reference!r})")
        base = by_rule[id(ref.rule)]
        if base.where is None:
            where = base.error.where if base.error else base.file.path
            raise Unsupported(f"its rule {ref.reference!r} ({where}) cannot be converted")
        inputs.append(ref.rule)
        wheres.append(base.where)
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise Unsupported("an extended (boolean) correlation condition is not supported")
    within = human_duration(timedelta(seconds=rule.timespan.seconds))
    keys = _group_by(rule)
    common = common_keys(rule, inputs, origin(rule, item.file.path, item.file.ruleset))
    if rule.type in _COUNTS:
        count: dict[str, Any] = {"at_least": _at_least(condition), "within": within}
        keys = keys or ["global"]
        message = f"{rule.title}: {{count}} events within {{within}} for {_keys_phrase(keys)}"
        if rule.type is SigmaCorrelationType.VALUE_COUNT:
            fields = condition.fieldref
            field = fields[0] if isinstance(fields, list) and len(fields) == 1 else fields
            if not isinstance(field, str) or field not in EVENT_SCHEMA:
                raise Unsupported(
                    f"value_count field {fields!r} is not one field of the event contract"
                )
            count["distinct"] = field
            message = (
                f"{rule.title}: {{distinct}} distinct {field} within {{within}} "
                f"for {_keys_phrase(keys)}"
            )
        return {
            **common,
            "kind": "threshold",
            "where": any_of(wheres),
            "group_by": keys,
            "count": count,
            "message": message,
        }
    if rule.type in _CHAINS:
        if not keys:
            raise Unsupported(
                f"a {rule.type.name.lower()} correlation needs a group-by: the entity "
                "(source.ip, user.name, ...) whose events form the chain"
            )
        if _at_least(condition) != len(inputs):
            raise Unsupported(
                f"a {rule.type.name.lower()} correlation that needs {_at_least(condition)} "
                f"of its {len(inputs)} rules; a sequence needs every one of its steps"
            )
        return {
            **common,
            "kind": "sequence",
            "group_by": keys,
            "steps": [{"name": r.title, "where": w} for r, w in zip(inputs, wheres, strict=True)],
            "within": within,
            "ordered": rule.type is SigmaCorrelationType.TEMPORAL_ORDERED,
        }
    raise Unsupported(
        f"correlation type {rule.type.name.lower()}: shopwatch counts events and distinct "
        "values and chains steps; it does not sum, average or rank a field"
    )


def _lines(sigma: Mapping[tuple[str | int, ...], int]) -> dict[tuple[str | int, ...], int]:
    """Where each key of a converted rule came from in the Sigma document (for errors)."""
    origin: dict[tuple[str | int, ...], tuple[tuple[str, ...], ...]] = {
        ("id",): (("name",), ("id",)),
        ("name",): (("title",),),
        ("severity",): (("level",),),
        ("technique",): (("tags",),),
        ("category",): (("tags",), ("logsource",)),
        ("tags",): (("tags",),),
        ("description",): (("description",),),
        ("enabled",): (("status",),),
        ("where",): (("detection",),),
        ("group_by",): (("correlation", "group-by"), ("correlation",)),
        ("count",): (("correlation", "condition"), ("correlation",)),
        ("count", "within"): (("correlation", "timespan"),),
        ("within",): (("correlation", "timespan"),),
        ("steps",): (("correlation", "rules"), ("correlation",)),
    }
    lines: dict[tuple[str | int, ...], int] = {(): sigma.get((), 1)}
    for key, sources in origin.items():
        found = [sigma[s] for s in sources if s in sigma]
        if found:
            lines[key] = found[0]
    return lines
