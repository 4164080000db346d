"""Settings: defaults < file < environment < flags; secrets masked; bad input is a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopwatch.config import load_settings
from shopwatch.errors import ConfigError


def test_precedence_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "s.yaml"
    config.write_text("data_dir: /from/file\nweb: {port: 9001}\nruntime: {batch_max_events: 1000}\n")
    monkeypatch.setenv("SHOPWATCH_WEB__PORT", "9002")
    monkeypatch.setenv("SHOPWATCH_DATA_DIR", "/from/env")
    settings = load_settings(config, data_dir=tmp_path / "flag")
    assert settings.runtime.batch_max_events == 1000  # file
    assert settings.web.port == 9002  # environment beats file
    assert settings.data_dir == tmp_path / "flag"  # flag beats environment
    assert settings.store_url == f"sqlite:///{(tmp_path / 'flag' / 'shopwatch.db').resolve()}"


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPWATCH_STORE__URL", "postgresql+psycopg://shop:hunter2@127.0.0.1:5432/shop")
    monkeypatch.setenv("SHOPWATCH_WEB__TOKEN", "a-long-web-token-value")
    shown = str(load_settings().masked())
    assert "hunter2" not in shown and "a-long-web-token-value" not in shown
    assert "shop:***@127.0.0.1" in shown


@pytest.mark.parametrize(
    ("text", "needle"),
    [("web: {prot: 1}\n", "prot"), ("- a list\n", "mapping"), ("web: [\n", "not valid YAML")],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(config)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
