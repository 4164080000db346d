"""``shopwatch rules check``: does each rule of a folder compile, and does it run?

Each rule file (ours or Sigma) is read as the loader reads it, built as the engine builds
it, then run once over a probe batch: a few events of every dataset shopwatch ingests,
through the same Polars expressions a live batch goes through. A rule that cannot be used
is named with the exact reason the converter gave: the construct (a field reference, an
IPv6 network, ``lt`` in a correlation), the field our events do not carry, or the log
source shopwatch does not ingest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from shopwatch.contract import conform
from shopwatch.detect.content import RULESET_FILE, RuleFile, read_rule_files
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState
from shopwatch.errors import ContentError

__all__ = ["RuleCheck", "check_rules", "probe_batch", "summarize"]


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """What became of one rule: ``runs``, or ``fails`` with the reason."""

    path: str
    line: int
    title: str
    rule_id: str
    log_source: str
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The check as a JSON-ready mapping."""
        return {
            "path": self.path,
            "line": self.line,
            "title": self.title,
            "id": self.rule_id,
            "log_source": self.log_source,
            "status": self.status,
            "reason": self.reason,
        }


def probe_batch() -> pl.DataFrame:
    """A few events of each ingested dataset, full event schema, to run every rule once."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {
            "event.dataset": "http.access",
            "source.ip": "192.0.2.10",
            "http.request.method": "GET",
            "url.original": "/search?q=%27%20or%201%3D1--",
            "url.path": "/search",
            "url.query": "q=%27%20or%201%3D1--",
            "http.response.status_code": 200,
            "user_agent.original": "sqlmap/1.7",
        },
        {
            "event.dataset": "vendor.api",
            "shop.vendor.name": "probe",
            "url.full": "https://api.telegram.org/bot1/sendMessage",
            "url.domain": "api.telegram.org",
            "url.path": "/bot1/sendMessage",
            "http.request.method": "POST",
            "destination.ip": "192.0.2.20",
        },
        {
            "event.dataset": "system.syslog",
            "host.name": "web-1",
            "process.name": "nginx",
            "message": "worker process exited on signal 11 (core dumped)",
        },
        {
            "event.dataset": "system.auth",
            "host.name": "web-1",
            "process.name": "sshd",
            "source.ip": "192.0.2.30",
            "message": "Invalid user admin from 192.0.2.30 port 50000",
        },
    ]
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.Series("@timestamp", [at + timedelta(seconds=i) for i in range(len(rows))]),
        pl.Series("event.id", [f"probe:{i + 1}" for i in range(len(rows))]),
    )
    return conform(frame)


def _log_source(raw: dict[str, Any]) -> str:
    if "kind" in raw:
        return "shopwatch"
    source = raw.get("logsource")
    if not isinstance(source, dict):
        return "correlation" if "correlation" in raw else "none"
    named = [f"{k}:{source[k]}" for k in ("category", "product", "service") if source.get(k)]
    return " ".join(named) or "none"


def _documents(path: Path) -> list[tuple[Any, int]]:
    """Each document of a rule file and its first line, up to the first that cannot be
    parsed (the loader reports that one)."""
    try:
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
    except (OSError, UnicodeDecodeError):
        return []
    out: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            out.append((loader.construct_document(node), node.start_mark.line + 1))
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return out


#: Problems of a whole file (it cannot be read or parsed), never one rule's.
_FILE_PROBLEMS = ("not valid YAML", "cannot read rule file")


def _file_of(where: str) -> tuple[str, int]:
    """``file:line`` → (file, line); a bare file has line 0."""
    head, sep, tail = where.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return where, 0


def _reason(err: ContentError) -> str:
    text = str(err)
    return text[len(err.where) + 2 :] if err.where and text.startswith(err.where) else text


def _run(rule: RuleFile, batch: pl.DataFrame) -> str:
    """'' when the rule builds and runs over ``batch``, else why not."""
    try:
        detector = build(rule.raw, rule.path, rule.lines)
    except ContentError as err:
        return _reason(err)
    try:
        state = KeyedState(detector.keys)
        state.clock = batch["@timestamp"].max()  # type: ignore[assignment]
        detector.detect(batch, state)
    except Exception as err:
        return f"fails at run time: {type(err).__name__}: {err}"
    return ""


def check_rules(dirs: Sequence[Path]) -> list[RuleCheck]:
    """One :class:`RuleCheck` per rule document under ``dirs``, in file order."""
    rules, errors = read_rule_files(dirs)
    by_file: dict[str, list[RuleFile]] = {}
    for read in rules.values():
        by_file.setdefault(read.path, []).append(read)
    failures: dict[str, list[tuple[int, str]]] = {}
    loose: list[RuleCheck] = []
    for err in errors:
        where, line = _file_of(err.where)
        if Path(where).is_file():
            failures.setdefault(where, []).append((line, _reason(err)))
        else:
            loose.append(RuleCheck(where, line, "", "", "none", "fails", _reason(err)))
    batch = probe_batch()
    out: list[RuleCheck] = list(loose)
    winners = _winners(rules)
    files = sorted({p for d in dirs if d.is_dir() for p in (*d.rglob("*.yml"), *d.rglob("*.yaml"))})
    for path in files:
        name = str(path)
        problems = failures.get(name, [])
        if path.name == RULESET_FILE:
            for line, reason in problems:
                out.append(RuleCheck(name, line, "", "", "ruleset", "fails", reason))
            continue
        for line, reason in problems:
            if reason.startswith(_FILE_PROBLEMS):
                out.append(RuleCheck(name, line, "", "", "none", "fails", reason))
        problems = [p for p in problems if not p[1].startswith(_FILE_PROBLEMS)]
        docs = _documents(path)
        for index, (doc, line) in enumerate(docs):
            nxt = docs[index + 1][1] if index + 1 < len(docs) else None
            mine = [
                p for p in problems if p[0] == 0 or (p[0] >= line and (nxt is None or p[0] < nxt))
            ]
            if doc is None:
                continue
            if not isinstance(doc, dict):
                reason = mine[0][1] if mine else "a rule is a mapping"
                out.append(RuleCheck(name, line, "", "", "none", "fails", reason))
                continue
            out.append(_check_doc(name, doc, line, mine, by_file.get(name, []), winners, batch))
    return out


def _key(doc: dict[str, Any]) -> str:
    """The id a document is known by: ours as written, a Sigma rule's UUID in lower case."""
    return str(doc.get("id") or "") if "kind" in doc else str(doc.get("id") or "").lower()


