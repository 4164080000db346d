"""Scoring alerts against simulated campaigns: ``evaluate campaigns`` and ``evaluate sim``.

The ground truth is the ``ground_truth.json`` a ``simulate`` run writes beside its logs: a
list of campaigns, each with ``id``, ``kind``, ``benign``, ``start``, ``end``,
``rule.category`` (the category a detection should raise), optionally ``variant`` (``loud``
or ``low_slow``) and ``entities`` (field → values an alert about it may name: the
attackers' addresses, devices, sessions, cards and accounts, and the accounts they
targeted).

An alert *covers* a campaign when it names one of the campaign's entities and fires
between the campaign's start and ``grace_s`` after its end (event time). From that:

- per attack campaign: detected, category matched, time to detect (first covering alert -
  start), alerts, rules;
- per benign look-alike: its false alerts;
- ``fp_alerts``: alerts that cover no attack campaign (look-alikes and strays alike);
- ``benign_alerted_share``: of the customers active in the run (accounts with a successful
  shop event) that no attack involves, the share named in any alert;
- per category: precision (alerts of the category that cover an attack) and recall
  (attacks of the category detected with that category).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate.backtest import Window, alert_values, backtest

__all__ = [
    "DEFAULT_GRACE_S",
    "Population",
    "evaluate_dir",
    "evaluate_seeds",
    "load_truth",
    "score_campaigns",
]

#: How long after a campaign's end an alert still counts for it (windows close late).
DEFAULT_GRACE_S = 300.0
_TRUTH = "ground_truth.json"
_LOG_SUFFIXES = (".log", ".ndjson", ".jsonl", ".gz", ".txt")


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ConfigError(f"ground truth time {text!r} has no zone offset")
    return value


def load_truth(path: Path) -> list[dict[str, Any]]:
    """The campaigns of a ``ground_truth.json``, checked for the keys scoring needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read ground truth {path}: {err}") from err
    if not isinstance(data, list):
        raise ConfigError(f"{path} must hold a JSON list of campaigns")
    for i, record in enumerate(data):
        missing = [
            k
            for k in ("id", "kind", "benign", "start", "end", "entities")
            if not isinstance(record, dict) or k not in record
        ]
        if missing:
            raise ConfigError(f"{path}: campaign {i} lacks {', '.join(missing)}")
        _time(record["start"]), _time(record["end"])
    return data


@dataclass(slots=True)
class Population:
    """Who was active in a run: accounts with a successful shop event, and source addresses."""

    customers: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)

    def observe(self, batch: pl.DataFrame) -> None:
        """Add the accounts and addresses of one parsed batch."""
        if "user.name" in batch.columns and "event.dataset" in batch.columns:
            ok = batch.filter(
                pl.col("event.dataset").str.starts_with("shop.")
                & pl.col("user.name").is_not_null()
                & (pl.col("event.outcome").is_null() | pl.col("event.outcome").eq("success"))
            )
            self.customers.update(ok["user.name"].unique().to_list())
        if "source.ip" in batch.columns:
            self.addresses.update(batch["source.ip"].drop_nulls().unique().to_list())


def _window(campaign: dict[str, Any], grace_s: float) -> Window:
    values = {k: frozenset(str(x) for x in v) for k, v in campaign["entities"].items() if v}
    return Window(
        values, _time(campaign["start"]), _time(campaign["end"]) + timedelta(seconds=grace_s)
    )


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _category(alerts: int, true_alerts: int, campaigns: int, found: int) -> dict[str, Any]:
    return {
        "alerts": alerts,
        "true_alerts": true_alerts,
        "precision": _ratio(true_alerts, alerts),
        "campaigns": campaigns,
        "found": found,
        "recall": _ratio(found, campaigns),
    }


