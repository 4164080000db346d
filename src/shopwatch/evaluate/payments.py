"""Payment fraud scores on simulated runs: precision-recall, unsupervised and with labels.

``evaluate sim`` replays each run with ``payment.fraud_score`` reporting every placed
order's score (``score_all``; what teaches is unchanged, and only the orders at or above
the rule's threshold count as alerts in the campaign figures). Each order after the run's
start is labelled from the ground truth:

- *fraud*: placed, at or after the campaign's start, by an account an attack campaign of a
  payment kind names (payment fraud with stolen cards, account takeover, card testing);
- *left out*: placed by an account another attack created (promotion abuse, fake
  accounts, inventory hoarding): fraud against the shop, but not payment fraud, so
  neither side of the curve (the accounts a stuffing or brute-force run merely tried are
  their owners' and stay honest);
- *honest*: every other order, look-alikes included.

Figures: the average precision (the area under the precision-recall curve, as
scikit-learn computes it) of the unsupervised score over all labelled orders; then a
time-ordered split: each run's orders before its midpoint (and the history before the
run, all honest) train a logistic regression on the score's parts
(:func:`shopwatch.learn.payments.features`), and both scores are measured on the orders
after the midpoints only. The model never sees an order later than one it is tested on.
Too few fraud orders on either side (fewer than :data:`MIN_FRAUD`) and the supervised
figure is not given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np

from shopwatch.contract import Alert

__all__ = [
    "OWN_ACCOUNT_KINDS",
    "PAYMENT_KINDS",
    "RULE",
    "ScoredOrder",
    "label_orders",
    "payment_figures",
    "scored_orders",
]

#: The rule whose scores are measured.
RULE: Final = "payment.fraud_score"
#: Attack kinds whose orders are payment fraud.
PAYMENT_KINDS: Final = frozenset({"payment_fraud", "account_takeover", "card_testing"})
#: Attack kinds whose accounts are the attacker's own, and not payment fraud.
OWN_ACCOUNT_KINDS: Final = frozenset({"promo_abuse", "fake_account_creation", "inventory_hoarding"})
#: Fraud orders needed on each side of the split for the supervised figure.
MIN_FRAUD: Final = 3


@dataclass(frozen=True, slots=True)
class ScoredOrder:
    """One placed order: when, by whom, its score and its parts as numbers."""

    at: datetime
    user: str | None
    bits: float
    features: tuple[float, ...]
    alerting: bool
    label: int | None = None  # 1 fraud, 0 honest, None left out
    run: int = 0
    live: bool = True


def scored_orders(alerts: Iterable[Alert]) -> list[ScoredOrder]:
    """The ``score_all`` reports of :data:`RULE` among ``alerts``."""
    out = []
    for a in alerts:
        if a.rule_id != RULE:
            continue
        details = a.details if isinstance(a.details, dict) else json.loads(a.details or "{}")
        out.append(
            ScoredOrder(
                a.timestamp,
                a.entity.get("user.name"),
                float(details["bits"]),
                tuple(float(x) for x in details["features"]),
                bool(details.get("alerting", True)),
            )
        )
    return out


def label_orders(
    orders: Sequence[ScoredOrder], truth: Sequence[dict[str, Any]], start: datetime, run: int
) -> list[ScoredOrder]:
    """``orders`` labelled from ``truth`` (``load_truth``'s campaigns); ``start`` is the
    run's start: orders before it are history (honest, training only)."""
    fraud: dict[str, datetime] = {}
    other: set[str] = set()
    for c in truth:
        if c["benign"]:
            continue
        users = c["entities"].get("user.name", ())
        if c["kind"] in PAYMENT_KINDS:
            for u in users:
                fraud[u] = min(fraud.get(u, c["start"]), c["start"])
        elif c["kind"] in OWN_ACCOUNT_KINDS:
            other.update(users)
    labelled = []
    for o in orders:
        live = o.at >= start
        label: int | None = 0
        if live and o.user in fraud and o.at >= fraud[o.user]:
            label = 1
        elif live and o.user in other:
            label = None
        labelled.append(ScoredOrder(o.at, o.user, o.bits, o.features, o.alerting, label, run, live))
    return labelled


def _ap(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import average_precision_score

    if labels.size == 0 or not labels.any():
        return None
    return round(float(average_precision_score(labels, scores)), 4)


def payment_figures(
    orders: Sequence[ScoredOrder], midpoints: dict[int, datetime]
) -> dict[str, Any]:
    """The figures of the module docstring; ``midpoints`` per run index."""
    live = [o for o in orders if o.live and o.label is not None]
    y = np.array([o.label for o in live], dtype=np.int64)
    s = np.array([o.bits for o in live], dtype=np.float64)
    alerting = np.array([o.alerting for o in live], dtype=bool)
    figures: dict[str, Any] = {
        "orders": len(live),
        "fraud_orders": int(y.sum()),
        "left_out": sum(1 for o in orders if o.live and o.label is None),
        "unsupervised_pr_auc": _ap(y, s),
        "alerted_fraud": int((alerting & (y == 1)).sum()),
        "alerted_honest": int((alerting & (y == 0)).sum()),
    }
    train = [o for o in orders if o.label is not None and o.at < midpoints.get(o.run, o.at)]
    test = [o for o in live if o.at >= midpoints.get(o.run, o.at)]
    y_train = np.array([o.label for o in train], dtype=np.int64)
    y_test = np.array([o.label for o in test], dtype=np.int64)
    figures["split"] = {
        "train_orders": len(train),
        "train_fraud": int(y_train.sum()),
        "test_orders": len(test),
        "test_fraud": int(y_test.sum()),
        "unsupervised_pr_auc": _ap(y_test, np.array([o.bits for o in test])),
        "supervised_pr_auc": None,
        "model_version": None,
    }
    if y_train.sum() >= MIN_FRAUD and y_test.sum() >= MIN_FRAUD:
        from sklearn.linear_model import LogisticRegression

        x_train = np.array([o.features for o in train])
        x_test = np.array([o.features for o in test])
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        model.fit(x_train, y_train)
        p = model.predict_proba(x_test)[:, 1]
        coefs = np.round(np.concatenate([model.coef_.ravel(), model.intercept_]), 6)
        figures["split"]["supervised_pr_auc"] = _ap(y_test, p)
        figures["split"]["model_version"] = hashlib.sha256(coefs.tobytes()).hexdigest()[:12]
    return figures
