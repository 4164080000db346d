"""Scoring alerts against simulated campaigns: ``evaluate campaigns`` and ``evaluate sim``.

The ground truth is the ``ground_truth.json`` a ``simulate`` run writes beside its logs: a
list of campaigns, each with ``id``, ``kind``, ``benign``, ``start``, ``end`` and
``entities`` (field → values an alert about it may name: the attackers' addresses,
devices, sessions, cards and accounts, and the accounts they targeted), optionally
``rule.category`` (the category a detection should raise; also read as
``{"rule": {"category": ...}}``) and ``variant`` (``loud`` or ``low_slow``). Times are RFC
3339 or epoch seconds.

An alert *covers* a campaign when it names one of the campaign's entities (shared
infrastructure such as ``host.name`` aside) and fires between the campaign's start and
``grace_s`` after its end (event time). From that:

- per attack campaign: detected, category matched, time to detect (first covering alert
  minus start), alerts, rules;
- per benign look-alike: its false alerts;
- ``unobserved``: attack campaigns that wrote nothing in the run (no entity), left out of
  every other figure;
- ``compromised_named``: of the accounts a campaign broke into (``params.compromised_accounts``),
  those its alerts name in ``details.compromised``;
- ``fp_alerts``: alerts that cover no attack campaign (look-alikes and strays alike) and
  are not ``symptom_alerts``: alerts about one of the shop's own metrics
  (``details.members`` names ``shop.metric.name``) that an attack running at the time
  moves (its record's ``symptoms``); those name no attacker and are counted apart, as
  neither detections nor false alerts;
  ``fp_alert_rules`` counts them per rule and ``fp_alert_events`` names the first event
  of each (at most :data:`MAX_FP_EVENTS`);
- ``benign_alerted_share``: of the customers active in the run (accounts with a successful
  shop event) that no attack involves, the share named in any alert;
- per category: precision (alerts of the category that cover an attack) and recall
  (attacks of the category detected with that category); campaigns without an expected
  category count in ``recall`` but not in ``category_recall``.

``evaluate sim`` pools several runs: the campaign records are concatenated and the alert
tallies added, and the same summary is computed over them.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shopwatch.config import DetectorOverride, Settings, load_settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate import payments
from shopwatch.evaluate.backtest import (
    Population,
    Span,
    backtest,
    grace,
    named,
    parse_time,
    ratio,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "Tally",
    "evaluate_dir",
    "evaluate_seeds",
    "load_truth",
    "score_campaigns",
    "summarise",
]

#: At most this many false alerts' first event ids are listed (``fp_alert_events``).
MAX_FP_EVENTS = 100
#: How long after a campaign's end an alert still counts for it (windows close late).
DEFAULT_GRACE_S = 300.0
TRUTH_FILE = "ground_truth.json"
#: What ``simulate`` records of the run itself (its start, end and weeks of history).
RUN_FILE = "run.json"
#: The run's vendor inventory (what ``simulate`` writes of the shop's vendors).
INVENTORY_FILE = "vendors.yaml"


def _category(record: dict[str, Any]) -> str | None:
    flat = record.get("rule.category")
    nested = record.get("rule")
    if flat is None and isinstance(nested, dict):
        flat = nested.get("category")
    return str(flat) if flat else None


def load_truth(path: Path) -> list[dict[str, Any]]:
    """The campaigns of a ground-truth file, checked and normalised.

    Each record comes back with ``start``/``end`` as aware datetimes, ``entities`` as
    field → list of strings (a single value becomes a list), ``rule.category`` and
    ``variant`` present (``None`` when not given).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"cannot read ground truth {path}: {err}") from err
    if not isinstance(data, list):
        raise ConfigError(f"{path} must hold a JSON list of campaigns")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for i, record in enumerate(data):
        where = f"{path}: campaign {i}"
        if not isinstance(record, dict):
            raise ConfigError(f"{where} is not an object")
        missing = [k for k in ("id", "kind", "start", "end") if k not in record]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}")
        cid = str(record["id"])
        if cid in seen:
            raise ConfigError(f"{where}: the id {cid!r} is used twice")
        seen.add(cid)
        entities = record.get("entities") or {}
        if not isinstance(entities, dict):
            raise ConfigError(f"{where}: entities must be an object of field → values")
        values = {
            str(k): [str(x) for x in (v if isinstance(v, list) else [v]) if x is not None]
            for k, v in entities.items()
        }
        start = parse_time(record["start"], f"{where} start")
        end = parse_time(record["end"], f"{where} end", end_of_day=True)
        if end < start:
            raise ConfigError(f"{where}: end is before start")
        out.append(
            {
                **record,
                "id": cid,
                "benign": bool(record.get("benign", False)),
                "start": start,
                "end": end,
                "entities": values,
                "rule.category": _category(record),
                "variant": record.get("variant"),
            }
        )
    return out


