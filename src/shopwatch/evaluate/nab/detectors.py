"""Streaming detectors for NAB: the registry, ours, the windowed-Gaussian baseline, the null.

A detector sees a series' values in order. A missing or non-finite value scores 0 and
leaves the detector's state as it was: the next value is judged against the same history.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from shopwatch.errors import RegistryError
from shopwatch.evaluate.nab.scoring import NULL_SCORE
from shopwatch.learn.series import SeriesModel, SeriesParams

__all__ = [
    "DETECTORS",
    "Constant",
    "SeriesDetector",
    "Streaming",
    "WindowedGaussian",
    "detector",
]

Floats = npt.NDArray[np.float64]


class SeriesDetector(Protocol):
    """Anomaly scores for a whole series, computed as if one point arrived at a time.

    ``score(values)[t]`` is in [0, 1] and depends only on ``values[: t + 1]``; it is 0 where
    ``values[t]`` is missing (NaN) or not finite, and such a value changes no state.
    """

    @property
    def name(self) -> str:
        """The name ``--detector`` selects it by."""
        ...

    def score(self, values: Floats, timestamps: Floats | None = None) -> Floats:
        """One score per value; ``timestamps`` (seconds) for detectors that use time."""
        ...


D = TypeVar("D", bound=Callable[[], SeriesDetector])
#: Detector factories by name (``--detector NAME``).
DETECTORS: dict[str, Callable[[], SeriesDetector]] = {}


def detector(name: str) -> Callable[[D], D]:
    """Register a detector factory under ``name``."""

    def add(factory: D) -> D:
        if name in DETECTORS:
            raise RegistryError(f"NAB detector {name!r} is registered twice")
        DETECTORS[name] = factory
        return factory

    return add


_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True, slots=True)
class WindowedGaussian:
    """How unusual a value is against the mean and spread of the ``window`` values before it.

    Score ``= erf(|z| / sqrt 2)``: one minus the two-sided tail probability of the value's
    z-score under a normal fit to the previous ``window`` finite values (0 until two have
    been seen). Missing and non-finite values score 0 and are not part of any history. A
    flat history has its spread floored at ``min_std``. Cost: O(n), two cumulative sums.
    """

    name: str = "baseline"
    window: int = 1000
    min_std: float = 1e-6

    def score(self, values: Floats, timestamps: Floats | None = None) -> Floats:
        x = np.asarray(values, dtype=np.float64)
        out = np.zeros(x.size, dtype=np.float64)
        seen = np.isfinite(x)
        if seen.any():
            out[seen] = self._score_finite(x[seen])
        return out

    def _score_finite(self, x: Floats) -> Floats:
        n = x.size
        # Centred on the first value so the sums of squares stay small.
        c = x - x[0]
        s1 = np.concatenate([[0.0], np.cumsum(c)])
        s2 = np.concatenate([[0.0], np.cumsum(c * c)])
        t = np.arange(n)
        lo = np.maximum(t - self.window, 0)
        count = (t - lo).astype(np.float64)  # values before t in its window
        safe = np.maximum(count, 1.0)
        mean = (s1[t] - s1[lo]) / safe
        var = np.maximum((s2[t] - s2[lo]) / safe - mean * mean, 0.0)
        std = np.maximum(np.sqrt(var), self.min_std)
        z = np.abs(c - mean) / std
        out = np.asarray(_erf(z / math.sqrt(2.0)), dtype=np.float64)
        return np.where(count >= 2, out, 0.0)


@dataclass(frozen=True, slots=True)
class Constant:
    """NAB's null detector: the same score for every point; its best raw score is the zero."""

    name: str = "null"
    value: float = NULL_SCORE

    def score(self, values: Floats, timestamps: Floats | None = None) -> Floats:
        return np.full(np.asarray(values).shape, self.value, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Streaming:
    """shopwatch's metric model (:class:`~shopwatch.learn.series.SeriesModel`), fed one
    point at a time as ``apm.metric`` samples are. Without timestamps the points are taken
    as evenly spaced a ``step`` apart."""

    name: str = "shopwatch"
    params: SeriesParams = field(default_factory=SeriesParams)
    step: float = 300.0

    def score(self, values: Floats, timestamps: Floats | None = None) -> Floats:
        x = np.asarray(values, dtype=np.float64)
        if timestamps is None:
            t = np.arange(x.size, dtype=np.float64) * self.step
        else:
            t = np.asarray(timestamps, dtype=np.float64)
            if t.shape != x.shape:
                raise ValueError(f"{t.size} timestamps for {x.size} values")
        model = SeriesModel(self.params)
        return np.fromiter(
            (model.update(ti, xi).score for ti, xi in zip(t.tolist(), x.tolist(), strict=True)),
            dtype=np.float64,
            count=x.size,
        )


detector("shopwatch")(Streaming)
detector("baseline")(WindowedGaussian)
detector("null")(Constant)
