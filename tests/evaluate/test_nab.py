"""``shopwatch evaluate nab``: NAB's scoring rules, the threshold sweep, the baseline, the command."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopwatch.cli.main import app
from shopwatch.evaluate import nab

STANDARD = nab.PROFILES[0]
START = datetime(2020, 1, 1)


def stamps(n: int) -> list[str]:
    return [(START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def series(n: int = 100, windows: tuple[tuple[int, int], ...] = ((40, 49),)) -> nab.Series:
    return nab.Series(
        key="synth/a.csv",
        timestamps=stamps(n),
        values=np.zeros(n),
        windows=np.array(windows, dtype=np.int64).reshape(-1, 2),
    )


def flags(n: int, *at: int) -> np.ndarray:
    out = np.zeros(n)
    out[list(at)] = 1.0
    return out


def raw(s: nab.Series, *at: int, profile: nab.Profile = STANDARD) -> nab.SeriesScore:
    return nab.score_series(s, flags(len(s), *at), profile, threshold=0.5)


# Worked by hand: 100 points, one window [40, 49] (width w = 10), standard profile
# (A_TP = 1, A_FP = 0.11, A_FN = 1); probation = floor(0.15 * 100) = 15 points (0..14).
# The scaled sigmoid is 2 * sigmoid(-5p) - 1 = tanh(-5p / 2); in a window it is divided by
# its value at p = -1, tanh(2.5) = 0.9866142981514303, so the window's first point is worth 1.
# - flag at 40 (window start): p = -(49 - 40 + 1) / 10 = -1 -> 1 exactly.
# - flag at 45 (middle): p = -(49 - 45 + 1) / 10 = -0.5 -> tanh(1.25) / tanh(2.5)
#   = 0.8482836399575129 / 0.9866142981514303 = 0.8597925669097837.
# - flag at 20 (before the window): -A_FP = -0.11; the window is missed: -1 -> -1.11.
# - flag at 40 and at 60 (after the window): p = (60 - 49) / (w - 1) = 11/9 ->
#   0.11 * tanh(-55/18) = 0.11 * -0.995573648215434 = -0.10951310130369775;
#   total 1 - 0.10951310130369775 = 0.8904868986963023.
# - flag at 40 and at 90: p = 41/9 > 3 -> -1 * 0.11; total 0.89.
# - nothing flagged: the window is missed -> -1.
# Normalised (null = -1 per window, perfect = +1): flag at 45 -> 100 * (0.85979... + 1) / 2
# = 92.98962834548918; flag at 20 -> 100 * (-1.11 + 1) / 2 = -5.5.

AFTER = 0.11 * math.tanh(-55 / 18)  # -0.10951310130369775


def test_hand_worked_raw_scores() -> None:
    s = series()
    assert raw(s, 40).raw == pytest.approx(1.0, abs=1e-9)
    assert raw(s, 45).raw == pytest.approx(0.8597925669097837, abs=1e-9)
    assert raw(s, 20).raw == pytest.approx(-1.11, abs=1e-9)
    assert raw(s, 40, 60).raw == pytest.approx(0.8904868986963023, abs=1e-9)
    assert raw(s, 40, 90).raw == pytest.approx(0.89, abs=1e-9)
    assert raw(s).raw == pytest.approx(-1.0, abs=1e-9)


def test_hand_worked_counts_and_normalised_score() -> None:
    s = series()
    got = raw(s, 20, 45, 60)
    assert (got.windows, got.tp, got.fp, got.fn) == (1, 1, 2, 0)
    assert raw(s).fn == 1
    one = {"null": -1.0, "perfect": 1.0}
    assert nab.normalized(raw(s, 45).raw, **one) == pytest.approx(92.98962834548918, abs=1e-9)
    assert nab.normalized(raw(s, 20).raw, **one) == pytest.approx(-5.5, abs=1e-9)
    assert nab.normalized(-1.0, **one) == pytest.approx(0.0, abs=1e-9)
    assert nab.normalized(1.0, **one) == pytest.approx(100.0, abs=1e-9)


def test_profiles_weigh_false_positives_and_misses_as_nab_does() -> None:
    s = series()
    low_fp, low_fn = nab.PROFILES[1], nab.PROFILES[2]
    assert raw(s, 20, profile=low_fp).raw == pytest.approx(-1.22, abs=1e-9)
    assert raw(s, 20, profile=low_fn).raw == pytest.approx(-2.11, abs=1e-9)
    assert [(p.name, p.tp, p.fp, p.fn) for p in nab.PROFILES] == [
        ("standard", 1.0, 0.11, 1.0),
        ("reward_low_FP_rate", 1.0, 0.22, 1.0),
        ("reward_low_FN_rate", 1.0, 0.11, 2.0),
    ]


def test_flags_in_the_probationary_period_are_ignored() -> None:
    s = series()
    assert nab.probation_length(100) == 15
    got = raw(s, 0, 5, 14)
    assert got.fp == 0 and got.raw == pytest.approx(-1.0)
    assert raw(s, 15).fp == 1  # the first point after probation counts
    assert nab.probation_length(100_000) == nab.PROBATION_CAP == 750


def test_a_window_inside_the_probationary_period_is_not_scored() -> None:
    s = series(windows=((2, 6), (40, 49)))
    got = raw(s, 4, 40)
    assert (got.windows, got.tp, got.fn) == (1, 1, 0) and got.raw == pytest.approx(1.0)


def test_only_the_first_detection_in_a_window_counts() -> None:
    s = series()
    first = raw(s, 42).raw
    got = raw(s, 42, 45, 48, 49)
    assert (got.tp, got.fp) == (1, 0) and got.raw == pytest.approx(first, abs=1e-12)
    assert first == pytest.approx(math.tanh(2.0) / math.tanh(2.5), abs=1e-12)


def test_sweep_picks_the_best_threshold() -> None:
    s = series()
    score = np.zeros(100)
    score[20], score[40], score[60] = 0.95, 0.9, 0.6
    swept = nab.sweep([s], [score], STANDARD)
    # 1.1: nothing (-1); 0.95: the FP at 20 (-1.11); 0.9: + the window's start (0.89);
    # 0.6: + the FP after the window (0.89 - 0.1095...); 0.0: every point after probation.
    assert swept.thresholds[:4].tolist() == [nab.NEVER, 0.95, 0.9, 0.6]
    assert swept.totals[:4] == pytest.approx([-1.0, -1.11, 0.89, 0.89 + AFTER], abs=1e-9)
    assert swept.best[0] == 0.9 and swept.best[1] == pytest.approx(0.89, abs=1e-9)


def test_sweep_totals_match_scoring_each_series_at_each_threshold() -> None:
    rng = np.random.default_rng(7)
    corpus = [
        series(300, ((60, 80), (200, 230))),
        series(120, ((50, 59),)),
        series(90, ()),
    ]
    scores = [np.round(rng.random(len(s)), 2) for s in corpus]
    for profile in nab.PROFILES:
        swept = nab.sweep(corpus, scores, profile)
        for t, total in zip(swept.thresholds, swept.totals, strict=True):
            by_series = sum(
                nab.score_series(s, a, profile, t).raw for s, a in zip(corpus, scores, strict=True)
            )
            assert total == pytest.approx(by_series, abs=1e-9)


def test_a_false_positive_exactly_three_widths_past_a_window_keeps_its_sigmoid() -> None:
    # NAB's sweeper floors the weight at -1 only *beyond* three widths (position > 3.0).
    s = series(100, ((40, 49),))
    weights, _ = nab.point_weights(len(s), s.windows, STANDARD)
    at_three = 49 + 3 * 9  # (76 - 49) / (10 - 1) = 3.0
    assert weights[at_three] == pytest.approx(0.11 * math.tanh(-7.5), abs=1e-15)
    assert weights[at_three] != -0.11
    assert weights[at_three + 1] == -0.11


def corpus_of(*items: nab.Series, problems: tuple[nab.Problem, ...] = ()) -> nab.Corpus:
    return nab.Corpus(list(items), list(problems))


# NAB's runner normalises with perfect = A_TP * every window in the labels file and null =
# the null detector's best raw score. 1,000 points (probation 150), windows [50, 80] (inside
# probation: never scored) and [500, 540] (width 41); flags at 60 (ignored), 500 (the
# window's first point: +1) and 700 ((700 - 540) / 40 = 4 widths past it: -A_FP).
# Null (constant 0.5; flagging nothing is its best): -A_FN for the one scored window.
# standard:           raw 1 - 0.11 = 0.89; 100 * (0.89 + 1) / (2 + 1) = 63.0
# reward_low_FP_rate: raw 1 - 0.22 = 0.78; 100 * (0.78 + 1) / (2 + 1) = 59.333...
# reward_low_FN_rate: raw 0.89;            100 * (0.89 + 2) / (2 + 2) = 72.25
# (NAB's own sweeper and normalisation give the same three figures for these scores.)
PROBATION_CASE = {"standard": 63.0, "reward_low_FP_rate": 178 / 3, "reward_low_FN_rate": 72.25}


def test_windows_inside_probation_count_in_the_perfect_score() -> None:
    s = series(1000, ((50, 80), (500, 540)))
    figures = nab.evaluate(corpus_of(s), {s.key: flags(1000, 60, 500, 700)}, detector_name="t")
    assert (figures["windows"], figures["windows_scored"]) == (2, 1)
    assert figures["perfect"] == {
        "standard": 2.0,
        "reward_low_FP_rate": 2.0,
        "reward_low_FN_rate": 2.0,
    }
    assert figures["null"] == {
        "standard": -1.0,
        "reward_low_FP_rate": -1.0,
        "reward_low_FN_rate": -2.0,
    }
    for name, expected in PROBATION_CASE.items():
        assert figures["scores"][name] == pytest.approx(expected, abs=1e-9), name


def test_null_is_the_null_detectors_best_score_not_a_miss_per_window() -> None:
    # One 20-point window in 100 points: flagging every point after probation (the null at
    # threshold 0.5) scores +1 for the window, and -0.11 for each of the 65 points outside
    # it: 1 - 7.15 < -1, so the null flags nothing. With fp = 0.001 it does better by flagging.
    s = series(100, ((15, 34),))
    cheap = nab.Profile("cheap_fp", tp=1.0, fp=0.001, fn=1.0)
    figures = nab.evaluate(
        corpus_of(s), {s.key: flags(100, 15)}, detector_name="t", profiles=(STANDARD, cheap)
    )
    assert figures["null"]["standard"] == pytest.approx(-1.0)
    weights, window = nab.point_weights(100, s.windows, cheap)
    everything = 1.0 + weights[15:][window[15:] < 0].sum()
    assert everything > -1.0
    assert figures["null"]["cheap_fp"] == pytest.approx(everything, abs=1e-12)


def test_a_skipped_series_counts_its_windows_as_missed() -> None:
    s = series()
    gone = nab.Problem("synth/gone.csv", "no_data_file", "missing", windows=1)
    alone = nab.evaluate(corpus_of(s), {s.key: flags(100, 40)}, detector_name="t")
    assert alone["scores"]["standard"] == pytest.approx(100.0)
    got = nab.evaluate(corpus_of(s, problems=(gone,)), {s.key: flags(100, 40)}, detector_name="t")
    # raw 1 - 1 = 0, null -1 - 1 = -2, perfect 2: 100 * 2 / 4.
    assert (got["raw"]["standard"], got["null"]["standard"], got["perfect"]["standard"]) == (
        pytest.approx(0.0),
        pytest.approx(-2.0),
        2.0,
    )
    assert got["scores"]["standard"] == pytest.approx(50.0)
    assert (got["windows"], got["windows_scored"], got["windows_skipped"]) == (2, 1, 1)


# The baseline on the shared corpus (35 labelled series, 55 windows), as NAB's own scorer
# and normalisation give it for the same anomaly scores.
GOLDEN = {"standard": 27.8279, "reward_low_FP_rate": 15.6306, "reward_low_FN_rate": 34.3095}


def shared_figures(datasets: Path, name: str) -> dict:
    """NAB's figures for detector ``name`` on the shared corpus (skips without it)."""
    root = datasets / "nab"
    if not (root / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB corpus not found under {root}")
    corpus = nab.load_corpus(root / "data", root / "labels")
    assert (len(corpus.series), corpus.problems) == (35, [])
    detector = nab.DETECTORS[name]()
    scores = {s.key: detector.score(s.values, s.seconds) for s in corpus.series}
    figures = nab.evaluate(corpus, scores, detector_name=name)
    assert figures["windows"] == 55
    return figures


def test_baseline_on_the_shared_corpus_scores_as_nab_scores_it(datasets: Path) -> None:
    figures = shared_figures(datasets, "baseline")
    for name, expected in GOLDEN.items():
        assert figures["scores"][name] == pytest.approx(expected, abs=1e-4), name


# shopwatch's metric model on the same corpus (its defaults were chosen on it: this pins
# them, it is not a held-out figure).
GOLDEN_OURS = {"standard": 67.47, "reward_low_FP_rate": 58.93, "reward_low_FN_rate": 72.25}


def test_our_model_on_the_shared_corpus(datasets: Path) -> None:
    figures = shared_figures(datasets, "shopwatch")
    for name, expected in GOLDEN_OURS.items():
        assert figures["scores"][name] == pytest.approx(expected, abs=0.01), name


def test_our_model_is_streaming_and_skips_missing_values() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(50, 5, 3000), [500.0], rng.normal(50, 5, 2000)])
    ours = nab.DETECTORS["shopwatch"]()
    whole = ours.score(values)
    assert whole.shape == values.shape and bool(np.all((whole >= 0) & (whole < 1)))
    for k in (1, 2, 50, 1000, 3001, 4500):
        assert np.array_equal(ours.score(values[:k]), whole[:k])
    assert whole[3000] > 0.9
    holey = values.copy()
    holey[[10, 2000]] = np.nan
    got = ours.score(holey)
    assert got[10] == 0.0 and got[2000] == 0.0
    with pytest.raises(ValueError, match="timestamps"):
        ours.score(values, np.arange(3.0))


