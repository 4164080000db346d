"""The status line says what no detector saw, so a quiet shop is not mistaken for one."""

from __future__ import annotations

from shopwatch.cli.live import _refused


def test_refused_lines_are_named_with_their_cause() -> None:
    assert _refused({"rejected": 0, "out_of_bounds": 0}) == ""
    assert _refused({"rejected": 3, "out_of_bounds": 0}) == " refused=3 (3 unreadable)"
    assert _refused({"rejected": 2, "out_of_bounds": 59_010}) == (
        " refused=59,012 (2 unreadable, 59,010 out of time bounds)"
    )
