"""``shopwatch db upgrade`` and ``shopwatch db status`` against real databases."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from shopwatch.cli.main import app
from shopwatch.store import Store

from .conftest import make_alert

runner = CliRunner()


def _status(url: str) -> dict[str, object]:
    result = runner.invoke(app, ["db", "status", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)  # nothing but the JSON on stdout
    return data


def test_upgrade_then_status(store_url: str) -> None:
    before = _status(store_url)
    assert before["revision"] is None and before["up_to_date"] is False and before["alerts"] is None
    text = runner.invoke(app, ["db", "status", "--url", store_url])
    assert text.exit_code == 0 and "shopwatch db upgrade" in text.stdout

    result = runner.invoke(app, ["db", "upgrade", "--url", store_url])
    assert result.exit_code == 0, result.output
    assert "upgraded from an empty database to revision 0001" in result.stdout
    again = runner.invoke(app, ["db", "upgrade", "--url", store_url])
    assert again.exit_code == 0 and "already at revision 0001" in again.stdout

    with Store(store_url) as store:
        store.save_alerts([make_alert(n) for n in range(3)])
    after = _status(store_url)
    assert after["revision"] == "0001" and after["up_to_date"] is True and after["alerts"] == 3


def test_upgrade_uses_the_configured_store_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "from-config" / "sw.db"
    config = tmp_path / "shopwatch.yaml"
    config.write_text(f"store:\n  url: sqlite:///{db}\n", encoding="utf-8")
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with Store(f"sqlite:///{db}") as store:
        assert store.revision() == "0001"


def test_unreachable_database_exits_1_with_a_masked_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://shop:s3cret@127.0.0.1:{port}/shopwatch"
    for command in (["db", "status"], ["db", "upgrade"]):
        result = runner.invoke(app, [*command, "--url", url])
        assert result.exit_code == 1
        assert "unreachable" in result.output and "s3cret" not in result.output
