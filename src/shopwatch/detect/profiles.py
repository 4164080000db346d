"""Long-lived account profiles: what each account has used before, for the rules to read.

An account (``user.name``) collects the devices, countries, autonomous systems, shipping
addresses and cards its own activity used: successful logins, account changes, orders and
payments (:data:`TRUSTED`). Nothing else teaches it: a failed login is someone else's device
as often as the owner's, and anyone can ask for a password reset of any account. Before the detectors run, every event of an
account is annotated with what its profile said *before that event*:

- ``shop.profile.known_days``: days since the account was first seen (0 on its first event);
- ``shop.profile.new_device``, ``new_country``, ``new_as``, ``new_address``, ``new_card``:
  true when the event's value (``shop.device.id``, ``source.geo.country_iso_code``,
  ``source.as.number``, ``shop.shipping.address_hash``, ``shop.payment.card.fingerprint``)
  was first seen on the account less than ``recent`` ago, this event included; false when it
  was seen before that. Null when the event has no such value, or when the account is
  younger than ``settle``: a profile a day old knows too little to call anything new.

So an intruder's first login and everything done in that session read as new for a day,
and a customer's own phone reads as known. The answers depend only on the events and
their times, not on how they were cut into batches.

Bounds: per account and attribute at most ``max_values`` values (the most recently used
are kept), accounts evicted when unseen for ``max_age`` (weeks, not the detectors' hour),
and all of it held in one :class:`~shopwatch.detect.state.KeyedState` table that the
engine snapshots, sheds under its byte budget and counts like a detector's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import polars as pl

from shopwatch.contract import EVENT_SCHEMA, TIMESTAMP
from shopwatch.detect.state import KeyedState, split_by_keys

__all__ = ["ATTRIBUTES", "PROFILE_FIELDS", "PROFILE_STATE", "ProfileSettings", "Profiler"]

#: The attributes a profile keeps: name → the event field it reads.
ATTRIBUTES: Final[dict[str, str]] = {
    "device": "shop.device.id",
    "country": "source.geo.country_iso_code",
    "as": "source.as.number",
    "address": "shop.shipping.address_hash",
    "card": "shop.payment.card.fingerprint",
}
#: The fields the profiler writes on events (contract extension, ``shop.profile.*``).
PROFILE_FIELDS: Final[dict[str, pl.DataType]] = {
    name: dtype for name, dtype in EVENT_SCHEMA.items() if name.startswith("shop.profile.")
}
#: The id under which the engine keeps the profiles' state (not a rule id: no dot).
PROFILE_STATE: Final = "_profiles"
_ACCOUNT: Final = "_account"  # the row that dates an account's first and last activity
_KEY: Final = "user.name"


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    """How long profiles live and when a value counts as new (see the module docstring)."""

    max_age: timedelta = timedelta(days=90)
    settle: timedelta = timedelta(days=7)
    recent: timedelta = timedelta(days=1)
    max_values: int = 20
    max_accounts: int = 200_000


_SCHEMA: Final[dict[str, pl.DataType]] = {
    _KEY: pl.String(),
    "_attr": pl.String(),
    "_v": pl.String(),
    "_first": TIMESTAMP,
    "_ts": TIMESTAMP,  # last seen
}


class Profiler:
    """Annotates a batch from the profiles, then learns the batch's trusted activity."""

    def __init__(self, settings: ProfileSettings | None = None) -> None:
        self.settings = settings or ProfileSettings()

    def new_state(self) -> KeyedState:
        """The state the engine keeps for the profiles."""
        s = self.settings
        return KeyedState((_KEY,), max_keys=s.max_accounts, max_age=s.max_age)

    def annotate(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """``batch`` with the ``shop.profile.*`` fields, and its lessons added to ``state``."""
        # What the input says of these fields is never believed: they are computed here.
        batch = batch.drop([f for f in PROFILE_FIELDS if f in batch.columns])
        if _KEY not in batch.columns or batch.height == 0:
            return _with_nulls(batch)
        s = self.settings
        rows = (
            batch.lazy()
            .with_row_index("_row")
            .filter(pl.col(_KEY).is_not_null() & pl.col("@timestamp").is_not_null())
        )
        trusted = _trusted(batch.columns)
        parts = [
            rows.select(
                "_row",
                pl.col(_KEY),
                pl.lit(_ACCOUNT).alias("_attr"),
                pl.lit("").alias("_v"),
                pl.col("@timestamp").alias("_t"),
                trusted.alias("_trusted"),
            )
        ]
        for name, field in ATTRIBUTES.items():
            if field not in batch.columns:
                continue
            parts.append(
                rows.filter(pl.col(field).is_not_null()).select(
                    "_row",
                    pl.col(_KEY),
                    pl.lit(name).alias("_attr"),
                    pl.col(field).cast(pl.String).alias("_v"),
                    pl.col("@timestamp").alias("_t"),
                    trusted.alias("_trusted"),
                )
            )
        long = pl.concat(parts, how="vertical").collect()
        if long.height == 0:
            return _with_nulls(batch)
        held = state.table("profile", _SCHEMA)
        pairs = ["_attr", "_v"]
        learned = (
            long.filter(pl.col("_trusted"))
            .group_by(_KEY, *pairs)
            .agg(pl.col("_t").min().alias("_first"), pl.col("_t").max().alias("_ts"))
        )
        # The profiles of this batch's accounts only; the others are put back untouched.
        known, others = split_by_keys(held, long.select(_KEY).unique(), [_KEY])
        first = (
            pl.concat(
                [known.select(_KEY, *pairs, "_first"), learned.select(_KEY, *pairs, "_first")]
            )
            .group_by(_KEY, *pairs)
            .agg(pl.col("_first").min())
        )
        judged = long.join(first, on=[_KEY, *pairs], how="left", nulls_equal=True)
        account = judged.filter(pl.col("_attr") == _ACCOUNT).select(
            "_row", pl.col("_first").alias("_since"), pl.col("_t")
        )
        values = (
            judged.filter(pl.col("_attr") != _ACCOUNT)
            .join(account.select("_row", "_since"), on="_row", how="left")
            .with_columns(
                pl.when(pl.col("_since") <= pl.col("_t") - s.settle)
                .then(pl.col("_first").is_null() | (pl.col("_first") > pl.col("_t") - s.recent))
                .otherwise(None)
                .alias("_new")
            )
            .select(
                "_row",
                pl.concat_str(pl.lit("shop.profile.new_"), pl.col("_attr")).alias("_field"),
                "_new",
            )
        )
        notes = account.select(
            "_row",
            pl.when(pl.col("_since").is_null() | (pl.col("_since") > pl.col("_t")))
            .then(0.0)
            .otherwise(
                ((pl.col("_t") - pl.col("_since")).dt.total_microseconds() / 86_400_000_000).round(
                    6
                )
            )
            .alias("shop.profile.known_days"),
        )
        if values.height:
            wide = values.pivot(
                on="_field", index="_row", values="_new", aggregate_function="first"
            )
            notes = notes.join(wide, on="_row", how="left")
        out = batch.with_row_index("_row").join(notes, on="_row", how="left").drop("_row")
        self._learn(state, known, others, learned)
        return _with_nulls(out)

    def _learn(
        self, state: KeyedState, known: pl.DataFrame, rest: pl.DataFrame, learned: pl.DataFrame
    ) -> None:
        """Merge ``learned`` into the batch's accounts' profiles (``known``; ``rest`` are the
        others), each attribute capped at ``max_values``."""
        if learned.height == 0:
            return
        keys = [_KEY, "_attr", "_v"]
        merged = (
            pl.concat([known, learned.select(list(_SCHEMA))], how="vertical")
            .group_by(keys)
            .agg(pl.col("_first").min(), pl.col("_ts").max())
            .filter(
                pl.col("_ts").rank("ordinal", descending=True).over(_KEY, "_attr")
                <= self.settings.max_values
            )
        )
        state.put("profile", pl.concat([rest, merged.select(list(_SCHEMA))], how="vertical"))


#: What the account's own activity is: (dataset, actions) that succeeded in a session of
#: the account. A password-reset request, a failed login or anything with no outcome is
#: not: anyone can ask the shop to reset any account from their own device.
TRUSTED: Final[dict[str, tuple[str, ...]]] = {
    "shop.auth": ("login", "mfa_verify", "password_reset"),
    "shop.account": (
        "email_change",
        "password_change",
        "phone_change",
        "address_add",
        "address_change",
        "mfa_disable",
        "payment_method_add",
    ),
    "shop.order": ("checkout", "order_placed"),
    "shop.payment": ("authorize", "capture"),
}


def _trusted(columns: list[str]) -> pl.Expr:
    """Whether an event is the account's own activity (see :data:`TRUSTED`)."""
    if not {"event.dataset", "event.action", "event.outcome"} <= set(columns):
        return pl.lit(False)
    allowed = [
        (pl.col("event.dataset") == dataset) & pl.col("event.action").is_in(list(actions))
        for dataset, actions in TRUSTED.items()
    ]
    return (pl.col("event.outcome") == "success").fill_null(False) & pl.any_horizontal(
        allowed
    ).fill_null(False)


def _with_nulls(batch: pl.DataFrame) -> pl.DataFrame:
    """``batch`` with every profile field present (typed nulls where it had none)."""
    missing = [
        pl.lit(None, dtype).alias(name)
        for name, dtype in PROFILE_FIELDS.items()
        if name not in batch.columns
    ]
    casts = [
        pl.col(name).cast(dtype)
        for name, dtype in PROFILE_FIELDS.items()
        if name in batch.columns and batch.schema[name] != dtype
    ]
    if missing or casts:
        batch = batch.with_columns(*missing, *casts)
    # One column order whatever the batch held, so that batches stack.
    return batch.select([*(c for c in batch.columns if c not in PROFILE_FIELDS), *PROFILE_FIELDS])
