"""``--require`` floors: dotted paths into the figures, checked syntax, exit 3 when unmet."""

from __future__ import annotations

import pytest
import typer

from shopwatch.cli.evaluate import _valid_floors, check_floors

FIGURES = {
    "recall": 0.4,
    "detection_at_fp": {"0.001": 0.2, "0.01": 0.3},
    "files": {"access-logs/a.log": {"share_alerted": 0.02}},
    "name": "x",
}


@pytest.mark.parametrize(
    ("floor", "failed"),
    [
        ("recall>=0.4", None),
        ("recall>=0.41", "recall is 0.4, below the floor 0.41"),
        ("recall<=0.39", "recall is 0.4, above the ceiling 0.39"),
        ("detection_at_fp.0.001>=0.2", None),
        ("detection_at_fp.0.01>=0.31", "below the floor 0.31"),
        ("files.access-logs/a.log.share_alerted<=0.01", "above the ceiling 0.01"),
        ("files.access-logs/a.log.share_alerted<=1e-1", None),
        ("nope>=0", "nope is not a figure of this evaluation"),
        ("name>=0", "name is 'x', not a number"),
    ],
)
def test_floors_are_looked_up_and_compared(floor: str, failed: str | None) -> None:
    problems = check_floors(FIGURES, [floor])
    if failed is None:
        assert problems == []
    else:
        assert len(problems) == 1 and failed in problems[0]


@pytest.mark.parametrize(
    "floor", ["recall", "recall>0.5", "recall>=1.2.3", "recall>=.", "recall=>1"]
)
def test_malformed_floors_are_refused_before_any_work(floor: str) -> None:
    with pytest.raises(typer.BadParameter, match="KEY>=NUMBER"):
        _valid_floors([floor])
