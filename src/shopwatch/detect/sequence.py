"""Kind ``sequence``: steps that happen to one key, in order (or all of them), within a window.

A rule lists ``steps`` (each a ``where`` clause) and a window ``within``. With ``ordered``
(the default) an alert fires at the event that completes the last step, when every earlier
step happened before it, each after the one before, and the first no longer than ``within``
before the last: a login from a device new to the account, then its e-mail changed, then a
card added. Without ``ordered``, every step must have happened within the window, in any
order (Sigma's ``temporal``; the ordered form is its ``temporal_ordered``).

Per key and step the detector keeps the latest *start* of a chain that has reached that
step: a later start can only make a chain fit the window better, so one time per step is
all it needs, and a batch costs in proportion to its own matching events. Chains are read
in event time; an event later than the events already judged for its key is judged on
arrival (as for every kind). The alert's evidence is the event of each step in the chain
that fired, and ``entity_from`` names fields taken from the first step's event (the address
and device of the suspicious login) into the alert's entity. After an alert the key stays
quiet for ``suppress`` (default: the window).

State: ``chains`` (per key: each step's chain start, event ids and entity values, the time
of the key's last alert, and its last activity).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    human_duration,
    kind,
    parse_duration,
    render_message,
)
from shopwatch.detect.state import EARLIEST, KeyedState, shift_time, split_by_keys

__all__ = ["SequenceDetector", "SequenceSpec", "StepSpec"]


class StepSpec(BaseModel):
    """One step of a sequence: a name for the alert and the events that count as it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    where: WhereClause


class SequenceSpec(RuleSpec):
    """A ``sequence`` rule."""

    group_by: tuple[str, ...] = Field(min_length=1, max_length=4)
    steps: tuple[StepSpec, ...] = Field(min_length=2, max_length=8)
    within: Duration
    ordered: bool = True
    entity_from: tuple[str, ...] = ()
    suppress: Duration | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _entities(self) -> SequenceSpec:
        unknown = [f for f in self.entity_from if f not in ENTITY_FIELDS]
        if unknown:
            raise ValueError(
                f"entity_from names {unknown}, not entity fields ({', '.join(ENTITY_FIELDS)})"
            )
        if "|" in "".join(self.group_by):
            raise ValueError("sequence keys are plain fields (no modifiers)")
        return self


def _s(i: int) -> str:
    return f"_s{i}"


def _ids(i: int) -> str:
    return f"_ids{i}"


def _x(i: int, field: str) -> str:
    return f"_x{i}:{field}"


