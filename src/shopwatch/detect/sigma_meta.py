"""What a Sigma rule says about itself, as the keys every rule of ours has.

The detector id comes from the rule's ``name`` (else its ``id``, else its ``title``), the
severity from its ``level``, the ATT&CK technique and the alert category from its
``tags`` (and the log source's category, which the processing pipeline sets), and a rule
``deprecated`` or ``unsupported`` is loaded disabled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule
from sigma.rule.attributes import SigmaStatus

__all__ = ["DEFAULT_CATEGORY", "common_keys", "origin", "rule_id"]

#: The alert category of a rule whose tags and log source say nothing more precise.
DEFAULT_CATEGORY = "anomaly"
_SEVERITY = {
    "informational": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")
#: ATT&CK technique (or sub-technique) → alert category; the first tag found decides.
_CATEGORY_OF_TECHNIQUE = {
    "T1595": "scanner",
    "T1592": "scanner",
    "T1046": "scanner",
    "T1110": "brute_force",
    "T1110.003": "credential_stuffing",
    "T1110.004": "credential_stuffing",
    "T1078": "account_takeover",
    "T1098": "account_takeover",
    "T1539": "account_takeover",
    "T1498": "dos",
    "T1499": "dos",
    "T1213": "data_exfiltration",
    "T1530": "data_exfiltration",
    "T1041": "data_exfiltration",
    "T1048": "data_exfiltration",
    "T1567": "data_exfiltration",
    "T1071": "network",
    "T1090": "network",
    "T1572": "network",
}
#: Exploitation techniques: ``web_attack`` unless the log source says what was attacked.
_EXPLOIT_TECHNIQUES = {"T1190", "T1203", "T1505", "T1505.003"}


def rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """``sigma.<name>``, else ``sigma.<uuid>``, else ``sigma.<title>``, in snake case.

    >>> rule_id(SigmaCorrelationRule(title="X", name="many-failed-logins", rules=[]))
    'sigma.many_failed_logins'
    """
    base = rule.name or (str(rule.id) if rule.id else rule.title)
    return "sigma." + (re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_") or "rule")


def _techniques(rules: Sequence[SigmaRule | SigmaCorrelationRule]) -> list[str]:
    return [
        tag.name.upper()
        for rule in rules
        for tag in rule.tags
        if tag.namespace == "attack" and _TECHNIQUE.match(tag.name)
    ]


def _category(rules: Sequence[SigmaRule | SigmaCorrelationRule]) -> str:
    """The rule's own ``shopwatch.category``, else a technique that names the attack, else
    the log source's category (from the pipeline), else :data:`DEFAULT_CATEGORY`.

    An exploitation technique (T1190) says how, not what: on a web server it is a web
    attack, on a host's SSH daemon a host event, so the log source's category comes first.
    """
    own = rules[0].custom_attributes.get("shopwatch.category") if rules else None
    if isinstance(own, str):
        return own
    techniques = _techniques(rules)
    for technique in techniques:
        for candidate in (technique, technique.split(".", 1)[0]):
            if candidate in _CATEGORY_OF_TECHNIQUE:
                return _CATEGORY_OF_TECHNIQUE[candidate]
    for rule in rules:
        category = rule.custom_attributes.get("shopwatch.default_category")
        if isinstance(category, str):
            return category
    if _EXPLOIT_TECHNIQUES & {t for x in techniques for t in (x, x.split(".", 1)[0])}:
        return "web_attack"
    return DEFAULT_CATEGORY


def origin(
    rule: SigmaRule | SigmaCorrelationRule, path: str, ruleset: Mapping[str, str] | None
) -> dict[str, str]:
    """Where the rule comes from, for its alerts: its Sigma id, author and licence, and,
    when its folder names its rule set (``RULESET.yml``), the set, a link and the licence;
    ``disabled`` says why the set ships the rule disabled (the file's ``disabled:`` list).

    The Detection Rule License asks that alerts from a rule keep its author, a link to the
    rule set and the licence notice.
    """
    out = {"id": str(rule.id) if rule.id else "", "title": rule.title}
    if rule.author:
        out["author"] = rule.author
    if rule.license:
        out["license"] = rule.license
    if ruleset:
        out["ruleset"] = ruleset.get("name", "")
        why = ruleset.get(f"disabled:{out['id'].lower()}")
        if why:
            out["disabled"] = why
        link, commit, root = ruleset.get("link"), ruleset.get("commit"), ruleset.get("root")
        if link:
            out["link"] = link
        if link and commit and root:
            try:  # the file's place in the set, as named (a symlink is not followed)
                relative = Path(path).absolute().relative_to(Path(root).absolute()).as_posix()
            except ValueError:
                pass
            else:
                out["link"] = f"{link.rstrip('/')}/blob/{commit}/{relative}"
        for key in ("license", "license_link"):
            if ruleset.get(key):
                out[key] = ruleset[key]
    return {k: v for k, v in out.items() if v}


def common_keys(
    rule: SigmaRule | SigmaCorrelationRule,
    inputs: Sequence[SigmaRule],
    origin_of: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The keys every rule has: id, name, category, severity, technique, description, tags,
    and the rule's ``origin`` (see :func:`origin`)."""
    techniques = _techniques([rule, *inputs])
    about = " ".join((rule.description or "").split())
    origin = f"Sigma rule {rule.id or rule.name or rule.title}" + (
        f" by {rule.author}" if rule.author else ""
    )
    return {
        "id": rule_id(rule),
        "name": rule.title,
        "category": _category([rule, *inputs]),
        "severity": _SEVERITY[str(rule.level)] if rule.level is not None else "medium",
        "technique": techniques[0] if techniques else None,
        "description": f"{about} ({origin})" if about else origin,
        "tags": ["sigma", *(str(tag) for tag in rule.tags)],
        "enabled": rule.status not in (SigmaStatus.DEPRECATED, SigmaStatus.UNSUPPORTED)
        and not (origin_of or {}).get("disabled"),
        **({"origin": dict(origin_of)} if origin_of else {}),
    }
