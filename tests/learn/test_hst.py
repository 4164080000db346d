"""The half-space forest: its trees from a seed, its counts, its scores, and NSL-KDD."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from shopwatch.learn.hst import HalfSpaceForest


def _leaf_likeness(forest: HalfSpaceForest, points: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.log2(1.0 + forest.leaf_mass(points)).mean(axis=1)
    return result


def test_the_trees_come_from_the_seed_alone() -> None:
    a = HalfSpaceForest(3, trees=8, depth=5, seed=4)
    b = HalfSpaceForest(3, trees=8, depth=5, seed=4)
    c = HalfSpaceForest(3, trees=8, depth=5, seed=5)
    assert (a.feature == b.feature).all() and (a.split == b.split).all()
    assert not (a.split == c.split).all()
    # each tree's first cut is at the random point its work ranges are drawn around
    assert ((a.split[:, 0] >= 0) & (a.split[:, 0] <= 1)).all()


def test_learning_counts_each_point_once_per_depth() -> None:
    forest = HalfSpaceForest(2, trees=4, depth=3, seed=1)
    forest.learn(np.array([[0.1, 0.1], [0.9, 0.9], [0.5, 0.2]]))
    assert forest.learned == 3
    per_depth = [
        forest.latest[:, 2**d - 1 : 2 ** (d + 1) - 1].sum(axis=1) for d in range(forest.depth + 1)
    ]
    for counts in per_depth:
        assert (counts == 3).all()
    assert forest.mass == 0  # nothing scored against until a roll
    forest.learn(np.array([[0.3, 0.3]]), weights=np.array([2.5]))
    assert forest.learned == 5.5


def test_a_roll_averages_the_reference_with_what_came_since() -> None:
    forest = HalfSpaceForest(2, trees=4, depth=3, seed=1)
    forest.learn(np.full((10, 2), 0.2))
    forest.roll()
    assert forest.mass == 10 and forest.learned == 0  # the first roll takes latest whole
    forest.learn(np.full((30, 2), 0.8))
    forest.roll()
    assert forest.mass == 20  # (10 + 30) / 2
    two = np.array([[0.2, 0.2], [0.8, 0.8]])
    mass = forest.leaf_mass(two)
    apart = forest.paths(two)[-1, 0] != forest.paths(two)[-1, 1]  # trees that cut between
    assert apart.sum() >= 2
    assert (mass[0][apart] == 5).all() and (mass[1][apart] == 15).all()
    assert (mass[0][~apart] == 20).all()


def test_points_far_from_the_learned_ones_land_in_empty_leaves() -> None:
    rng = np.random.default_rng(3)
    forest = HalfSpaceForest(4, trees=32, depth=8, seed=2)
    forest.learn(rng.normal(0.3, 0.03, (2000, 4)).clip(0, 1))
    forest.roll()
    usual = rng.normal(0.3, 0.03, (200, 4)).clip(0, 1)
    far = np.array([[0.95, 0.3, 0.3, 0.3], [0.9, 0.9, 0.9, 0.9]])
    empty_far = (forest.leaf_mass(far) == 0).mean(axis=1)
    empty_usual = (forest.leaf_mass(usual) == 0).mean(axis=1)
    assert empty_usual.max() < 0.2
    assert empty_far[1] > 0.8  # far in every feature: nearly every tree's leaf is empty
    assert empty_far[0] > empty_usual.max()  # far in one: the trees that cut it
    assert (_leaf_likeness(forest, far) < _leaf_likeness(forest, usual).min()).all()


def test_saved_counts_load_into_a_forest_of_the_same_shape_only() -> None:
    forest = HalfSpaceForest(2, trees=4, depth=3, seed=1)
    forest.learn(np.full((10, 2), 0.2))
    forest.roll()
    saved = forest.state()
    again = HalfSpaceForest(2, trees=4, depth=3, seed=1)
    again.load(saved["reference"], saved["latest"], int(saved["rolls"]))  # type: ignore[arg-type]
    point = np.array([[0.2, 0.2]])
    assert (again.leaf_mass(point) == forest.leaf_mass(point)).all()
    with pytest.raises(ValueError, match="do not fit"):
        HalfSpaceForest(2, trees=5, depth=3).load(
            saved["reference"],  # type: ignore[arg-type]
            saved["latest"],  # type: ignore[arg-type]
            1,
        )
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        forest.paths(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="needs"):
        HalfSpaceForest(0)


def _datasets() -> Path:
    root = Path(os.environ.get("SHOPWATCH_DATASETS", Path(__file__).parents[3] / "shared/datasets"))
    found = root / "network-flows"
    if not (found / "KDDTest+_a.txt.gz").is_file():
        pytest.skip(f"the shared NSL-KDD files are not in {found}")
    return found


def _kdd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as lines:
        rows = [line.strip().split(",") for line in lines if line.strip()]
    numeric = [i for i in range(41) if i not in (1, 2, 3)]  # protocol, service, flag are names
    x = np.array([[float(r[i]) for i in numeric] for r in rows])
    attack = np.array([r[41] != "normal" for r in rows])
    return x, attack


def test_nsl_kdd_attacks_score_below_normal_connections() -> None:
    """Learnt from the training file's normal connections only, scored on the test half:
    the attacks (DoS, probes, R2L, U2R, many of kinds the training file never had) rank
    below the normal connections."""
    from sklearn.metrics import roc_auc_score

    root = _datasets()
    train, train_attack = _kdd(root / "KDDTrain+_20Percent.txt.gz")
    test, test_attack = _kdd(root / "KDDTest+_a.txt.gz")
    top = np.log1p(np.maximum(train.max(axis=0), 1.0))

    def unit(x: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = np.clip(np.log1p(np.maximum(x, 0.0)) / top, 0.0, 1.0)
        return scaled

    forest = HalfSpaceForest(train.shape[1], trees=32, depth=8, seed=1)
    forest.learn(unit(train[~train_attack]))
    forest.roll()
    auc = roc_auc_score(test_attack, -_leaf_likeness(forest, unit(test)))
    # measured: 0.937 (depth 6: 0.954; depth 10: 0.942)
    assert auc > 0.92
