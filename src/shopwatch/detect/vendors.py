"""Third parties the shop calls: what each may receive, and vendors it never called before.

The **vendor inventory** is the shop's own list of the third parties it uses (a YAML file,
``detect.vendor_inventory``; format in ``docs/vendors.md``)::

    vendors:
      sendgrid:
        domains: [api.sendgrid.com]
        receives: [email]
      dhl:
        domains: [api-eu.dhl.com]
        receives: [email, phone]

Two kinds read it:

- ``outbound_data`` scans each outbound call (``vendor.api``: its ``url.full`` or
  ``url.query`` and ``http.request.body.content``) for personal data and secrets
  (:mod:`shopwatch.detect.personal`) and alerts when a vendor receives a kind its
  inventory entry does not list. Without an inventory no vendor may receive anything.
  One alert per vendor per ``window``, at the first such call; the alert stores counts
  and masked samples, never the values.
- ``vendor_new`` alerts when the shop calls a vendor the inventory does not list (at the
  first call, and again every ``remind`` while the calls go on). Without an inventory it
  learns the vendors from the traffic: a vendor first called after ``settle`` of watched
  vendor traffic is new; one the shop called before is known for ``forget`` after its
  last call.

A call is named by ``shop.vendor.name``, else by the inventory entry whose domain (or a
parent domain of it) is the call's ``url.domain`` or ``destination.domain``, else by that
domain itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import polars as pl
import yaml
from pydantic import Field, field_validator

from shopwatch.contract import TIMESTAMP, empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.personal import KINDS as DATA_KINDS
from shopwatch.detect.personal import Found, scan
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    human_duration,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState
from shopwatch.errors import ConfigError

__all__ = [
    "OutboundDataDetector",
    "OutboundDataSpec",
    "Vendor",
    "VendorInventory",
    "VendorNewDetector",
    "VendorNewSpec",
    "load_inventory",
]

_NAMES: Final = {
    "card": ("card number", "card numbers"),
    "secret": ("secret", "secrets"),
    "email": ("e-mail address", "e-mail addresses"),
    "phone": ("phone number", "phone numbers"),
}
_TEXT_FIELDS: Final = ("url.full", "url.query", "http.request.body.content")
_NAME_FIELDS: Final = ("shop.vendor.name", "url.domain", "destination.domain")
#: A cheap test before the scan: a text without any of these cannot hold what it finds
#: (an '@' however encoded, a run of digits with separators, a key's prefix, a phone key).
_SCREEN: Final = (
    r"@|%40|%2540|\\u0040|\d[\d %+().-]{10,}\d|AKIA|ASIA|_live_|gh[pousr]_|glpat-|xox|AIza"
    r"|PRIVATE|(?i:phone|tel|mobile|msisdn|cell)"
)


@dataclass(frozen=True, slots=True)
class Vendor:
    """One inventory entry."""

    name: str
    domains: tuple[str, ...] = ()
    receives: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class VendorInventory:
    """The shop's vendors by name, and where the list came from."""

    vendors: Mapping[str, Vendor] = field(default_factory=dict)
    source: str = ""

    def by_domain(self, domain: str | None) -> Vendor | None:
        """The entry one of whose domains is ``domain`` or a parent domain of it."""
        if not domain:
            return None
        host = domain.lower().rstrip(".")
        for vendor in self.vendors.values():
            for d in vendor.domains:
                if host == d or host.endswith("." + d):
                    return vendor
        return None

    def find(self, name: str | None, domain: str | None) -> Vendor | None:
        """The entry of a call named ``name`` (or, unnamed, sent to ``domain``).

        A call named after a listed vendor but sent to a domain that vendor's entry does
        not list is no call to that vendor (a hijacked SDK keeps its name): None.
        """
        if name and name.lower() in self.vendors:
            entry = self.vendors[name.lower()]
            if entry.domains and domain and self.by_domain(domain) is not entry:
                return None
            return entry
        return self.by_domain(domain)


def load_inventory(path: Path | str) -> VendorInventory:
    """Read a vendor inventory file; a clear :class:`ConfigError` when it is not one."""
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"vendor inventory {where}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"vendor inventory {where}: not YAML ({err})") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("vendors"), dict):
        raise ConfigError(f"vendor inventory {where}: expected a mapping 'vendors: {{name: ...}}'")
    vendors: dict[str, Vendor] = {}
    for name, entry in raw["vendors"].items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"vendor inventory {where}: vendor {name!r} is not a mapping")
        unknown = set(entry) - {"domains", "receives", "description"}
        if unknown:
            raise ConfigError(
                f"vendor inventory {where}: vendor {name!r} has unknown keys {sorted(unknown)}"
                " (known: domains, receives, description)"
            )
        receives = [str(k) for k in entry.get("receives") or []]
        bad = sorted(set(receives) - set(DATA_KINDS))
        if bad:
            raise ConfigError(
                f"vendor inventory {where}: vendor {name!r} receives unknown kinds {bad}"
                f" (known: {', '.join(DATA_KINDS)})"
            )
        domains = tuple(str(d).lower().rstrip(".") for d in entry.get("domains") or [])
        key = str(name).lower()
        vendors[key] = Vendor(key, domains, frozenset(receives))
    return VendorInventory(vendors, where)


