"""Half-space trees over a batch at a time: a streaming multivariate model in NumPy.

Tan, Ting and Liu, *Fast Anomaly Detection for Streaming Data* (IJCAI 2011). Each tree
cuts the unit cube ``[0, 1]^F`` in half ``depth`` times along randomly chosen features, in
a work range drawn around a random point of each feature (so the trees are built before
any data arrive, from a seed alone). Every node counts how many learned points passed
through it. Points that land where the learned data never went are anomalous.

The trees are the same for every shop and every start (the seed), so the state is the
counts alone: two float arrays of ``trees x (2^(depth+1) - 1)`` nodes.

- ``latest`` counts the points learned since the last :meth:`HalfSpaceForest.roll`;
- ``reference`` is what points are scored against: at a roll it becomes the mean of
  itself and ``latest`` (a window's counts that also remember, at half weight, the
  windows before it), and ``latest`` starts again. The first roll takes ``latest`` whole.

Scoring (:meth:`HalfSpaceForest.leaf_mass`): how many reference points share each point's
leaf, per tree; a point no learned point came near lands in empty or thin leaves in most
trees. The detector (:mod:`shopwatch.detect.multivariate`) averages log2(1 + that) over
the trees.

Why not river's ``HalfSpaceTrees``: it walks one point at a time through Python dicts
(about 40 microseconds a point for 25 trees); here a batch walks all trees at once with
NumPy gathers, ``depth`` array steps for any number of points.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["DEFAULT_SEED", "HalfSpaceForest"]

#: The seed the trees are drawn from unless a rule names another.
DEFAULT_SEED: Final = 20_111


class HalfSpaceForest:
    """``trees`` half-space trees of ``depth`` cuts over ``features`` features in [0, 1].

    >>> forest = HalfSpaceForest(features=2, trees=8, depth=4, seed=1)
    >>> forest.learn(np.full((50, 2), 0.2)); forest.roll()
    >>> mass = forest.leaf_mass(np.array([[0.2, 0.2], [0.95, 0.9]]))
    >>> bool((mass[0] == 50).all()), bool(mass[1].mean() < 50)
    (True, True)
    """

    def __init__(self, features: int, *, trees: int = 32, depth: int = 8, seed: int = 0) -> None:
        if features < 1 or trees < 1 or not 1 <= depth <= 16:
            raise ValueError("a forest needs features >= 1, trees >= 1 and depth 1..16")
        self.features = features
        self.trees = trees
        self.depth = depth
        rng = np.random.default_rng([DEFAULT_SEED, seed, features, trees, depth])
        inner = 2**depth - 1
        self.nodes = 2 ** (depth + 1) - 1
        self.feature = np.empty((trees, inner), dtype=np.intp)
        self.split = np.empty((trees, inner), dtype=np.float64)
        # Work ranges: around a random point s of each feature, s -/+ 2 max(s, 1 - s), so
        # every tree covers the unit cube whatever point it was drawn around.
        centre = rng.uniform(0.0, 1.0, (trees, features))
        reach = 2.0 * np.maximum(centre, 1.0 - centre)
        low = np.repeat((centre - reach)[:, None, :], inner, axis=1)
        high = np.repeat((centre + reach)[:, None, :], inner, axis=1)
        chosen = rng.integers(0, features, (trees, inner))
        for node in range(inner):  # parents before children (heap order)
            f = chosen[:, node]
            rows = np.arange(trees)
            cut = (low[rows, node, f] + high[rows, node, f]) / 2.0
            self.feature[:, node] = f
            self.split[:, node] = cut
            for child, side in ((2 * node + 1, "left"), (2 * node + 2, "right")):
                if child >= inner:
                    continue
                low[:, child] = low[:, node]
                high[:, child] = high[:, node]
                if side == "left":
                    high[rows, child, f] = cut
                else:
                    low[rows, child, f] = cut
        self.reference = np.zeros((trees, self.nodes), dtype=np.float64)
        self.latest = np.zeros((trees, self.nodes), dtype=np.float64)
        self.rolls = 0

    def paths(self, points: np.ndarray) -> np.ndarray:
        """Node index of every point in every tree at every depth: ``(depth + 1, N, trees)``."""
        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"points must be (N, {self.features}), not {x.shape}")
        n = x.shape[0]
        out = np.zeros((self.depth + 1, n, self.trees), dtype=np.intp)
        node = np.zeros((n, self.trees), dtype=np.intp)
        tree = np.arange(self.trees)[None, :]
        rows = np.arange(n)[:, None]
        for level in range(self.depth):
            f = self.feature[tree, node]
            right = x[rows, f] >= self.split[tree, node]
            node = 2 * node + 1 + right
            out[level + 1] = node
        return out

    def learn(self, points: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count ``points`` (optionally weighted) into ``latest`` along their paths."""
        paths = self.paths(points)
        if paths.shape[1] == 0:
            return
        w = np.ones(paths.shape[1]) if weights is None else np.asarray(weights, np.float64)
        flat = (paths + (np.arange(self.trees) * self.nodes)[None, None, :]).reshape(-1)
        each = np.broadcast_to(w[None, :, None], paths.shape).reshape(-1)
        counts = np.bincount(flat, weights=each, minlength=self.trees * self.nodes)
        self.latest += counts.reshape(self.trees, self.nodes)

    @property
    def learned(self) -> float:
        """Points (weights) in ``latest``."""
        return float(self.latest[0, 0])

    @property
    def mass(self) -> float:
        """Points (weights) the reference holds at the root."""
        return float(self.reference[0, 0])

    def roll(self) -> None:
        """``reference`` becomes the mean of itself and ``latest`` (the first time,
        ``latest``); ``latest`` starts again."""
        if self.rolls == 0:
            self.reference = self.latest.copy()
        else:
            self.reference = (self.reference + self.latest) / 2.0
        self.latest = np.zeros_like(self.latest)
        self.rolls += 1

    def leaf_mass(self, points: np.ndarray) -> np.ndarray:
        """Reference points in each point's leaf, per tree: ``(N, trees)``."""
        leaves = self.paths(points)[-1]
        found: np.ndarray = self.reference[np.arange(self.trees)[None, :], leaves]
        return found

    def state(self) -> dict[str, np.ndarray | int]:
        """The counts (the trees come from the seed)."""
        return {"reference": self.reference, "latest": self.latest, "rolls": self.rolls}

    def load(self, reference: np.ndarray, latest: np.ndarray, rolls: int) -> None:
        """Counts saved by :meth:`state`; refused when their shape is not this forest's."""
        shape = (self.trees, self.nodes)
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        lat = np.asarray(latest, dtype=np.float64).reshape(-1)
        if ref.size != self.trees * self.nodes or lat.size != ref.size:
            raise ValueError(f"saved counts do not fit a forest of {shape}")
        self.reference = ref.reshape(shape).copy()
        self.latest = lat.reshape(shape).copy()
        self.rolls = int(rolls)
