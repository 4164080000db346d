"""One alert per campaign: a rule's alerts for many entities folded into one, updated as it grows.

A rule keyed by address or account fires once per key. A distributed attack is then a
few hundred alerts of one rule within minutes, one per proxy exit, each telling the
analyst less than the whole. A rule with ``campaign: {within, hold}`` raises its first
alert as before; the rule's alerts that follow within ``within`` of the previous one
(whatever their key) join that alert's campaign instead of standing alone. When they
bring entities the campaign had not named, an *update* is raised, at most once per
``hold`` of event time: a new alert of the same rule whose ``details.members`` lists every
entity of the campaign so far and whose ``details.campaign`` says which campaign it
updates, since when, and how many alerts it folded. Its ``event.ids`` are the campaign's
evidence (in order, the most recent :data:`MAX_IDS`). A campaign ends when the rule
has been quiet for ``within`` or has lasted ``at_most``; the next alert starts another. An
alert of the campaign with a higher risk than any raised for it (an address that keeps
guessing) brings an update too, at that risk. A campaign that names
:data:`MAX_MEMBERS` entities of a field is full: the next new entity starts another, so
that a large decoy cannot hide the attacks that follow it.

An update waits for the first batch whose engine clock has passed its hold, or for the
end of a replay (:meth:`CampaignFolder.flush`); which of the members that came in the
meantime it lists can depend on how the events were cut into batches, the first alert of
a campaign cannot.

State: one row per rule (``campaign``), in the rule's own keyed state, so it is
snapshotted and restored with it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts, stable_id
from shopwatch.detect.registry import CampaignSpec, Detector, parse_duration
from shopwatch.detect.state import KeyedState, shift_time

__all__ = ["MAX_IDS", "MAX_MEMBERS", "CampaignFolder", "CampaignSpec"]

#: Most entities per field a campaign keeps (and an update lists).
MAX_MEMBERS = 500
#: Most event ids an update carries.
MAX_IDS = 1000

_SCHEMA: dict[str, pl.DataType] = {
    "_cid": pl.String(),  # the campaign's first alert
    "_first": TIMESTAMP,
    "_ts": TIMESTAMP,  # the rule's last alert in the campaign
    "_emit": TIMESTAMP,  # the campaign's last alert or update raised
    "_n": pl.Int64(),  # alerts folded
    "_risk": pl.Int64(),  # the highest risk raised for the campaign so far
    "_u": pl.Int64(),  # updates raised
    "_pending": pl.Boolean(),
    "_members": pl.String(),  # JSON: field -> entities
    "_ids": pl.String(),  # JSON: event ids, oldest first (the most recent MAX_IDS)
    "_latest": pl.String(),  # JSON: the last folded alert (what an update is made from)
}


def _named(row: dict[str, Any]) -> dict[str, list[str]]:
    """The entities an alert row names: its entity fields and its listed members."""
    out: dict[str, list[str]] = {}
    for field, value in (row.get("entity") or {}).items():
        if value is not None:
            out.setdefault(field, []).append(str(value))
    details = json.loads(row["details"]) if row.get("details") else {}
    for field, values in (details.get("members") or {}).items():
        out.setdefault(field, []).extend(str(v) for v in values)
    return out


class CampaignFolder:
    """Folds one rule's alerts into campaigns (a no-op for rules without ``campaign``)."""

    def __init__(self, detector: Detector) -> None:
        spec = getattr(detector.spec, "campaign", None)
        self.rule = detector.id
        self.enabled = spec is not None
        self.within = parse_duration(spec.within) if spec is not None else timedelta(0)
        self.hold = parse_duration(spec.hold) if spec is not None else timedelta(0)
        self.at_most = parse_duration(spec.at_most) if spec is not None else timedelta(0)
        #: How long the campaign record must outlive the rule's last alert.
        self.lifetime = self.within + self.hold

    def fold(self, alerts: pl.DataFrame, state: KeyedState, now: datetime | None) -> pl.DataFrame:
        """This batch's alerts of the rule, folded; plus any update whose hold has passed."""
        if not self.enabled:
            return alerts
        held = state.table("campaign", _SCHEMA)
        camp = self._load(held)
        out: list[dict[str, Any]] = []
        for row in alerts.sort("@timestamp").iter_rows(named=True):
            at: datetime = row["@timestamp"]
            if camp is not None and (
                at > shift_time(camp["_ts"], self.within)
                or at > shift_time(camp["_first"], self.at_most)
            ):
                if camp["_pending"]:
                    out.append(self._update(camp, shift_time(camp["_emit"], self.hold)))
                camp = None
            if camp is None:
                camp = self._start(row)
                out.append(self._first(row))
                continue
            if not self._join(camp, row):
                # Full: a new campaign, so that no entity goes unnamed behind a large one.
                if camp["_pending"]:
                    out.append(self._update(camp, at))
                camp = self._start(row)
                out.append(self._first(row))
                continue
            if camp["_pending"] and at >= shift_time(camp["_emit"], self.hold):
                out.append(self._update(camp, at))
        if camp is not None and camp["_pending"] and now is not None:
            due = shift_time(camp["_emit"], self.hold)
            if now >= due:
                out.append(self._update(camp, max(due, camp["_ts"])))
        self._save(state, camp)
        if not out:
            return empty_alerts()
        return pl.DataFrame(out, schema=ALERT_SCHEMA).sort("@timestamp")

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The update still waiting for its hold, raised now (the end of a replay)."""
        if not self.enabled:
            return empty_alerts()
        camp = self._load(state.table("campaign", _SCHEMA))
        if camp is None or not camp["_pending"]:
            return empty_alerts()
        row = self._update(camp, max(camp["_ts"], camp["_emit"]))
        self._save(state, camp)
        return pl.DataFrame([row], schema=ALERT_SCHEMA)

    # -- the campaign record -----------------------------------------------------------

    @staticmethod
    def _load(held: pl.DataFrame) -> dict[str, Any] | None:
        if held.height == 0:
            return None
        camp = held.row(0, named=True)
        camp["_members"] = {k: list(v) for k, v in json.loads(camp["_members"]).items()}
        camp["_ids"] = list(json.loads(camp["_ids"]))
        camp["_latest"] = json.loads(camp["_latest"])
        return camp

    @staticmethod
    def _save(state: KeyedState, camp: dict[str, Any] | None) -> None:
        if camp is None:
            state.put("campaign", pl.DataFrame(schema=_SCHEMA))
            return
        row = {
            **camp,
            "_members": json.dumps(camp["_members"], sort_keys=True),
            "_ids": json.dumps(camp["_ids"]),
            "_latest": json.dumps(camp["_latest"], default=str),
        }
        state.put("campaign", pl.DataFrame([row], schema=_SCHEMA))

    def _start(self, row: dict[str, Any]) -> dict[str, Any]:
        members = {f: sorted(set(v)) for f, v in _named(row).items()}
        return {
            "_cid": row["alert.id"],
            "_first": row["@timestamp"],
            "_ts": row["@timestamp"],
            "_emit": row["@timestamp"],
            "_n": 1,
            "_risk": int(row["risk_score"]),
            "_u": 0,
            "_pending": False,
            "_members": members,
            "_ids": list(row["event.ids"] or [])[-MAX_IDS:],
            "_latest": _portable(row),
        }

    def _first(self, row: dict[str, Any]) -> dict[str, Any]:
        details = json.loads(row["details"]) if row["details"] else {}
        details["campaign"] = {"id": row["alert.id"], "since": row["@timestamp"].isoformat()}
        return {**row, "details": json.dumps(details, sort_keys=True)}

    @staticmethod
    def _join(camp: dict[str, Any], row: dict[str, Any]) -> bool:
        """Fold ``row`` into ``camp``; False (nothing changed) when a new entity has no room."""
        named = _named(row)
        for field, values in named.items():
            have = set(camp["_members"].get(field, []))
            if len(have) + len(set(values) - have) > MAX_MEMBERS:
                return False
        camp["_n"] += 1
        if int(row["risk_score"]) > camp["_risk"]:  # an attack that grows is news too
            camp["_pending"] = True
        camp["_ts"] = max(camp["_ts"], row["@timestamp"])
        camp["_ids"] = (camp["_ids"] + list(row["event.ids"] or []))[-MAX_IDS:]
        camp["_latest"] = _portable(row)
        for field, values in named.items():
            have = camp["_members"].setdefault(field, [])
            known = set(have)
            new = [v for v in dict.fromkeys(values) if v not in known]
            if new:
                have.extend(new)
                camp["_pending"] = True
        return True

    def _update(self, camp: dict[str, Any], at: datetime) -> dict[str, Any]:
        latest = camp["_latest"]
        camp["_risk"] = max(camp["_risk"], int(latest["risk_score"]))
        camp["_u"] += 1
        camp["_emit"] = at
        camp["_pending"] = False
        members = {f: sorted(v) for f, v in camp["_members"].items() if v}
        sizes = ", ".join(f"{len(v)} {f}" for f, v in members.items())
        details = dict(latest["details"])
        details["members"] = members
        details["campaign"] = {
            "id": camp["_cid"],
            "since": camp["_first"].isoformat(),
            "alerts": camp["_n"],
            "update": camp["_u"],
        }
        return {
            "alert.id": stable_id(self.rule, camp["_cid"], str(camp["_u"])),
            "@timestamp": at,
            "rule.id": latest["rule.id"],
            "rule.name": latest["rule.name"],
            "rule.category": latest["rule.category"],
            "severity": latest["severity"],
            "risk_score": camp["_risk"],
            "entity": {f: latest["entity"].get(f) for f in ENTITY_FIELDS},
            "event.ids": list(camp["_ids"]),
            "threat.technique.id": latest["threat.technique.id"],
            "message": f"{latest['message']} (one campaign since "
            f"{camp['_first']:%H:%M:%S}: {camp['_n']} alerts, {sizes})",
            "details": json.dumps(details, sort_keys=True),
        }


def _portable(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row as JSON-ready data (details parsed, time dropped)."""
    return {
        "rule.id": row["rule.id"],
        "rule.name": row["rule.name"],
        "rule.category": row["rule.category"],
        "severity": row["severity"],
        "risk_score": row["risk_score"],
        "entity": dict(row["entity"] or {}),
        "threat.technique.id": row["threat.technique.id"],
        "message": row["message"],
        "details": json.loads(row["details"]) if row["details"] else {},
    }