def _vendor_frame(batch: pl.DataFrame, where: pl.Expr) -> pl.DataFrame:
    """The matching calls with their time, id, name fields and scanned texts."""

    def column(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String) if name in batch.columns else pl.lit(None, pl.String)

    return (
        batch.lazy()
        .filter(where & pl.col("@timestamp").is_not_null())
        .select(
            pl.col("@timestamp"),
            column("event.id").alias("event.id"),
            column("host.name").alias("host.name"),
            *[column(f).alias(f) for f in _NAME_FIELDS],
            *[column(f).alias(f) for f in _TEXT_FIELDS],
        )
        .sort("@timestamp", maintain_order=True)
        .collect()
    )


def _name_of(inventory: VendorInventory | None, row: Mapping[str, Any]) -> tuple[str, str | None]:
    """The call's vendor name and the domain it went to."""
    domain = row.get("url.domain") or row.get("destination.domain")
    name = row.get("shop.vendor.name")
    if name:
        return str(name).lower(), domain
    found = inventory.by_domain(domain) if inventory else None
    if found is not None:
        return found.name, domain
    return (str(domain).lower() if domain else "unknown"), domain


def _listing(counts: Mapping[str, int]) -> str:
    parts = [
        f"{n:,} {_NAMES[k][0] if n == 1 else _NAMES[k][1]}"
        for k in DATA_KINDS
        if (n := counts.get(k, 0))
    ]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class OutboundDataSpec(RuleSpec):
    """An ``outbound_data`` rule."""

    where: WhereClause = Field(default_factory=lambda: {"event.dataset": "vendor.api"})
    window: Duration = "1h"
    kinds: tuple[str, ...] = DATA_KINDS
    #: Country whose national phone format is read in phone fields (ISO 3166 alpha-2).
    phone_region: str | None = None
    #: Path of the vendor inventory (usually set from ``detect.vendor_inventory``).
    inventory: str | None = None

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import phonenumbers

        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"phone_region {value!r} is not an ISO 3166 country code")
        return code


