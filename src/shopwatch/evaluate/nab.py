"""The Numenta Anomaly Benchmark: its corpus, its scoring rules and streaming detectors.

NAB scores a detector that emits one anomaly score in [0, 1] per point of a univariate
series, computed in order (the score of point ``t`` may use points ``<= t`` only):

- The first 15% of each series, at most 750 points, is *probationary*: a detector may
  learn there, and nothing it flags there counts.
- Each labelled anomaly has a *window* of points around it. Inside a window only the
  earliest flagged point counts, weighted by a scaled sigmoid of its position: ``+A_TP``
  at the window's first point, falling towards 0 at its last. A window with no flag costs
  ``-A_FN``.
- Every flagged point outside the windows is a false positive. After a window it costs
  ``A_FP`` times the sigmoid of its distance past that window's end, measured in window
  widths (near 0 just after it, -1 three widths on); before the first window, ``-A_FP``.
- Points become flags at a threshold on the score; one threshold per profile is chosen
  for the whole corpus to maximise the corpus's total raw score.
- The normalised score is ``100 * (raw - null) / (perfect - null)``: the detector that
  flags nothing scores 0 (``null = -A_FN`` per window), the one that flags exactly each
  window's first point 100 (``perfect = A_TP`` per window).

Everything here is pure: files are read by :func:`load_corpus`, the rest works on arrays
and returns JSON-ready values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from shopwatch.errors import ConfigError, RegistryError

__all__ = [
    "DETECTORS",
    "NEVER",
    "PROBATION_CAP",
    "PROBATION_PERCENT",
    "PROFILES",
    "Corpus",
    "Problem",
    "Profile",
    "Series",
    "SeriesDetector",
    "SeriesScore",
    "Sweep",
    "WindowedGaussian",
    "detector",
    "evaluate",
    "load_corpus",
    "normalized",
    "perfect_scores",
    "point_weights",
    "probation_length",
    "score_series",
    "sweep",
    "write_results",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Share of each series, from its start, in which flags are ignored.
PROBATION_PERCENT = 0.15
#: The probationary period is never longer than this many points (15% of 5000).
PROBATION_CAP = 750
#: A threshold above every score in [0, 1]: the detector flags nothing.
NEVER = 1.1

WINDOWS_FILE = "combined_windows.json"


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


# --- the corpus -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One labelled series: ``key`` is its path under the data folder (``folder/file.csv``).

    ``windows`` holds ``[first, last]`` point indices (inclusive), in time order.
    """

    key: str
    timestamps: list[str]
    values: Floats
    windows: Ints

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class Problem:
    """A labelled series that could not be evaluated, and why (``reason`` is a fixed word)."""

    key: str
    reason: str  # no_data_file, bad_header, bad_row, empty, bad_window
    detail: str


@dataclass(frozen=True, slots=True)
class Corpus:
    """The labelled series that could be read, and those that could not."""

    series: list[Series]
    problems: list[Problem] = field(default_factory=list)


def _window_pairs(windows: Any, where: Path) -> dict[str, list[tuple[str, str]]]:
    if not isinstance(windows, dict):
        raise ConfigError(f"{where} is not a JSON object of series to windows")
    out: dict[str, list[tuple[str, str]]] = {}
    for key, pairs in windows.items():
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) for t in p)
            for p in pairs
        ):
            raise ConfigError(f"windows of {key!r} in {where} are not [[start, end], ...]")
        out[str(key)] = [(p[0], p[1]) for p in pairs]
    return out


def _parse_times(text: pl.Series) -> pl.Series:
    return text.str.strip_chars().str.to_datetime(
        "%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False
    )


