"""One request, one alert: the signature alerts of a batch that share a request become one.

A worm's probe (``GET /scripts/..%c0%af../winnt/system32/cmd.exe?/c+dir``) is a path
traversal, a command injection and a sensitive path at once; three rules that each raise
an alert for it tell the analyst three times what one alert can say once. After every
detector has run on a batch, the alerts of *signature* rules (one matching event is
enough: ``threshold`` with ``at_least: 1``, Sigma rules, intel matches) about one address
(categories ``web_attack`` and ``scanner``) whose evidence shares at least one event are folded into one alert (transitively: A
shares a request with B, B with C). It keeps the id, rule and category of its most severe
member (then the highest risk, then the earliest), the highest severity and risk, the
earliest time and every member's evidence; ``details.matches`` lists each member (rule id
and name, severity, risk, technique, message, its own event ids), and the message names
how many other signatures matched. Alerts of other rules (counts, learned models,
campaigns) are never folded: what they say is about many events, not one request.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import polars as pl

from shopwatch.contract import ALERT_SCHEMA, SEVERITY_RANK

__all__ = ["MAX_IDS", "expand_matches", "matched_rules", "one_alert_per_request"]

#: Most event ids a folded alert carries (as any alert).
MAX_IDS = 1000
#: The categories of the alerts folded: attacks carried by one request.
CATEGORIES = frozenset({"web_attack", "scanner"})
#: Most event ids kept per member in ``details.matches`` (as many as the alert's own).
MEMBER_IDS = MAX_IDS


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _components(ids: list[list[str]]) -> list[list[int]]:
    """Groups of rows (indices) linked by a shared event id, transitively."""
    parent = list(range(len(ids)))
    first: dict[str, int] = {}
    for row, events in enumerate(ids):
        for event in events:
            if event in first:
                a, b = _find(parent, first[event]), _find(parent, row)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[event] = row
    groups: dict[int, list[int]] = {}
    for row in range(len(ids)):
        groups.setdefault(_find(parent, row), []).append(row)
    return list(groups.values())


def _rank(row: dict[str, Any]) -> tuple[int, int, float]:
    """Most severe first, then the highest risk, then the earliest."""
    return (
        -SEVERITY_RANK.get(str(row["severity"]), 0),
        -int(row["risk_score"] or 0),
        row["@timestamp"].timestamp(),
    )


def _folded(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = sorted(rows, key=_rank)
    primary = dict(rows[0])
    seen: dict[str, None] = {}
    for row in rows:
        for event in row["event.ids"] or []:
            seen.setdefault(event, None)
    try:
        details = json.loads(primary["details"]) if primary["details"] else {}
    except json.JSONDecodeError:
        details = {"text": primary["details"]}
    if not isinstance(details, dict):
        details = {"value": details}
    details["matches"] = [
        {
            "rule.id": r["rule.id"],
            "rule.name": r["rule.name"],
            "severity": r["severity"],
            "risk_score": r["risk_score"],
            "technique": r["threat.technique.id"],
            "message": r["message"],
            "event.ids": list(r["event.ids"] or [])[:MEMBER_IDS],
        }
        for r in rows
    ]
    others = sorted({str(r["rule.name"]) for r in rows[1:]} - {str(primary["rule.name"])})
    primary["event.ids"] = list(seen)[:MAX_IDS]
    primary["@timestamp"] = min(r["@timestamp"] for r in rows)
    primary["risk_score"] = max(int(r["risk_score"] or 0) for r in rows)
    if others:
        primary["message"] = (
            f"{primary['message']}; the same request also matched {len(others)} other "
            f"signature(s): {', '.join(others)}"
        )
    primary["details"] = json.dumps(details, sort_keys=True)
    return primary


def one_alert_per_request(alerts: pl.DataFrame, signatures: Collection[str]) -> pl.DataFrame:
    """``alerts`` with each group of signature alerts sharing a request folded into one."""
    if alerts.height < 2 or not signatures:
        return alerts
    address = pl.col("entity").struct.field("source.ip")
    eligible = (
        pl.col("rule.id").is_in(list(signatures))
        & pl.col("rule.category").is_in(list(CATEGORIES))
        & address.is_not_null()
    )
    mask = alerts.select(eligible.fill_null(False)).to_series()
    if int(mask.sum()) < 2:
        return alerts
    rest = alerts.filter(~mask)
    candidates = alerts.filter(mask).with_columns(address.alias("_ip"))
    out: list[dict[str, Any]] = []
    changed = False
    for (_,), group in candidates.group_by(["_ip"], maintain_order=True):
        rows = group.drop("_ip").to_dicts()
        for members in _components([list(r["event.ids"] or []) for r in rows]):
            if len(members) == 1:
                out.append(rows[members[0]])
            else:
                out.append(_folded([rows[i] for i in members]))
                changed = True
    if not changed:
        return alerts
    folded = pl.DataFrame(out, schema=ALERT_SCHEMA)
    return pl.concat([rest, folded], how="vertical").sort(["@timestamp", "rule.id", "alert.id"])


def expand_matches(alerts: pl.DataFrame) -> pl.DataFrame:
    """One row per rule that matched, folded alerts opened up: ``rule.id``, ``risk_score``,
    ``event.ids`` (a member's own ids), for counting by rule."""
    rows: list[dict[str, Any]] = []
    for rule_id, risk, ids, details in alerts.select(
        "rule.id", "risk_score", "event.ids", "details"
    ).iter_rows():
        matches = _matches(details)
        if not matches:
            rows.append({"rule.id": rule_id, "risk_score": risk, "event.ids": ids})
            continue
        rows.extend(
            {"rule.id": m["rule.id"], "risk_score": m["risk_score"], "event.ids": m["event.ids"]}
            for m in matches
        )
    schema = {k: ALERT_SCHEMA[k] for k in ("rule.id", "risk_score", "event.ids")}
    return pl.DataFrame(rows, schema=schema)


def _matches(details: str | None) -> Iterable[dict[str, Any]]:
    if not details or '"matches"' not in details:
        return []
    try:
        parsed = json.loads(details)
    except json.JSONDecodeError:
        return []
    matches = parsed.get("matches") if isinstance(parsed, dict) else None
    return matches if isinstance(matches, list) else []


def matched_rules(rule_id: str, details: Mapping[str, Any] | None) -> list[str]:
    """The rules an alert stands for: its own, and every member of a folded alert."""
    matches = (details or {}).get("matches")
    if not isinstance(matches, list):
        return [rule_id]
    found = [str(m["rule.id"]) for m in matches if isinstance(m, dict) and m.get("rule.id")]
    return found or [rule_id]
