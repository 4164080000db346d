"""Every learned model and baseline an engine holds: what it learns from, how much, how big.

``shopwatch models`` prints :func:`list_models` of an engine restored from the state
``shopwatch run`` last saved (or of one that has just replayed files). A detector that
learns says what it holds through ``model_summary(state)``; the engine's own learned
state (account profiles, per-field exemptions) is listed beside them.

A model's **version** is its kind's version and a digest of its parameters: a change of
either is a different model, whose earlier figures no longer describe it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shopwatch.detect.profiles import PROFILE_STATE
from shopwatch.detect.state import KeyedState
from shopwatch.pipeline.engine import Engine

__all__ = ["list_models", "model_version"]


def model_version(kind: str, kind_version: int, params: str) -> str:
    """``<kind>/v<n>-<digest of the parameters>``.

    >>> model_version("entity_baseline", 1, '{"keep": 50}')
    'entity_baseline/v1-8d198c52'
    """
    digest = hashlib.sha256(params.encode()).hexdigest()[:8]
    return f"{kind}/v{kind_version}-{digest}"


def _stable(settings: Any) -> str:
    """A dataclass of settings as text that is the same in every process (sets sorted)."""
    import dataclasses

    if settings is None:
        return ""
    parts = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, (set, frozenset)):
            value = sorted(value)
        parts.append(f"{f.name}={value!r}")
    return ";".join(parts)


def _row(
    name: str,
    kind: str,
    version: str,
    learns_from: str,
    entities: int,
    entity: str,
    state: KeyedState,
    events: int | None,
    first: datetime | None,
    last: datetime | None,
    category: str | None,
    **extra: Any,
) -> dict[str, Any]:
    nbytes = int(state.nbytes)
    return {
        "model": name,
        "kind": kind,
        "version": version,
        "learns_from": learns_from,
        "entities": entities,
        "entity": entity,
        "events_learned": events,
        "first_event": first.isoformat() if first else None,
        "last_event": last.isoformat() if last else None,
        "state_bytes": nbytes,
        "bytes_per_entity": round(nbytes / entities) if entities else None,
        "category": category,
        **extra,
    }


def list_models(
    engine: Engine, evaluation: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One row per learned model of ``engine`` (detectors first, by id, then the engine's own).

    ``evaluation`` (the JSON of ``shopwatch evaluate sim`` or ``evaluate campaigns``) adds
    each model's category figures: precision and recall of its category there.
    """
    rows: list[dict[str, Any]] = []
    for detector in sorted(engine.detectors, key=lambda d: d.id):
        summary = getattr(detector, "model_summary", None)
        if summary is None:
            continue
        state = engine.states[detector.id]
        got = dict(summary(state))
        version = model_version(
            detector.spec.kind, int(got.pop("kind_version", 1)), detector.spec.model_dump_json()
        )
        rows.append(
            _row(
                detector.id,
                detector.spec.kind,
                version,
                state=state,
                category=detector.category,
                **got,
            )
        )
    if PROFILE_STATE in engine.states:
        state = engine.states[PROFILE_STATE]
        keys = state.key_summary()
        rows.append(
            _row(
                "account profiles",
                "profiles",
                model_version(
                    "profiles", 1, repr(engine.profiler.settings if engine.profiler else "")
                ),
                "successful logins, account changes, orders and payments",
                keys.height,
                "user.name",
                state,
                None,
                None,
                keys.get_column("_last").max() if keys.height else None,  # type: ignore[arg-type]
                None,
            )
        )
    if engine.exemptions is not None:
        from shopwatch.detect.exemptions import EXEMPT_STATE

        state = engine.states[EXEMPT_STATE]
        listing = engine.exemptions.listing(state)
        rows.append(
            _row(
                "per-field exemptions",
                "exemptions",
                model_version("exemptions", 1, _stable(engine.exemptions.rules)),
                "web signatures' matches on requests the shop answered 2xx",
                listing.height,
                "rule, endpoint, field",
                state,
                None,
                None,
                listing.get_column("last_seen").max() if listing.height else None,  # type: ignore[arg-type]
                None,
                exempt_now=int(listing.get_column("exempt").sum()) if listing.height else 0,
            )
        )
    if evaluation is not None:
        per_category = evaluation.get("per_category") or {}
        for row in rows:
            figures = per_category.get(row["category"]) if row["category"] else None
            if figures:
                row["evaluation"] = {
                    "precision": figures.get("precision"),
                    "recall": figures.get("recall"),
                    "campaigns": figures.get("campaigns"),
                    "alerts": figures.get("alerts"),
                }
        pay = evaluation.get("payment_scores")
        if isinstance(pay, dict):
            split = pay.get("split") or {}
            for row in rows:
                if row["kind"] == "payment_score":
                    row.setdefault("evaluation", {}).update(
                        {
                            "pr_auc": pay.get("unsupervised_pr_auc"),
                            "pr_auc_later_half": split.get("unsupervised_pr_auc"),
                            "pr_auc_later_half_with_labels": split.get("supervised_pr_auc"),
                            "label_model_version": split.get("model_version"),
                            "orders": pay.get("orders"),
                            "fraud_orders": pay.get("fraud_orders"),
                        }
                    )
    return rows
