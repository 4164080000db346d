"""Payment fraud figures: labels from the ground truth, the time-ordered split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopwatch.evaluate.payments import ScoredOrder, label_orders, payment_figures

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def camp(kind: str, users: list[str], start: datetime = T0, benign: bool = False) -> dict:
    return {"kind": kind, "benign": benign, "start": start, "entities": {"user.name": users}}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def o(user: str, minutes: float, bits: float = 1.0, feats: tuple = (0.0, 0.0)) -> ScoredOrder:
    return ScoredOrder(at(minutes), user, bits, feats, bits >= 30)


def test_labels_come_from_the_campaigns_that_name_the_account() -> None:
    truth = [
        camp("payment_fraud", ["thief"]),
        camp("account_takeover", ["victim"], start=at(10)),
        camp("credential_stuffing", ["tried"]),  # tried, not taken: the owner's orders
        camp("promo_abuse", ["abuser"]),
        camp("gift_order", ["giver"], benign=True),
    ]
    orders = [
        o("thief", 1),
        o("victim", 5),  # the owner's, before the takeover
        o("victim", 12),
        o("tried", 3),
        o("abuser", 4),
        o("giver", 6),
        o("thief", -60 * 24),  # history: before the run
    ]
    got = {(x.user, x.at): x for x in label_orders(orders, truth, T0, run=0)}
    assert got[("thief", at(1))].label == 1
    assert got[("victim", at(5))].label == 0 and got[("victim", at(12))].label == 1
    assert got[("tried", at(3))].label == 0
    assert got[("abuser", at(4))].label is None
    assert got[("giver", at(6))].label == 0
    history = got[("thief", at(-60 * 24))]
    assert history.live is False and history.label == 0


def labelled(orders: list[ScoredOrder], fraud: set[str]) -> list[ScoredOrder]:
    truth = [camp("payment_fraud", sorted(fraud))]
    return label_orders(orders, truth, T0, run=0)


def test_unsupervised_pr_auc_and_alert_counts() -> None:
    orders = [o(f"h{i}", i, bits=float(i % 7)) for i in range(40)]
    orders += [o("thief", 5, bits=35.0), o("thief", 25, bits=3.5)]
    got = payment_figures(labelled(orders, {"thief"}), {0: at(20)})
    assert (got["orders"], got["fraud_orders"]) == (42, 2)
    assert got["alerted_fraud"] == 1 and got["alerted_honest"] == 0
    assert 0.5 < got["unsupervised_pr_auc"] < 1.0


def test_the_split_trains_on_the_earlier_half_only_and_needs_fraud_on_both_sides() -> None:
    honest = [o(f"h{i}", i, bits=float(i % 5), feats=(0.0, float(i % 3))) for i in range(60)]
    early = [o(f"t{i}", 2 + i, bits=3.0, feats=(1.0, 0.0)) for i in range(4)]
    late = [o(f"u{i}", 40 + i, bits=3.0, feats=(1.0, 0.0)) for i in range(4)]
    orders = labelled(
        honest + early + late, {f"t{i}" for i in range(4)} | {f"u{i}" for i in range(4)}
    )
    got = payment_figures(orders, {0: at(30)})["split"]
    assert (got["train_orders"], got["train_fraud"]) == (34, 4)
    assert (got["test_orders"], got["test_fraud"]) == (34, 4)
    # The labels teach what the unsupervised bits cannot: feature 0 marks the fraud.
    assert got["supervised_pr_auc"] == pytest.approx(1.0)
    assert got["unsupervised_pr_auc"] < got["supervised_pr_auc"]
    assert got["model_version"] and len(got["model_version"]) == 12
    # Fraud only in the later half: nothing to learn from, no supervised figure.
    only_late = labelled(honest + late, {f"u{i}" for i in range(4)})
    assert payment_figures(only_late, {0: at(30)})["split"]["supervised_pr_auc"] is None


def test_no_fraud_gives_no_pr_auc() -> None:
    got = payment_figures(labelled([o("h", 1), o("g", 2)], set()), {0: at(1)})
    assert got["unsupervised_pr_auc"] is None and got["fraud_orders"] == 0