def test_baseline_is_streaming() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(50, 5, 3000), [500.0], rng.normal(50, 5, 2000)])
    detector = nab.DETECTORS["baseline"]()
    whole = detector.score(values)
    assert whole.shape == values.shape and bool(np.all((whole >= 0) & (whole <= 1)))
    for k in (1, 2, 50, 1000, 3001, 4500):
        assert np.array_equal(detector.score(values[:k]), whole[:k])
    assert whole[3000] > 0.999999 and whole[2999] < 0.9999


def test_baseline_on_a_flat_series_scores_a_step() -> None:
    values = np.concatenate([np.full(200, 3.0), [4.0]])
    got = nab.DETECTORS["baseline"]().score(values)
    assert got[:200].max() == 0.0 and got[200] == 1.0


def test_registry_refuses_a_second_detector_of_the_same_name() -> None:
    from shopwatch.errors import RegistryError

    with pytest.raises(RegistryError):
        nab.detector("baseline")(nab.WindowedGaussian)


# --- the command ------------------------------------------------------------------------


def write_csv(path: Path, values: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{t},{v}" for t, v in zip(stamps(len(values)), values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    data, labels = tmp_path / "data", tmp_path / "labels"
    spiky = rng.normal(10, 1, 400)
    spiky[300] = 60.0
    write_csv(data / "synthA" / "spike.csv", spiky.tolist())
    write_csv(data / "synthB" / "flat.csv", rng.normal(5, 1, 300).tolist())
    write_csv(data / "synthB" / "unlabelled.csv", [1.0] * 50)
    t = stamps(400)
    windows = {
        "synthA/spike.csv": [[f"{t[290]}.000000", f"{t[310]}.000000"]],
        "synthB/flat.csv": [],
        "synthB/gone.csv": [[f"{t[10]}.000000", f"{t[20]}.000000"]],
    }
    labels.mkdir()
    (labels / "combined_windows.json").write_text(json.dumps(windows), encoding="utf-8")
    return data, labels


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", "nab", *args], env={"COLUMNS": "400"})
    return result.exit_code, " ".join(result.output.split())


def test_cli_prints_writes_json_and_results(corpus_dir: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = corpus_dir
    out, results = tmp_path / "nab.json", tmp_path / "results"
    code, output = run(
        *("--data", str(data), "--labels", str(labels), "--json", str(out)),
        *("--results", str(results), "--skip-bad", "--detector", "baseline"),
    )
    assert code == 0, output
    assert "standard" in output and "synthA/spike.csv" in output
    assert "synthB/gone.csv (no_data_file, 1 windows counted as missed)" in output
    figures = json.loads(out.read_text())
    assert {"scores", "per_series", "threshold", "detector", "problems"} <= set(figures)
    assert set(figures["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert figures["detector"] == "baseline" and figures["series"] == 2
    spike = next(r for r in figures["per_series"] if r["file"] == "synthA/spike.csv")
    assert {"file", "windows", "tp", "fp", "fn", "raw"} <= set(spike)
    assert (spike["windows"], spike["tp"], spike["fn"]) == (1, 1, 0)
    assert {"file", "windows", "tp", "fp", "fn", "raw", "missing_values"} <= set(spike)
    assert (figures["windows"], figures["windows_skipped"]) == (2, 1)
    assert figures["problems"] == [
        {
            "file": "synthB/gone.csv",
            "reason": "no_data_file",
            "detail": figures["problems"][0]["detail"],
            "windows": 1,
        }
    ]
    written = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.csv"))
    assert written == ["synthA/spike.csv", "synthB/flat.csv"]
    header, *rows = (results / "synthA" / "spike.csv").read_text().splitlines()
    assert header == "timestamp,value,anomaly_score,label" and len(rows) == 400
    assert rows[290].endswith(",1") and rows[289].endswith(",0")


def test_cli_writes_nab_own_results_layout(corpus_dir: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = corpus_dir
    results = tmp_path / "results"
    code, output = run(
        *("--data", str(data), "--labels", str(labels), "--results", str(results)),
        *("--nab-names", "--skip-bad", "--detector", "baseline"),
    )
    assert code == 0, output
    assert (results / "baseline" / "synthA" / "baseline_spike.csv").is_file()


def test_cli_scores_shopwatch_s_metric_model_by_default(
    corpus_dir: tuple[Path, Path], tmp_path: Path
) -> None:
    data, labels = corpus_dir
    out = tmp_path / "nab.json"
    code, output = run(
        "--data", str(data), "--labels", str(labels), "--skip-bad", "--json", str(out)
    )
    assert code == 0, output
    figures = json.loads(out.read_text())
    assert figures["detector"] == "shopwatch"
    spike = next(r for r in figures["per_series"] if r["file"] == "synthA/spike.csv")
    assert (spike["tp"], spike["fn"]) == (1, 0)


def test_cli_floor_not_met_exits_3(corpus_dir: tuple[Path, Path]) -> None:
    data, labels = corpus_dir
    code, output = run(
        *("--data", str(data), "--labels", str(labels), "--skip-bad"),
        *("--require", "scores.standard>=1000"),
    )
    assert code == 3
    assert "scores.standard" in output


def test_cli_bad_input_is_a_clear_error(corpus_dir: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = corpus_dir
    code, output = run("--data", str(tmp_path / "nope"), "--labels", str(labels))
    assert code == 2 and "does not exist" in output
    code, output = run("--data", str(data), "--labels", str(tmp_path / "nope"))
    assert code == 2 and "combined_windows.json" in output
    code, output = run("--data", str(data), "--labels", str(labels), "--detector", "magic")
    assert code == 2 and "unknown detector" in output


def test_cli_stops_on_an_unusable_series_unless_told_to_skip_it(
    corpus_dir: tuple[Path, Path],
) -> None:
    data, labels = corpus_dir
    code, output = run("--data", str(data), "--labels", str(labels))
    assert code == 2
    assert "synthB/gone.csv (no_data_file)" in output and "--skip-bad" in output


def edit_row(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_cli_reports_a_bad_value_with_its_line(corpus_dir: tuple[Path, Path]) -> None:
    data, labels = corpus_dir
    (data / "synthB" / "gone.csv").write_bytes((data / "synthB" / "flat.csv").read_bytes())
    edit_row(data / "synthB" / "flat.csv", 8, "2020-01-01 00:35:00,not-a-number")
    code, output = run("--data", str(data), "--labels", str(labels))
    assert code == 2
    assert "synthB/flat.csv (bad_value)" in output and "flat.csv:8" in output
    code, output = run("--data", str(data), "--labels", str(labels), "--skip-bad")
    assert code == 0 and "synthB/flat.csv (bad_value, 0 windows" in output


def test_cli_reports_a_bad_timestamp_with_its_line(corpus_dir: tuple[Path, Path]) -> None:
    data, labels = corpus_dir
    (data / "synthB" / "gone.csv").write_bytes((data / "synthB" / "flat.csv").read_bytes())
    edit_row(data / "synthB" / "flat.csv", 5, "yesterday,1.0")
    code, output = run("--data", str(data), "--labels", str(labels))
    assert code == 2
    assert "synthB/flat.csv (bad_timestamp)" in output and "flat.csv:5" in output


def test_cli_keeps_a_series_with_missing_values_and_counts_them(
    corpus_dir: tuple[Path, Path], tmp_path: Path
) -> None:
    data, labels = corpus_dir
    (data / "synthB" / "gone.csv").write_bytes((data / "synthB" / "flat.csv").read_bytes())
    spike = data / "synthA" / "spike.csv"
    edit_row(spike, 101, f"{stamps(400)[99]},")
    edit_row(spike, 201, f"{stamps(400)[199]},nan")
    edit_row(spike, 251, f"{stamps(400)[249]},inf")
    out, results = tmp_path / "nab.json", tmp_path / "results"
    code, output = run(
        "--data", str(data), "--labels", str(labels), "--json", str(out), "--results", str(results)
    )
    assert code == 0, output
    figures = json.loads(out.read_text())
    assert figures["problems"] == [] and figures["series"] == 3
    assert figures["missing_values"] == 3
    row = next(r for r in figures["per_series"] if r["file"] == "synthA/spike.csv")
    assert (row["missing_values"], row["tp"], row["fn"]) == (3, 1, 0)
    written = (results / "synthA" / "spike.csv").read_text().splitlines()[1:]
    scores = [float(line.split(",")[2]) for line in written]
    assert all(math.isfinite(v) for v in scores)
    assert scores[99] == scores[199] == scores[249] == 0.0


def test_corpus_reads_missing_and_non_finite_values_as_missing(tmp_path: Path) -> None:
    write_csv(tmp_path / "data" / "s" / "a.csv", [1.0] * 10)
    edit_row(tmp_path / "data" / "s" / "a.csv", 3, f"{stamps(10)[1]},")
    edit_row(tmp_path / "data" / "s" / "a.csv", 4, f"{stamps(10)[2]},NA")
    edit_row(tmp_path / "data" / "s" / "a.csv", 5, f"{stamps(10)[3]},-inf")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text('{"s/a.csv": []}')
    corpus = nab.load_corpus(tmp_path / "data", tmp_path / "labels")
    assert corpus.problems == []
    (s,) = corpus.series
    assert s.missing_values == 3 and len(s) == 10
    assert np.isnan(s.values[1]) and np.isnan(s.values[2]) and s.values[3] == -np.inf


def test_baseline_skips_missing_values_and_keeps_its_state() -> None:
    rng = np.random.default_rng(5)
    clean = rng.normal(10, 2, 600)
    holey = clean.copy()
    at = [0, 3, 150, 151, 400]
    for i, bad in zip(at, (np.nan, np.inf, -np.inf, np.nan, np.inf), strict=True):
        holey = np.insert(holey, i, bad)
    baseline = nab.DETECTORS["baseline"]()
    got = baseline.score(holey)
    seen = np.isfinite(holey)
    assert bool(np.all(np.isfinite(got))) and bool(np.all(got[~seen] == 0.0))
    assert np.array_equal(got[seen], baseline.score(clean))


def test_a_window_ends_at_the_first_copy_of_a_repeated_end_timestamp(tmp_path: Path) -> None:
    # NAB's sweeper ends a window at timestamps.index(end): the first point with that time.
    t = stamps(200)
    rows = [f"{x},1.0" for x in t[:120]] + [f"{t[119]},2.0"] + [f"{x},1.0" for x in t[120:]]
    (tmp_path / "data" / "s").mkdir(parents=True)
    (tmp_path / "data" / "s" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (tmp_path / "labels").mkdir()
    windows = {"s/a.csv": [[f"{t[100]}.000000", f"{t[119]}.000000"]]}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    corpus = nab.load_corpus(tmp_path / "data", tmp_path / "labels")
    (s,) = corpus.series
    assert s.windows.tolist() == [[100, 119]]


def test_a_window_edge_that_is_no_timestamp_of_the_series_is_a_bad_window(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "data" / "s" / "a.csv", [1.0] * 50)
    (tmp_path / "labels").mkdir()
    windows = {"s/a.csv": [["2020-01-01 00:07:00.000000", "2020-01-01 01:00:00.000000"]]}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    corpus = nab.load_corpus(tmp_path / "data", tmp_path / "labels")
    assert [(p.key, p.reason, p.windows) for p in corpus.problems] == [("s/a.csv", "bad_window", 1)]


@pytest.mark.parametrize("key", ["{victim}", "s/../../victim.csv", "../victim.csv"])
def test_cli_refuses_a_labels_key_outside_the_data_folder(tmp_path: Path, key: str) -> None:
    victim = tmp_path / "victim.csv"
    write_csv(victim, [1.0] * 50)
    before = victim.read_bytes()
    root = tmp_path / "nab"
    write_csv(root / "data" / "s" / "ok.csv", [1.0] * 50)
    (root / "labels").mkdir()
    windows: dict[str, list[list[str]]] = {key.format(victim=victim): [], "s/ok.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    # The results folder sits where '..' from it reaches the victim.
    args = ("--data", str(root / "data"), "--labels", str(root / "labels"))
    code, output = run(*args, "--results", str(root / "data"))
    assert code == 2 and "(bad_key)" in output
    code, output = run(*args, "--results", str(root / "data"), "--skip-bad")
    assert code == 0 and "(bad_key, 0 windows" in output
    assert victim.read_bytes() == before


def test_results_are_never_written_outside_the_results_folder(tmp_path: Path) -> None:
    from shopwatch.errors import ConfigError

    out = tmp_path / "results"
    (out / "s").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for key in ("../x.csv", "/tmp/x.csv", "link/x.csv"):
        s = nab.Series(key, stamps(3), np.zeros(3), np.zeros((0, 2), dtype=np.int64))
        with pytest.raises(ConfigError, match="outside"):
            nab.write_results(out, s, np.zeros(3))
    assert not list((tmp_path / "elsewhere").iterdir()) and not (tmp_path / "x.csv").exists()


def test_cli_with_nothing_readable_exits_2(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "combined_windows.json").write_text('{"x/missing.csv": []}')
    (tmp_path / "data").mkdir()
    code, output = run("--data", str(tmp_path / "data"), "--labels", str(labels))
    assert code == 2 and "x/missing.csv" in output