@dataclass(slots=True)
class Tally:
    """What a run's alerts add up to, beyond the campaign records (summed over runs)."""

    alerts: int = 0
    fp_alerts: int = 0
    symptom_alerts: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    true_by_category: Counter[str] = field(default_factory=Counter)
    benign_customers: int = 0
    benign_customers_alerted: int = 0
    benign_addresses: int = 0
    benign_addresses_alerted: int = 0
    #: The alerts that cover no attack: rule and first event id (what to look at).
    fp_seen: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Add another run's tally to this one."""
        self.alerts += other.alerts
        self.fp_alerts += other.fp_alerts
        self.symptom_alerts += other.symptom_alerts
        self.by_category.update(other.by_category)
        self.true_by_category.update(other.true_by_category)
        self.benign_customers += other.benign_customers
        self.benign_customers_alerted += other.benign_customers_alerted
        self.benign_addresses += other.benign_addresses
        self.benign_addresses_alerted += other.benign_addresses_alerted
        self.fp_seen.extend(other.fp_seen)


def _record(campaign: dict[str, Any], found: list[Alert]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": campaign["id"],
        "type": campaign["kind"],
        "variant": campaign["variant"],
        "benign": campaign["benign"],
        "category": campaign["rule.category"],
        "alerts": len(found),
        "rules": sorted({a.rule_id for a in found}),
    }
    if campaign["benign"]:
        record["false_alerts"] = len(found)
        return record
    # A campaign that wrote nothing in the run (a slow one whose first step falls after its
    # end) names no entity, so no alert can cover it: it is counted apart, not as a miss.
    record["observed"] = any(campaign["entities"].values())
    won = (campaign.get("params") or {}).get("compromised_accounts")
    if isinstance(won, list):
        told = {
            str(v)
            for a in found
            if isinstance(a.details, dict) and isinstance(a.details.get("compromised"), dict)
            for values in a.details["compromised"].values()
            if isinstance(values, list)
            for v in values
        }
        record["compromised"] = len(set(map(str, won)))
        record["compromised_named"] = len(set(map(str, won)) & told)
    expected = campaign["rule.category"]
    first = min((a.timestamp for a in found), default=None)
    record["detected"] = bool(found)
    record["category_matched"] = (
        any(a.category == expected for a in found) if expected is not None else None
    )
    record["ttd_s"] = (
        round((first - campaign["start"]).total_seconds(), 3) if first is not None else None
    )
    return record


