"""Settings: defaults < file < environment < flags; secrets masked; bad input is a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopwatch.config import load_settings
from shopwatch.errors import ConfigError


def test_precedence_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(
        "data_dir: /from/file\nweb: {port: 9001}\nruntime: {batch_max_events: 1000}\n"
    )
    monkeypatch.setenv("SHOPWATCH_WEB__PORT", "9002")
    monkeypatch.setenv("SHOPWATCH_DATA_DIR", "/from/env")
    settings = load_settings(config, data_dir=tmp_path / "flag")
    assert settings.runtime.batch_max_events == 1000  # file
    assert settings.web.port == 9002  # environment beats file
    assert settings.data_dir == tmp_path / "flag"  # flag beats environment
    assert settings.store_url == f"sqlite:///{(tmp_path / 'flag' / 'shopwatch.db').resolve()}"


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHOPWATCH_STORE__URL", "postgresql+psycopg://shop:hunter2@127.0.0.1:5432/shop"
    )
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


SECRETS = {
    "store": "pg-pass-0001",
    "web": "web-token-0002",
    "ingest": "ingest-token-0003",
    "url_user": "urluser0004",
    "url_pass": "url-pass-0005",
    "query": "query-key-0006",
    "feed_pass": "feed-pass-0007",
    "feed_token": "feed-token-0008",
    "header": "header-key-0009",
    "taxii_pass": "taxii-pass-0010",
    "param": "param-secret-0011",
    "enrich": "enrich-key-0012",
}


def _secret_config(tmp_path: Path, port: int) -> Path:
    """A config with a secret in every place one can go (the feeds point at ``port``)."""
    s = SECRETS
    config = tmp_path / "secrets.yaml"
    config.write_text(
        f"""
data_dir: {tmp_path / "data"}
store: {{url: "postgresql+psycopg://shop:{s["store"]}@127.0.0.1:5432/shop"}}
web: {{token: {s["web"]}}}
sources: {{http: {{token: {s["ingest"]}}}}}
detectors: {{web.sqli: {{params: {{api_key: {s["param"]}}}}}}}
enrich: {{yara: {{license_key: {s["enrich"]}}}}}
intel:
  builtin: false
  allow_private_networks: true
  feeds:
    - name: in_url
      url: "http://{s["url_user"]}:{s["url_pass"]}@127.0.0.1:{port}/drop.txt?apikey={s["query"]}"
      format: spamhaus
      timeout: 2s
    - name: basic
      url: "http://127.0.0.1:{port}/feed.txt"
      format: plain
      username: analyst
      password: {s["feed_pass"]}
      timeout: 2s
    - name: bearer
      url: "http://127.0.0.1:{port}/c2.csv"
      format: abusech_csv
      token: {s["feed_token"]}
      headers: {{Auth-Key: {s["header"]}}}
      timeout: 2s
    - name: isac
      url: "http://analyst:{s["taxii_pass"]}@127.0.0.1:{port}/taxii2/"
      format: taxii
      timeout: 2s
"""
    )
    return config


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_config_show_prints_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from shopwatch.cli.main import app

    for var in [v for v in __import__("os").environ if v.startswith("SHOPWATCH_")]:
        monkeypatch.delenv(var)
    config = _secret_config(tmp_path, _closed_port())
    result = CliRunner().invoke(app, ["config", "show", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert _leaks(result.output) == []
    shown = __import__("json").loads(result.stdout)
    feeds = {f["name"]: f for f in shown["intel"]["feeds"]}
    assert feeds["in_url"]["url"].startswith("http://127.0.0.1:")  # credentials moved out
    assert "apikey=***" in feeds["in_url"]["url"]
    assert feeds["in_url"]["username"] == "***"  # a username from a URL is masked too
    assert feeds["bearer"]["headers"] == {"Auth-Key": "**********"}
    assert shown["detectors"]["web.sqli"]["params"]["api_key"] == "***"
    settings = load_settings(config)
    assert _leaks(repr(settings)) == [] and _leaks(str(settings)) == []


def test_feed_errors_log_and_show_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from shopwatch.cli.common import setup_logging
    from shopwatch.cli.main import app
    from shopwatch.enrich.schedule import FeedManager

    for var in [v for v in __import__("os").environ if v.startswith("SHOPWATCH_")]:
        monkeypatch.delenv(var)
    config = _secret_config(tmp_path, _closed_port())
    setup_logging("info")
    manager = FeedManager.from_settings(load_settings(config), persist=False)
    manager.refresh(force=True)
    rows = [s.to_dict() for s in manager.status()]
    assert all(r["last_error_reason"] == "unreachable" for r in rows), rows
    logged = capsys.readouterr()
    assert "feed_refresh_failed" in logged.err
    assert _leaks(logged.out + logged.err) == []
    assert _leaks(str(rows)) == []
    result = CliRunner().invoke(app, ["intel", "status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert _leaks(result.output) == []


def test_a_mistyped_key_anywhere_names_it(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text(
        "intel:\n  feeds:\n    - {name: x, url: 'https://e.example/x', format: plain, "
        "pasword: typo-secret-0013}\n"
    )
    with pytest.raises(ConfigError, match=r"intel\.feeds\.0\.pasword") as err:
        load_settings(config)
    assert "typo-secret-0013" not in str(err.value)  # the value of a mistyped key is not echoed
    config.write_text("intel: {alow_private_networks: true}\n")
    with pytest.raises(ConfigError, match="alow_private_networks"):
        load_settings(config)
    config.write_text("enrich: {gel: {enabled: false}}\n")
    with pytest.raises(ConfigError, match="gel"):
        load_settings(config)


def test_an_unknown_time_zone_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("timezone: Europe/Berlinn\n")
    with pytest.raises(ConfigError, match="unknown time zone 'Europe/Berlinn'"):
        load_settings(config)
    config.write_text("timezone: Europe/Berlin\n")
    assert load_settings(config).timezone == "Europe/Berlin"
