"""The README stays true: its sample configuration loads, its test command is CI's."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shopwatch.config import load_settings
from shopwatch.detect.content import load_detectors
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_sample_configuration_is_valid(tmp_path: Path) -> None:
    (sample,) = _blocks("yaml")
    config = tmp_path / "shopwatch.yaml"
    config.write_text(sample)
    settings = load_settings(config)
    assert settings.sources.http.enabled and settings.store.url
    overrides = yaml.safe_load(sample)["detectors"]
    loaded = load_detectors((), settings.detectors)
    assert not loaded.errors, loaded.errors
    assert set(overrides) <= {d.id for d in load_detectors((), include_disabled=True).detectors}


def test_ci_runs_the_readme_test_command() -> None:
    commands = [b.strip() for b in _blocks("sh")]
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in [line.strip() for line in ci]
    assert any("shopwatch demo" in c and "pip install" in c for c in commands), "one command starts the demo"
