"""The Numenta Anomaly Benchmark: its corpus, its scoring rules and streaming detectors.

:mod:`.corpus` reads the labelled series (and writes results in NAB's layout),
:mod:`.scoring` holds NAB's rules, the threshold sweep and the normalisation (its module
docstring states the rules as implemented), :mod:`.detectors` the registry of streaming
detectors. Everything but reading and writing files is pure: it works on arrays and
returns JSON-ready values.
"""

from __future__ import annotations

from shopwatch.evaluate.nab.corpus import (
    MISSING_TEXT,
    WINDOWS_FILE,
    Corpus,
    Problem,
    Series,
    is_safe_key,
    load_corpus,
    write_results,
)
from shopwatch.evaluate.nab.detectors import (
    DETECTORS,
    Constant,
    SeriesDetector,
    WindowedGaussian,
    detector,
)
from shopwatch.evaluate.nab.scoring import (
    NEVER,
    NULL_SCORE,
    PROBATION_CAP,
    PROBATION_PERCENT,
    PROFILES,
    Profile,
    SeriesScore,
    Sweep,
    evaluate,
    normalized,
    perfect_scores,
    point_weights,
    probation_length,
    score_series,
    sweep,
)

__all__ = [
    "DETECTORS",
    "MISSING_TEXT",
    "NEVER",
    "NULL_SCORE",
    "PROBATION_CAP",
    "PROBATION_PERCENT",
    "PROFILES",
    "WINDOWS_FILE",
    "Constant",
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
    "is_safe_key",
    "load_corpus",
    "normalized",
    "perfect_scores",
    "point_weights",
    "probation_length",
    "score_series",
    "sweep",
    "write_results",
]
