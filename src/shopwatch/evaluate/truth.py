"""Scoring alerts against a CSV of labelled entities: ``evaluate truth``.

The CSV has a header with the columns ``entity`` (an IP address, account, device, card
fingerprint, host... as alerts name them), ``label`` and optionally ``start`` and ``end``
(RFC 3339; an alert counts for the entity only inside that span). The label ``benign``
marks entities known to be benign; any other label is a kind of attack. An entity may
appear on several rows (several labels or spans).

Times are RFC 3339 (a missing zone is UTC) or dates (an ``end`` date includes the whole
day). An entity is *detected* when an alert names it (in any entity field but shared
infrastructure such as ``host.name``) within its span. The figures: per label, entities detected / entities; benign entities alerted; alerted entity
values that the CSV does not list.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopwatch.config import Settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate.backtest import Span, backtest, named, parse_time, ratio
from shopwatch.pipeline.merge import matched_rules

__all__ = ["BENIGN", "Label", "evaluate_truth", "read_labels", "score_labels"]

#: The label of entities known to be benign (compared case-insensitively).
BENIGN = "benign"
MAX_EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class Label:
    """One row of the labels CSV: an entity (in any alert field) and its label, in a span."""

    entity: str
    label: str
    span: Span

    @classmethod
    def of(cls, entity: str, label: str, start: Any = None, end: Any = None) -> Label:
        """A label; ``start``/``end`` as :func:`~shopwatch.evaluate.backtest.parse_time` reads."""
        name = BENIGN if label.strip().lower() == BENIGN else label.strip()
        return cls(
            entity,
            name,
            Span(
                {"*": frozenset({entity})},
                parse_time(start, entity) if start else None,
                parse_time(end, entity, end_of_day=True) if end else None,
            ),
        )


def read_labels(path: Path) -> list[Label]:
    """The rows of a labels CSV; a malformed row is an error naming its line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"cannot read labels {path} (UTF-8 CSV expected): {err}") from err
    if not rows:
        raise ConfigError(f"{path} is empty; it needs a header entity,label[,start,end]")
    header = [c.strip().lower() for c in rows[0][1]]
    if not {"entity", "label"} <= set(header):
        raise ConfigError(
            f"{path}: the header must name the columns entity and label "
            f"(optional start, end); found {header or 'none'}"
        )
    col = {
        name: header.index(name) for name in ("entity", "label", "start", "end") if name in header
    }
    labels: list[Label] = []
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) > len(header):
            raise ConfigError(
                f"{where}: {len(row)} values for {len(header)} columns (quote commas)"
            )
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        if not cells["entity"] or not cells["label"]:
            raise ConfigError(f"{where}: entity and label must not be empty")
        try:
            label = Label.of(cells["entity"], cells["label"], cells.get("start"), cells.get("end"))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err
        span = label.span
        if span.start and span.end and span.end < span.start:
            raise ConfigError(f"{where}: end is before start")
        labels.append(label)
    if not labels:
        raise ConfigError(f"{path} has no labelled entities")
    return labels


def score_labels(labels: Sequence[Label], alerts: Iterable[Alert]) -> dict[str, Any]:
    """Per label detected / total, benign entities alerted, unlabelled entities alerted.

    An alert that names no labelled entity at all adds the values it names (shared
    infrastructure such as ``host.name`` aside) to the unlabelled ones.
    """
    alerts = list(alerts)
    by_entity: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_entity[label.entity].append(label)
    detected: set[tuple[str, str]] = set()  # (label, entity)
    rules: dict[str, set[str]] = defaultdict(set)
    unlabelled: dict[str, int] = defaultdict(int)
    for alert in alerts:
        values = {v for _, v in named(alert)}
        known = [row for v in values for row in by_entity.get(v, ())]
        if not known:
            for value in values:
                unlabelled[value] += 1
            continue
        for row in known:
            if row.span.covers(alert):
                detected.add((row.label, row.entity))
                rules[row.label].update(matched_rules(alert.rule_id, alert.details))
    totals: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        totals[label.label].add(label.entity)
    per_label: dict[str, dict[str, Any]] = {}
    for name, entities in sorted(totals.items()):
        found = sum(1 for e in entities if (name, e) in detected)
        per_label[name] = {
            "detected": found,
            "total": len(entities),
            "share": ratio(found, len(entities)),
            "rules": sorted(rules[name]),
        }
    benign = sorted(e for e in totals.get(BENIGN, ()) if (BENIGN, e) in detected)
    attacks = [n for n in totals if n != BENIGN]
    attack_total = sum(len(totals[n]) for n in attacks)
    attack_found = sum(per_label[n]["detected"] for n in attacks)
    return {
        "labels": per_label,
        "entities": len(by_entity),
        "alerts": len(alerts),
        "attack_entities": attack_total,
        "attack_detected": attack_found,
        "recall": ratio(attack_found, attack_total),
        "benign_alerted": len(benign),
        "benign_alerted_examples": benign[:MAX_EXAMPLES],
        "unlabelled_alerted": len(unlabelled),
        "unlabelled_alerted_examples": sorted(unlabelled, key=lambda v: (-unlabelled[v], v))[
            :MAX_EXAMPLES
        ],
    }


def evaluate_truth(
    paths: Sequence[str | Path],
    labels_csv: Path,
    settings: Settings | None = None,
    *,
    fmt: str = "auto",
    year: int | None = None,
) -> dict[str, Any]:
    """Replay ``paths`` and score the alerts against the labels in ``labels_csv``.

    Without ``year``, RFC 3164 syslog lines take the year of the labels' first start, if
    any (so the figures do not depend on the files' modification times).
    """
    labels = read_labels(labels_csv)
    if year is None:
        starts = [lab.span.start for lab in labels if lab.span.start is not None]
        year = min(starts).year if starts else None
    run = backtest(paths, settings, fmt=fmt, year=year)
    figures = score_labels(labels, run.alerts)
    figures["lines"] = run.report.lines
    figures["rejected"] = run.report.rejected
    figures["alerts_by_rule"] = dict(run.report.alerts_by_rule.most_common())
    return figures
