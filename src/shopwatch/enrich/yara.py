"""YARA rules over HTTP request bodies: web shell uploads, obfuscated PHP, SQLi payloads.

Rules (``yara-python``) are compiled once: the shipped ``content/yara/*.yar`` plus the
user's files. Each batch scans its *unique* non-null ``http.request.body.content`` values
(at most ``max_bytes`` of each, with a per-body time limit) and writes the names of the
rules that matched, sorted and comma-joined, to ``threat.yara.rules``. Bodies are never
logged.

Cost: one ``match`` call per unique body in C; bodies are a small share of events
(``python -m bench.intel`` prints bodies/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final

import polars as pl
import structlog

from shopwatch.errors import ConfigError, ContentError

__all__ = ["BODY_FIELD", "RULES_FIELD", "YaraEnricher", "builtin_rule_files"]

log = structlog.get_logger(__name__)

BODY_FIELD: Final = "http.request.body.content"
RULES_FIELD: Final = "threat.yara.rules"


def builtin_rule_files() -> list[Path]:
    """The YARA rule files shipped with the package."""
    folder = Path(str(resources.files("shopwatch") / "content" / "yara"))
    return sorted(folder.glob("*.yar")) + sorted(folder.glob("*.yara"))


class YaraEnricher:
    """Fills ``threat.yara.rules`` for rows whose request body matches a YARA rule.

    Rows without a body, or whose body matches nothing, keep a null (or the value a
    producer gave). A body whose scan hits the time limit is counted in ``timeouts`` and
    left unmatched.
    """

    name = "yara"
    provides = frozenset({RULES_FIELD})

    def __init__(
        self,
        rule_files: Sequence[Path] | None = None,
        *,
        max_bytes: int = 256 * 1024,
        timeout_s: int = 2,
    ) -> None:
        try:
            import yara
        except ImportError as err:
            raise ConfigError("YARA scanning needs the yara-python package") from err
        files = list(rule_files) if rule_files is not None else builtin_rule_files()
        if not files:
            raise ConfigError("no YARA rule files to compile")
        namespaces: dict[str, str] = {}
        for path in files:
            if not path.is_file():
                raise ContentError("YARA rule file does not exist", str(path))
            namespaces[f"{path.stem}_{len(namespaces)}"] = str(path)
        try:
            self._rules = yara.compile(filepaths=namespaces)
        except yara.SyntaxError as err:
            raise ContentError(
                f"YARA rules do not compile: {err}", ", ".join(namespaces.values())
            ) from err
        self._yara = yara
        self.files = tuple(files)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.scanned = 0
        self.timeouts = 0

    @classmethod
    def from_settings(cls, settings: Any) -> YaraEnricher:
        """Build from ``settings.enrich["yara"]``: ``rules`` (extra files), ``builtin``
        (default true), ``max_bytes``, ``timeout_s``."""
        options = dict((getattr(settings, "enrich", None) or {}).get("yara") or {})
        options.pop("enabled", None)
        extra = [Path(p) for p in options.pop("rules", [])]
        builtin = bool(options.pop("builtin", True))
        kwargs = {k: int(options.pop(k)) for k in ("max_bytes", "timeout_s") if k in options}
        if options:
            raise ConfigError(
                f"enrich.yara has unknown keys {sorted(options)}; known: builtin, max_bytes, rules, timeout_s"
            )
        files = (builtin_rule_files() if builtin else []) + extra
        return cls(files, **kwargs)

    def match(self, body: str | bytes) -> list[str]:
        """Sorted names of the rules matching one body (the first ``max_bytes`` of it)."""
        data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
        try:
            found = self._rules.match(data=data[: self.max_bytes], timeout=self.timeout_s)
        except self._yara.TimeoutError:
            self.timeouts += 1
            return []
        return sorted({m.rule for m in found})

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with ``threat.yara.rules`` filled for rows whose body matches."""
        if RULES_FIELD not in batch.columns:
            batch = batch.with_columns(pl.lit(None, dtype=pl.String).alias(RULES_FIELD))
        if BODY_FIELD not in batch.columns or batch.height == 0:
            return batch
        bodies = batch.get_column(BODY_FIELD).cast(pl.String).drop_nulls()
        unique = bodies.filter(bodies.str.len_bytes() > 0).unique()
        if unique.len() == 0:
            return batch
        names: list[str | None] = []
        for body in unique.to_list():
            matched = self.match(body)
            names.append(",".join(matched) if matched else None)
        self.scanned += unique.len()
        table = pl.DataFrame(
            {"_body": unique, "_yara": pl.Series(names, dtype=pl.String)}
        ).drop_nulls("_yara")
        if table.height == 0:
            return batch
        log.info("yara_matched", bodies=unique.len(), matched=table.height)
        return (
            batch.join(
                table, left_on=BODY_FIELD, right_on="_body", how="left", maintain_order="left"
            )
            .with_columns(pl.coalesce(RULES_FIELD, "_yara").alias(RULES_FIELD))
            .drop("_yara")
        )
