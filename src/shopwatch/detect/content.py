"""Loading rule files: the shipped ``content/rules`` overlaid by a user's folders, by id.

Sigma rules (documents with ``detection:`` or ``correlation:``) may sit beside ours in
any rules folder; they are converted to rule mappings of ours on the way in.

One bad file is reported (with file and line) and skipped; it never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from shopwatch.detect.registry import Detector, build, horizon_of, human_duration
from shopwatch.errors import ContentError

__all__ = ["Loaded", "RuleFile", "builtin_rules_dir", "load_detectors", "read_rule_files"]


#: Keys that make a document a Sigma rule (see :mod:`shopwatch.detect.sigma`), not one of ours.
_SIGMA_KEYS = frozenset({"detection", "correlation", "filter", "action"})


def builtin_rules_dir() -> Path:
    """The rules shipped with the package."""
    return Path(str(resources.files("shopwatch") / "content" / "rules"))


@dataclass(frozen=True, slots=True)
class RuleFile:
    """One rule as read: its mapping, its file, and the line of each of its keys."""

    raw: dict[str, Any]
    path: str
    lines: Mapping[tuple[str | int, ...], int]


@dataclass
class Loaded:
    """Detectors built from content, and the files that could not be used."""

    detectors: list[Detector] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def _key_lines(
    node: yaml.Node, path: tuple[str | int, ...] = ()
) -> dict[tuple[str | int, ...], int]:
    """Line number (from 1) of every key and list item of a YAML document, by key path."""
    lines: dict[tuple[str | int, ...], int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                here = (*path, str(key.value))
                lines.update(_key_lines(value, here))
                lines[here] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_key_lines(item, (*path, i)))
    return lines


def _documents(text: str) -> list[tuple[Any, dict[tuple[str | int, ...], int]]]:
    """Each document of a YAML stream with the line numbers of its keys (safe loader)."""
    loader = yaml.SafeLoader(text)
    try:
        out = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # typing only: check_node() said there is one
                break
            out.append((loader.construct_document(node), _key_lines(node)))
        return out
    finally:
        loader.dispose()


def read_rule_files(
    dirs: Iterable[Path],
) -> tuple[dict[str, RuleFile], list[ContentError]]:
    """Rule mappings by id (later folders overlay earlier ones) and the errors met."""
    rules: dict[str, RuleFile] = {}
    errors: list[ContentError] = []
    sigma: list[RuleFile] = []
    for folder in dirs:
        if not folder.is_dir():
            errors.append(ContentError("rules folder does not exist", str(folder)))
            continue
        for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
            try:
                docs = _documents(path.read_text(encoding="utf-8"))
            except yaml.MarkedYAMLError as err:
                line = err.problem_mark.line + 1 if err.problem_mark else 0
                errors.append(ContentError(f"not valid YAML: {err.problem}", f"{path}:{line}"))
                continue
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                errors.append(ContentError(f"cannot read rule file: {err}", str(path)))
                continue
            for doc, lines in docs:
                if doc is None:
                    continue
                if isinstance(doc, dict) and "kind" not in doc and _SIGMA_KEYS & doc.keys():
                    sigma.append(RuleFile(doc, str(path), lines))
                    continue
                if not isinstance(doc, dict) or "id" not in doc or "kind" not in doc:
                    errors.append(
                        ContentError(
                            "a rule is a mapping with 'id' and 'kind'", f"{path}:{lines[()]}"
                        )
                    )
                    continue
                rules[str(doc["id"])] = RuleFile(doc, str(path), lines)
    if sigma:  # converted together: a correlation may refer to rules in other files
        from shopwatch.detect.sigma import convert_sigma

        converted, sigma_errors = convert_sigma(sigma)
        rules.update((str(rule.raw["id"]), rule) for rule in converted)
        errors.extend(sigma_errors)
    return rules, errors


def load_detectors(
    extra_dirs: Iterable[Path] = (),
    overrides: Mapping[str, Any] | None = None,
    *,
    include_disabled: bool = False,
    max_window: timedelta | None = None,
) -> Loaded:
    """Build every enabled detector from the shipped rules and ``extra_dirs``.

    ``overrides`` maps a detector id to an object with ``enabled`` and ``params`` (the
    config's ``detectors:`` section); params overlay the rule's top-level keys. A rule that
    reads more event-time history than ``max_window`` (``runtime.state_max_window_s``) is
    refused: its state could not be held.
    """
    rules, errors = read_rule_files([builtin_rules_dir(), *extra_dirs])
    loaded = Loaded(errors=errors)
    overrides = overrides or {}
    for rule_id in sorted(rules):
        raw, where, lines = rules[rule_id].raw, rules[rule_id].path, rules[rule_id].lines
        override = overrides.get(rule_id)
        if override is not None:
            params = dict(getattr(override, "params", {}) or {})
            raw = {**raw, **params}
            if not getattr(override, "enabled", True):
                raw["enabled"] = False
            # a key tuned by config is not on the file's line any more
            lines = {p: n for p, n in lines.items() if not (p and p[0] in params)}
        try:
            detector = build(raw, where, lines)
        except ContentError as err:
            loaded.errors.append(err)
            continue
        if max_window is not None and horizon_of(detector) > max_window:
            loaded.errors.append(
                ContentError(
                    f"rule {rule_id!r} reads {human_duration(horizon_of(detector))} of event "
                    f"time; state is held for at most {human_duration(max_window)} "
                    "(runtime.state_max_window_s): shorten its window or raise the limit",
                    where,
                )
            )
            continue
        if detector.spec.enabled or include_disabled:
            loaded.detectors.append(detector)
            loaded.sources[rule_id] = where
    unknown = sorted(set(overrides) - set(rules))
    for rule_id in unknown:
        loaded.errors.append(ContentError(f"config tunes unknown detector {rule_id!r}", "config"))
    return loaded
