"""The streaming metric model: what it flags, what it lets pass, its state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from shopwatch.learn.series import SeriesModel, SeriesParams

STEP = 300.0  # five-minute samples
DAY = int(86400 / STEP)


def feed(values: np.ndarray, model: SeriesModel | None = None, start: float = 0.0) -> list:
    model = model or SeriesModel()
    return [model.update(start + i * STEP, float(v)) for i, v in enumerate(values)]


def alarms(points: list) -> list[int]:
    return [i for i, p in enumerate(points) if p.alarm]


def daily(days: int, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    t = np.arange(days * DAY)
    return 50 + 30 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, noise, t.size)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_at_the_alerting_threshold_noise_raises_no_alarm_and_a_spike_raises_one(seed: int) -> None:
    # NAB's corpus-wide threshold (about 0.78) flags a record of plain Gaussian noise now
    # and then (about 6 per 10,000 points); the apm.metric rule alerts at 0.9 (none).
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(100, 10, 3000), [400.0], rng.normal(100, 10, 500)])
    points = feed(values, SeriesModel(SeriesParams(alarm=0.9)))
    assert alarms(points) == [3000]
    assert points[3000].feature == "value" and points[3000].direction == 1


def test_a_level_shift_inside_the_range_is_caught_by_the_level_feature() -> None:
    # Noise of +-10 around 100; the level moves to 118: every single point stays inside
    # what the series has done, only the mean of ten says it changed.
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.normal(100, 10, 3000), rng.normal(118, 10, 300)])
    points = feed(values)
    hits = [i for i in alarms(points) if i >= 3000]
    assert hits and hits[0] < 3030
    assert points[hits[0]].feature == "level" and points[hits[0]].direction == 1


def test_a_missing_daily_peak_is_caught_by_the_daily_feature() -> None:
    rng = np.random.default_rng(5)
    values = daily(12, rng)
    # Day 10: the afternoon peak does not come (the value stays at the daily mean, a level
    # the series passes twice a day).
    peak = slice(10 * DAY + DAY // 8, 10 * DAY + 3 * DAY // 8)
    values[peak] = 50 + rng.normal(0, 2.0, peak.stop - peak.start)
    points = feed(values)
    hits = [i for i in alarms(points) if peak.start <= i < peak.stop]
    assert hits and points[hits[0]].feature == "daily" and points[hits[0]].direction == -1
    # The same days without the missing peak: no alarm after the first day's warm-up.
    clean = feed(daily(12, np.random.default_rng(5)), SeriesModel(SeriesParams(alarm=0.9)))
    assert [i for i in alarms(clean) if i > 2 * DAY] == []


def test_the_daily_feature_needs_the_same_moment_a_day_earlier() -> None:
    model = SeriesModel()
    for i in range(2 * DAY):
        model.update(i * STEP, 1.0)
    # A gap: nothing one period before this point within half a usual gap.
    assert model._day_ago(10 * DAY * STEP) is None
    assert model._day_ago(2 * DAY * STEP) == 1.0


def test_after_an_alarm_the_next_rest_points_score_zero_but_are_learnt() -> None:
    params = SeriesParams(rest=20, alarm=0.9)
    values = np.concatenate([np.random.default_rng(1).normal(10, 1, 500), np.full(60, 40.0)])
    points = feed(values, SeriesModel(params))
    first = alarms(points)[0]
    assert first == 500
    assert all(p.score == 0.0 for p in points[501:521])
    # Learnt while resting: forty is no longer new when the rest ends.
    assert points[521].score < points[500].score


def test_missing_values_score_zero_and_change_nothing() -> None:
    rng = np.random.default_rng(2)
    holey = rng.normal(5, 1, 400)
    holes = [50, 120, 121, 300]
    holey[holes] = [math.nan, math.inf, -math.inf, math.nan]
    with_holes, without = SeriesModel(), SeriesModel()
    got = [with_holes.update(i * STEP, float(v)).score for i, v in enumerate(holey)]
    seen = [i for i in range(holey.size) if i not in holes]
    alone = [without.update(i * STEP, float(holey[i])).score for i in seen]
    assert [got[i] for i in holes] == [0.0] * 4
    assert [got[i] for i in seen] == alone
    assert with_holes.to_dict() == without.to_dict()


def test_saved_and_restored_state_continues_exactly() -> None:
    rng = np.random.default_rng(9)
    values = daily(4, rng)
    whole = feed(values)
    model = SeriesModel()
    for i, v in enumerate(values[:700]):
        model.update(i * STEP, float(v))
    restored = SeriesModel.from_dict(json.loads(json.dumps(model.to_dict())))
    rest = [restored.update(i * STEP, float(v)) for i, v in enumerate(values[700:], start=700)]
    assert [p.score for p in rest] == [p.score for p in whole[700:]]


def test_memory_is_bounded_by_the_window() -> None:
    params = SeriesParams(window=500)
    model = SeriesModel(params)
    for i, v in enumerate(np.random.default_rng(4).normal(0, 1, 5000)):
        model.update(i * 60.0, float(v))
    assert all(len(t.order) == len(t.ranked) == 500 for t in model.tails)
    # 3 features x 2 copies x 500 floats, plus a day of one-minute points (time, value, flag).
    assert model.state_bytes() <= 8 * (3 * 2 * 500 + 3 * 1500 + 10 + 32)


def test_out_of_order_points_are_scored_but_not_remembered_for_the_daily_feature() -> None:
    model = SeriesModel()
    for i in range(100):
        model.update(i * STEP, 1.0)
    before = len(model.past_t)
    model.update(10 * STEP, 1.0)
    assert len(model.past_t) == before and model.last_time == 99 * STEP


@pytest.mark.parametrize(
    "bad",
    [{"window": 1}, {"alarm": 1.0}, {"weights": (1.0, 1.0)}, {"rest": -1}, {"period": 0}],
)
def test_parameters_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        SeriesParams(**bad)


def test_a_harmless_alarm_starts_no_rest_and_the_harmful_move_after_it_alarms() -> None:
    # Orders with a daily rhythm; a surge (harmless, up), then orders stop (harmful, down).
    rng = np.random.default_rng(12)
    values = daily(4, rng)
    surge = slice(3 * DAY + 100, 3 * DAY + 110)
    values[surge] = values[surge] * 3
    stop = slice(3 * DAY + 115, 3 * DAY + 140)
    values[stop] = 0.0
    model = SeriesModel(SeriesParams(alarm=0.9))
    points = [model.update(i * STEP, float(v), wanted=-1) for i, v in enumerate(values)]
    hits = alarms(points)
    assert [i for i in hits if surge.start <= i < surge.stop] == []
    down = [i for i in hits if stop.start <= i < stop.stop]
    assert down and points[down[0]].direction == -1
    # Both ways: the surge alarms, and its rest swallows the stop.
    model = SeriesModel(SeriesParams(alarm=0.9))
    both = [model.update(i * STEP, float(v)) for i, v in enumerate(values)]
    assert [i for i in alarms(both) if surge.start <= i < surge.stop]
    assert [i for i in alarms(both) if stop.start <= i < stop.stop] == []


def test_one_spike_does_not_raise_the_bar_for_the_next_incident() -> None:
    rng = np.random.default_rng(13)
    values = rng.lognormal(np.log(200), 0.1, 3000)
    values[1000] = 100_000.0  # one absurd sample
    values[2000:2010] = 2_000.0  # ten times the usual, a thousand samples later
    points = feed(values, SeriesModel(SeriesParams(alarm=0.9)))
    assert 1000 in alarms(points)
    assert [i for i in alarms(points) if 2000 <= i < 2010]


def test_an_incident_is_not_echoed_a_day_later() -> None:
    rng = np.random.default_rng(14)
    values = daily(4, rng)
    incident = slice(2 * DAY + 50, 2 * DAY + 80)  # thirty samples, two and a half hours
    values[incident] = values[incident] + 60
    points = feed(values, SeriesModel(SeriesParams(alarm=0.9)))
    assert [i for i in alarms(points) if incident.start <= i < incident.stop]
    echo = slice(3 * DAY + 40, 3 * DAY + 90)
    assert [i for i in alarms(points) if echo.start <= i < echo.stop] == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e308, -1e300])
def test_absurd_values_are_no_measurement_and_leave_a_state_that_saves(bad: float) -> None:
    model = SeriesModel()
    for i, v in enumerate(np.random.default_rng(15).normal(10, 1, 300)):
        model.update(i * STEP, float(v))
    before = model.to_dict()
    assert model.update(300 * STEP, bad).score == 0.0
    assert model.to_dict() == before
    for i in range(301, 320):
        got = model.update(i * STEP, 1e140)  # huge but a number: scored, finite
        assert math.isfinite(got.score) and 0 <= got.score < 1
    json.loads(json.dumps(model.to_dict(), allow_nan=False))
    SeriesModel.from_dict(model.to_dict())


def test_a_point_dated_far_ahead_does_not_switch_the_daily_feature_off() -> None:
    model = SeriesModel()
    for i in range(2 * DAY):
        model.update(i * STEP, 1.0)
    model.update(1e10, 1.0)  # one sample dated centuries ahead
    for i in range(2 * DAY, 3 * DAY + 10):
        model.update(i * STEP, 1.0)
    assert model.last_time == (3 * DAY + 9) * STEP
    assert model._day_ago((3 * DAY + 9) * STEP) == 1.0


def test_a_saved_state_with_nulls_restores() -> None:
    model = SeriesModel()
    for i in range(100):
        model.update(i * STEP, float(i % 7))
    saved = model.to_dict()
    saved["tails"][1].append(None)
    saved["recent"].append(None)
    saved["past_v"][-1] = None
    again = SeriesModel.from_dict(saved)
    assert len(again.tails[1].order) == len(model.tails[1].order)
    assert len(again.past_t) == len(again.past_v) == len(again.past_ok)


def test_a_floor_keeps_an_unlikely_but_expected_score_from_alarming() -> None:
    """Standard scores of a rare outcome: one at 3.1 in a quiet day is expected by chance."""
    rng = np.random.default_rng(8)
    quiet = list(np.abs(rng.normal(0, 0.05, 400)))
    floored, bare = SeriesModel(SeriesParams()), SeriesModel(SeriesParams())
    for i, z in enumerate(quiet):
        floored.update(60.0 * i, float(z), 1, floor=4.0)
        bare.update(60.0 * i, float(z), 1)
    t = 60.0 * len(quiet)
    assert bare.update(t, 3.1, 1).alarm  # past anything the window holds
    assert not floored.update(t, 3.1, 1, floor=4.0).alarm  # but not evidence
    # the caller's pooled evidence of the last samples can carry the level past the floor
    assert floored.update(t + 60, 3.1, 1, floor=4.0, evidence=(3.1, 6.0)).alarm
