"""The shared real logs, replayed one by one: what fired, per rule and per weak label.

None of these logs has per-line labels; what is known of each (its README) gives a weak
label to every client address in it: every address of ``hackers-access.log`` is an
account-abuse bot, the honeynet's traffic is (nearly) all hostile, and
``elastic_apache_logs.log`` is mostly ordinary visitors. For each file the evaluation
prints the alerts per rule and the share of its addresses that were alerted; on the
mostly-benign log that share is an upper bound on the false-positive rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopwatch.config import Settings
from shopwatch.errors import ConfigError
from shopwatch.evaluate.backtest import Population, backtest, named, ratio
from shopwatch.evaluate.truth import Label, score_labels

__all__ = ["REAL_LOGS", "RealLog", "evaluate_real"]


@dataclass(frozen=True, slots=True)
class RealLog:
    """A real log of the shared datasets and the weak label of its client addresses."""

    path: str  # relative to the datasets folder
    label: str | None  # None: no label, only what fired
    fmt: str = "auto"
    note: str = ""


#: The real logs ``evaluate real`` runs, with what their READMEs say of them.
REAL_LOGS: tuple[RealLog, ...] = (
    RealLog("access-logs/hackers-access.log", "bot", note="fake sign-ups and login attempts"),
    RealLog(
        "access-logs/honeynet_redhat71_httpd_access.log.gz",
        "hostile",
        note="honeynet: scans, worm probes, exploits",
    ),
    RealLog("access-logs/elastic_apache_logs.log", "benign", note="mostly ordinary visitors"),
    RealLog("loghub/OpenSSH/OpenSSH_2k.log", None, "syslog", note="lab sshd, no labels"),
    RealLog("loghub/Linux/Linux_2k.log", None, "syslog", note="/var/log/messages, no labels"),
)


def _one(root: Path, log: RealLog, settings: Settings | None) -> dict[str, Any]:
    population = Population()
    run = backtest([root / log.path], settings, fmt=log.fmt, on_batch=population.observe)
    addresses = population.addresses
    alerted = {v for a in run.alerts for k, v in named(a) if k == "source.ip"} & addresses
    entry: dict[str, Any] = {
        "file": log.path,
        "label": log.label,
        "note": log.note,
        "lines": run.report.lines,
        "rejected": run.report.rejected,
        "alerts": len(run.alerts),
        "alerts_by_rule": dict(sorted(run.report.alerts_by_rule.items())),
        "addresses": len(addresses),
        "addresses_alerted": len(alerted),
        "share_alerted": ratio(len(alerted), len(addresses)),
    }
    if log.label is not None:
        scored = score_labels([Label.of(ip, log.label) for ip in sorted(addresses)], run.alerts)
        entry["labels"] = scored["labels"]
    return entry


def evaluate_real(
    root: Path, settings: Settings | None = None, logs: Sequence[RealLog] = REAL_LOGS
) -> dict[str, Any]:
    """Replay each real log found under ``root`` (the shared datasets folder)."""
    if not root.is_dir():
        raise ConfigError(f"no datasets folder at {root}; give --datasets or SHOPWATCH_DATASETS")
    files: dict[str, Any] = {}
    missing: list[str] = []
    for log in logs:
        if not (root / log.path).is_file():
            missing.append(log.path)
            continue
        files[log.path] = _one(root, log, settings)
    if not files:
        raise ConfigError(f"none of the real logs is under {root}: {', '.join(missing)}")
    return {"files": files, "missing": missing}
