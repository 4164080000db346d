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

__all__ = [
    "RULESET_FILE",
    "Loaded",
    "RuleFile",
    "builtin_rules_dir",
    "builtin_sigma_dir",
    "load_detectors",
    "read_rule_files",
]


#: A file beside Sigma rules that says where the rules under its folder come from (name,
#: link, licence): not a rule; its keys go into the alerts of those rules (``origin``).
RULESET_FILE = "RULESET.yml"

#: Keys that make a document a Sigma rule (see :mod:`shopwatch.detect.sigma`), not one of ours.
_SIGMA_KEYS = frozenset({"detection", "correlation", "filter", "action"})


def builtin_rules_dir() -> Path:
    """The rules shipped with the package."""
    return Path(str(resources.files("shopwatch") / "content" / "rules"))


def builtin_sigma_dir() -> Path:
    """The SigmaHQ rules shipped with the package (a folder of the shipped rules)."""
    return builtin_rules_dir() / "sigma"


@dataclass(frozen=True, slots=True)
class RuleFile:
    """One rule as read: its mapping, its file, the line of each of its keys, and the rule
    set it belongs to (the nearest ``RULESET.yml`` above a Sigma rule's file)."""

    raw: dict[str, Any]
    path: str
    lines: Mapping[tuple[str | int, ...], int]
    ruleset: Mapping[str, str] | None = None


def _ruleset(
    path: Path, top: Path, seen: dict[Path, Mapping[str, str] | None], errors: list[ContentError]
) -> Mapping[str, str] | None:
    """The rule set of ``path``: the nearest RULESET.yml in its folder or above, up to ``top``."""
    folder = path.parent
    chain: list[Path] = []
    found: Mapping[str, str] | None = None
    while True:
        if folder in seen:
            found = seen[folder]
            break
        chain.append(folder)
        marker = folder / RULESET_FILE
        if marker.is_file():
            try:
                doc = yaml.safe_load(marker.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                errors.append(ContentError(f"cannot read rule set file: {err}", str(marker)))
                doc = None
            if isinstance(doc, dict):
                found = {
                    str(k): str(v) for k, v in doc.items() if v is not None and k != "disabled"
                }
                found["root"] = str(folder)
                off = doc.get("disabled") or {}
                if isinstance(off, list):  # ids alone: no reason given
                    off = {str(k): f"listed as disabled in {marker}" for k in off}
                if not isinstance(off, dict):
                    errors.append(ContentError("'disabled' maps rule ids to why", str(marker)))
                    off = {}
                # rules of the set shipped disabled, each with why: "disabled:<uuid>"
                found.update({f"disabled:{str(k).lower()}": str(v) for k, v in off.items()})
            break
        if folder == top or folder.parent == folder:
            break
        folder = folder.parent
    for f in chain:
        seen[f] = found
    return found


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
    dirs: Iterable[Path], *, skip: Iterable[Path] = ()
) -> tuple[dict[str, RuleFile], list[ContentError]]:
    """Rule mappings by id (later folders overlay earlier ones) and the errors met.

    Files under a folder of ``skip`` are not read.
    """
    rules: dict[str, RuleFile] = {}
    errors: list[ContentError] = []
    sigma: list[RuleFile] = []
    skipped = [s.resolve() for s in skip]
    sets: dict[Path, Mapping[str, str] | None] = {}
    for folder in dirs:
        if not folder.is_dir():
            errors.append(ContentError("rules folder does not exist", str(folder)))
            continue
        for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
            if path.name == RULESET_FILE or any(path.resolve().is_relative_to(s) for s in skipped):
                continue
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
                    ruleset = _ruleset(path, folder, sets, errors)
                    sigma.append(RuleFile(doc, str(path), lines, ruleset))
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
    sigma_rules: bool = True,
) -> Loaded:
    """Build every enabled detector from the shipped rules and ``extra_dirs``.

    ``overrides`` maps a detector id to an object with ``enabled`` and ``params`` (the
    config's ``detectors:`` section); params overlay the rule's top-level keys. A rule that
    reads more event-time history than ``max_window`` (``runtime.state_max_window_s``) is
    refused: its state could not be held. ``sigma_rules`` False leaves the shipped SigmaHQ
    rules out (``detect.sigma_rules``). A Sigma rule may be tuned by its UUID as well as by
    its id.
    """
    skip = () if sigma_rules else (builtin_sigma_dir(),)
    rules, errors = read_rule_files([builtin_rules_dir(), *extra_dirs], skip=skip)
    overrides, twice = _by_rule_id(overrides or {}, rules)
    errors.extend(twice)
    loaded = Loaded(errors=errors)
    for rule_id in sorted(rules):
        raw, where, lines = rules[rule_id].raw, rules[rule_id].path, rules[rule_id].lines
        override = overrides.get(rule_id)
        if override is not None:
            params = dict(getattr(override, "params", {}) or {})
            raw = {**raw, **params}
            if not getattr(override, "enabled", True):
                raw["enabled"] = False
            elif "enabled" in getattr(override, "model_fields_set", ()):
                raw["enabled"] = True  # ``enabled: true`` switches on a rule shipped off
                if isinstance(raw.get("origin"), dict) and "disabled" in raw["origin"]:
                    raw["origin"] = {k: v for k, v in raw["origin"].items() if k != "disabled"}
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


def _by_rule_id(
    overrides: Mapping[str, Any], rules: Mapping[str, RuleFile]
) -> tuple[dict[str, Any], list[ContentError]]:
    """``overrides`` keyed by rule id, a Sigma rule's UUID read as that rule's id; a rule
    tuned twice (by id and by UUID) is an error, not a silent choice of one."""
    by_uuid = {
        str(rule.raw["origin"]["id"]).lower(): rule_id
        for rule_id, rule in rules.items()
        if isinstance(rule.raw.get("origin"), dict) and rule.raw["origin"].get("id")
    }
    out: dict[str, Any] = {}
    errors: list[ContentError] = []
    for key, value in overrides.items():
        rule_id = by_uuid.get(key.lower(), key)
        if rule_id in out:
            errors.append(
                ContentError(
                    f"config tunes rule {rule_id!r} twice (by its id and by its UUID); "
                    "keep one entry",
                    "config",
                )
            )
            continue
        out[rule_id] = value
    return out, errors