def score_campaigns(
    truth: Sequence[dict[str, Any]],
    alerts: Sequence[Alert],
    population: Population | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """The figures of one run: per campaign, per category, per variant, and in all."""
    windows = {c["id"]: _window(c, grace_s) for c in truth}
    attacks = [c for c in truth if not c["benign"]]
    covering: dict[str, list[Alert]] = {c["id"]: [] for c in truth}
    covers_attack: list[bool] = []
    for alert in alerts:
        hit = False
        for c in truth:
            if windows[c["id"]].covers(alert):
                covering[c["id"]].append(alert)
                hit = hit or not c["benign"]
        covers_attack.append(hit)

    records: list[dict[str, Any]] = []
    for c in truth:
        found = covering[c["id"]]
        expected = c.get("rule.category")
        start = _time(c["start"])
        record: dict[str, Any] = {
            "id": c["id"],
            "type": c["kind"],
            "variant": c.get("variant"),
            "benign": bool(c["benign"]),
            "category": expected,
            "alerts": len(found),
            "rules": sorted({a.rule_id for a in found}),
        }
        if c["benign"]:
            record["false_alerts"] = len(found)
        else:
            matched = [a for a in found if a.category == expected]
            record["detected"] = bool(found)
            record["category_matched"] = bool(matched)
            record["ttd_s"] = (
                round((found[0].timestamp - start).total_seconds(), 3) if found else None
            )
        records.append(record)

    detected = [r for r in records if not r["benign"] and r["detected"]]
    ttds = [r["ttd_s"] for r in detected]
    fp_alerts = sum(1 for hit in covers_attack if not hit)

    by_category: dict[str, dict[str, Any]] = {}
    alert_cats = Counter(a.category for a in alerts)
    true_cats = Counter(a.category for a, hit in zip(alerts, covers_attack, strict=True) if hit)
    camp_cats = Counter(c.get("rule.category") for c in attacks)
    found_cats = Counter(
        r["category"] for r in records if not r["benign"] and r["category_matched"]
    )
    for cat in sorted({*alert_cats, *(k for k in camp_cats if k)}):
        by_category[cat] = _category(
            alert_cats[cat], true_cats[cat], camp_cats[cat], found_cats[cat]
        )

    by_variant: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if not r["benign"]:
            groups[str(r["variant"] or "-")].append(r)
    for variant, rs in sorted(groups.items()):
        by_variant[variant] = {
            "campaigns": len(rs),
            "detected": sum(r["detected"] for r in rs),
            "recall": _ratio(sum(r["detected"] for r in rs), len(rs)),
        }

    by_type: dict[str, dict[str, Any]] = {}
    types: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        types[r["type"]].append(r)
    for kind, rs in sorted(types.items()):
        if rs[0]["benign"]:
            by_type[kind] = {
                "benign": True,
                "runs": len(rs),
                "false_alerts": sum(r["alerts"] for r in rs),
            }
        else:
            by_type[kind] = {
                "benign": False,
                "runs": len(rs),
                "detected": sum(r["detected"] for r in rs),
                "category_matched": sum(r["category_matched"] for r in rs),
            }

    attack_values = {(k, v) for c in attacks for k, vs in c["entities"].items() for v in vs}
    figures: dict[str, Any] = {
        "campaigns": records,
        "attacks": len(attacks),
        "detected": len(detected),
        "recall": _ratio(len(detected), len(attacks)),
        "category_recall": _ratio(sum(r["category_matched"] for r in detected), len(attacks)),
        "median_ttd_s": round(statistics.median(ttds), 3) if ttds else None,
        "alerts": len(alerts),
        "fp_alerts": fp_alerts,
        "alert_precision": _ratio(len(alerts) - fp_alerts, len(alerts)),
        "benign_false_alerts": sum(r["alerts"] for r in records if r["benign"]),
        "per_category": by_category,
        "per_variant": by_variant,
        "per_type": by_type,
    }
    if population is not None:
        named = {v for a in alerts for k, v in alert_values(a) if k == "user.name"}
        named_ips = {v for a in alerts for k, v in alert_values(a) if k == "source.ip"}
        customers = {u for u in population.customers if ("user.name", u) not in attack_values}
        addresses = {ip for ip in population.addresses if ("source.ip", ip) not in attack_values}
        figures["benign_customers"] = len(customers)
        figures["benign_customers_alerted"] = len(customers & named)
        figures["benign_alerted_share"] = _ratio(len(customers & named), len(customers))
        figures["benign_addresses"] = len(addresses)
        figures["benign_addresses_alerted"] = len(addresses & named_ips)
    return figures


def _log_files(directory: Path) -> list[Path]:
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and p.name != _TRUTH
        and p.name.endswith(_LOG_SUFFIXES)
        and not p.name.startswith("alerts")  # a replay's output kept beside its input
    )
    if not files:
        raise ConfigError(f"{directory} holds no log files next to its {_TRUTH}")
    return files


