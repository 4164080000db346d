"""Reading NAB's corpus (the labelled series of ``data/`` and their windows), writing results.

A series is read as NAB reads it: a ``timestamp,value`` CSV whose values may be missing
(blank, ``nan``, ``NA``, ``inf`` ...). Missing and non-finite values stay in the series as
NaN or inf, at their place, and are counted; only a series that cannot be used at all (no
file, a bad header, a timestamp or value that is not one, a window edge that is not one of
its timestamps, a key that leaves the data folder) becomes a :class:`Problem`.

Window edges are matched as NAB's sweeper matches them: exactly, in file order. A window
starts at the first point with its start time and ends at the first point with its end
time, even when that time repeats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from shopwatch.errors import ConfigError

__all__ = [
    "MISSING_TEXT",
    "WINDOWS_FILE",
    "Corpus",
    "Problem",
    "Series",
    "is_safe_key",
    "load_corpus",
    "write_results",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

WINDOWS_FILE = "combined_windows.json"

#: Value texts read as missing (pandas' default NA spellings, which NAB's reader uses).
MISSING_TEXT = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


@dataclass(frozen=True, slots=True)
class Series:
    """One labelled series: ``key`` is its path under the data folder (``folder/file.csv``).

    ``values`` keeps missing values as NaN (non-finite ones as read); ``windows`` holds
    ``[first, last]`` point indices (inclusive), in time order.
    """

    key: str
    timestamps: list[str]
    values: Floats
    windows: Ints

    def __len__(self) -> int:
        return len(self.values)

    @property
    def seconds(self) -> Floats:
        """The timestamps as seconds since the epoch (read as UTC)."""
        stamps = np.array(self.timestamps, dtype="datetime64[s]")
        return stamps.astype(np.int64).astype(np.float64)

    @property
    def missing_values(self) -> int:
        """Points whose value is missing or not finite."""
        return int(np.count_nonzero(~np.isfinite(self.values)))


@dataclass(frozen=True, slots=True)
class Problem:
    """A labelled series that could not be evaluated, and why (``reason`` is a fixed word).

    ``windows`` is the number of windows the labels give it, which still count (as missed)
    when the series is skipped.
    """

    key: str
    reason: str  # bad_key, no_data_file, bad_csv, bad_header, bad_timestamp, bad_value, bad_window
    detail: str
    windows: int = 0


@dataclass(frozen=True, slots=True)
class Corpus:
    """The labelled series that could be read, and those that could not."""

    series: list[Series]
    problems: list[Problem] = field(default_factory=list)


def is_safe_key(key: str) -> bool:
    """Whether a labels key is a relative path that stays inside the folder it is joined to.

    >>> is_safe_key("realKnownCause/nyc_taxi.csv"), is_safe_key("../x.csv")
    (True, False)
    >>> is_safe_key("/tmp/x.csv"), is_safe_key("a\\\\..\\\\x.csv"), is_safe_key("C:x.csv")
    (False, False, False)
    """
    path = PurePosixPath(key)
    return (
        bool(key.strip())
        and "\\" not in key
        and "\x00" not in key
        and not path.is_absolute()
        and not PureWindowsPath(key).drive
        and ".." not in path.parts
        and path.name not in ("", ".")
    )


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
    """``YYYY-MM-DD HH:MM:SS[.f]`` (or ISO's ``T`` between date and time) to microseconds."""
    return (
        text.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2})T", "$1 ")
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
    )


def _micros(times: pl.Series) -> Ints:
    return times.to_numpy().astype("datetime64[us]").astype(np.int64)


def _match_windows(key: str, stamps: Ints, edges: Ints, texts: list[tuple[str, str]]) -> Ints | str:
    """``[first, last]`` per window, or why a window cannot be placed."""
    out = np.zeros((len(edges), 2), dtype=np.int64)
    after = -1  # a window starts after the previous one started, as NAB walks the file
    for k, ((start, end), (start_text, end_text)) in enumerate(zip(edges, texts, strict=True)):
        starts = np.flatnonzero(stamps[after + 1 :] == start)
        ends = np.flatnonzero(stamps == end)
        for hits, text in ((starts, start_text), (ends, end_text)):
            if not hits.size:
                return (
                    f"window edge {text!r} of {key} is not a timestamp in the file; "
                    "window edges must be timestamps of the series"
                )
        first, last = after + 1 + int(starts[0]), int(ends[0])
        if last < first:
            return f"window [{start_text}, {end_text}] of {key} ends before it starts"
        if k and first <= out[k - 1, 1]:
            return f"window [{start_text}, {end_text}] of {key} overlaps the one before it"
        out[k] = first, last
        after = first
    return out


