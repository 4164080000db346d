"""A probe series from one source is one alert that grows.

A scanner or an injection tool sends hundreds of requests from one address over minutes
or hours. Each signature fires for it once per window, so a 40-minute sqlmap run is a
dozen alerts of four rules, each telling the analyst a little. Here the first
single-request signature alert (category ``web_attack`` or ``scanner``) about an address
is raised and opens a *series* for that address and category. The signature alerts that
follow about the same address and category belong to the series for as long as each
comes within ``within`` of the one before (and the series is younger than ``at_most``):

- one that brings news is raised at once, as itself: a rule the series had not matched,
  a higher severity, or the first alert after ``remind`` of the series raising nothing (a
  long series shows it goes on). A higher risk alone is not news: a rule's risk grows as
  the same probe repeats;
- one that brings nothing new (the same rules again, inside ``remind``) is folded: counted
  in the series, not raised.

Every alert of a series carries ``details.series``: the id of its first alert, since when,
how many alerts and requests the series holds so far, its rules, the rules this alert
added, and its number in the series (0 for the first). Nothing is held back: an alert is
raised, or folded, in the batch that brings it, so what is raised does not depend on how
the input was cut into batches, and a series evicted or shed from the state loses only
counts.

State: one row per open series in a :class:`~shopwatch.detect.state.KeyedState` the
engine snapshots, evicts and sheds like a detector's; a batch reads and writes only the
rows of the series its alerts belong to.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl
import structlog

from shopwatch.contract import ALERT_SCHEMA, TIMESTAMP
from shopwatch.detect.state import KeyedState

log = structlog.get_logger(__name__)

__all__ = ["CATEGORIES", "SERIES_STATE", "ProbeSeries", "SeriesRules"]

#: The id under which the engine keeps open series (not a rule id: no dot).
SERIES_STATE: Final = "_series"
#: Categories whose signature alerts form series.
CATEGORIES: Final = frozenset({"web_attack", "scanner"})
#: Event ids a series remembers, to count distinct requests.
MAX_IDS: Final = 1000
_SEVERITY: Final = {"low": 0, "medium": 1, "high": 2, "critical": 3}

_SCHEMA: Final[dict[str, pl.DataType]] = {
    "_key": pl.String(),  # address and category
    "_sid": pl.String(),  # the series' first alert
    "_first": TIMESTAMP,
    "_ts": TIMESTAMP,  # the series' last alert, raised or folded
    "_raised": TIMESTAMP,  # the series' last alert raised
    "_n": pl.Int64(),  # alerts, the first included
    "_u": pl.Int64(),  # alerts raised after the first
    "_risk": pl.Int64(),  # the highest risk raised
    "_sev": pl.Int64(),  # the highest severity raised
    "_requests": pl.Int64(),
    "_rules": pl.String(),  # JSON: the rules matched, in order
    "_ids": pl.String(),  # JSON: the most recent event ids (to count distinct requests)
}


@dataclass(frozen=True, slots=True)
class SeriesRules:
    """How long a series stays open and how long it may stay silent."""

    within: timedelta = timedelta(minutes=30)
    remind: timedelta = timedelta(hours=1)
    at_most: timedelta = timedelta(hours=24)


def _details(raw: Any) -> dict[str, Any]:
    """An alert's details as an object (text that is not a JSON object is kept as text)."""
    if not raw:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"text": str(raw)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _rules_of(row: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """The rules an alert stands for: every match of a folded request, or its own."""
    listed = details.get("matches")
    if isinstance(listed, list):
        found = [str(m["rule.id"]) for m in listed if isinstance(m, dict) and m.get("rule.id")]
        if found:
            return found
    return [str(row["rule.id"])]


class ProbeSeries:
    """Folds the repeats of one address's signature alerts, per category, into a series."""

    def __init__(self, signatures: Collection[str], rules: SeriesRules | None = None) -> None:
        self.signatures = frozenset(signatures)
        self.rules = rules or SeriesRules()
        #: Alerts folded into a series instead of raised.
        self.folded = 0

    def new_state(self, max_keys: int) -> KeyedState:
        # A series is over after ``within`` of quiet; what it holds is only counts.
        return KeyedState(("_key",), max_keys=max_keys, max_age=self.rules.within)

    def fold(self, alerts: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """``alerts`` less the repeats folded into a series, the others marked with theirs."""
        if alerts.height == 0:
            return alerts
        address = pl.col("entity").struct.field("source.ip")
        joins = (
            pl.col("rule.id").is_in(list(self.signatures))
            & pl.col("rule.category").is_in(list(CATEGORIES))
            & address.is_not_null()
            & (address != "")
        )
        alerts = alerts.with_columns(
            pl.when(joins)
            .then(pl.concat_str([address, pl.lit("\x1f"), pl.col("rule.category")]))
            .otherwise(None)
            .alias("_key")
        )
        joining = alerts.filter(pl.col("_key").is_not_null())
        if joining.height == 0:
            return alerts.drop("_key")
        table = state.table("series", _SCHEMA)
        touched = joining.select("_key").unique()
        held = {r["_key"]: r for r in table.join(touched, on="_key", how="semi").to_dicts()}
        out: list[dict[str, Any]] = []
        for row in alerts.sort("@timestamp", maintain_order=True).to_dicts():
            key = row.pop("_key")
            if key is None:
                out.append(row)
                continue
            raised = self._one(row, key, held)
            if raised is not None:
                out.append(raised)
        rest = table.join(touched, on="_key", how="anti")
        state.put("series", pl.concat([rest, pl.DataFrame(list(held.values()), schema=_SCHEMA)]))
        if not out:
            return alerts.drop("_key").clear()
        return pl.DataFrame(out, schema=ALERT_SCHEMA).sort(
            ["@timestamp", "rule.id", "alert.id"], maintain_order=True
        )

    # -- one alert ---------------------------------------------------------------------

    def _one(
        self, row: dict[str, Any], key: str, held: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The alert as raised (with its series), or None when it is folded."""
        at: datetime = row["@timestamp"]
        details = _details(row.get("details"))
        rules = _rules_of(row, details)
        ids = [str(i) for i in row.get("event.ids") or []]
        risk = int(row.get("risk_score") or 0)
        severity = _SEVERITY.get(str(row.get("severity")), 0)
        series = held.get(key)
        if series is not None and (
            at - series["_ts"] > self.rules.within or at - series["_first"] > self.rules.at_most
        ):
            series = None
        if series is None:
            series = {
                "_key": key,
                "_sid": row["alert.id"],
                "_first": at,
                "_ts": at,
                "_raised": at,
                "_n": 1,
                "_u": 0,
                "_risk": risk,
                "_sev": severity,
                "_requests": len(ids),
                "_rules": json.dumps(list(dict.fromkeys(rules))),
                "_ids": json.dumps(ids[-MAX_IDS:]),
            }
            held[key] = series
            return self._marked(row, details, series, list(dict.fromkeys(rules)))
        known: list[str] = json.loads(series["_rules"])
        added = [r for r in dict.fromkeys(rules) if r not in known]
        seen: list[str] = json.loads(series["_ids"])
        fresh = [i for i in ids if i not in set(seen)]
        series["_ts"] = max(series["_ts"], at)
        series["_n"] += 1
        series["_requests"] += len(fresh)
        series["_ids"] = json.dumps((seen + fresh)[-MAX_IDS:])
        news = (
            bool(added) or severity > series["_sev"] or at - series["_raised"] >= self.rules.remind
        )
        if not news:
            self.folded += 1
            return None
        series["_rules"] = json.dumps(known + added)
        series["_raised"] = at
        series["_u"] += 1
        series["_risk"] = max(series["_risk"], risk)
        series["_sev"] = max(series["_sev"], severity)
        return self._marked(row, details, series, added)

    @staticmethod
    def _marked(
        row: dict[str, Any], details: dict[str, Any], series: dict[str, Any], added: list[str]
    ) -> dict[str, Any]:
        rules = json.loads(series["_rules"])
        details["series"] = {
            "id": series["_sid"],
            "since": series["_first"].isoformat(),
            "alerts": series["_n"],
            "requests": series["_requests"],
            "rules": rules,
            "new_rules": added,
            "update": series["_u"],
        }
        message = row["message"]
        if series["_u"]:
            minutes = (series["_ts"] - series["_first"]).total_seconds() / 60
            message = (
                f"{message} (probe series since {series['_first']:%H:%M:%S}: "
                f"{series['_n']} alerts, {series['_requests']} requests over {minutes:.0f} min, "
                f"{len(rules)} rules)"
            )
        return {**row, "message": message, "details": json.dumps(details, sort_keys=True)}