@kind("outbound_data")
class OutboundDataDetector:
    """Personal data or secrets sent to a vendor not allowed to receive them."""

    Spec = OutboundDataSpec

    def __init__(self, spec: OutboundDataSpec) -> None:
        bad = sorted(set(spec.kinds) - set(DATA_KINDS))
        if bad:
            raise ValueError(f"kinds {bad} are not known; known: {', '.join(DATA_KINDS)}")
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        # No key: a call's vendor may be named by its domain, not by a field of the event.
        self.keys: tuple[str, ...] = ()
        self.window = parse_duration(spec.window)
        self.horizon = self.window
        self.single_event = True
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            self.where.fields
            | set(_TEXT_FIELDS)
            | set(_NAME_FIELDS)
            | {"@timestamp", "event.id", "host.name"}
        )
        self.inventory: VendorInventory | None = (
            load_inventory(spec.inventory) if spec.inventory else None
        )
        self._schema: dict[str, pl.DataType] = {"shop.vendor.name": pl.String(), "_ts": TIMESTAMP}

    def use_inventory(self, inventory: VendorInventory | None) -> None:
        """Judge calls against ``inventory`` (the shop's vendor list) from now on."""
        self.inventory = inventory

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """One alert per vendor per window, at its first call carrying what it may not receive."""
        where = self.where.for_batch(batch.columns)
        texts = [f for f in _TEXT_FIELDS if f in batch.columns]
        if batch.height == 0 or where is None or not texts or "@timestamp" not in batch.columns:
            return empty_alerts()
        screen = pl.any_horizontal(
            [
                pl.col(f).str.contains(_SCREEN).fill_null(False)
                for f in texts
            ]
        )
        calls = _vendor_frame(batch, where & screen)
        if calls.height == 0:
            return empty_alerts()
        fired = state.table("fired", self._schema)
        last: dict[str, datetime] = dict(fired.iter_rows())
        allowed_kinds = set(self.spec.kinds)
        rows: list[dict[str, Any]] = []
        for row in calls.iter_rows(named=True):
            name, domain = _name_of(self.inventory, row)
            entry = self.inventory.find(name, domain) if self.inventory else None
            may = entry.receives if entry else frozenset()
            found = Found()
            fields: list[str] = []
            url = row.get("url.full") or row.get("url.query")
            for label, text in (("url", url), ("body", row.get("http.request.body.content"))):
                got = scan(text, region=self.spec.phone_region).only(allowed_kinds - may)
                if got:
                    found.merge(got)
                    fields.append(label)
            if not found:
                continue
            at: datetime = row["@timestamp"]
            previous = last.get(name)
            if previous is not None and at < previous + self.window:
                continue
            last[name] = at
            rows.append(self._alert(row, name, domain, entry, found, fields))
        if last:
            state.put(
                "fired",
                pl.DataFrame(list(last.items()), schema=self._schema, orient="row"),
            )
        if not rows:
            return empty_alerts()
        return pl.DataFrame(rows, schema=empty_alerts().schema)

    def _alert(
        self,
        row: Mapping[str, Any],
        name: str,
        domain: str | None,
        entry: Vendor | None,
        found: Found,
        fields: list[str],
    ) -> dict[str, Any]:
        spec = self.spec
        what = _listing(found.counts)
        who = row.get("host.name") or "the shop"
        to = f"{name} ({domain})" if domain and domain != name else name
        if self.inventory is None:
            why = "no vendor inventory is configured, so no vendor may receive personal data"
        elif entry is None and name in self.inventory.vendors:
            why = f"the call is named {name}, but {name}'s inventory entry does not list {domain}"
        elif entry is None:
            why = "the vendor is not in the vendor inventory"
        else:
            allowed = ", ".join(sorted(entry.receives)) or "nothing personal"
            why = f"its inventory entry allows {allowed}"
        samples = "; ".join(s for k in DATA_KINDS for s in found.samples.get(k, [])[:1])
        grave = "card" in found.counts or "secret" in found.counts
        return alert_record(
            spec,
            at=row["@timestamp"],
            key=(name,),
            entity={"shop.vendor.name": name, "host.name": row.get("host.name")},
            event_ids=[row["event.id"]] if row.get("event.id") else [],
            message=f"{who} sent {what} ({samples}) to {to} in the {' and '.join(fields)}; {why}",
            details={
                "vendor": name,
                "domain": domain,
                "counts": found.counts,
                "samples": found.samples,
                "fields": fields,
                "truncated": found.truncated,
                "in_inventory": entry is not None,
                "may_receive": sorted(entry.receives) if entry else [],
                "inventory": self.inventory.source if self.inventory else None,
                "window": human_duration(self.window),
            },
            severity="critical" if grave else spec.severity,
            risk=min(100, spec.base_risk + (15 if grave else 0)),
        )


class VendorNewSpec(RuleSpec):
    """A ``vendor_new`` rule."""

    where: WhereClause = Field(default_factory=lambda: {"event.dataset": "vendor.api"})
    #: Learned mode: vendor traffic watched this long before a first call counts as new.
    settle: Duration = "7d"
    #: Learned mode: a vendor unseen this long is forgotten (its next call is new again).
    forget: Duration = "90d"
    #: With an inventory: an unlisted vendor still called is reported again after this.
    remind: Duration = "24h"
    inventory: str | None = None


_WATCH: Final = "\x00watch"  # the row dating the first vendor call this rule saw


