"""NAB's scoring rules, the corpus-wide threshold sweep and the normalised score.

NAB scores a detector that emits one anomaly score in [0, 1] per point of a univariate
series, computed in order (the score of point ``t`` may use points ``<= t`` only):

- The first 15% of each series, at most 750 points, is *probationary*: a detector may
  learn there, and nothing it flags there counts, in or out of a window.
- Each labelled anomaly has a *window* of points around it. Inside a window only the
  earliest flagged point counts, weighted by a scaled sigmoid of its position: ``+A_TP``
  at the window's first point, falling towards 0 at its last. A window with a point after
  probation and no flag there costs ``-A_FN``; a window wholly inside probation is not
  scored at all.
- Every flagged point outside the windows is a false positive. After a window it costs
  ``A_FP`` times the sigmoid of its distance past that window's end, measured in window
  widths (near 0 just after it, -1 beyond three widths); before the first window, ``-A_FP``.
- Points become flags at a threshold on the score; one threshold per profile is chosen
  for the whole corpus to maximise the corpus's total raw score (the highest such
  threshold on a tie).
- The normalised score is ``100 * (raw - null) / (perfect - null)``, as NAB's runner has
  it: ``perfect = A_TP`` times *every* window in the labels (those inside probation and
  those of skipped series included), ``null`` the raw score of NAB's null detector (a
  constant score, at its own best threshold). A window no detector can score therefore
  keeps even a perfect detector below 100. A skipped series adds ``-A_FN`` per labelled
  window to both the detector's raw score and the null's: its windows count as missed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shopwatch.evaluate.nab.corpus import Corpus, Series

__all__ = [
    "NEVER",
    "NULL_SCORE",
    "PROBATION_CAP",
    "PROBATION_PERCENT",
    "PROFILES",
    "Profile",
    "SeriesScore",
    "Sweep",
    "evaluate",
    "normalized",
    "perfect_scores",
    "point_weights",
    "probation_length",
    "score_series",
    "sweep",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Share of each series, from its start, in which flags are ignored.
PROBATION_PERCENT = 0.15
#: The probationary period is never longer than this many points (15% of 5000).
PROBATION_CAP = 750
#: A threshold above every score in [0, 1]: the detector flags nothing.
NEVER = 1.1
#: The score NAB's null detector gives every point.
NULL_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class Profile:
    """The weights of one NAB application profile."""

    name: str
    tp: float
    fp: float
    fn: float


#: NAB's three application profiles.
PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def probation_length(n: int) -> int:
    """Points at the start of a series of ``n`` points whose flags are ignored.

    >>> probation_length(100), probation_length(4032), probation_length(22695)
    (15, 604, 750)
    """
    return min(math.floor(PROBATION_PERCENT * n), PROBATION_CAP)


def _scaled_sigmoid(position: Floats) -> Floats:
    """``2 * sigmoid(-5 * position) - 1``; -1 beyond three widths past a window."""
    value: Floats = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


_MAX_TP = float(_scaled_sigmoid(np.array([-1.0]))[0])


def point_weights(n: int, windows: Ints, profile: Profile) -> tuple[Floats, Ints]:
    """What flagging each point would be worth, and the window it is in (-1: none).

    Inside window ``[a, b]`` (width ``w = b - a + 1``) point ``i`` sits at ``-(b - i + 1) / w``
    (-1 at ``a``), scaled so that ``a`` is worth exactly ``A_TP``. Outside, after window
    ``[a, b]``, point ``i`` sits ``(i - b) / (w - 1)`` widths past it and is worth ``A_FP``
    times the sigmoid there (negative); before any window, ``-A_FP``.
    """
    idx = np.arange(n, dtype=np.int64)
    starts, ends = windows[:, 0], windows[:, 1]
    widths = (ends - starts + 1).astype(np.float64)
    # The last window starting at or before i; i is in it when i <= its end.
    k = np.searchsorted(starts, idx, side="right") - 1
    kk = np.maximum(k, 0)
    inside = (k >= 0) & (idx <= ends[kk]) if len(windows) else np.zeros(n, dtype=bool)
    weights = np.full(n, -profile.fp, dtype=np.float64)
    if len(windows):
        pos_in = -(ends[kk] - idx + 1) / widths[kk]
        tp = _scaled_sigmoid(pos_in) * profile.tp / _MAX_TP
        # Past a window: the last window ending before i.
        past = np.searchsorted(ends, idx, side="left") - 1
        pp = np.maximum(past, 0)
        span = np.maximum(widths[pp] - 1.0, 1.0)
        fp = _scaled_sigmoid((idx - ends[pp]) / span) * profile.fp
        weights = np.where(inside, tp, np.where(past >= 0, fp, weights))
    window = np.where(inside, kk, -1).astype(np.int64)
    return weights, window


@dataclass(frozen=True, slots=True)
class Sweep:
    """Total raw score of a corpus for each threshold, highest threshold first."""

    thresholds: Floats
    totals: Floats
    windows: int

    @property
    def best(self) -> tuple[float, float]:
        """The threshold with the highest total (the highest such threshold on a tie)."""
        i = int(np.argmax(self.totals))
        return float(self.thresholds[i]), float(self.totals[i])


def _scorable(
    series: Sequence[Series], scores: Sequence[Floats], profile: Profile
) -> tuple[Floats, Floats, Ints, int]:
    """Scores, weights and corpus-wide window ids of every point past probation."""
    all_scores: list[Floats] = []
    all_weights: list[Floats] = []
    all_windows: list[Ints] = []
    offset = 0
    for s, score in zip(series, scores, strict=True):
        weights, window = point_weights(len(s), s.windows, profile)
        keep = slice(probation_length(len(s)), None)
        window = window[keep]
        # Windows (or parts) inside the probationary period do not count.
        live, local = np.unique(window[window >= 0], return_inverse=True)
        ids = np.full(window.shape, -1, dtype=np.int64)
        ids[window >= 0] = local + offset
        offset += len(live)
        all_scores.append(np.asarray(score, dtype=np.float64)[keep])
        all_weights.append(weights[keep])
        all_windows.append(ids)
    if not all_scores:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 0
    return (
        np.concatenate(all_scores),
        np.concatenate(all_weights),
        np.concatenate(all_windows),
        offset,
    )


def sweep(series: Sequence[Series], scores: Sequence[Floats], profile: Profile) -> Sweep:
    """The corpus's total raw score at every threshold at which a point changes side.

    A point is flagged when its score is ``>= threshold``. O(N log N): points are taken
    from the highest score down; a false positive adds its weight, a point in a window
    raises that window's worth to its weight if it is earlier than the window's best so far.
    """
    score, weight, window, n_windows = _scorable(series, scores, profile)
    base = -profile.fn * n_windows
    order = np.argsort(-score, kind="stable")
    s, w, g = score[order], weight[order], window[order]
    gain = np.where(g < 0, w, 0.0)
    in_rank = np.flatnonzero(g >= 0)
    if in_rank.size:
        # Per window, in rank order, the earliest flagged point so far (earliest = largest
        # weight); a running max of an integer key that is exact, grouped by window.
        by_window = in_rank[np.argsort(g[in_rank], kind="stable")]
        gw = g[by_window]
        flat = order[by_window]  # point index in the concatenated corpus, earlier = smaller
        big = np.int64(score.size + 1)
        key = gw * big + (big - 1 - flat)
        best_flat = (big - 1) - (np.maximum.accumulate(key) - gw * big)
        best = weight[best_flat]
        first = np.ones(gw.size, dtype=bool)
        first[1:] = gw[1:] != gw[:-1]
        before = np.where(first, -profile.fn, np.roll(best, 1))
        gain[by_window] = best - before
    totals = base + np.cumsum(gain)
    cut = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, np.int64)
    return Sweep(
        thresholds=np.concatenate([[NEVER], s[cut]]),
        totals=np.concatenate([[base], totals[cut]]),
        windows=n_windows,
    )


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """One series at one threshold; ``tp``/``fn`` count windows, ``fp`` flagged points."""

    key: str
    windows: int
    tp: int
    fp: int
    fn: int
    raw: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "file": self.key,
            "windows": self.windows,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "raw": self.raw,
        }


def score_series(series: Series, scores: Floats, profile: Profile, threshold: float) -> SeriesScore:
    """The raw score and counts of one series when points scoring ``>= threshold`` are flags."""
    weights, window = point_weights(len(series), series.windows, profile)
    start = probation_length(len(series))
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    flagged[:start] = False
    outside = flagged & (window < 0)
    raw = float(weights[outside].sum())
    tp = fn = 0
    for k in np.unique(window[start:][window[start:] >= 0]):
        hits = np.flatnonzero(flagged & (window == k))
        if hits.size:
            tp += 1
            raw += float(weights[hits[0]])
        else:
            fn += 1
            raw -= profile.fn
    return SeriesScore(series.key, tp + fn, tp, int(outside.sum()), fn, raw)


def normalized(raw: float, *, null: float, perfect: float) -> float | None:
    """``100 * (raw - null) / (perfect - null)``; None when perfect and null coincide.

    >>> normalized(0.0, null=-1.0, perfect=1.0)
    50.0
    """
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


def perfect_scores(series: Series) -> Floats:
    """Scores of the perfect detector: 1 at the first point of each window, else 0."""
    out = np.zeros(len(series), dtype=np.float64)
    out[series.windows[:, 0]] = 1.0
    return out


def _at_best(
    series: Sequence[Series], arrays: Sequence[Floats], profile: Profile
) -> tuple[float, list[SeriesScore]]:
    """The corpus-optimal threshold and each series' score there."""
    threshold, _ = sweep(series, arrays, profile).best
    # Summed afresh per series (the sweep's running sum drifts by ~1e-10 over 1e5 points).
    rows = [score_series(s, a, profile, threshold) for s, a in zip(series, arrays, strict=True)]
    return threshold, rows


