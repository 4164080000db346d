"""Scoring alerts against a CSV of labelled entities: ``evaluate truth``.

The CSV has a header with the columns ``entity`` (an IP address, account, device, card
fingerprint, host... as alerts name them), ``label`` and optionally ``start`` and ``end``
(RFC 3339; an alert counts for the entity only inside that span). The label ``benign``
marks entities known to be benign; any other label is a kind of attack. An entity may
appear on several rows (several labels or spans).

An entity is *detected* when an alert names it (any entity field) within its span. The
figures: per label, entities detected / entities; benign entities alerted; alerted entity
values that the CSV does not list.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shopwatch.config import Settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate.backtest import backtest

__all__ = ["BENIGN", "Label", "evaluate_truth", "read_labels", "score_labels"]

#: The label of entities known to be benign.
BENIGN = "benign"
MAX_EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class Label:
    """One row of the labels CSV."""

    entity: str
    label: str
    start: datetime | None = None
    end: datetime | None = None

    def covers(self, alert: Alert) -> bool:
        """True when ``alert`` names this entity inside its span."""
        if self.start is not None and alert.timestamp < self.start:
            return False
        if self.end is not None and alert.timestamp > self.end:
            return False
        return self.entity in alert.entity.values()


def _when(text: str | None, where: str) -> datetime | None:
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(f"{where}: {text!r} is not an RFC 3339 time") from err
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def read_labels(path: Path) -> list[Label]:
    """The rows of a labels CSV; a malformed row is an error naming its line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError(f"cannot read labels {path}: {err}") from err
    with handle:
        reader = csv.DictReader(handle)
        columns = {c.strip() for c in reader.fieldnames or ()}
        if not {"entity", "label"} <= columns:
            raise ConfigError(
                f"{path}: the header must name the columns entity and label "
                f"(optional start, end); found {sorted(columns) or 'none'}"
            )
        labels: list[Label] = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("entity") or not row.get("label"):
                raise ConfigError(f"{where}: entity and label must not be empty")
            start, end = _when(row.get("start"), where), _when(row.get("end"), where)
            if start and end and end < start:
                raise ConfigError(f"{where}: end is before start")
            labels.append(Label(row["entity"], row["label"], start, end))
    if not labels:
        raise ConfigError(f"{path} has no labelled entities")
    return labels


def score_labels(labels: Sequence[Label], alerts: Iterable[Alert]) -> dict[str, Any]:
    """Per label detected / total, benign entities alerted, unlabelled entities alerted."""
    alerts = list(alerts)
    by_entity: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_entity[label.entity].append(label)
    detected: set[tuple[str, str]] = set()  # (label, entity)
    rules: dict[str, set[str]] = defaultdict(set)
    unlabelled: dict[str, int] = defaultdict(int)
    for alert in alerts:
        for value in {v for v in alert.entity.values() if v}:
            rows = by_entity.get(value)
            if rows is None:
                unlabelled[value] += 1
                continue
            for row in rows:
                if row.covers(alert):
                    detected.add((row.label, value))
                    rules[row.label].add(alert.rule_id)
    totals: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        totals[label.label].add(label.entity)
    per_label: dict[str, dict[str, Any]] = {
        name: {
            "detected": sum(1 for e in entities if (name, e) in detected),
            "total": len(entities),
            "share": round(sum(1 for e in entities if (name, e) in detected) / len(entities), 4),
            "rules": sorted(rules[name]),
        }
        for name, entities in sorted(totals.items())
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
        "recall": round(attack_found / attack_total, 4) if attack_total else None,
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
) -> dict[str, Any]:
    """Replay ``paths`` and score the alerts against the labels in ``labels_csv``."""
    labels = read_labels(labels_csv)
    run = backtest(paths, settings, fmt=fmt)
    figures = score_labels(labels, run.alerts)
    figures["lines"] = run.report.lines
    figures["rejected"] = run.report.rejected
    figures["alerts_by_rule"] = dict(run.report.alerts_by_rule.most_common())
    return figures
