"""Kind ``form_submit``: an account form (sign-up, login) submitted by a machine.

What such bots look like in the wild (``hackers-access.log`` of the shared datasets, 520
sign-up and login bots on a Plone site; the timing traps of form anti-spam plugins): they
fetch the form and post it a second or two later, or post it without fetching it at all,
and they never load the page's style sheets, scripts or images. A person needs many
seconds to fill a sign-up form, and their browser loads the page's assets (unless they are
cached: so the asset condition is one of two, never the only one).

A rule names its forms by path (``form``, a regex, with the paths of the platforms it
covers: content, not code) and fires on a ``POST`` to such a path when, for the same
client (``key``, by default ``source.ip``):

- the form was fetched (``GET`` of a matching path) at most ``max_fill_s`` before, or,
  with ``direct_posts`` (default), not at all within ``within`` (a post without a fetch:
  but so do mobile apps and login boxes on every page, so a login rule leaves it off); and
- with ``without_assets`` (default), the client requested no static asset (``asset``
  regex over the path) within ``within`` before the post; and
- with ``only_forms``, it requested no other page either within ``within`` (it landed on
  the form directly: what a login form posted by an autofilling person who browsed to it
  does not look like).

With ``hold``, a post that passes is judged again ``hold`` later: a client that opened a
page in the meantime, more than :data:`FOLLOW_S` after the post (not a form, not an asset,
not the redirect a login answers with: the password-reset page, a product) is a person whose browser had the form's assets cached and whose password
manager filled it in, and raises nothing; the others raise their alert then, at the post's
time plus ``hold`` (at the end of a replay, those whose hold the input outlasted; a post
less than ``hold`` before the input's end is not judged). Login bots post and leave, or post again:
of the 439 form-posting addresses of ``hackers-access.log``, one opened a page within five
minutes of its first post.

A client fires once, then stays quiet for ``suppress`` (default ``within``) of event time.
The alert's time, id and evidence depend only on the events, not on how they were cut
into batches (a post is judged against the client's state before it, kept per client).

State: ``seen`` (per client: the last form fetch, the last asset, the last other page and
the last alert, with ``_ts`` its last activity); with ``hold``, ``held`` (the alerts that
wait, with ``_due``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from pydantic import Field, field_validator

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts, stable_id
from shopwatch.detect.conditions import ASSET_PATH, Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    human_duration,
    kind,
    parse_duration,
    render_message,
)
from shopwatch.detect.state import KeyedState, split_by_keys

__all__ = ["FormSubmitDetector", "FormSubmitSpec"]


_KINDS = {"get": 1, "post": 2, "asset": 3, "page": 4}
#: With ``hold``, pages this soon after the post do not count: the redirect a login answers
#: with is followed at once by bots too (the account page, its payment methods).
FOLLOW_S = 5.0


class FormSubmitSpec(RuleSpec):
    """A ``form_submit`` rule."""

    form: str = Field(min_length=1)
    where: WhereClause = Field(default_factory=dict)
    key: str = "source.ip"
    max_fill_s: float = Field(default=5.0, gt=0)
    within: Duration = "30m"
    suppress: Duration | None = None
    without_assets: bool = True
    only_forms: bool = False
    direct_posts: bool = True
    asset: str = ASSET_PATH
    hold: Duration | None = None
    message: str | None = None

    @field_validator("form", "asset")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid regex: {err}") from err
        return value


@kind("form_submit")
class FormSubmitDetector:
    """Account forms posted faster than a person fills them, by clients that load no page."""

    Spec = FormSubmitSpec

    def __init__(self, spec: FormSubmitSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = (spec.key,)
        self.within = parse_duration(spec.within)
        self.suppress = parse_duration(spec.suppress) if spec.suppress else self.within
        self.fill = timedelta(seconds=spec.max_fill_s)
        self.hold = parse_duration(spec.hold) if spec.hold else None
        #: Held posts dropped at the end of a replay, too close to its end to judge.
        self.undecided = 0
        #: Event-time history this rule reads: what came before a post, and the last alert.
        self.horizon = max(self.within, self.suppress) + (self.hold or timedelta(0))
        self.single_event = False  # a fetch, then a post
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            self.where.fields
            | {spec.key, "@timestamp", "event.id", "url.path", "http.request.method"}
        )
        self._seen_schema: dict[str, pl.DataType] = {
            spec.key: pl.String(),
            "_get": TIMESTAMP,
            "_get_id": pl.String(),
            "_asset": TIMESTAMP,
            "_page": TIMESTAMP,
            "_fired": TIMESTAMP,
            "_ts": TIMESTAMP,
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for the form posts of this batch that a machine made."""
        found, rows = self._posts(batch, state)
        if self.hold is None:
            return found
        return self._held(found, rows, batch, state)

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The end of a replay: the held alerts whose hold the input outlasted are raised.

        A post closer to the input's end than ``hold`` cannot be judged (what the client did
        next is not in the input): it is dropped and counted in :attr:`undecided`, logged by
        the engine, rather than raised on a customer whose next page the input cut off.
        """
        if self.hold is None:
            return empty_alerts()
        held = state.table("held", self._held_schema())
        state.put("held", held.clear())
        if state.clock is None:
            return self._release(held)
        due = held.filter(pl.col("_due") <= state.clock)
        self.undecided += held.height - due.height
        return self._release(due)

    # -- held alerts ---------------------------------------------------------------------

    def _held_schema(self) -> dict[str, pl.DataType]:
        return {**ALERT_SCHEMA, self.spec.key: pl.String(), "_due": TIMESTAMP, "_ts": TIMESTAMP}

    def _held(
        self, found: pl.DataFrame, rows: pl.DataFrame | None, batch: pl.DataFrame, state: KeyedState
    ) -> pl.DataFrame:
        """Hold this batch's alerts; drop those whose client opened a page; raise the due."""
        assert self.hold is not None
        key = self.spec.key
        schema = self._held_schema()
        held = state.table("held", schema)
        if found.height:
            fresh = found.with_columns(
                pl.col("entity").struct.field(key).alias(key)
                if key in ENTITY_FIELDS
                else pl.col("details")
                .map_elements(lambda d: json.loads(d)["keys"][key], return_dtype=pl.String)
                .alias(key),
                (pl.col("@timestamp") + self.hold).alias("_due"),
                pl.col("@timestamp").alias("_ts"),
            )
            held = pl.concat([held, fresh.select(list(schema)).cast(pl.Schema(schema))])
        if held.height == 0:
            return empty_alerts()
        if rows is not None and rows.height:
            pages = rows.filter(pl.col("_k") == _KINDS["page"]).select(
                key, pl.col("@timestamp").alias("_page")
            )
            if pages.height:
                follow = timedelta(seconds=FOLLOW_S)
                excused = held.join(pages, on=key, how="inner").filter(
                    (pl.col("_page") > pl.col("_ts") + follow) & (pl.col("_page") <= pl.col("_due"))
                )
                person = excused.select("alert.id").unique()
                if person.height:
                    held = held.join(person, on="alert.id", how="anti")
                    self._unfire(state, excused.select(key, "_ts").unique())
        newest = batch["@timestamp"].max() if "@timestamp" in batch.columns else None
        now = state.clock if state.clock is not None else newest
        if not isinstance(now, datetime):
            state.put("held", held)
            return empty_alerts()
        due = held.filter(pl.col("_due") <= now)
        state.put("held", held.filter(pl.col("_due") > now))
        return self._release(due)

    def _unfire(self, state: KeyedState, excused: pl.DataFrame) -> None:
        """A dropped alert does not keep its client quiet: forget it as the last alert."""
        key = self.spec.key
        seen = state.table("seen", self._seen_schema)
        if seen.height == 0:
            return
        marked = seen.join(excused.rename({"_ts": "_excused"}), on=key, how="left").with_columns(
            pl.when(pl.col("_fired") == pl.col("_excused"))
            .then(pl.lit(None, TIMESTAMP))
            .otherwise(pl.col("_fired"))
            .alias("_fired")
        )
        state.put("seen", marked.select(list(self._seen_schema)))

    def _release(self, held: pl.DataFrame) -> pl.DataFrame:
        """Held alerts raised at their due time, saying that the client opened no page."""
        if held.height == 0:
            return empty_alerts()
        assert self.hold is not None
        note = f" and opened no page in the {human_duration(self.hold)} after"
        return (
            held.with_columns(
                pl.col("_due").alias("@timestamp"),
                (pl.col("message") + pl.lit(note)).alias("message"),
            )
            .select(list(ALERT_SCHEMA))
            .sort(["@timestamp", "alert.id"])
        )

    # -- posts ---------------------------------------------------------------------------

    def _posts(
        self, batch: pl.DataFrame, state: KeyedState
    ) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """This batch's alerts as they stand at their posts, and the rows they were read from."""
        spec = self.spec
        key = spec.key
        required = {"@timestamp", "url.path", "http.request.method", key}
        if batch.height == 0 or required - set(batch.columns):
            return empty_alerts(), None
        where = self.where.for_batch(batch.columns)
        if where is None:
            return empty_alerts(), None
        method = pl.col("http.request.method").str.to_uppercase()
        path = pl.col("url.path")
        is_form = path.str.contains(spec.form).fill_null(False)
        kind_expr = (
            pl.when(is_form & (method == "POST"))
            .then(pl.lit(_KINDS["post"]))
            .when(is_form & (method == "GET"))
            .then(pl.lit(_KINDS["get"]))
            .when(is_form)
            .then(pl.lit(0))
            .when(path.str.contains(spec.asset).fill_null(False))
            .then(pl.lit(_KINDS["asset"]))
            .otherwise(pl.lit(_KINDS["page"]))
        )
        event_id = pl.col("event.id") if "event.id" in batch.columns else pl.lit(None, pl.String)
        rows = (
            batch.lazy()
            .filter(where & pl.col(key).is_not_null() & pl.col("@timestamp").is_not_null())
            .select(
                pl.col(key).cast(pl.String),
                pl.col("@timestamp"),
                event_id.cast(pl.String).alias("event.id"),
                path.alias("_path"),
                kind_expr.alias("_k"),
            )
            .filter(pl.col("_k") > 0)
            .collect()
        )
        if rows.height == 0:
            return empty_alerts(), None
        every = rows
        seen = state.table("seen", self._seen_schema)
        # Only clients that post a form in this batch need their rows in order; the others
        # (nearly all traffic) only update what the state knows of them, by one group-by.
        posting = rows.filter(pl.col("_k") == _KINDS["post"]).select(key).unique()
        quiet = self._quiet_latest(rows.join(posting, on=key, how="anti"), seen, key)
        rows = rows.join(posting, on=key, how="semi")
        if rows.height == 0:
            self._store(state, seen, quiet, key)
            return empty_alerts(), every
        # Each client's rows in time order, after a row that carries what the state knew.
        prior = split_by_keys(seen, rows.select(key).unique(), [key])[0].select(
            key,
            pl.col("_ts").alias("@timestamp"),
            pl.lit(None, pl.String).alias("event.id"),
            pl.lit(None, pl.String).alias("_path"),
            pl.lit(0).alias("_k"),
            "_get",
            "_get_id",
            "_asset",
            "_page",
            "_fired",
        )
        mine = rows.with_columns(
            pl.when(pl.col("_k") == _KINDS["get"]).then(pl.col("@timestamp")).alias("_get"),
            pl.when(pl.col("_k") == _KINDS["get"]).then(pl.col("event.id")).alias("_get_id"),
            pl.when(pl.col("_k") == _KINDS["asset"]).then(pl.col("@timestamp")).alias("_asset"),
            pl.when(pl.col("_k") == _KINDS["page"]).then(pl.col("@timestamp")).alias("_page"),
            pl.lit(None, TIMESTAMP).alias("_fired"),
        )
        timeline = (
            pl.concat(
                [
                    prior.with_columns(pl.lit(0).alias("_o")),
                    mine.with_columns(pl.lit(1).alias("_o")),
                ],
                how="vertical_relaxed",
            )
            .with_row_index("_n")
            .sort([key, "_o", "@timestamp", "_n"])  # the state's row first, then the batch's
        )
        # What was known just before each row: the latest of each kind, carried forward.
        before = {
            name: pl.col(name).forward_fill().shift(1).over(key)
            for name in ("_get", "_get_id", "_asset", "_page", "_fired")
        }
        timeline = timeline.with_columns(
            **{f"{name}_before": expr for name, expr in before.items()}
        )
        at = pl.col("@timestamp")
        fetched = pl.col("_get_before")
        direct = fetched.is_null() | (at - fetched > self.within)
        fast = (at - fetched <= self.fill).fill_null(False)
        if spec.direct_posts:  # (a fetch older than the window is never within max_fill_s)
            fast = fast | direct
        cond = (pl.col("_k") == _KINDS["post"]) & fast
        if spec.without_assets:
            asset = pl.col("_asset_before")
            cond = cond & (asset.is_null() | (at - asset > self.within))
        if spec.only_forms:
            page = pl.col("_page_before")
            cond = cond & (page.is_null() | (at - page > self.within))
        candidates = timeline.filter(cond).select(
            key,
            "@timestamp",
            "event.id",
            "_path",
            "_get_before",
            "_get_id_before",
            "_fired_before",
        )
        chosen, last_fired = self._choose(candidates, key)
        latest = self._posting_latest(timeline, key, last_fired)
        self._store(state, seen, pl.concat([quiet, latest], how="vertical_relaxed"), key)
        if not chosen:
            return empty_alerts(), every
        hits = candidates[chosen].sort(["@timestamp", key], maintain_order=True)
        return self._alert_rows(hits), every

    def _choose(self, candidates: pl.DataFrame, key: str) -> tuple[list[int], dict[str, datetime]]:
        """Candidate rows that fire (one per client per ``suppress``), and each one's last alert."""
        chosen: list[int] = []
        last: dict[str, datetime] = {}
        for i, (client, at, fired) in enumerate(
            candidates.select(key, "@timestamp", "_fired_before").iter_rows()
        ):
            previous = last.get(client, fired)
            if previous is None or at >= previous + self.suppress:
                chosen.append(i)
                last[client] = at
        return chosen, last

    def _quiet_latest(self, rows: pl.DataFrame, seen: pl.DataFrame, key: str) -> pl.DataFrame:
        """The state of clients that posted nothing: their latest fetch, asset and page."""
        at = pl.col("@timestamp")
        batch = rows.group_by(key).agg(
            at.filter(pl.col("_k") == _KINDS["get"]).max().alias("_get_new"),
            pl.col("event.id")
            .filter(pl.col("_k") == _KINDS["get"])
            .sort_by(at.filter(pl.col("_k") == _KINDS["get"]))
            .last()
            .alias("_get_id_new"),
            at.filter(pl.col("_k") == _KINDS["asset"]).max().alias("_asset_new"),
            at.filter(pl.col("_k") == _KINDS["page"]).max().alias("_page_new"),
            at.max().alias("_ts_new"),
        )
        known, _ = split_by_keys(seen, batch.select(key), [key])
        merged = batch.join(known, on=key, how="left")
        newer = pl.col("_get_new").is_not_null() & (
            pl.col("_get").is_null() | (pl.col("_get_new") >= pl.col("_get"))
        )
        return merged.select(
            key,
            pl.max_horizontal("_get", "_get_new").alias("_get"),
            pl.when(newer).then("_get_id_new").otherwise("_get_id").alias("_get_id"),
            pl.max_horizontal("_asset", "_asset_new").alias("_asset"),
            pl.max_horizontal("_page", "_page_new").alias("_page"),
            "_fired",
            pl.max_horizontal("_ts", "_ts_new").alias("_ts"),
        )

    def _store(self, state: KeyedState, seen: pl.DataFrame, latest: pl.DataFrame, key: str) -> None:
        """Replace the touched clients' rows of the state with ``latest``; the others stay."""
        _, others = split_by_keys(seen, latest.select(key), [key])
        state.put(
            "seen",
            pl.concat(
                [others, latest.select(list(self._seen_schema)).cast(pl.Schema(self._seen_schema))],
                how="vertical",
            ),
        )

    def _posting_latest(
        self, timeline: pl.DataFrame, key: str, last_fired: dict[str, datetime]
    ) -> pl.DataFrame:
        """Each posting client's latest fetch, asset, page and alert (its state included)."""
        latest = timeline.group_by(key).agg(
            pl.col("_get").drop_nulls().last(),
            pl.col("_get_id").filter(pl.col("_get").is_not_null()).last(),
            pl.col("_asset").drop_nulls().last(),
            pl.col("_page").drop_nulls().last(),
            pl.col("_fired").drop_nulls().last(),
            pl.col("@timestamp").max().alias("_ts"),
        )
        if last_fired:
            fired = pl.DataFrame(
                {key: list(last_fired), "_new_fired": list(last_fired.values())},
                schema={key: pl.String(), "_new_fired": TIMESTAMP},
            )
            latest = (
                latest.join(fired, on=key, how="left")
                .with_columns(pl.coalesce("_new_fired", "_fired").alias("_fired"))
                .drop("_new_fired")
            )
        return latest

    def _alert_rows(self, hits: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        key = spec.key
        rows: list[dict[str, Any]] = []
        within = human_duration(self.within)
        for ev in hits.iter_rows(named=True):
            fetched = ev["_get_before"]
            direct = fetched is None or ev["@timestamp"] - fetched > self.within
            fill_s = None if direct else (ev["@timestamp"] - fetched).total_seconds()
            how = "without fetching it first" if direct else f"{fill_s:g} s after fetching it"
            values = {key: ev[key], "path": ev["_path"], "how": how, "within": within}
            template = spec.message or (
                f"{spec.title}: {{path}} posted {{how}}, by {{{key}}}"
                + (", which loaded no page assets" if spec.without_assets else "")
            )
            details: dict[str, Any] = {
                "path": ev["_path"],
                "fill_seconds": fill_s,
                "fetched_first": not direct,
                "max_fill_seconds": spec.max_fill_s,
                "without_assets": spec.without_assets,
                "only_forms": spec.only_forms,
                "window": within,
            }
            if self.hold is not None:
                details["hold"] = human_duration(self.hold)
            if key not in ENTITY_FIELDS:
                details["keys"] = {key: ev[key]}
            ids = [i for i in (None if direct else ev["_get_id_before"], ev["event.id"]) if i]
            rows.append(
                {
                    "alert.id": stable_id(spec.id, ev[key], ev["@timestamp"].isoformat()),
                    "@timestamp": ev["@timestamp"],
                    "rule.id": spec.id,
                    "rule.name": spec.title,
                    "rule.category": spec.category,
                    "severity": spec.severity,
                    "risk_score": spec.base_risk,
                    "entity": {f: (ev[key] if f == key else None) for f in ENTITY_FIELDS},
                    "event.ids": ids,
                    "threat.technique.id": spec.technique,
                    "message": render_message(template, values),
                    "details": json.dumps(details, sort_keys=True),
                }
            )
        return pl.DataFrame(rows, schema=ALERT_SCHEMA)