@kind("vendor_new")
class VendorNewDetector:
    """A call to a vendor the inventory does not list, or (no inventory) one never called."""

    Spec = VendorNewSpec

    def __init__(self, spec: VendorNewSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = ("shop.vendor.name",)
        self.settle = parse_duration(spec.settle)
        self.forget = parse_duration(spec.forget)
        self.remind = parse_duration(spec.remind)
        self.horizon = self.remind
        #: How long per-vendor memory lives after a vendor's last call (the engine keeps it).
        self.memory = self.forget
        self.single_event = False
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            self.where.fields | set(_NAME_FIELDS) | {"@timestamp", "event.id", "host.name"}
        )
        self.inventory: VendorInventory | None = (
            load_inventory(spec.inventory) if spec.inventory else None
        )
        self._schema: dict[str, pl.DataType] = {
            "shop.vendor.name": pl.String(),
            "_first": TIMESTAMP,
            "_fired": TIMESTAMP,
            "_ts": TIMESTAMP,
        }

    def use_inventory(self, inventory: VendorInventory | None) -> None:
        """Judge calls against ``inventory`` (the shop's vendor list) from now on."""
        self.inventory = inventory

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for vendors first called now (see the module docstring)."""
        where = self.where.for_batch(batch.columns)
        if batch.height == 0 or where is None or "@timestamp" not in batch.columns:
            return empty_alerts()
        calls = _vendor_frame(batch, where)
        if calls.height == 0:
            return empty_alerts()
        # One row per vendor of the batch: its first call (the alert's evidence) and its last.
        named = calls.with_columns(
            pl.Series(
                "_name",
                [
                    _name_of(self.inventory, r)[0]
                    for r in calls.select(*_NAME_FIELDS).iter_rows(named=True)
                ],
                dtype=pl.String,
            )
        )
        firsts = named.group_by("_name", maintain_order=True).agg(
            pl.col("@timestamp").alias("_times"),
            pl.col("event.id").alias("_ids"),
            pl.col("host.name").first(),
            pl.col("shop.vendor.name").first(),
            pl.col("url.domain").first(),
            pl.col("destination.domain").first(),
        )
        table = state.table("seen", self._schema)
        known = {r[0]: list(r[1:]) for r in table.iter_rows()}
        watch = known.get(_WATCH)
        if watch is None:
            watch = [calls.item(0, "@timestamp"), None, calls.item(0, "@timestamp")]
            known[_WATCH] = watch
        rows: list[dict[str, Any]] = []
        for r in firsts.iter_rows(named=True):
            name, times, ids = r["_name"], r["_times"], r["_ids"]
            domain = r["url.domain"] or r["destination.domain"]
            record = known.get(name)
            if record is not None and times[0] - record[2] > self.forget:
                record = None  # forgotten: unseen for longer than ``forget``
            if self.inventory is not None and self.inventory.find(name, domain) is None:
                fired = record[1] if record is not None else None
                for at, event_id in zip(times, ids, strict=True):
                    if fired is None or at >= fired + self.remind:
                        fired = at
                        rows.append(
                            self._alert(r, name, domain, at, event_id, "inventory", watch[0])
                        )
                record = [record[0] if record else times[0], fired, times[-1]]
            elif self.inventory is None and record is None:
                new = times[0] - watch[0] >= self.settle
                if new:
                    rows.append(self._alert(r, name, domain, times[0], ids[0], "learned", watch[0]))
                record = [times[0], times[0] if new else None, times[-1]]
            elif record is None:
                record = [times[0], None, times[-1]]
            record[2] = max(record[2], times[-1])
            known[name] = record
        watch[2] = max(watch[2], calls.item(calls.height - 1, "@timestamp"))
        state.put(
            "seen",
            pl.DataFrame([(k, *v) for k, v in known.items()], schema=self._schema, orient="row"),
        )
        if not rows:
            return empty_alerts()
        rows.sort(key=lambda a: (a["@timestamp"], a["alert.id"]))
        return pl.DataFrame(rows, schema=empty_alerts().schema)

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """The vendors this rule knows (``shopwatch models``)."""
        table = state.table("seen", self._schema)
        vendors = table.filter(pl.col("shop.vendor.name") != _WATCH)
        watch = table.filter(pl.col("shop.vendor.name") == _WATCH)
        mode = "inventory" if self.inventory is not None else "learned"
        return {
            "kind_version": 1,
            "learns_from": f"vendor.api calls ({mode}: "
            + (self.inventory.source if self.inventory else "no inventory")
            + ")",
            "entities": vendors.height,
            "entity": "shop.vendor.name",
            "events": None,
            "first": watch.item(0, "_first") if watch.height else None,
            "last": watch.item(0, "_ts") if watch.height else None,
        }

    def _alert(
        self,
        r: Mapping[str, Any],
        name: str,
        domain: str | None,
        at: datetime,
        event_id: str | None,
        mode: str,
        since: datetime,
    ) -> dict[str, Any]:
        who = r.get("host.name") or "the shop"
        to = f"{name} ({domain})" if domain and domain != name else name
        if mode == "inventory":
            assert self.inventory is not None
            why = (
                f"which the vendor inventory ({len(self.inventory.vendors)} vendors) does not list"
            )
        else:
            why = f"which it had not called since shopwatch started watching on {since:%Y-%m-%d}"
        return alert_record(
            self.spec,
            at=at,
            key=(name,),
            entity={"shop.vendor.name": name, "host.name": r.get("host.name")},
            event_ids=[event_id] if event_id else [],
            message=f"{who} called a new third party, {to}, {why}",
            details={
                "vendor": name,
                "domain": domain,
                "mode": mode,
                # a vendor named by its domain: the field that named it, for grouping
                **({"keys": {"url.domain": domain}} if not r.get("shop.vendor.name") else {}),
                "watching_since": since.isoformat(),
                "inventory": self.inventory.source if self.inventory else None,
            },
        )
