"""``shopwatch evaluate campaigns DIR`` and ``shopwatch evaluate sim --seeds 1,2,3``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.cli.common import fail
from shopwatch.cli.evaluate import (
    JSON_OPTION,
    REQUIRE_OPTION,
    finish,
    optional_settings,
    table_console,
)
from shopwatch.errors import ShopwatchError
from shopwatch.evaluate.campaigns import DEFAULT_GRACE_S

__all__ = ["print_campaigns", "register"]

_CONFIG: Any = typer.Option(None, "--config", "-c", help="YAML settings file (rules, detectors).")
_GRACE: Any = typer.Option(
    DEFAULT_GRACE_S,
    "--grace",
    min=0.0,
    help="Seconds after a campaign's end that an alert still counts.",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_campaigns(
    figures: dict[str, Any], console: Console, *, per_campaign: bool = True
) -> None:
    """The tables of a campaign evaluation: campaigns, categories, variants, summary."""
    if per_campaign:
        pooled = any("seed" in c for c in figures["campaigns"])
        cols = ["seed"] if pooled else []
        cols += [
            "campaign",
            "variant",
            "expected",
            "detected",
            "category",
            "ttd",
            "alerts",
            "rules",
        ]
        table = Table(title="campaigns", show_edge=False)
        for col in cols:
            table.add_column(col, justify="right" if col in ("ttd", "alerts") else "left")
        for c in figures["campaigns"]:
            if not c["benign"] and not c.get("observed", True):
                continue  # wrote nothing in the run; counted in the summary
            if c["benign"]:
                cells = ["benign", "-", "-", "-"]
                style = "red" if c["alerts"] else "dim"
            else:
                ttd = "-" if c["ttd_s"] is None else f"{c['ttd_s']:.0f}s"
                detected = "yes" if c["detected"] else "[red]no[/]"
                matched = {True: "yes", False: "no", None: "-"}[c["category_matched"]]
                cells = [c["category"], detected, matched, ttd]
                style = ""
            row = [str(c["seed"])] if pooled else []
            row += [c["id"], c["variant"] or "-", *cells, str(c["alerts"])]
            row.append(", ".join(c["rules"]) or "-")
            table.add_row(*row, style=style)
        console.print(table)
    types = Table(title="per campaign type", show_edge=False)
    for col in ("type", "runs", "detected", "category matched", "false alerts"):
        types.add_column(col, justify="left" if col == "type" else "right")
    for kind, v in figures["per_type"].items():
        if v["benign"]:
            types.add_row(f"{kind} (look-alike)", str(v["runs"]), "-", "-", str(v["false_alerts"]))
        else:
            types.add_row(kind, str(v["runs"]), str(v["detected"]), str(v["category_matched"]), "-")
    console.print(types)
    cats = Table(title="per category", show_edge=False)
    for col in ("category", "alerts", "precision", "campaigns", "recall"):
        cats.add_column(col, justify="left" if col == "category" else "right")
    for cat, v in figures["per_category"].items():
        cats.add_row(
            cat, str(v["alerts"]), _pct(v["precision"]), str(v["campaigns"]), _pct(v["recall"])
        )
    console.print(cats)
    variants = Table(title="per variant", show_edge=False)
    for col in ("variant", "campaigns", "detected", "recall", "median time to detect"):
        variants.add_column(col, justify="left" if col == "variant" else "right")
    for name, v in figures["per_variant"].items():
        ttd_v = v.get("median_ttd_s")
        variants.add_row(
            name,
            str(v["campaigns"]),
            str(v["detected"]),
            _pct(v["recall"]),
            "-" if ttd_v is None else f"{ttd_v:.0f}s",
        )
    console.print(variants)
    summary = Table(title="summary", show_edge=False, show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    ttd = figures["median_ttd_s"]
    for name, value in (
        ("attack campaigns", str(figures["attacks"])),
        ("attack campaigns that wrote nothing in the run", str(figures.get("unobserved", 0))),
        ("detected (recall)", f"{figures['detected']} ({_pct(figures['recall'])})"),
        ("category matched (category_recall)", _pct(figures["category_recall"])),
        ("median time to detect", "-" if ttd is None else f"{ttd:.0f}s"),
        (
            "compromised accounts named",
            f"{figures.get('compromised_named', 0)} of {figures.get('compromised', 0)}",
        ),
        ("alerts", str(figures["alerts"])),
        ("alerts on no attack (fp_alerts)", str(figures["fp_alerts"])),
        (
            "shop metric alerts an attack explains (symptom_alerts)",
            str(figures.get("symptom_alerts", 0)),
        ),
        ("alerts on benign look-alikes", str(figures["benign_false_alerts"])),
        (
            "benign customers named in an alert",
            f"{figures.get('benign_customers_alerted', 0)} of {figures.get('benign_customers', 0)}"
            f" ({_pct(figures.get('benign_alerted_share'))})",
        ),
    ):
        summary.add_row(name, value)
    console.print(summary)
    pay = figures.get("payment_scores")
    if pay:
        _print_payments(pay, console)


def _print_payments(pay: dict[str, Any], console: Console) -> None:
    """Precision-recall of payment.fraud_score over every placed order."""

    def auc(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    split = pay["split"]
    table = Table(title="payment fraud scores (every placed order)", show_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("orders (fraud)", f"{pay['orders']} ({pay['fraud_orders']})"),
        ("orders of other attacks, left out", str(pay["left_out"])),
        ("PR-AUC, unsupervised, all orders", auc(pay["unsupervised_pr_auc"])),
        ("alerted: fraud / honest orders", f"{pay['alerted_fraud']} / {pay['alerted_honest']}"),
        (
            "time-ordered split: train (fraud) / test (fraud)",
            f"{split['train_orders']} ({split['train_fraud']}) / "
            f"{split['test_orders']} ({split['test_fraud']})",
        ),
        ("PR-AUC on the later half, unsupervised", auc(split["unsupervised_pr_auc"])),
        ("PR-AUC on the later half, with labels", auc(split["supervised_pr_auc"])),
        ("label model version", split["model_version"] or "-"),
    ):
        table.add_row(name, value)
    console.print(table)


def campaigns_cmd(
    directory: Path = typer.Argument(..., help="A 'shopwatch simulate' output folder."),
    config: Path | None = _CONFIG,
    grace: float = _GRACE,
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Replay a simulated run and score its alerts against its ground_truth.json."""
    from shopwatch.evaluate.campaigns import evaluate_dir

    if not directory.is_dir():
        fail(f"no such folder: {directory}")
    try:
        figures = evaluate_dir(directory, optional_settings(config), grace_s=grace)
    except ShopwatchError as err:
        fail(str(err))
    print_campaigns(figures, table_console())
    finish(figures, json_out, require)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--seeds {text!r} is not a comma-separated list of integers, e.g. 1,2,3")
    if not seeds:
        fail("--seeds needs at least one seed")
    return seeds


