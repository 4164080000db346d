"""``shopwatch evaluate nab --data DIR --labels DIR``: the Numenta Anomaly Benchmark.

To cross-check with NAB's own scorer, write the scores in its layout
(``--results NAB/results --nab-names``, for ``--detector null`` too, which its
normalisation needs), then in a NAB checkout run ``python run.py -d shopwatch,null
--optimize --score --normalize --skipConfirmation``. It scores the files it finds there.

A labelled series that cannot be used (no data file, a bad header, a timestamp or value
that is not one, a window edge that is not one of its timestamps) stops the run with exit
2; ``--skip-bad`` scores the rest instead, and the skipped series' windows count as missed.
Missing values (blank, ``nan``, ``inf`` ...) do not: they are counted per series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.cli.common import fail
from shopwatch.cli.evaluate import JSON_OPTION, REQUIRE_OPTION, finish, table_console
from shopwatch.errors import ShopwatchError

__all__ = ["nab_cmd", "print_nab", "register"]

#: Series shown without ``--per-series`` (the lowest raw scores first).
TOP = 10


def print_nab(figures: dict[str, Any], console: Console, *, per_series: bool = False) -> None:
    """The normalised score per profile, then the standard profile's counts per series."""
    table = Table(title=f"NAB · detector {figures['detector']}", show_edge=False)
    for col in ("profile", "score", "raw", "null", "perfect", "threshold"):
        table.add_column(col, justify="left" if col == "profile" else "right")
    for name, score in figures["scores"].items():
        table.add_row(
            name,
            "-" if score is None else f"{score:.2f}",
            f"{figures['raw'][name]:.3f}",
            f"{figures['null'][name]:.3f}",
            f"{figures['perfect'][name]:.3f}",
            f"{figures['threshold'][name]:.15g}",
        )
    console.print(table)
    rows = sorted(figures["per_series"], key=lambda r: (r["raw"], r["file"]))
    shown = rows if per_series else rows[:TOP]
    series = Table(title="per series, standard profile (lowest raw score first)", show_edge=False)
    for col in ("file", "windows", "tp", "fp", "fn", "missing", "raw"):
        series.add_column(col, justify="left" if col == "file" else "right")
    for r in shown:
        series.add_row(
            r["file"],
            str(r["windows"]),
            str(r["tp"]),
            str(r["fp"]),
            str(r["fn"]),
            str(r["missing_values"]),
            f"{r['raw']:.3f}",
        )
    console.print(series)
    more = len(rows) - len(shown)
    console.print(
        f"series {figures['series']} · windows {figures['windows']} "
        f"({figures['windows_scored']} scored after probation, "
        f"{figures['windows_skipped']} in skipped series) · points {figures['points']:,} · "
        f"missing values {figures['missing_values']:,}"
        + (f" · {more} more series (--per-series)" if more else ""),
        highlight=False,
    )
    for p in figures["problems"]:
        console.print(
            f"[yellow]skipped[/] {p['file']} ({p['reason']}, {p['windows']} windows counted "
            f"as missed): {p['detail']}",
            highlight=False,
        )


def nab_cmd(
    data: Path = typer.Option(..., "--data", help="NAB's data/ folder (<folder>/<file>.csv)."),
    labels: Path = typer.Option(
        ..., "--labels", help="NAB's labels/ folder (combined_windows.json)."
    ),
    results: Path | None = typer.Option(
        None,
        "--results",
        help="Write timestamp,value,anomaly_score,label per series to DIR/<folder>/<file>.csv.",
    ),
    nab_names: bool = typer.Option(
        False,
        "--nab-names",
        help="With --results, use NAB's own layout DIR/<detector>/<folder>/<detector>_<file>.csv.",
    ),
    detector_name: str = typer.Option(
        "shopwatch",
        "--detector",
        help="Streaming detector to score: shopwatch (the apm.metric model), baseline, null.",
    ),
    per_series: bool = typer.Option(False, "--per-series", help="List every series."),
    skip_bad: bool = typer.Option(
        False,
        "--skip-bad",
        help="Score without the series that cannot be used; their windows count as missed.",
    ),
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Run a streaming detector over NAB's labelled series and score it by NAB's rules."""
    from shopwatch.evaluate import nab

    factory = nab.DETECTORS.get(detector_name)
    if factory is None:
        fail(f"unknown detector {detector_name!r}; known: {', '.join(sorted(nab.DETECTORS))}")
    try:
        corpus = nab.load_corpus(data, labels)
    except ShopwatchError as err:
        fail(str(err))
    if corpus.problems and not (skip_bad and corpus.series):
        _print_problems(corpus.problems)
        if not corpus.series:
            fail(f"none of the series labelled in {labels} could be read from {data}")
        fail(
            f"{len(corpus.problems)} series labelled in {labels} cannot be used (listed above); "
            "fix them, or pass --skip-bad to score the rest with their windows counted as missed"
        )
    det = factory()
    scores = {s.key: det.score(s.values, s.seconds) for s in corpus.series}
    if results is not None:
        out_dir, prefix = (
            (results / detector_name, f"{detector_name}_") if nab_names else (results, "")
        )
        try:
            for s in corpus.series:
                nab.write_results(out_dir, s, scores[s.key], prefix=prefix)
        except OSError as err:
            fail(f"cannot write results under {results}: {err}")
        except ShopwatchError as err:
            fail(str(err))
    figures = nab.evaluate(corpus, scores, detector_name=detector_name)
    print_nab(figures, table_console(), per_series=per_series)
    finish(figures, json_out, require)


def _print_problems(problems: list[Any]) -> None:
    console = Console(stderr=True)
    for p in problems:
        console.print(f"[red]unusable[/] {p.key} ({p.reason}): {p.detail}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``nab`` to ``app`` (the ``evaluate`` group)."""
    app.command("nab")(nab_cmd)