@kind("sequence")
class SequenceDetector:
    """Per key, the chain of steps within a window (see the module docstring)."""

    Spec = SequenceSpec
    single_event = False

    def __init__(self, spec: SequenceSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = tuple(spec.group_by)
        self.window = parse_duration(spec.within)
        self.suppress = parse_duration(spec.suppress) if spec.suppress else self.window
        self.horizon = self.window + self.suppress
        self.steps = [Where(step.where) for step in spec.steps]
        self.derived = frozenset().union(*(w.derived for w in self.steps))
        extra = [f for f in spec.entity_from if f not in self.keys]
        self.extra = tuple(extra)
        needs = set(self.keys) | set(extra) | {"@timestamp", "event.id"}
        for where in self.steps:
            needs |= set(where.fields)
        self.needs = frozenset(needs)
        n = len(self.steps)
        self._chain_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            **{_s(i): TIMESTAMP for i in range(n)},
            **{_ids(i): pl.String() for i in range(n)},
            **{_x(i, f): pl.String() for i in range(n) for f in self.extra},
            "_fired": TIMESTAMP,
            "_ts": TIMESTAMP,
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for chains completed by an event of this batch."""
        if batch.height == 0 or not set(self.keys) <= set(batch.columns):
            return empty_alerts()
        masks = [w.for_batch(batch.columns) for w in self.steps]
        if all(m is None for m in masks):
            return empty_alerts()
        marks = [
            (m if m is not None else pl.lit(False)).fill_null(False).alias(f"_m{i}")
            for i, m in enumerate(masks)
        ]
        event_id = pl.col("event.id") if "event.id" in batch.columns else pl.lit(None, pl.String)
        new = (
            batch.lazy()
            .select(
                *[pl.col(k).cast(pl.String) for k in self.keys],
                pl.col("@timestamp"),
                event_id.cast(pl.String).alias("event.id"),
                *[
                    (pl.col(f) if f in batch.columns else pl.lit(None)).cast(pl.String).alias(f)
                    for f in self.extra
                ],
                *marks,
            )
            .filter(
                pl.any_horizontal([pl.col(f"_m{i}") for i in range(len(self.steps))])
                & pl.all_horizontal([pl.col(k).is_not_null() for k in self.keys])
                & pl.col("@timestamp").is_not_null()
            )
            .collect()
        )
        if new.height == 0:
            return empty_alerts()
        keys = list(self.keys)
        stored = state.table("chains", self._chain_schema)
        touched = new.select(keys).unique()
        carry, rest = split_by_keys(stored, touched, keys)
        rows = pl.concat(
            [
                carry.with_columns(pl.col("_ts").alias("@timestamp"), pl.lit(True).alias("_carry")),
                new.with_columns(pl.lit(False).alias("_carry")),
            ],
            how="diagonal",
        ).sort(
            [*keys, "_carry", "@timestamp"],
            descending=[*([False] * len(keys)), True, False],
            maintain_order=True,
        )
        chained = self._chain(rows)
        alerts, fired = self._fire(chained)
        carried = self._carry(chained, fired, state.clock)
        state.put("chains", pl.concat([rest, carried], how="vertical"))
        return alerts

    # -- chains ------------------------------------------------------------------------

    def _chain(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Per row, each step's latest chain start up to and including the row."""
        keys = list(self.keys)
        ts = pl.col("@timestamp")
        carry = pl.col("_carry")
        frame = rows.lazy()
        n = len(self.steps)
        for i in range(n):
            step = pl.col(f"_m{i}").fill_null(False) & ~carry
            if not self.spec.ordered or i == 0:
                start = pl.when(step).then(ts)
                ids = pl.when(step).then(pl.col("event.id").fill_null(""))
                xs = {f: pl.when(step).then(pl.col(f)) for f in self.extra}
            else:
                before = pl.col(_s(i - 1)).shift(1).over(keys)
                ok = step & before.is_not_null() & (ts >= before) & (ts - before <= self.window)
                start = pl.when(ok).then(before)
                ids = pl.when(ok).then(
                    pl.concat_str(
                        pl.col(_ids(i - 1)).shift(1).over(keys),
                        pl.col("event.id").fill_null(""),
                        separator=",",
                    )
                )
                xs = {
                    f: pl.when(ok).then(pl.col(_x(i - 1, f)).shift(1).over(keys))
                    for f in self.extra
                }
            raw = f"_raw{i}"
            frame = frame.with_columns(
                pl.when(carry).then(pl.col(_s(i))).otherwise(start).alias(raw),
                pl.when(carry).then(pl.col(_ids(i))).otherwise(ids).alias(f"_rawids{i}"),
                *[
                    pl.when(carry).then(pl.col(_x(i, f))).otherwise(expr).alias(f"_rawx{i}:{f}")
                    for f, expr in xs.items()
                ],
            )
            # The latest start so far (a late event's earlier start never replaces it),
            # and the evidence of the chain that has it.
            frame = frame.with_columns(
                pl.col(raw)
                .fill_null(EARLIEST)
                .cum_max()
                .over(keys)
                .replace(EARLIEST, None)
                .alias(_s(i))
            )
            best = pl.col(raw).is_not_null() & (pl.col(raw) == pl.col(_s(i)))
            frame = frame.with_columns(
                pl.when(best).then(pl.col(f"_rawids{i}")).forward_fill().over(keys).alias(_ids(i)),
                *[
                    pl.when(best)
                    .then(pl.col(f"_rawx{i}:{f}"))
                    .forward_fill()
                    .over(keys)
                    .alias(_x(i, f))
                    for f in xs
                ],
            )
        last = n - 1
        if self.spec.ordered:
            done = pl.col(f"_raw{last}").is_not_null() & ~carry
            began = pl.col(f"_raw{last}")
        else:
            began = pl.min_horizontal([pl.col(_s(i)) for i in range(n)])
            present = pl.all_horizontal([pl.col(_s(i)).is_not_null() for i in range(n)])
            touched = pl.any_horizontal([pl.col(f"_m{i}") for i in range(n)])
            done = present & touched & ~carry & (ts - began <= self.window)
        return (
            frame.with_columns(done.alias("_done"), began.alias("_began"))
            .with_row_index("_i")
            .collect()
        )

    def _fire(self, chained: pl.DataFrame) -> tuple[pl.DataFrame, dict[tuple[Any, ...], datetime]]:
        """Alert rows at completed chains, each key quiet for ``suppress`` after an alert."""
        keys = list(self.keys)
        last_fired: dict[tuple[Any, ...], datetime] = {
            tuple(row[:-1]): row[-1]
            for row in chained.filter(pl.col("_carry") & pl.col("_fired").is_not_null())
            .select(*keys, "_fired")
            .iter_rows()
        }
        done = chained.filter(pl.col("_done"))
        if done.height == 0:
            return empty_alerts(), last_fired
        rows: list[dict[str, Any]] = []
        spec = self.spec
        n = len(self.steps)
        for ev in done.iter_rows(named=True):
            key = tuple(ev[k] for k in keys)
            at: datetime = ev["@timestamp"]
            previous = last_fired.get(key)
            if previous is not None and at < shift_time(previous, self.suppress):
                continue
            last_fired[key] = at
            rows.append(self._alert(ev, key, at, n, spec))
        if not rows:
            return empty_alerts(), last_fired
        return pl.DataFrame(rows, schema=ALERT_SCHEMA).sort("@timestamp"), last_fired

    def _alert(
        self, ev: dict[str, Any], key: tuple[Any, ...], at: datetime, n: int, spec: SequenceSpec
    ) -> dict[str, Any]:
        if spec.ordered:
            ids = [i for i in str(ev[_ids(n - 1)] or "").split(",") if i]
            firsts = {f: ev[_x(n - 1, f)] for f in self.extra}
        else:
            ids = sorted({i for s in range(n) for i in str(ev[_ids(s)] or "").split(",") if i})
            starter = min(range(n), key=lambda s: ev[_s(s)])
            firsts = {f: ev[_x(starter, f)] for f in self.extra}
        key_values = dict(zip(self.keys, key, strict=True))
        entity = {**firsts, **key_values}
        began: datetime = ev["_began"]
        within = human_duration(self.window)
        steps = [s.name for s in spec.steps]
        values = {
            **key_values,
            **{f: v for f, v in firsts.items() if v is not None},
            "steps": " → ".join(steps) if spec.ordered else ", ".join(steps),
            "within": within,
            "span": human_duration(at - began) if at > began else "0s",
        }
        template = spec.message or (
            f"{spec.title}: {{steps}} within {{span}} for "
            + ", ".join(f"{k} {{{k}}}" for k in self.keys)
        )
        details: dict[str, Any] = {
            "steps": steps,
            "ordered": spec.ordered,
            "window": within,
            "started": began.isoformat(),
        }
        extra_keys = {k: v for k, v in key_values.items() if k not in ENTITY_FIELDS}
        if extra_keys:
            details["keys"] = extra_keys
        return alert_record(
            spec,
            at=at,
            key=key,
            entity=entity,
            event_ids=ids,
            message=render_message(template, values),
            details=details,
        )

    def _carry(
        self,
        chained: pl.DataFrame,
        fired: dict[tuple[Any, ...], datetime],
        clock: datetime | None,
    ) -> pl.DataFrame:
        """Per key, what the next batch needs: live chain starts and the last alert."""
        keys = list(self.keys)
        n = len(self.steps)
        last = chained.group_by(keys, maintain_order=True).agg(
            *[
                pl.col(c).last()
                for c in self._chain_schema
                if c not in keys and c != "_fired" and c != "_ts"
            ],
            pl.col("@timestamp").max().alias("_ts"),
        )
        if fired:
            fired_frame = pl.DataFrame(
                [(*k, v) for k, v in fired.items()],
                schema={**{k: pl.String() for k in keys}, "_fired": TIMESTAMP},
                orient="row",
            )
            last = last.join(fired_frame, on=keys, how="left")
        else:
            last = last.with_columns(pl.lit(None, TIMESTAMP).alias("_fired"))
        # A chain that started longer than a window ago can complete nothing more.
        # Against the engine's clock too: one forged far-future step must not expire the
        # key's live chains.
        newest = pl.col("_ts") if clock is None else pl.min_horizontal("_ts", pl.lit(clock))
        expired = newest - self.window
        last = last.with_columns(
            *[pl.when(pl.col(_s(i)) >= expired).then(pl.col(_s(i))).alias(_s(i)) for i in range(n)]
        ).with_columns(
            *[
                pl.when(pl.col(_s(i)).is_not_null()).then(pl.col(c)).alias(c)
                for i in range(n)
                for c in (_ids(i), *[_x(i, f) for f in self.extra])
            ]
        )
        alive = pl.any_horizontal([pl.col(_s(i)).is_not_null() for i in range(n)]) | (
            pl.col("_fired").is_not_null() & (pl.col("_fired") >= pl.col("_ts") - self.suppress)
        )
        return last.filter(alive).select(list(self._chain_schema))