def _winners(rules: dict[str, RuleFile]) -> dict[str, str]:
    """For each rule id (a Sigma rule: its UUID), the file whose rule was kept."""
    out: dict[str, str] = {}
    for rule_id, rule in rules.items():
        origin = rule.raw.get("origin")
        if isinstance(origin, dict) and origin.get("id"):
            out[str(origin["id"]).lower()] = rule.path
        else:
            out[rule_id] = rule.path
    return out


def _check_doc(
    name: str,
    doc: dict[str, Any],
    line: int,
    problems: list[tuple[int, str]],
    converted: list[RuleFile],
    winners: dict[str, str],
    batch: pl.DataFrame,
) -> RuleCheck:
    """The check of one mapping document of file ``name``."""
    title = str(doc.get("title") or doc.get("name") or doc.get("id") or "")
    sigma_id = str(doc.get("id") or "")
    source = _log_source(doc)
    if problems:
        at = problems[0][0] or line
        return RuleCheck(name, at, title, sigma_id, source, "fails", problems[0][1])
    rule = next((r for r in converted if _same(r, doc)), None)
    if rule is None:
        winner = winners.get(_key(doc))
        if winner is not None and winner != name:
            why = f"shadowed: {winner} holds a rule with the same id, which is the one loaded"
            return RuleCheck(name, line, title, sigma_id, source, "fails", why)
        # an input of a correlation only: it runs inside that rule
        status = "runs" if "correlation" not in doc else "fails"
        return RuleCheck(name, line, title, sigma_id, source, status, "")
    reason = _run(rule, batch)
    rule_id = str(rule.raw.get("id", sigma_id))
    return RuleCheck(name, line, title, rule_id, source, "fails" if reason else "runs", reason)


def _same(rule: RuleFile, doc: dict[str, Any]) -> bool:
    """Whether converted ``rule`` came from document ``doc`` (Sigma: same title and id)."""
    if "kind" in doc:
        return rule.raw.get("id") == doc.get("id")
    origin = rule.raw.get("origin") or {}
    return rule.raw.get("name") == doc.get("title") and (
        not doc.get("id") or origin.get("id") == str(doc.get("id"))
    )


def summarize(checks: Iterable[RuleCheck]) -> dict[str, dict[str, int]]:
    """Per log source: how many rules run and how many fail."""
    runs: Counter[str] = Counter()
    fails: Counter[str] = Counter()
    for check in checks:
        (runs if check.status == "runs" else fails)[check.log_source] += 1
    return {
        source: {"runs": runs[source], "fails": fails[source]}
        for source in sorted(set(runs) | set(fails))
    }