def evaluate(
    corpus: Corpus,
    scores: Mapping[str, Floats],
    *,
    detector_name: str,
    profiles: Sequence[Profile] = PROFILES,
) -> dict[str, Any]:
    """NAB's figures for ``scores`` (one array per series key): JSON-ready.

    Per profile the corpus-optimal threshold, the raw, null, perfect and normalised
    scores; per series the standard profile's counts and raw score at its threshold.
    ``corpus.problems`` are series that were skipped: their windows count as missed.
    """
    series = corpus.series
    arrays = [np.asarray(scores[s.key], dtype=np.float64) for s in series]
    nulls = [np.full(len(s), NULL_SCORE, dtype=np.float64) for s in series]
    skipped = sum(p.windows for p in corpus.problems)
    labelled = sum(len(s.windows) for s in series) + skipped
    figures: dict[str, Any] = {"detector": detector_name}
    for name in ("scores", "raw", "null", "perfect", "threshold"):
        figures[name] = {}
    per_series: list[dict[str, Any]] = []
    for profile in profiles:
        threshold, rows = _at_best(series, arrays, profile)
        _, null_rows = _at_best(series, nulls, profile)
        raw = math.fsum(r.raw for r in rows) - profile.fn * skipped
        null = math.fsum(r.raw for r in null_rows) - profile.fn * skipped
        perfect = profile.tp * labelled
        figures["scores"][profile.name] = normalized(raw, null=null, perfect=perfect)
        figures["raw"][profile.name] = raw
        figures["null"][profile.name] = null
        figures["perfect"][profile.name] = perfect
        figures["threshold"][profile.name] = threshold
        if profile.name == "standard" or not per_series:
            missing = {s.key: s.missing_values for s in series}
            per_series = [r.as_dict() | {"missing_values": missing[r.key]} for r in rows]
    figures["per_series"] = per_series
    figures["series"] = len(series)
    figures["windows"] = labelled
    figures["windows_scored"] = int(sum(r["windows"] for r in per_series))
    figures["windows_skipped"] = skipped
    figures["points"] = int(sum(len(s) for s in series))
    figures["missing_values"] = int(sum(s.missing_values for s in series))
    figures["problems"] = [
        {"file": p.key, "reason": p.reason, "detail": p.detail, "windows": p.windows}
        for p in corpus.problems
    ]
    return figures