def evaluate_dir(
    directory: Path, settings: Settings | None = None, *, grace_s: float = DEFAULT_GRACE_S
) -> dict[str, Any]:
    """Replay a ``simulate`` output folder and score its alerts against its ground truth."""
    truth_path = directory / _TRUTH
    if not truth_path.is_file():
        raise ConfigError(f"{directory} has no {_TRUTH} (a 'shopwatch simulate' output has one)")
    truth = load_truth(truth_path)
    population = Population()
    files = _log_files(directory)
    run = backtest(files, settings, on_batch=population.observe)
    figures = score_campaigns(truth, run.alerts, population, grace_s=grace_s)
    figures["lines"] = run.report.lines
    figures["rejected"] = run.report.rejected
    figures["files"] = [p.name for p in files]
    return figures


def _pool(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Figures over several runs: campaigns pooled, counts added, shares recomputed."""
    campaigns = [dict(c, seed=r["seed"]) for r in runs for c in r["campaigns"]]
    attacks = [c for c in campaigns if not c["benign"]]
    detected = [c for c in attacks if c["detected"]]
    ttds = [c["ttd_s"] for c in detected]
    alerts = sum(r["alerts"] for r in runs)
    fp = sum(r["fp_alerts"] for r in runs)
    customers = sum(r.get("benign_customers", 0) for r in runs)
    alerted = sum(r.get("benign_customers_alerted", 0) for r in runs)
    sums: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        for cat, v in r["per_category"].items():
            sums[cat].update({k: v[k] for k in ("alerts", "true_alerts", "campaigns", "found")})
    per_category = {
        cat: _category(s["alerts"], s["true_alerts"], s["campaigns"], s["found"])
        for cat, s in sorted(sums.items())
    }
    per_variant: dict[str, dict[str, Any]] = {}
    for c in attacks:
        slot = per_variant.setdefault(str(c["variant"] or "-"), {"campaigns": 0, "detected": 0})
        slot["campaigns"] += 1
        slot["detected"] += int(c["detected"])
    for slot in per_variant.values():
        slot["recall"] = _ratio(slot["detected"], slot["campaigns"])
    per_type: dict[str, dict[str, Any]] = {}
    for c in campaigns:
        if c["benign"]:
            slot = per_type.setdefault(c["type"], {"benign": True, "runs": 0, "false_alerts": 0})
            slot["false_alerts"] += c["alerts"]
        else:
            slot = per_type.setdefault(
                c["type"], {"benign": False, "runs": 0, "detected": 0, "category_matched": 0}
            )
            slot["detected"] += int(c["detected"])
            slot["category_matched"] += int(c["category_matched"])
        slot["runs"] += 1
    return {
        "seeds": [r["seed"] for r in runs],
        "campaigns": campaigns,
        "attacks": len(attacks),
        "detected": len(detected),
        "recall": _ratio(len(detected), len(attacks)),
        "category_recall": _ratio(sum(c["category_matched"] for c in detected), len(attacks)),
        "median_ttd_s": round(statistics.median(ttds), 3) if ttds else None,
        "alerts": alerts,
        "fp_alerts": fp,
        "alert_precision": _ratio(alerts - fp, alerts),
        "benign_false_alerts": sum(r["benign_false_alerts"] for r in runs),
        "benign_customers": customers,
        "benign_customers_alerted": alerted,
        "benign_alerted_share": _ratio(alerted, customers),
        "per_category": per_category,
        "per_variant": dict(sorted(per_variant.items())),
        "per_type": dict(sorted(per_type.items())),
        "runs": [{k: v for k, v in r.items() if k != "campaigns"} for r in runs],
    }


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
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shopwatch-sim-") as tmp:
        root = keep if keep is not None else Path(tmp)
        for seed in seeds:
            out = root / f"seed{seed}"
            simulate(out, minutes, seed, customers=customers)
            figures = evaluate_dir(out, settings, grace_s=grace_s)
            figures["seed"] = seed
            runs.append(figures)
    pooled = _pool(runs)
    pooled["minutes"] = minutes
    pooled["customers"] = customers
    return pooled