def _read_series(data_dir: Path, key: str, pairs: list[tuple[str, str]]) -> Series | Problem:
    path = data_dir / key
    if not path.is_file():
        return Problem(key, "no_data_file", f"{path} does not exist")
    try:
        frame = pl.read_csv(path, infer_schema=False, has_header=True)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
        return Problem(key, "bad_row", f"{path} cannot be read as CSV: {err}")
    if frame.columns[:2] != ["timestamp", "value"]:
        return Problem(key, "bad_header", f"{path} header is {frame.columns}, not timestamp,value")
    if frame.height == 0:
        return Problem(key, "empty", f"{path} has no data rows")
    times = _parse_times(frame["timestamp"])
    values = frame["value"].str.strip_chars().cast(pl.Float64, strict=False)
    bad = (times.is_null() | values.is_null() | values.is_nan()).arg_true()
    if bad.len():
        row = int(bad[0])
        raw = f"{frame['timestamp'][row]},{frame['value'][row]}"[:512]
        return Problem(key, "bad_row", f"{path}:{row + 2}: {raw!r} is not 'timestamp,number'")
    stamps = times.to_numpy().astype("datetime64[us]").astype(np.int64)
    ends = _parse_times(pl.Series([t for pair in pairs for t in pair], dtype=pl.String))
    if ends.null_count():
        return Problem(key, "bad_window", f"a window of {key} has an unreadable timestamp")
    edges = ends.to_numpy().astype("datetime64[us]").astype(np.int64).reshape(-1, 2)
    # A window covers the points whose time lies within it, in file order. Points stay in
    # file order even where the clock steps back (one NAB file repeats an hour): against the
    # running maximum of the time a window starts at the first point reaching its start and
    # ends at the last point before passing its end, as matching timestamps in order would.
    stamps = np.maximum.accumulate(stamps)
    first = np.searchsorted(stamps, edges[:, 0], side="left")
    last = np.searchsorted(stamps, edges[:, 1], side="right") - 1
    if bool(np.any(last < first)) or bool(np.any(first[1:] <= last[:-1])):
        return Problem(key, "bad_window", f"a window of {key} holds no data point or overlaps")
    windows = np.stack([first, last], axis=1).astype(np.int64).reshape(-1, 2)
    return Series(key, frame["timestamp"].to_list(), values.to_numpy(), windows)


