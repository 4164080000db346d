"""``shopwatch rules lint``, ``rules check``, ``rules exemptions`` and ``shopwatch config show``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from shopwatch.cli.common import fail, settings_from
from shopwatch.detect.content import load_detectors
from shopwatch.errors import StoreError

__all__ = ["register"]

rules_app = typer.Typer(help="Check detection content.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@rules_app.command("lint")
def lint(
    rules_dir: list[Path] = typer.Option(
        [], "--rules-dir", help="Extra rule folders (overlay by id)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
) -> None:
    """Validate every rule file (shipped and yours); exit 1 when any is invalid.

    The same check as at load: each condition runs once through Polars, the engine that
    runs it on every batch, so a regex it refuses is reported with file:line and reason.
    """
    settings = settings_from(config)
    loaded = load_detectors(
        [*settings.rules_dirs, *rules_dir],
        settings.detectors,
        include_disabled=True,
        max_window=timedelta(seconds=settings.runtime.state_max_window_s),
        sigma_rules=settings.detect.sigma_rules,
    )
    console = Console(stderr=True, soft_wrap=True)  # one problem, one line: grep-able
    for problem in loaded.errors:
        console.print(Text.assemble(("invalid: ", "red"), str(problem)), highlight=False)
    console.print(f"{len(loaded.detectors)} rules valid, {len(loaded.errors)} invalid")
    if loaded.errors:
        raise typer.Exit(1)


@rules_app.command("check")
def check(
    dirs: list[Path] = typer.Argument(..., help="Folders of rule files (Sigma or ours)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every rule's result here."),
    failing: bool = typer.Option(False, "--failing", help="List only the rules that fail."),
) -> None:
    """For each rule under DIRS: does it compile and run, and if not, exactly why.

    Every rule is converted (Sigma through the shipped processing pipeline), built and run
    once over a probe batch of every dataset shopwatch ingests. A rule that fails names the
    construct, the field or the log source shopwatch does not ingest. Exit 1 when any fails.
    """
    from shopwatch.detect.check import check_rules, summarize

    for folder in dirs:
        if not folder.is_dir():
            typer.echo(f"not a folder: {folder}", err=True)
            raise typer.Exit(2)
    checks = check_rules(dirs)
    console = Console(soft_wrap=True)
    for c in checks:
        if failing and c.status == "runs":
            continue
        where = f"{c.path}:{c.line}" if c.line else c.path
        label = ("runs ", "green") if c.status == "runs" else ("fails", "red")
        text = Text.assemble(label, f"  {c.log_source}  {c.title or c.rule_id}  ({where})")
        if c.reason:
            text.append(f"\n       {c.reason}")
        console.print(text, highlight=False)
    summary = summarize(checks)
    console.print("")
    for source, n in summary.items():
        total = n["runs"] + n["fails"]
        console.print(f"{source}: {n['runs']} of {total} run", highlight=False)
    runs = sum(n["runs"] for n in summary.values())
    console.print(f"{runs} of {len(checks)} rules compile and run", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps({"rules": [c.as_dict() for c in checks], "by_log_source": summary}, indent=2)
            + "\n",
            encoding="utf-8",
        )
    if runs < len(checks):
        raise typer.Exit(1)


@rules_app.command("exemptions")
def exemptions(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    url: str | None = typer.Option(
        None, "--url", help="Database URL; overrides store.url (SQLite in data_dir by default)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write them as JSON here."),
) -> None:
    """The per-field exemptions of web signatures: written and learned (docs/exemptions.md).

    Learned ones are read from the state ``shopwatch run`` last saved in the store: each
    (rule, endpoint, field) with the networks that count toward it, the probers that do
    not, and whether it is exempt now. Revoke one under ``detect.exemptions.never``.
    """
    from rich.table import Table

    from shopwatch.detect.exemptions import EXEMPT_STATE
    from shopwatch.pipeline.build import build_engine
    from shopwatch.pipeline.service import CHECKPOINT
    from shopwatch.store import Store

    settings = settings_from(config)
    console = Console(soft_wrap=True)
    engine = build_engine(settings)
    if engine.exemptions is None:
        console.print("exemptions are switched off (detect.exemptions.enabled: false)")
        return
    try:
        with Store(url or settings.store_url) as store:
            where = store.url
            blob = store.load_checkpoint(CHECKPOINT) if store.revision() else None
    except StoreError as err:
        fail(str(err), 1)
    if blob is not None:
        engine.restore(blob)
    rows = [
        {
            "rule": ", ".join(sorted(f.rules)) if f.rules else "every web signature",
            "endpoint": f.endpoint,
            "field": f.field,
            "how": "written",
            "exempt": True,
        }
        for f in engine.exemptions.rules.fixed
    ]
    learned = engine.exemptions.listing(engine.states[EXEMPT_STATE])
    for row in learned.iter_rows(named=True):
        revoked = any(
            n.covers(row["rule"], row["endpoint"], row["field"])
            for n in engine.exemptions.rules.never
        )
        rows.append(
            {
                **row,
                "how": "revoked" if revoked else "learned",
                "exempt": bool(row["exempt"]) and not revoked and engine.exemptions.rules.learn,
                "last_seen": row["last_seen"].isoformat() if row["last_seen"] else None,
            }
        )
    table = Table(title="exemptions", show_edge=False)
    for col in ("rule", "endpoint", "field", "how", "networks", "probers", "exempt"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["rule"]),
            str(row["endpoint"]),
            str(row["field"]),
            str(row["how"]),
            str(row.get("networks", "")),
            str(row.get("probers", "")),
            "yes" if row["exempt"] else "no",
        )
    console.print(table)
    state = "no saved state yet" if blob is None else "the state last saved"
    console.print(f"{len(rows)} exemptions (learned ones from {state} in {where})")
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


@config_app.command("show")
def show(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
) -> None:
    """Print the settings in force (defaults < file < environment), secrets masked."""
    typer.echo(json.dumps(settings_from(config).masked(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(rules_app, name="rules")
    app.add_typer(config_app, name="config")