def sim_cmd(
    seeds: str = typer.Option("1,2,3", "--seeds", help="Comma-separated simulator seeds."),
    minutes: float = typer.Option(30.0, "--minutes", "-m", min=1.0, help="Length of each run."),
    customers: int = typer.Option(1500, "--customers", min=50, help="Customers of the shop."),
    keep: Path | None = typer.Option(
        None, "--keep", help="Keep the simulated runs in this folder."
    ),
    config: Path | None = _CONFIG,
    grace: float = _GRACE,
    per_campaign: bool = typer.Option(
        True, "--per-campaign/--summary", help="List every campaign."
    ),
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Simulate each seed, replay it, and score the alerts against its ground truth."""
    from shopwatch.evaluate.campaigns import evaluate_seeds

    try:
        figures = evaluate_seeds(
            _seeds(seeds),
            minutes,
            customers=customers,
            keep=keep,
            settings=optional_settings(config),
            grace_s=grace,
        )
    except ShopwatchError as err:
        fail(str(err))
    print_campaigns(figures, table_console(), per_campaign=per_campaign)
    finish(figures, json_out, require)


def register(app: typer.Typer) -> None:
    """Add ``campaigns`` and ``sim`` to the evaluate group."""
    app.command("campaigns")(campaigns_cmd)
    app.command("sim")(sim_cmd)