def load_corpus(data_dir: Path, labels_dir: Path) -> Corpus:
    """Every series with a key in ``labels_dir/combined_windows.json``, read from ``data_dir``.

    A series that cannot be used (no file, a bad row, a window with no point) becomes a
    :class:`Problem`; a missing folder or an unreadable windows file raises ConfigError.
    """
    if not data_dir.is_dir():
        raise ConfigError(f"data folder {data_dir} does not exist; give NAB's data/ folder")
    windows_path = labels_dir / WINDOWS_FILE
    if not windows_path.is_file():
        raise ConfigError(f"{windows_path} does not exist; give NAB's labels/ folder")
    try:
        raw = json.loads(windows_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{windows_path} is not JSON: {err}") from err
    series: list[Series] = []
    problems: list[Problem] = []
    for key, pairs in sorted(_window_pairs(raw, windows_path).items()):
        got = _read_series(data_dir, key, sorted(pairs))
        (series if isinstance(got, Series) else problems).append(got)  # type: ignore[arg-type]
    return Corpus(series, problems)


# --- the scoring rules ------------------------------------------------------------------


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


def normalized(raw: float, windows: int, profile: Profile) -> float | None:
    """``100 * (raw - null) / (perfect - null)``; None for a corpus with no window."""
    null, perfect = -profile.fn * windows, profile.tp * windows
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


def perfect_scores(series: Series) -> Floats:
    """Scores of the perfect detector: 1 at the first point of each window, else 0."""
    out = np.zeros(len(series), dtype=np.float64)
    out[series.windows[:, 0]] = 1.0
    return out


def evaluate(
    corpus: Corpus,
    scores: Mapping[str, Floats],
    *,
    detector_name: str,
    profiles: Sequence[Profile] = PROFILES,
) -> dict[str, Any]:
    """NAB's figures for ``scores`` (one array per series key): JSON-ready.

    Per profile the corpus-optimal threshold, the raw and the normalised score; per
    series the standard profile's counts and raw score at its threshold.
    """
    series = corpus.series
    arrays = [np.asarray(scores[s.key], dtype=np.float64) for s in series]
    figures: dict[str, Any] = {"detector": detector_name, "scores": {}, "raw": {}}
    figures["threshold"] = {}
    per_series: list[dict[str, Any]] = []
    windows = 0
    for profile in profiles:
        result = sweep(series, arrays, profile)
        threshold, _ = result.best
        windows = result.windows
        # Summed afresh per series (the sweep's running sum drifts by ~1e-10 over 1e5 points).
        rows = [score_series(s, a, profile, threshold) for s, a in zip(series, arrays, strict=True)]
        raw = math.fsum(r.raw for r in rows)
        figures["scores"][profile.name] = normalized(raw, windows, profile)
        figures["raw"][profile.name] = raw
        figures["threshold"][profile.name] = threshold
        if profile.name == "standard" or not per_series:
            per_series = [r.as_dict() for r in rows]
    figures["per_series"] = per_series
    figures["series"] = len(series)
    figures["windows"] = windows
    figures["points"] = int(sum(len(s) for s in series))
    figures["problems"] = [
        {"file": p.key, "reason": p.reason, "detail": p.detail} for p in corpus.problems
    ]
    return figures


def write_results(out_dir: Path, series: Series, scores: Floats, *, prefix: str = "") -> Path:
    """Write ``timestamp,value,anomaly_score,label`` (NAB's results columns) for one series.

    The file goes to ``out_dir/<folder>/<prefix><file>.csv``; ``label`` is 1 inside a
    window. NAB's own scorer looks for ``results/<detector>/<folder>/<detector>_<file>.csv``.
    """
    folder, _, name = series.key.rpartition("/")
    path = out_dir / folder / f"{prefix}{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.zeros(len(series), dtype=np.int64)
    for a, b in series.windows:
        label[a : b + 1] = 1
    pl.DataFrame(
        {
            "timestamp": series.timestamps,
            "value": series.values,
            "anomaly_score": np.asarray(scores, dtype=np.float64),
            "label": label,
        }
    ).write_csv(path)
    return path


# --- streaming detectors ----------------------------------------------------------------


class SeriesDetector(Protocol):
    """Anomaly scores for a whole series, computed as if one point arrived at a time.

    ``score(values)[t]`` is in [0, 1] and depends only on ``values[: t + 1]``.
    """

    @property
    def name(self) -> str:
        """The name ``--detector`` selects it by."""
        ...

    def score(self, values: Floats) -> Floats:
        """One score per value."""
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
    z-score under a normal fit to the previous ``window`` points (0 until two points have
    been seen). A flat history has its spread floored at ``min_std``. Cost: O(n), two
    cumulative sums.
    """

    name: str = "baseline"
    window: int = 1000
    min_std: float = 1e-6

    def score(self, values: Floats) -> Floats:
        x = np.asarray(values, dtype=np.float64)
        n = x.size
        if n == 0:
            return np.zeros(0)
        # Centred on the first value so the sums of squares stay small.
        c = x - x[0]
        s1 = np.concatenate([[0.0], np.cumsum(c)])
        s2 = np.concatenate([[0.0], np.cumsum(c * c)])
        t = np.arange(n)
        lo = np.maximum(t - self.window, 0)
        count = (t - lo).astype(np.float64)  # points before t in its window
        safe = np.maximum(count, 1.0)
        mean = (s1[t] - s1[lo]) / safe
        var = np.maximum((s2[t] - s2[lo]) / safe - mean * mean, 0.0)
        std = np.maximum(np.sqrt(var), self.min_std)
        z = np.abs(c - mean) / std
        out = np.asarray(_erf(z / math.sqrt(2.0)), dtype=np.float64)
        return np.where(count >= 2, out, 0.0)


@dataclass(frozen=True, slots=True)
class Constant:
    """NAB's null detector: the same score for every point (it never beats flagging nothing)."""

    name: str = "null"
    value: float = 0.5

    def score(self, values: Floats) -> Floats:
        return np.full(np.asarray(values).shape, self.value, dtype=np.float64)


detector("baseline")(WindowedGaussian)
detector("null")(Constant)