def _read_series(data_dir: Path, key: str, pairs: list[tuple[str, str]]) -> Series | Problem:
    n_windows = len(pairs)
    if not is_safe_key(key):
        return Problem(
            key,
            "bad_key",
            f"labels key {key!r} is not a relative path inside the data folder "
            "(no absolute path, no '..'); write it as <folder>/<file>.csv",
            n_windows,
        )
    path = data_dir / key
    if not path.is_file():
        return Problem(key, "no_data_file", f"{path} does not exist", n_windows)
    try:
        frame = pl.read_csv(path, infer_schema=False, has_header=True)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
        return Problem(key, "bad_csv", f"{path} cannot be read as CSV: {err}", n_windows)
    if frame.columns[:2] != ["timestamp", "value"]:
        return Problem(
            key,
            "bad_header",
            f"{path} header is {frame.columns}, not timestamp,value",
            n_windows,
        )
    times = _parse_times(frame["timestamp"])
    text = frame["value"].str.strip_chars().fill_null("")
    values = text.cast(pl.Float64, strict=False)
    bad_time = times.is_null().arg_true()
    bad_value = (values.is_null() & ~text.is_in(list(MISSING_TEXT))).arg_true()
    for bad, reason, what in (
        (bad_time, "bad_timestamp", "a timestamp YYYY-MM-DD HH:MM:SS"),
        (bad_value, "bad_value", "a number or an empty (missing) value"),
    ):
        if bad.len():
            row = int(bad[0])
            raw = f"{frame['timestamp'][row]},{frame['value'][row]}"[:512]
            return Problem(
                key,
                reason,
                f"{path}:{row + 2}: {raw!r} does not have {what} ({bad.len()} such rows)",
                n_windows,
            )
    edges_text = sorted(pairs)
    ends = _parse_times(pl.Series([t for pair in edges_text for t in pair], dtype=pl.String))
    if ends.null_count():
        return Problem(
            key, "bad_window", f"a window of {key} has an unreadable timestamp", n_windows
        )
    edges = _micros(ends).reshape(-1, 2)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    matched = _match_windows(key, _micros(times), edges[order], [edges_text[int(i)] for i in order])
    if isinstance(matched, str):
        return Problem(key, "bad_window", matched, n_windows)
    array = values.fill_null(float("nan")).to_numpy().astype(np.float64)
    return Series(key, frame["timestamp"].to_list(), array, matched.reshape(-1, 2))


def load_corpus(data_dir: Path, labels_dir: Path) -> Corpus:
    """Every series with a key in ``labels_dir/combined_windows.json``, read from ``data_dir``.

    A series that cannot be used becomes a :class:`Problem`; a missing folder or an
    unreadable windows file raises ConfigError.
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
        got = _read_series(data_dir, key, pairs)
        if isinstance(got, Series):
            series.append(got)
        else:
            problems.append(got)
    return Corpus(series, problems)


def write_results(out_dir: Path, series: Series, scores: Floats, *, prefix: str = "") -> Path:
    """Write ``timestamp,value,anomaly_score,label`` (NAB's results columns) for one series.

    The file goes to ``out_dir/<folder>/<prefix><file>.csv``; ``label`` is 1 inside a
    window. NAB's own scorer looks for ``results/<detector>/<folder>/<detector>_<file>.csv``.
    Raises ConfigError, writing nothing, if that path would leave ``out_dir``.
    """
    folder, _, name = series.key.rpartition("/")
    path = out_dir / folder / f"{prefix}{name}"
    root = out_dir.resolve()
    if not is_safe_key(series.key) or not path.resolve().is_relative_to(root):
        raise ConfigError(
            f"results for {series.key!r} would be written to {path}, outside {out_dir}; "
            "labels keys must be <folder>/<file>.csv"
        )
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
        },
        schema={
            "timestamp": pl.String,
            "value": pl.Float64,
            "anomaly_score": pl.Float64,
            "label": pl.Int64,
        },
    ).write_csv(path)
    return path
