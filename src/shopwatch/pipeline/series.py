"""A probe series from one source is one alert that grows.

A scanner or an injection tool sends hundreds of requests from one address over minutes
or hours. Each signature fires for it once per window, so a 40-minute sqlmap run is a
dozen alerts of four rules, each telling the analyst a little. Here the first
single-request signature alert (category ``web_attack`` or ``scanner``) about an address
is raised at once and opens a *series* for that address and category. The signature
alerts that follow about the same address and category join the series instead of
standing alone, for as long as each comes within ``within`` of the one before (and the
series is younger than ``at_most``). When one brings a rule the series had not matched,
or a higher severity, an *update* is raised, at most once per ``hold`` of event time: a new
alert of the series' first rule whose ``details.series`` says which alert it updates,
since when, how many alerts and requests it folded and which rules matched, and the series'
evidence in ``event.ids`` (the most recent :data:`MAX_IDS`). An update has no
``details.matches``: it is news of the series, not one more match of each rule. More of what the series already showed is counted, not raised.

Every alert of a series carries ``details.series.id``, the id of its first alert; the
first alert says ``update: 0``. An update is dated a ``hold`` after the series' last alert
or update (or at the news, if later), and raised by the first batch whose engine clock has
passed that, or at the end of a replay (:meth:`ProbeSeries.flush`).

State: one row per open series in a :class:`~shopwatch.detect.state.KeyedState` the
engine snapshots, evicts and sheds like a detector's.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, stable_id
from shopwatch.detect.state import KeyedState

__all__ = ["CATEGORIES", "MAX_IDS", "SERIES_STATE", "ProbeSeries", "SeriesRules"]

#: The id under which the engine keeps open series (not a rule id: no dot).
SERIES_STATE: Final = "_series"
#: Categories whose signature alerts form series.
CATEGORIES: Final = frozenset({"web_attack", "scanner"})
#: Most event ids an update carries (the contract's bound).
MAX_IDS: Final = 1000
_SEVERITY: Final = {"low": 0, "medium": 1, "high": 2, "critical": 3}

_SCHEMA: Final[dict[str, pl.DataType]] = {
    "_key": pl.String(),  # address and category
    "_sid": pl.String(),  # the series' first alert
    "_first": TIMESTAMP,
    "_ts": TIMESTAMP,  # the series' last alert
    "_emit": TIMESTAMP,  # the series' last alert or update raised
    "_n": pl.Int64(),  # alerts folded, the first included
    "_u": pl.Int64(),  # updates raised
    "_risk": pl.Int64(),  # the highest risk raised so far
    "_pending": pl.Boolean(),
    "_body": pl.String(),  # JSON: lead alert, rules, ids, highest risk and severity seen
}


@dataclass(frozen=True, slots=True)
class SeriesRules:
    """How long a series stays open and how often it is updated."""

    within: timedelta = timedelta(minutes=30)
    hold: timedelta = timedelta(minutes=1)
    at_most: timedelta = timedelta(hours=24)


def _details(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.get("details")
    if not raw:
        return {}
    parsed = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return parsed if isinstance(parsed, dict) else {}


def _matches(row: dict[str, Any], details: dict[str, Any]) -> list[dict[str, Any]]:
    """What an alert says matched: its ``details.matches`` (a folded request) or itself."""
    listed = details.get("matches")
    if isinstance(listed, list) and listed:
        return [m for m in listed if isinstance(m, dict) and m.get("rule.id")]
    return [
        {
            "rule.id": row["rule.id"],
            "rule.name": row["rule.name"],
            "severity": row["severity"],
            "risk_score": row["risk_score"],
            "event.ids": list(row["event.ids"] or [])[:10],
        }
    ]


class ProbeSeries:
    """Folds the signature alerts of one address and category into one growing alert."""

    def __init__(self, signatures: Collection[str], rules: SeriesRules | None = None) -> None:
        self.signatures = frozenset(signatures)
        self.rules = rules or SeriesRules()
        #: Alerts folded into a series instead of raised.
        self.folded = 0

    def new_state(self, max_keys: int) -> KeyedState:
        # A series is dead after ``within`` of quiet; its last update is due by ``hold``.
        return KeyedState(
            ("_key",), max_keys=max_keys, max_age=self.rules.within + 2 * self.rules.hold
        )

    def _joins(self, row: dict[str, Any]) -> str | None:
        """The series key of an alert that belongs in one, else None."""
        if row["rule.id"] not in self.signatures or row["rule.category"] not in CATEGORIES:
            return None
        address = (row.get("entity") or {}).get("source.ip")
        if not address:
            return None
        return f"{address}\x1f{row['rule.category']}"

    def fold(self, alerts: pl.DataFrame, state: KeyedState, clock: datetime | None) -> pl.DataFrame:
        """``alerts`` with those that join an open series folded into it, plus due updates."""
        table = state.table("series", _SCHEMA)
        joining = alerts.height > 0 and bool(alerts["rule.id"].is_in(list(self.signatures)).any())
        if not joining and not (table.height and table["_pending"].any()):
            return alerts  # nothing joins a series and no update is waiting
        held = {r["_key"]: r for r in table.to_dicts()}
        out: list[dict[str, Any]] = []
        changed = False
        for row in alerts.sort("@timestamp", maintain_order=True).to_dicts():
            key = self._joins(row)
            if key is None:
                out.append(row)
                continue
            changed = True
            at: datetime = row["@timestamp"]
            series = held.get(key)
            if series is not None and (
                at - series["_ts"] > self.rules.within or at - series["_first"] > self.rules.at_most
            ):
                if series["_pending"]:  # the ended series' last news, before the new one
                    out.append(self._update(series, self._due(series)))
                series = None
            if series is None:
                held[key] = self._start(row)
                out.append(self._marked(row, held[key]))
            else:
                self._join(series, row)
                self.folded += 1
        latest = alerts["@timestamp"].max() if alerts.height else None
        now = clock if clock is not None else latest if isinstance(latest, datetime) else None
        for series in held.values():
            if series["_pending"] and now is not None and now >= self._due(series):
                out.append(self._update(series, self._due(series)))
                changed = True
        if changed:
            self._save(state, held)
        if not out:
            return alerts.clear()
        return pl.DataFrame(out, schema=ALERT_SCHEMA).sort(
            ["@timestamp", "rule.id", "alert.id"], maintain_order=True
        )

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The updates still waiting for their hold (the end of a replay)."""
        held = {r["_key"]: r for r in state.table("series", _SCHEMA).to_dicts()}
        out = [self._update(s, self._due(s)) for s in held.values() if s["_pending"]]
        if out:
            self._save(state, held)
        return pl.DataFrame(out, schema=ALERT_SCHEMA)

    # -- one series -----------------------------------------------------------------

    def _due(self, series: dict[str, Any]) -> datetime:
        """When a waiting update is raised: a hold after the last one, never before the news.

        Event time, not the clock of the batch that raises it: a replay cut in long batches
        dates it as a live run would.
        """
        due: datetime = max(series["_ts"], series["_emit"] + self.rules.hold)
        return due

    def _start(self, row: dict[str, Any]) -> dict[str, Any]:
        details = _details(row)
        body = {
            "lead": {
                "rule.id": row["rule.id"],
                "rule.name": row["rule.name"],
                "rule.category": row["rule.category"],
                "entity": {f: (row.get("entity") or {}).get(f) for f in ENTITY_FIELDS},
                "threat.technique.id": row["threat.technique.id"],
                "message": row["message"],
                "details": details,
            },
            "rules": {m["rule.id"]: m.get("rule.name") for m in _matches(row, details)},
            "reported": sorted(m["rule.id"] for m in _matches(row, details)),
            "ids": list(row["event.ids"] or [])[-MAX_IDS:],
            "requests": len(row["event.ids"] or []) or 1,
            "severity": row["severity"],
        }
        return {
            "_key": self._joins(row),
            "_sid": row["alert.id"],
            "_first": row["@timestamp"],
            "_ts": row["@timestamp"],
            "_emit": row["@timestamp"],
            "_n": 1,
            "_u": 0,
            "_risk": int(row["risk_score"]),
            "_pending": False,
            "_body": body,
        }

    @staticmethod
    def _marked(row: dict[str, Any], series: dict[str, Any]) -> dict[str, Any]:
        details = _details(row)
        details["series"] = {
            "id": series["_sid"],
            "since": series["_first"].isoformat(),
            "alerts": 1,
            "update": 0,
        }
        return {**row, "details": json.dumps(details, sort_keys=True)}

    @staticmethod
    def _join(series: dict[str, Any], row: dict[str, Any]) -> None:
        body = _body(series)
        details = _details(row)
        new_rules = False
        for match in _matches(row, details):
            if match["rule.id"] not in body["rules"]:
                body["rules"][match["rule.id"]] = match.get("rule.name")
                new_rules = True
        seen = set(body["ids"])
        fresh = [i for i in row["event.ids"] or [] if i not in seen]
        body["ids"] = (body["ids"] + fresh)[-MAX_IDS:]
        body["requests"] += len(fresh)
        graver = _SEVERITY.get(row["severity"], 0) > _SEVERITY.get(body["severity"], 0)
        if graver:
            body["severity"] = row["severity"]
        series["_risk"] = max(series["_risk"], int(row["risk_score"]))
        series["_body"] = body
        series["_ts"] = max(series["_ts"], row["@timestamp"])
        series["_n"] += 1
        if new_rules or graver:
            series["_pending"] = True

    @staticmethod
    def _update(series: dict[str, Any], at: datetime) -> dict[str, Any]:
        body = _body(series)
        lead = body["lead"]
        series["_u"] += 1
        series["_emit"] = at
        series["_pending"] = False
        rules = sorted(body["rules"])
        added = [r for r in rules if r not in body["reported"]]
        body["reported"] = rules
        series["_body"] = body
        details = dict(lead["details"])
        # Not ``matches``: an update is news of the series, not a new match of each rule.
        details.pop("matches", None)
        details["series"] = {
            "id": series["_sid"],
            "since": series["_first"].isoformat(),
            "alerts": series["_n"],
            "requests": body["requests"],
            "rules": rules,
            "new_rules": added,
            "update": series["_u"],
        }
        minutes = (series["_ts"] - series["_first"]).total_seconds() / 60
        return {
            "alert.id": stable_id("series", series["_sid"], series["_u"]),
            "@timestamp": at,
            "rule.id": lead["rule.id"],
            "rule.name": lead["rule.name"],
            "rule.category": lead["rule.category"],
            "severity": body["severity"],
            "risk_score": series["_risk"],
            "entity": lead["entity"],
            "event.ids": list(body["ids"]),
            "threat.technique.id": lead["threat.technique.id"],
            "message": f"{lead['message']} (one probe series since "
            f"{series['_first']:%H:%M:%S}: {series['_n']} alerts, {body['requests']} requests "
            f"over {minutes:.0f} min, {len(rules)} rules"
            + (f"; new: {', '.join(added)}" if added else "")
            + ")",
            "details": json.dumps(details, sort_keys=True),
        }

    @staticmethod
    def _save(state: KeyedState, held: dict[str, dict[str, Any]]) -> None:
        rows = [
            {**s, "_body": s["_body"] if isinstance(s["_body"], str) else json.dumps(s["_body"])}
            for s in held.values()
        ]
        state.put("series", pl.DataFrame(rows, schema=_SCHEMA))


def _body(series: dict[str, Any]) -> dict[str, Any]:
    body = series["_body"]
    if isinstance(body, str):
        body = json.loads(body)
        series["_body"] = body
    assert isinstance(body, dict)
    return body
