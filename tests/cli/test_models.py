"""``shopwatch models``: the learned models and baselines, from saved state or a replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shopwatch.config import Settings
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.replay import replay
from shopwatch.pipeline.service import CHECKPOINT
from shopwatch.store import Store

CASE = Path(__file__).resolve().parents[1] / "detect" / "cases" / "data.staff_export_anomaly"


def models(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "models", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _by_name(path: Path) -> dict[str, dict]:
    return {row["model"]: row for row in json.loads(path.read_text())}


def test_models_after_a_replay_say_what_each_learned(tmp_path: Path) -> None:
    evaluation = tmp_path / "sim.json"
    evaluation.write_text(
        json.dumps(
            {
                "per_category": {
                    "data_exfiltration": {"precision": 1.0, "recall": 0.75, "campaigns": 4}
                },
                "payment_scores": {
                    "orders": 70,
                    "fraud_orders": 14,
                    "unsupervised_pr_auc": 0.892,
                    "split": {
                        "unsupervised_pr_auc": 0.953,
                        "supervised_pr_auc": 0.931,
                        "model_version": "9f971bd96425",
                    },
                },
            }
        )
    )
    done = models(
        "--replay",
        str(CASE / "fires.jsonl"),
        "--evaluation",
        str(evaluation),
        "--json",
        str(tmp_path / "m.json"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = _by_name(tmp_path / "m.json")
    staff = rows["data.staff_export_anomaly"]
    # five accounts, exports and bulk reads: one profile per account and action
    assert staff["entities"] == 9 and staff["warm_entities"] == 8
    assert staff["events_learned"] > 200 and staff["last_event"].startswith("2026-03-02")
    assert 0 < staff["bytes_per_entity"] <= 1024
    assert staff["version"].startswith("entity_baseline/v1-")
    assert staff["evaluation"]["recall"] == 0.75
    pay = rows["payment.fraud_score"]["evaluation"]
    assert (pay["pr_auc"], pay["pr_auc_later_half_with_labels"]) == (0.892, 0.931)
    assert "PR-AUC 0.892 over 70 orders (14 fraud)" in done.stdout
    assert "with labels 0.931 (label model 9f971bd96425)" in done.stdout
    assert "account profiles" in rows and "per-field exemptions" in rows
    assert "recall 75.0% of 4 campaigns" in done.stdout
    models("--replay", str(CASE / "fires.jsonl"), "--json", str(tmp_path / "n.json"), cwd=tmp_path)
    assert {k: v["version"] for k, v in _by_name(tmp_path / "n.json").items()} == {
        k: v["version"] for k, v in rows.items()
    }


def test_models_read_the_state_the_service_saved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shopwatch.db'}"
    settings = Settings(data_dir=tmp_path)
    engine = build_engine(settings)
    replay([str(CASE / "benign.jsonl")], engine)
    with Store(url) as store:
        store.migrate()
        store.save_checkpoint(CHECKPOINT, engine.snapshot())
    engine.close()
    done = models("--url", url, "--json", str(tmp_path / "m.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "the state last saved" in done.stdout
    staff = _by_name(tmp_path / "m.json")["data.staff_export_anomaly"]
    assert staff["entities"] == 9  # four accounts' exports and bulk reads, a new one's export
    empty = models(
        "--url",
        f"sqlite:///{tmp_path / 'none.db'}",
        "--json",
        str(tmp_path / "e.json"),
        cwd=tmp_path,
    )
    assert empty.returncode == 0, empty.stderr
    assert "no saved state yet" in empty.stdout
    assert _by_name(tmp_path / "e.json")["data.staff_export_anomaly"]["entities"] == 0


def test_a_bad_evaluation_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    done = models("--evaluation", str(bad), cwd=tmp_path)
    assert done.returncode != 0
    assert "not an evaluate JSON file" in " ".join((done.stderr + done.stdout).split())


def test_the_models_doctests_hold() -> None:
    import doctest

    import shopwatch.pipeline.models as module

    assert doctest.testmod(module, verbose=False).failed == 0


def test_an_evaluation_that_is_not_an_object_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1]")
    done = models("--evaluation", str(bad), cwd=tmp_path)
    assert done.returncode != 0
    assert "expected an object" in " ".join((done.stderr + done.stdout).split())