def score_campaigns(
    truth: Sequence[dict[str, Any]],
    alerts: Iterable[Alert],
    population: Population | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """The figures of one run; ``truth`` as :func:`load_truth` returns it."""
    records, tally = _score(truth, list(alerts), population, grace_s)
    return summarise(records, tally)


def _score(
    truth: Sequence[dict[str, Any]],
    alerts: list[Alert],
    population: Population | None,
    grace_s: float,
) -> tuple[list[dict[str, Any]], Tally]:
    late = grace(grace_s)
    spans = {
        c["id"]: Span(
            {k: frozenset(v) for k, v in c["entities"].items()}, c["start"], c["end"] + late
        )
        for c in truth
    }
    covering: dict[str, list[Alert]] = {c["id"]: [] for c in truth}
    tally = Tally(alerts=len(alerts))
    for alert in alerts:
        covered = [c for c in truth if spans[c["id"]].covers(alert)]
        hit = any(not c["benign"] for c in covered)
        # An alert an attack explains is the attack's, even where a look-alike's entity is
        # the same (a customer behind a carrier's shared address whose account is the one
        # being guessed): a look-alike is charged only with alerts no attack explains.
        for c in covered:
            if not (hit and c["benign"]):
                covering[c["id"]].append(alert)
        tally.by_category[alert.category] += 1
        if hit:
            tally.true_by_category[alert.category] += 1
        elif _symptom(alert, truth, spans):
            tally.symptom_alerts += 1
        else:
            tally.fp_alerts += 1
            tally.fp_seen.append((alert.rule_id, alert.event_ids[0] if alert.event_ids else None))
    if population is not None:
        involved = {
            (k, v) for c in truth if not c["benign"] for k, vs in c["entities"].items() for v in vs
        }
        alerted = {pair for a in alerts for pair in named(a)}
        customers = {("user.name", u) for u in population.customers} - involved
        addresses = {("source.ip", ip) for ip in population.addresses} - involved
        tally.benign_customers = len(customers)
        tally.benign_customers_alerted = len(customers & alerted)
        tally.benign_addresses = len(addresses)
        tally.benign_addresses_alerted = len(addresses & alerted)
    return [_record(c, covering[c["id"]]) for c in truth], tally


def _symptom(alert: Alert, truth: Sequence[dict[str, Any]], spans: dict[str, Span]) -> bool:
    """True for an alert about one of the shop's own metrics that an attack running then
    moves (the campaign's ``symptoms``): the error rate of a scanner's run, the decline
    rate of card testing. Such an alert names no attacker, so it detects nothing, but it
    is not false either."""
    metrics = {v for k, v in named(alert) if k == "shop.metric.name"}
    if not metrics:
        return False
    for c in truth:
        if c["benign"] or not metrics & set(c.get("symptoms") or ()):
            continue
        if spans[c["id"]].during(alert.timestamp):
            return True
    return False


def _median(values: Sequence[float]) -> float | None:
    """The median, rounded to the millisecond; None for no values."""
    return round(statistics.median(values), 3) if values else None


def summarise(records: Sequence[dict[str, Any]], tally: Tally) -> dict[str, Any]:
    """Recall, time to detect, precision and the breakdowns, from records and a tally."""
    unobserved = [r for r in records if not r["benign"] and not r.get("observed", True)]
    attacks = [r for r in records if not r["benign"] and r.get("observed", True)]
    detected = [r for r in attacks if r["detected"]]
    with_category = [r for r in attacks if r["category"] is not None]
    ttds = [r["ttd_s"] for r in detected]
    per_category: dict[str, dict[str, Any]] = {}
    campaigns_by = Counter(r["category"] for r in with_category)
    found_by = Counter(r["category"] for r in with_category if r["category_matched"])
    for cat in sorted({*tally.by_category, *campaigns_by}):
        alerts, true = tally.by_category[cat], tally.true_by_category[cat]
        per_category[cat] = {
            "alerts": alerts,
            "true_alerts": true,
            "precision": ratio(true, alerts),
            "campaigns": campaigns_by[cat],
            "found": found_by[cat],
            "recall": ratio(found_by[cat], campaigns_by[cat]),
        }
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in attacks:
        groups[str(r["variant"] or "-")].append(r)
    per_variant = {
        name: {
            "campaigns": len(rs),
            "detected": sum(1 for r in rs if r["detected"]),
            "recall": ratio(sum(1 for r in rs if r["detected"]), len(rs)),
            "median_ttd_s": _median([r["ttd_s"] for r in rs if r["detected"]]),
        }
        for name, rs in sorted(groups.items())
    }
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["benign"] or r.get("observed", True):
            kinds[r["type"]].append(r)
    per_type: dict[str, dict[str, Any]] = {}
    for kind, rs in sorted(kinds.items()):
        entry: dict[str, Any] = {"benign": rs[0]["benign"], "runs": len(rs)}
        if rs[0]["benign"]:
            entry["false_alerts"] = sum(r["alerts"] for r in rs)
        else:
            entry["detected"] = sum(1 for r in rs if r["detected"])
            entry["category_matched"] = sum(1 for r in rs if r["category_matched"])
        per_type[kind] = entry
    return {
        "campaigns": list(records),
        "attacks": len(attacks),
        "unobserved": len(unobserved),
        "detected": len(detected),
        "compromised": sum(r.get("compromised", 0) for r in attacks),
        "compromised_named": sum(r.get("compromised_named", 0) for r in attacks),
        "recall": ratio(len(detected), len(attacks)),
        "category_recall": ratio(
            sum(1 for r in with_category if r["category_matched"]), len(with_category)
        ),
        "median_ttd_s": round(statistics.median(ttds), 3) if ttds else None,
        "alerts": tally.alerts,
        "fp_alerts": tally.fp_alerts,
        "symptom_alerts": tally.symptom_alerts,
        "fp_alert_rules": dict(Counter(rule for rule, _ in tally.fp_seen).most_common()),
        "fp_alert_events": [event for _, event in tally.fp_seen[:MAX_FP_EVENTS]],
        "alert_precision": ratio(
            tally.alerts - tally.fp_alerts - tally.symptom_alerts,
            tally.alerts - tally.symptom_alerts,
        ),
        "benign_false_alerts": sum(r["alerts"] for r in records if r["benign"]),
        "benign_customers": tally.benign_customers,
        "benign_customers_alerted": tally.benign_customers_alerted,
        "benign_alerted_share": ratio(tally.benign_customers_alerted, tally.benign_customers),
        "benign_addresses": tally.benign_addresses,
        "benign_addresses_alerted": tally.benign_addresses_alerted,
        "per_category": per_category,
        "per_variant": per_variant,
        "per_type": per_type,
    }


def _log_files(directory: Path) -> list[Path]:
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "alerts"))  # hidden files; a replay's output
        and not p.name.endswith(".json")  # the ground truth and other metadata
        and p.name != INVENTORY_FILE  # the shop's vendor inventory is settings, not a log
    )
    if not files:
        raise ConfigError(f"{directory} holds no log files next to its {TRUTH_FILE}")
    return files


