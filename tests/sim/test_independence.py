"""The simulator is written without looking at the detectors: it never reads their content."""

from __future__ import annotations

from pathlib import Path

import shopwatch.sim

SIM = Path(shopwatch.sim.__file__).parent


def test_no_simulator_file_mentions_the_rules() -> None:
    files = sorted(SIM.rglob("*.py"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8").lower()
        assert "content/rules" not in text, path.name
        assert "rules" not in text, path.name
