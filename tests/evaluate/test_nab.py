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
    assert nab.normalized(raw(s, 45).raw, 1, STANDARD) == pytest.approx(92.98962834548918, abs=1e-9)
    assert nab.normalized(raw(s, 20).raw, 1, STANDARD) == pytest.approx(-5.5, abs=1e-9)
    assert nab.normalized(-1.0, 1, STANDARD) == pytest.approx(0.0, abs=1e-9)
    assert nab.normalized(1.0, 1, STANDARD) == pytest.approx(100.0, abs=1e-9)


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
    assert (got.fp, got.raw) == (0, pytest.approx(-1.0))
    assert raw(s, 15).fp == 1  # the first point after probation counts
    assert nab.probation_length(100_000) == nab.PROBATION_CAP == 750


def test_a_window_inside_the_probationary_period_is_not_scored() -> None:
    s = series(windows=((2, 6), (40, 49)))
    got = raw(s, 4, 40)
    assert (got.windows, got.tp, got.fn, got.raw) == (1, 1, 0, pytest.approx(1.0))


def test_only_the_first_detection_in_a_window_counts() -> None:
    s = series()
    first = raw(s, 42).raw
    got = raw(s, 42, 45, 48, 49)
    assert (got.tp, got.fp, got.raw) == (1, 0, pytest.approx(first, abs=1e-12))
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
    assert swept.best == (0.9, pytest.approx(0.89, abs=1e-9))


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


def test_null_scores_zero_and_perfect_hundred_on_the_real_corpus(datasets: Path) -> None:
    root = datasets / "nab"
    if not (root / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB corpus not found under {root}")
    corpus = nab.load_corpus(root / "data", root / "labels")
    assert (len(corpus.series), corpus.problems) == (35, [])
    null = nab.evaluate(
        corpus, {s.key: np.full(len(s), 0.5) for s in corpus.series}, detector_name="null"
    )
    perfect = nab.evaluate(
        corpus, {s.key: nab.perfect_scores(s) for s in corpus.series}, detector_name="perfect"
    )
    assert null["windows"] == perfect["windows"] == 55
    for profile in nab.PROFILES:
        assert null["scores"][profile.name] == pytest.approx(0.0, abs=1e-9)
        assert perfect["scores"][profile.name] == pytest.approx(100.0, abs=1e-9)


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
        "--data", str(data), "--labels", str(labels), "--json", str(out), "--results", str(results)
    )
    assert code == 0, output
    assert "standard" in output and "synthA/spike.csv" in output
    assert "synthB/gone.csv (no_data_file)" in output
    figures = json.loads(out.read_text())
    assert {"scores", "per_series", "threshold", "detector", "problems"} <= set(figures)
    assert set(figures["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert figures["detector"] == "baseline" and figures["series"] == 2
    spike = next(r for r in figures["per_series"] if r["file"] == "synthA/spike.csv")
    assert {"file", "windows", "tp", "fp", "fn", "raw"} <= set(spike)
    assert (spike["windows"], spike["tp"], spike["fn"]) == (1, 1, 0)
    assert figures["problems"] == [
        {
            "file": "synthB/gone.csv",
            "reason": "no_data_file",
            "detail": figures["problems"][0]["detail"],
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
        "--data", str(data), "--labels", str(labels), "--results", str(results), "--nab-names"
    )
    assert code == 0, output
    assert (results / "baseline" / "synthA" / "baseline_spike.csv").is_file()


def test_cli_floor_not_met_exits_3(corpus_dir: tuple[Path, Path]) -> None:
    data, labels = corpus_dir
    code, output = run(
        "--data", str(data), "--labels", str(labels), "--require", "scores.standard>=1000"
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


def test_cli_reports_a_bad_row_with_its_line(corpus_dir: tuple[Path, Path]) -> None:
    data, labels = corpus_dir
    path = data / "synthB" / "flat.csv"
    lines = path.read_text().splitlines()
    lines[7] = "2020-01-01 00:35:00,not-a-number"
    path.write_text("\n".join(lines) + "\n")
    code, output = run("--data", str(data), "--labels", str(labels))
    assert code == 0, output
    assert "synthB/flat.csv (bad_row)" in output and "flat.csv:8" in output


def test_cli_with_nothing_readable_exits_2(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "combined_windows.json").write_text('{"x/missing.csv": []}')
    (tmp_path / "data").mkdir()
    code, output = run("--data", str(tmp_path / "data"), "--labels", str(labels))
    assert code == 2 and "x/missing.csv" in output