def _run(
    directory: Path, settings: Settings | None, grace_s: float
) -> tuple[list[dict[str, Any]], Tally, dict[str, Any]]:
    truth_path = directory / TRUTH_FILE
    if not truth_path.is_file():
        raise ConfigError(
            f"{directory} has no {TRUTH_FILE} (a 'shopwatch simulate' output has one)"
        )
    truth = load_truth(truth_path)
    start = _run_start(directory)
    population = Population(since=start)
    files = _log_files(directory)
    settings = _scoring_payments(_with_inventory(directory, settings))
    run = backtest(files, settings, on_batch=population.observe)
    # The payment rule reports every order's score; below its threshold it is no alert.
    alerts = [a for a in run.alerts if a.rule_id != payments.RULE or a.details.get("alerting")]
    records, tally = _score(truth, alerts, population, grace_s)
    orders = payments.scored_orders(run.alerts)
    first = start if start is not None else min((c["start"] for c in truth), default=None)
    extra = {
        "lines": run.report.lines,
        "rejected": run.report.rejected,
        "files": [p.name for p in files],
        "_orders": payments.label_orders(orders, truth, first, 0) if first else [],
    }
    return records, tally, extra


def _scoring_payments(settings: Settings | None) -> Settings:
    """``settings`` with ``payment.fraud_score`` reporting every order's score."""
    base = settings or load_settings()
    current = base.detectors.get(payments.RULE, DetectorOverride())
    if not current.enabled:
        return base
    tuned = current.model_copy(update={"params": {**current.params, "score_all": True}})
    return base.model_copy(update={"detectors": {**base.detectors, payments.RULE: tuned}})


def _with_inventory(directory: Path, settings: Settings | None) -> Settings | None:
    """``settings`` with the run's ``vendors.yaml`` as vendor inventory, unless one is set."""
    path = directory / INVENTORY_FILE
    if not path.is_file():
        return settings
    base = settings or load_settings()
    if base.detect.vendor_inventory is not None:
        return base
    detect = base.detect.model_copy(update={"vendor_inventory": path})
    return base.model_copy(update={"detect": detect})


def _run_start(directory: Path) -> datetime | None:
    """When a ``simulate`` run began (its ``run.json``; None for folders without one)."""
    path = directory / RUN_FILE
    if not path.is_file():
        return None
    try:
        return datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["start"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a simulate run record ({err})") from err


def evaluate_dir(
    directory: Path, settings: Settings | None = None, *, grace_s: float = DEFAULT_GRACE_S
) -> dict[str, Any]:
    """Replay a ``simulate`` output folder and score its alerts against its ground truth."""
    records, tally, extra = _run(directory, settings, grace_s)
    orders = extra.pop("_orders")
    midpoint = _midpoint(orders)
    return {
        **summarise(records, tally),
        **extra,
        "payment_scores": payments.payment_figures(orders, {0: midpoint} if midpoint else {}),
    }


def _midpoint(orders: Sequence[payments.ScoredOrder]) -> datetime | None:
    """Halfway between a run's first and last live order."""
    live = [o.at for o in orders if o.live]
    return min(live) + (max(live) - min(live)) / 2 if live else None


def evaluate_seeds(
    seeds: Sequence[int],
    minutes: float,
    *,
    customers: int = 1500,
    keep: Path | None = None,
    settings: Settings | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """Simulate each seed, evaluate it, and pool the figures (``evaluate sim``)."""
    from shopwatch.sim import simulate

    if not seeds:
        raise ConfigError("give at least one seed")
    pooled: list[dict[str, Any]] = []
    total = Tally()
    runs: list[dict[str, Any]] = []
    orders: list[payments.ScoredOrder] = []
    midpoints: dict[int, datetime] = {}
    with tempfile.TemporaryDirectory(prefix="shopwatch-sim-") as tmp:
        root = keep if keep is not None else Path(tmp)
        for index, seed in enumerate(seeds):
            out = root / f"seed{seed}"
            simulate(out, minutes, seed, customers=customers)
            records, tally, extra = _run(out, settings, grace_s)
            mine = [dataclasses.replace(o, run=index) for o in extra.pop("_orders")]
            orders.extend(mine)
            midpoint = _midpoint(mine)
            if midpoint is not None:
                midpoints[index] = midpoint
            pooled.extend({**r, "seed": seed} for r in records)
            total.add(tally)
            one = summarise(records, tally)
            del one["campaigns"]
            runs.append({"seed": seed, **one, **extra})
    return {
        "seeds": list(seeds),
        "minutes": minutes,
        "customers": customers,
        **summarise(pooled, total),
        "payment_scores": payments.payment_figures(orders, midpoints),
        "runs": runs,
    }
