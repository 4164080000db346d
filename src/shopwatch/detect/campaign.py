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

With ``compromised: {where, by, name}`` the campaign also names what it won: events
matching ``where`` (a successful login on a device the account never used) whose ``by``
value (the address) sent the rule's own events (failed logins) close to it (from
``within`` before to :data:`NEAR` after), from ``within`` before the campaign's first
alert on. Their ``name`` values (the accounts)
are listed in ``details.compromised`` of the alert or update that learns them, and each
new one brings an update. A customer who mistypes an address behind a shared address and
then logs in from a phone the account knows is not among them.

State: one row per rule (``campaign``), in the rule's own keyed state, so it is
snapshotted and restored with it; with ``compromised``, the addresses of the rule's events
(``campaign_seen``) and the candidate events (``campaign_hits``) of the last ``within``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts, stable_id
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import CampaignSpec, Detector, parse_duration
from shopwatch.detect.state import KeyedState, shift_time
from shopwatch.errors import ContentError

__all__ = ["MAX_IDS", "MAX_MEMBERS", "CampaignFolder", "CampaignSpec"]

#: Most entities per field a campaign keeps (and an update lists).
MAX_MEMBERS = 500
#: Most event ids an update carries.
MAX_IDS = 1000
#: How soon after a success the address's first failure may come for it to be a break-in.
NEAR = timedelta(minutes=10)
#: Most rows each of the ``compromised`` tables keeps (the most recent).
MAX_SEEN = 100_000

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
    "_compromised": pl.String(),  # JSON: the names the campaign won, in the order learnt
}
_SEEN_SCHEMA: dict[str, pl.DataType] = {"_by": pl.String(), "_first": TIMESTAMP, "_ts": TIMESTAMP}
_HIT_SCHEMA: dict[str, pl.DataType] = {
    "_by": pl.String(),
    "_name": pl.String(),
    "_id": pl.String(),
    "_ts": TIMESTAMP,
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
        won = spec.compromised if spec is not None else None
        self.won = won
        self._seed: Where | None = None
        self._hit: Where | None = None
        if won is not None:
            own = getattr(detector.spec, "where", None)
            if own is None:
                raise ContentError(
                    f"rule {detector.id}: campaign.compromised needs a rule with a where clause "
                    "(the events whose addresses a compromise is looked for from)"
                )
            self._seed = Where(own)
            self._hit = Where(won.where)

    def fold(
        self,
        alerts: pl.DataFrame,
        state: KeyedState,
        now: datetime | None,
        batch: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """This batch's alerts of the rule, folded; plus any update whose hold has passed.

        ``batch`` (the events the rule was given) feeds ``compromised``; without it only the
        events seen before are looked at.
        """
        if not self.enabled:
            return alerts
        if self.won is not None and batch is not None:
            self._remember(batch, state)
        held = state.table("campaign", _SCHEMA)
        camp = self._load(held)
        out: list[dict[str, Any]] = []
        for row in alerts.sort("@timestamp").iter_rows(named=True):
            at: datetime = row["@timestamp"]
            if camp is not None and (
                at > shift_time(camp["_ts"], self.within)
                or at > shift_time(camp["_first"], self.at_most)
            ):
                self._compromise(camp, state, at)  # what it won before it ended
                if camp["_pending"]:
                    out.append(self._update(camp, shift_time(camp["_emit"], self.hold)))
                camp = None
            if camp is None:
                camp = self._start(row, state)
                out.append(self._first(row, camp))
                continue
            if not self._join(camp, row):
                # Full: a new campaign, so that no entity goes unnamed behind a large one.
                self._compromise(camp, state, at)
                if camp["_pending"]:
                    out.append(self._update(camp, at))
                camp = self._start(row, state)
                out.append(self._first(row, camp))
                continue
            self._compromise(camp, state, at)
            if camp["_pending"] and at >= shift_time(camp["_emit"], self.hold):
                out.append(self._update(camp, at))
        if camp is not None and now is not None:
            self._compromise(camp, state, now)  # up to the clock, or to the campaign's end
        if self.won is not None:
            self._trim(state, camp, now)
        if camp is not None and camp["_pending"] and now is not None:
            due = shift_time(camp["_emit"], self.hold)
            if now >= due:
                # never dated before the break-in it reports
                won_at = camp.get("_won_at") or due
                out.append(self._update(camp, max(due, camp["_ts"], won_at)))
        self._save(state, camp)
        if not out:
            return empty_alerts()
        return pl.DataFrame(out, schema=ALERT_SCHEMA).sort("@timestamp")

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The update still waiting for its hold, raised now (the end of a replay)."""
        if not self.enabled:
            return empty_alerts()
        camp = self._load(state.table("campaign", _SCHEMA))
        if camp is not None and self.won is not None:  # the input has ended: all it won
            self._compromise(camp, state, shift_time(camp["_ts"], self.within))
        if camp is None or not camp["_pending"]:
            return empty_alerts()
        row = self._update(camp, max(camp["_ts"], camp["_emit"]))
        self._save(state, camp)
        return pl.DataFrame([row], schema=ALERT_SCHEMA)

    # -- what a campaign won ------------------------------------------------------------

    def _remember(self, batch: pl.DataFrame, state: KeyedState) -> None:
        """Keep the addresses of the rule's events and the candidate events of this batch."""
        assert self.won is not None and self._seed is not None and self._hit is not None
        by, name = self.won.by, self.won.name
        if "@timestamp" not in batch.columns or by not in batch.columns:
            return
        seen = _seen(state)
        hits = state.table("campaign_hits", _HIT_SCHEMA)
        seed = self._seed.for_batch(batch.columns)
        if seed is not None:
            new = (
                batch.lazy()
                .filter(seed & pl.col(by).is_not_null())
                .select(
                    pl.col(by).cast(pl.String).alias("_by"),
                    pl.col("@timestamp").alias("_first"),
                    pl.col("@timestamp").alias("_ts"),
                )
                .collect()
            )
            if new.height:
                seen = (
                    pl.concat([seen, new], how="vertical_relaxed")
                    .group_by("_by")
                    .agg(pl.col("_first").min(), pl.col("_ts").max())
                )
        hit = self._hit.for_batch(batch.columns)
        if hit is not None and name in batch.columns:
            ids = pl.col("event.id") if "event.id" in batch.columns else pl.lit(None, pl.String)
            new = (
                batch.lazy()
                .filter(hit & pl.col(by).is_not_null() & pl.col(name).is_not_null())
                .select(
                    pl.col(by).cast(pl.String).alias("_by"),
                    pl.col(name).cast(pl.String).alias("_name"),
                    ids.cast(pl.String).alias("_id"),
                    pl.col("@timestamp").alias("_ts"),
                )
                .collect()
            )
            if new.height:
                hits = pl.concat([hits, new], how="vertical_relaxed")
        state.put("campaign_seen", seen.sort("_ts").tail(MAX_SEEN))
        state.put("campaign_hits", hits.sort("_ts").tail(MAX_SEEN))

    def _trim(self, state: KeyedState, camp: dict[str, Any] | None, now: datetime | None) -> None:
        """Forget what no campaign can still claim: older than ``within`` before the open
        campaign's start, or (none open) before the clock."""
        start = camp["_first"] if camp is not None else now
        if start is None:
            return
        cut = shift_time(start, -self.within)
        for name, schema in (("campaign_seen", _SEEN_SCHEMA), ("campaign_hits", _HIT_SCHEMA)):
            frame = state.table(name, schema)
            if frame.height:
                state.put(name, frame.filter(pl.col("_ts") >= cut))

    def _compromise(self, camp: dict[str, Any], state: KeyedState, at: datetime) -> None:
        """Name what the open campaign won from its start (less ``within``) up to ``at``."""
        if self.won is None:
            return
        hits = state.table("campaign_hits", _HIT_SCHEMA)
        if hits.height == 0:
            return
        since = shift_time(camp["_first"], -self.within)
        until = min(at, shift_time(camp["_ts"], self.within))  # quiet that long: over
        # A break-in needs its address to have sent the campaign's failures close to it:
        # within ``within`` before the success or :data:`NEAR` after it (an exit is used
        # for a few tries in a row); a customer behind an address a bot uses an hour later
        # is not named.
        won = (
            hits.filter(pl.col("_ts").is_between(since, until))
            .join(_seen(state).rename({"_ts": "_last"}), on="_by", how="inner")
            .filter(
                (pl.col("_first") <= pl.col("_ts") + NEAR)
                & (pl.col("_last") >= pl.col("_ts") - self.within)
                & (pl.col("_first") <= at)
            )
            .select(list(_HIT_SCHEMA))
            .sort("_ts", "_id", nulls_last=True)
        )
        have = set(camp["_compromised"])
        fresh = won.filter(~pl.col("_name").is_in(list(have)))
        if fresh.height == 0:
            return
        room = MAX_MEMBERS - len(camp["_compromised"])
        first = fresh.unique("_name", keep="first", maintain_order=True).head(max(room, 0))
        if first.height == 0:
            return
        camp["_compromised"].extend(first["_name"].to_list())
        newest = first["_ts"].max()
        if isinstance(newest, datetime):
            camp["_won_at"] = max(newest, camp.get("_won_at") or newest)
        ids = [i for i in first["_id"].to_list() if i]
        camp["_ids"] = (camp["_ids"] + ids)[-MAX_IDS:]
        camp["_pending"] = True

    def _won_text(self, camp: dict[str, Any]) -> str:
        n = len(camp["_compromised"])
        return f"; {n} {self.won.name} compromised" if self.won is not None and n else ""

    def _won(self, camp: dict[str, Any], details: dict[str, Any]) -> None:
        if self.won is not None and camp["_compromised"]:
            details["compromised"] = {self.won.name: list(camp["_compromised"])}

    # -- the campaign record -----------------------------------------------------------

    @staticmethod
    def _load(held: pl.DataFrame) -> dict[str, Any] | None:
        if held.height == 0:
            return None
        camp = held.row(0, named=True)
        camp["_members"] = {k: list(v) for k, v in json.loads(camp["_members"]).items()}
        camp["_ids"] = list(json.loads(camp["_ids"]))
        camp["_latest"] = json.loads(camp["_latest"])
        camp["_compromised"] = list(json.loads(camp.get("_compromised") or "[]"))
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
            "_compromised": json.dumps(camp["_compromised"]),
        }
        state.put("campaign", pl.DataFrame([{k: row[k] for k in _SCHEMA}], schema=_SCHEMA))

    def _start(self, row: dict[str, Any], state: KeyedState) -> dict[str, Any]:
        members = {f: sorted(set(v)) for f, v in _named(row).items()}
        camp = {
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
            "_compromised": [],
        }
        self._compromise(camp, state, row["@timestamp"])
        camp["_pending"] = False  # the first alert says it
        return camp

    def _first(self, row: dict[str, Any], camp: dict[str, Any]) -> dict[str, Any]:
        details = json.loads(row["details"]) if row["details"] else {}
        details["campaign"] = {"id": row["alert.id"], "since": row["@timestamp"].isoformat()}
        self._won(camp, details)
        ids = list(row["event.ids"] or [])
        extra = [i for i in camp["_ids"] if i not in set(ids)]
        return {
            **row,
            "event.ids": (ids + extra)[-MAX_IDS:],
            "details": json.dumps(details, sort_keys=True),
        }

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
        self._won(camp, details)
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
            f"{camp['_first']:%H:%M:%S}: {camp['_n']} alerts, {sizes}{self._won_text(camp)})",
            "details": json.dumps(details, sort_keys=True),
        }


def _seen(state: KeyedState) -> pl.DataFrame:
    """The addresses of the rule's events, ``_first`` filled where an older state lacks it."""
    seen = state.table("campaign_seen", _SEEN_SCHEMA)
    if "_first" not in seen.columns:
        seen = seen.with_columns(pl.col("_ts").alias("_first"))
    return seen.select(list(_SEEN_SCHEMA))


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
