"""Loading rule files: the shipped ``content/rules`` overlaid by a user's folders, by id.

One bad file is reported (with file and line) and skipped; it never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from shopwatch.detect.registry import Detector, build
from shopwatch.errors import ContentError

__all__ = ["Loaded", "builtin_rules_dir", "load_detectors", "read_rule_files"]


def builtin_rules_dir() -> Path:
    """The rules shipped with the package."""
    return Path(str(resources.files("shopwatch") / "content" / "rules"))


@dataclass
class Loaded:
    """Detectors built from content, and the files that could not be used."""

    detectors: list[Detector] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def read_rule_files(
    dirs: Iterable[Path],
) -> tuple[dict[str, tuple[dict[str, Any], str]], list[ContentError]]:
    """Rule mappings by id (later folders overlay earlier ones) and the errors met."""
    rules: dict[str, tuple[dict[str, Any], str]] = {}
    errors: list[ContentError] = []
    for folder in dirs:
        if not folder.is_dir():
            errors.append(ContentError("rules folder does not exist", str(folder)))
            continue
        for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
            try:
                docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            except yaml.MarkedYAMLError as err:
                line = err.problem_mark.line + 1 if err.problem_mark else 0
                errors.append(ContentError(f"not valid YAML: {err.problem}", f"{path}:{line}"))
                continue
            for doc in docs:
                if doc is None:
                    continue
                if not isinstance(doc, dict) or "id" not in doc or "kind" not in doc:
                    errors.append(
                        ContentError("a rule is a mapping with 'id' and 'kind'", str(path))
                    )
                    continue
                rules[str(doc["id"])] = (doc, str(path))
    return rules, errors


def load_detectors(
    extra_dirs: Iterable[Path] = (),
    overrides: Mapping[str, Any] | None = None,
    *,
    include_disabled: bool = False,
) -> Loaded:
    """Build every enabled detector from the shipped rules and ``extra_dirs``.

    ``overrides`` maps a detector id to an object with ``enabled`` and ``params`` (the
    config's ``detectors:`` section); params overlay the rule's top-level keys.
    """
    rules, errors = read_rule_files([builtin_rules_dir(), *extra_dirs])
    loaded = Loaded(errors=errors)
    overrides = overrides or {}
    for rule_id in sorted(rules):
        raw, where = rules[rule_id]
        override = overrides.get(rule_id)
        if override is not None:
            raw = {**raw, **dict(getattr(override, "params", {}) or {})}
            if not getattr(override, "enabled", True):
                raw["enabled"] = False
        try:
            detector = build(raw, where)
        except ContentError as err:
            loaded.errors.append(err)
            continue
        if detector.spec.enabled or include_disabled:
            loaded.detectors.append(detector)
            loaded.sources[rule_id] = where
    unknown = sorted(set(overrides) - set(rules))
    for rule_id in unknown:
        loaded.errors.append(ContentError(f"config tunes unknown detector {rule_id!r}", "config"))
    return loaded
