"""Kind ``payment_score``: every order scored against the shop's normal orders.

An order is scored when it is placed (``shop.order`` ``order_placed``), with what its
payment said (``shop.payment`` ``authorize`` of the same ``shop.order.id``: the card, its
country, declines before it went through) and what the account's profile says (new
address, card, device; how long the account is known). The score is in bits
(:mod:`shopwatch.learn.payments`): each risk signal adds how rare it is among earlier
orders of new or of established accounts, the amount how far it lies in the upper tail of
the account's own orders (or, without three of them, of its segment's).

An order alerts (``payment_fraud``) when its score reaches ``threshold`` bits. Each order
alerts at most once; orders that alert do not teach. The alert names the account, the
card and the address, and the details list every part of the score: the analyst sees
*why*, and ``evaluate`` fits a supervised model to the same parts.

State: the population (two segments' signal counts and last 2,000 amounts), per account
its last ten amounts and the cards of its last day, per shipping address and card the
accounts that used them in ``forget`` (30 days), per order its payment for an hour.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
import polars as pl
from pydantic import Field

from shopwatch.contract import TIMESTAMP, empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState, split_by_keys
from shopwatch.learn.payments import (
    KEEP_OWN,
    NEW_DAYS,
    SIGNALS,
    Order,
    Population,
    features,
    score,
)

__all__ = ["PaymentScoreDetector", "PaymentScoreSpec"]

_PAYMENT_HOLD: Final = timedelta(hours=1)
#: Orders scoring at least this share of the threshold teach nothing.
TEACH_BELOW: Final = 0.5
_DAY: Final = timedelta(days=1)
_WORDS: Final = {
    "card_abroad": "a card issued in {card} for goods sent to {ship}",
    "ip_abroad": "a buyer in {ip} sending goods to {ship}",
    "express": "express shipping",
    "new_address": "a new shipping address",
    "new_card": "a card new on the account",
    "new_device": "a new device",
    "hosting_ip": "bought from a hosting network",
    "shared_address": "an address other accounts used",
    "shared_card": "a card other accounts used",
    "cards_today": "several cards in a day",
    "declined_first": "declined before it went through",
    "amount": "{amount}",
}
_FIELDS: Final = (
    "shop.order.id",
    "shop.order.amount",
    "shop.order.currency",
    "shop.shipping.country",
    "shop.shipping.method",
    "shop.shipping.address_hash",
    "shop.billing.country",
    "shop.payment.card.fingerprint",
    "shop.payment.card.country",
    "source.ip",
    "source.geo.country_iso_code",
    "source.as.type",
    "shop.profile.known_days",
    "shop.profile.new_address",
    "shop.profile.new_card",
    "shop.profile.new_device",
    "user.name",
    "event.action",
    "event.outcome",
    "event.dataset",
)


class PaymentScoreSpec(RuleSpec):
    """A ``payment_score`` rule."""

    where: WhereClause
    threshold: float = Field(default=30.0, gt=0)
    #: Report every placed order's score as an alert (for ``evaluate``: precision-recall
    #: over all orders); what teaches still follows ``threshold``.
    score_all: bool = False
    forget: Duration = "30d"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


@kind("payment_score")
class PaymentScoreDetector:
    """Scores each placed order; alerts the ones far from the shop's normal."""

    Spec = PaymentScoreSpec

    def __init__(self, spec: PaymentScoreSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = ("user.name",)
        self.horizon = _PAYMENT_HOLD
        self.memory = parse_duration(spec.forget)
        self.single_event = False
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(self.where.fields | set(_FIELDS) | {"@timestamp", "event.id"})
        self._tables: dict[str, dict[str, pl.DataType]] = {
            "payments": {"shop.order.id": pl.String(), "_v": pl.String(), "_ts": TIMESTAMP},
            "accounts": {"user.name": pl.String(), "_v": pl.String(), "_ts": TIMESTAMP},
            "links": {"_link": pl.String(), "_v": pl.String(), "_ts": TIMESTAMP},
            "population": {"_pop": pl.String(), "_v": pl.String(), "_ts": TIMESTAMP},
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Remember payments, score placed orders, in event order."""
        where = self.where.for_batch(batch.columns)
        if batch.height == 0 or where is None or "@timestamp" not in batch.columns:
            return empty_alerts()
        cols = [
            (pl.col(f) if f in batch.columns else pl.lit(None)).alias(f)
            for f in (*_FIELDS, "event.id")
        ]
        events = (
            batch.lazy()
            .filter(where & pl.col("@timestamp").is_not_null())
            .select(pl.col("@timestamp"), *cols)
            .filter(pl.col("shop.order.id").is_not_null())
            # At the same instant (second-resolution logs) the payment comes before the
            # order it pays for, whatever the event ids say.
            .with_columns((pl.col("event.dataset") != "shop.payment").alias("_after"))
            .sort("@timestamp", "_after", "event.id", maintain_order=True, nulls_last=True)
            .drop("_after")
            .collect()
        )
        if events.height == 0:
            return empty_alerts()
        rows = events.to_dicts()
        tables = {name: state.table(name, schema) for name, schema in self._tables.items()}
        newest = max(r["@timestamp"] for r in rows)
        now = state.now(newest)
        held = tables["payments"].filter(pl.col("_ts") >= now - _PAYMENT_HOLD)
        payments = {r["shop.order.id"]: orjson.loads(r["_v"]) for r in held.to_dicts()}
        users = {r["user.name"] for r in rows if r["user.name"]}
        acc_mine, acc_rest = split_by_keys(
            tables["accounts"],
            pl.DataFrame({"user.name": list(users)}, schema={"user.name": pl.String()}),
            ["user.name"],
        )
        accounts = {r["user.name"]: orjson.loads(r["_v"]) for r in acc_mine.to_dicts()}
        links_wanted = {
            f"address:{r['shop.shipping.address_hash']}"
            for r in rows
            if r["shop.shipping.address_hash"]
        } | {
            f"card:{r['shop.payment.card.fingerprint']}"
            for r in rows
            if r["shop.payment.card.fingerprint"]
        }
        link_mine, link_rest = split_by_keys(
            tables["links"],
            pl.DataFrame({"_link": list(links_wanted)}, schema={"_link": pl.String()}),
            ["_link"],
        )
        links = {r["_link"]: orjson.loads(r["_v"]) for r in link_mine.to_dicts()}
        pop_rows = tables["population"].to_dicts()
        pop = Population.from_dict(orjson.loads(pop_rows[0]["_v"])) if pop_rows else Population()
        # The population's time only moves forward (one order dated years back must not
        # age the whole model out), and never past the engine's clock.
        pop_ts = max([now, *(r["_ts"] for r in pop_rows if r["_ts"] is not None)])
        alerts: list[dict[str, Any]] = []
        for ev in rows:
            if ev["event.dataset"] == "shop.payment" and ev["event.action"] == "authorize":
                self._payment(ev, payments, accounts)
            elif ev["event.dataset"] == "shop.order" and ev["event.action"] == "order_placed":
                alert = self._order(ev, payments, accounts, links, pop)
                if alert is not None:
                    alerts.append(alert)
        horizon = now - self.memory
        state.put(
            "payments",
            pl.DataFrame(
                {
                    "shop.order.id": list(payments),
                    "_v": [_json(v) for v in payments.values()],
                    "_ts": [datetime.fromisoformat(v["t"]) for v in payments.values()],
                },
                schema=self._tables["payments"],
            ).filter(pl.col("_ts") >= now - _PAYMENT_HOLD),
        )
        state.put("accounts", self._frame("accounts", "user.name", accounts, acc_rest))
        for key, users_seen in links.items():
            links[key] = [u for u in users_seen if datetime.fromisoformat(u[1]) >= horizon]
        state.put(
            "links", self._frame("links", "_link", {k: v for k, v in links.items() if v}, link_rest)
        )
        state.put(
            "population",
            pl.DataFrame(
                {"_pop": ["all"], "_v": [_json(pop.to_dict())], "_ts": [pop_ts]},
                schema=self._tables["population"],
            ),
        )
        if not alerts:
            return empty_alerts()
        return pl.DataFrame(alerts, schema=empty_alerts().schema)

    def _frame(
        self, name: str, key: str, values: dict[str, Any], rest: pl.DataFrame
    ) -> pl.DataFrame:
        def last(v: Any) -> datetime:
            stamps = [x[1] for x in v] if isinstance(v, list) else [v["t"]]
            return max(datetime.fromisoformat(s) for s in stamps)

        frame = pl.DataFrame(
            {
                key: list(values),
                "_v": [_json(v) for v in values.values()],
                "_ts": [last(v) for v in values.values()],
            },
            schema=self._tables[name],
        )
        return pl.concat([rest, frame]) if rest.height else frame

    def _payment(
        self, ev: dict[str, Any], payments: dict[str, Any], accounts: dict[str, Any]
    ) -> None:
        at: datetime = ev["@timestamp"]
        order_id = ev["shop.order.id"]
        seen = payments.get(order_id) or {"declined": False}
        if ev["event.outcome"] == "failure":
            seen["declined"] = True
        card = ev["shop.payment.card.fingerprint"]
        seen.update(
            {
                "t": at.isoformat(),
                "card": card,
                "card_country": ev["shop.payment.card.country"],
                "new_card": ev["shop.profile.new_card"],
            }
        )
        payments[order_id] = seen
        user = ev["user.name"]
        if user and card and ev["event.outcome"] != "failure":
            acc = accounts.setdefault(user, {"t": at.isoformat(), "amounts": [], "cards": []})
            acc["cards"] = [c for c in acc["cards"] if datetime.fromisoformat(c[1]) >= at - _DAY]
            if card not in {c[0] for c in acc["cards"]}:
                acc["cards"].append([card, at.isoformat()])
            acc["t"] = max(acc["t"], at.isoformat())

    def _order(
        self,
        ev: dict[str, Any],
        payments: dict[str, Any],
        accounts: dict[str, Any],
        links: dict[str, Any],
        pop: Population,
    ) -> dict[str, Any] | None:
        at: datetime = ev["@timestamp"]
        user = ev["user.name"]
        paid = payments.get(ev["shop.order.id"]) or {}
        if paid.get("placed"):
            return None  # the same order placed again (a retried webhook): scored once
        if paid and datetime.fromisoformat(paid["t"]) < at - _PAYMENT_HOLD:
            paid = {}  # a payment is the order's only within the hour before it
        payments[ev["shop.order.id"]] = {"t": at.isoformat(), "placed": True}
        card = paid.get("card")
        card_country = paid.get("card_country") or ev["shop.billing.country"]
        ip_country = ev["source.geo.country_iso_code"]
        ship = ev["shop.shipping.country"]
        address = ev["shop.shipping.address_hash"]
        acc = (
            accounts.setdefault(user, {"t": at.isoformat(), "amounts": [], "cards": []})
            if user
            else None
        )
        recent_cards = (
            {c[0] for c in acc["cards"] if datetime.fromisoformat(c[1]) >= at - _DAY}
            if acc
            else set()
        )

        since = at - self.memory

        def others(link: str | None) -> bool:
            if link is None or user is None:
                return False
            return any(
                u[0] != user and datetime.fromisoformat(u[1]) >= since for u in links.get(link, [])
            )

        known = ev["shop.profile.known_days"]
        signals = {
            "card_abroad": bool(card_country and ship and card_country != ship),
            "ip_abroad": bool(ip_country and ship and ip_country != ship),
            "express": ev["shop.shipping.method"] == "express",
            "new_address": bool(ev["shop.profile.new_address"]),
            "new_card": bool(paid.get("new_card")),
            "new_device": bool(ev["shop.profile.new_device"]),
            "hosting_ip": ev["source.as.type"] == "hosting",
            "shared_address": others(f"address:{address}" if address else None),
            "shared_card": others(f"card:{card}" if card else None),
            "cards_today": len(recent_cards) >= 2,
            "declined_first": bool(paid.get("declined")),
        }
        raw = ev["shop.order.amount"]
        # A missing, negative or non-finite amount is no amount (it must not reach the
        # sorted amounts, where one NaN would unsort them).
        amount = float(raw) if raw is not None and math.isfinite(raw) and raw >= 0 else 0.0
        trusted = (
            known is not None
            and float(known) >= NEW_DAYS
            and paid.get("new_card") is False
            and ev["shop.profile.new_device"] is False
        )
        order = Order(signals, amount, None if known is None else float(known), trusted)
        own = [float(a) for a in acc["amounts"]] if acc else []
        scored = score(order, pop, own)
        alerted = scored.bits >= self.spec.threshold
        # Every placed order is remembered against its address and card; only orders
        # that did not alert teach the population and the account's usual amounts.
        for link in (f"address:{address}" if address else None, f"card:{card}" if card else None):
            if link and user:
                seen = [u for u in links.get(link, []) if u[0] != user][-7:]
                links[link] = [*seen, [user, at.isoformat()]]
        # Orders near the threshold do not teach either: a probe at 29 bits must not make
        # its pattern cheap for the cash-out after it (see the module's poisoning bound).
        if scored.bits < self.spec.threshold * TEACH_BELOW:
            pop.segments[order.segment].learn(order)
            if acc is not None:
                acc["amounts"] = [*acc["amounts"], amount][-KEEP_OWN:]
        if acc is not None:
            acc["t"] = max(acc["t"], at.isoformat())
        if not (alerted or self.spec.score_all):
            return None
        return self._alert(ev, order, scored, card, card_country, ip_country, own)

    def _alert(
        self,
        ev: dict[str, Any],
        order: Order,
        scored: Any,
        card: str | None,
        card_country: str | None,
        ip_country: str | None,
        own: list[float],
    ) -> dict[str, Any]:
        currency = ev["shop.order.currency"] or ""
        amount = f"{order.amount:,.2f} {currency}".strip()
        words = []
        for name, bits in scored.parts:
            if bits < 1.0:
                continue
            text = _WORDS[name].format(
                card=card_country,
                ip=ip_country,
                ship=ev["shop.shipping.country"],
                amount=f"{amount}, above the usual of "
                + ("this account" if scored.basis == "account" else f"{scored.basis} accounts"),
            )
            words.append(f"{text} ({bits:.1f} bits)")
        who = "a new account" if order.segment == "new" else "an established account"
        message = (
            f"order {ev['shop.order.id']} of {amount} by {who} scores {scored.bits:.1f} bits: "
            + "; ".join(words[:5])
        )
        risk = min(95, int(40 + 2 * (scored.bits - self.spec.threshold)))
        return alert_record(
            self.spec,
            at=ev["@timestamp"],
            key=(ev["shop.order.id"],),
            entity={
                "user.name": ev["user.name"],
                "source.ip": ev["source.ip"],
                "shop.payment.card.fingerprint": card,
            },
            event_ids=[ev["event.id"]] if ev["event.id"] else [],
            message=message,
            details={
                "order": ev["shop.order.id"],
                "bits": round(scored.bits, 3),
                "pattern_bits": round(scored.pattern_bits, 3),
                "parts": {name: round(bits, 3) for name, bits in scored.parts},
                "signals": order.signals,
                "segment": order.segment,
                "trusted": order.trusted,
                "amount": order.amount,
                "amount_basis": scored.basis,
                "features": [round(x, 6) for x in features(order, own)],
                "alerting": scored.bits >= self.spec.threshold,
            },
            risk=max(risk, 1),
        )

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """What this model holds (``shopwatch models``)."""
        rows = state.table("population", self._tables["population"]).to_dicts()
        pop = Population.from_dict(orjson.loads(rows[0]["_v"])) if rows else Population()
        accounts = state.table("accounts", self._tables["accounts"])
        return {
            "kind_version": 1,
            "learns_from": "placed orders that raised no alert (signals and amounts)",
            "entities": accounts.height,
            "entity": "user.name",
            "events": sum(s.orders for s in pop.segments.values()),
            "first": accounts.get_column("_ts").min() if accounts.height else None,
            "last": rows[0]["_ts"] if rows else None,
            "segments": {k: s.orders for k, s in pop.segments.items()},
            "signals": list(SIGNALS),
        }
