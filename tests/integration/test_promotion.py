"""`refinery promote / rollback / models / predict` on a real MLflow store with three tiny versions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tasks.cli.main import main
from tasks.core.config import parse_params
from tasks.gating.decision import GateDecision
from tasks.lineage.record import Lineage
from tasks.registry.promotion import aliases_of
from tasks.steps.registration import log_and_register
from tests.integration.conftest import LABELS, build_run_dir

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]

MODEL = "tiny-intent"
PASSED = GateDecision(True, ["accuracy >= 0.5"], {"accuracy": {"value": 0.9, "threshold": 0.5}})
DATA_HASH = "files-md5:0123456789abcdef0123456789abcdef"
SCORES = {"1": (0.5, 0.4), "2": (0.7, 0.6), "3": (0.9, 0.85)}  # test accuracy, macro F1 per version


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with versions 1-3 of MODEL (alias challenger on 3), built once; tests use copies."""
    root = tmp_path_factory.mktemp("registry")
    db = root / "registry.db"
    params = parse_params(
        {
            "register": {
                "model_name": MODEL,
                "experiment": "promotion-tests",
                "tracking_uri": f"sqlite:///{db}",
            }
        }
    )
    lineage = Lineage("0" * 40, False, DATA_HASH, None, "params-hash")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)  # the artifacts (./mlruns) stay here, shared read-only by the copies
        layout = build_run_dir(root / "run", PASSED)
        for accuracy, f1_macro in SCORES.values():
            metrics = {"accuracy": accuracy, "f1_macro": f1_macro, "n_test": 6}
            layout.eval_metrics.write_text(json.dumps(metrics), encoding="utf-8")
            log_and_register(params, layout, PASSED, lineage)
    yield db


@pytest.fixture
def store(registry_db: Path, tmp_path: Path) -> str:
    """This test's own copy of the store, as a tracking URI."""
    db = tmp_path / "team.db"
    shutil.copy(registry_db, db)
    return f"sqlite:///{db}"


def refinery(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and the `error:` lines of stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, "\n".join(line for line in err.splitlines() if line.startswith("error:"))


def aliases(uri: str) -> dict[str, str]:
    return aliases_of(MlflowClient(tracking_uri=uri).get_registered_model(MODEL))


def version_tags(uri: str, version: str) -> dict[str, str]:
    return dict(MlflowClient(tracking_uri=uri).get_model_version(MODEL, version).tags)


def test_promote_twice_then_rollback_twice_returns_to_the_start(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    code, out, _ = refinery(capsys, "promote", MODEL, "--version", "1", "--tracking-uri", store)
    assert code == 0 and "'champion' -> version 1" in out
    assert aliases(store) == {"challenger": "3", "champion": "1"}
    tags = version_tags(store, "1")
    assert tags["promoted_by"] == "alice" and tags["promoted_from"] == "none"
    assert tags["promotion_reason"] == "(none given)"
    assert datetime.fromisoformat(tags["promoted_at"]).utcoffset() is not None

    code, out, _ = refinery(
        capsys, "promote", MODEL, "--version", "2", "--reason", "better f1", "--tracking-uri", store
    )
    assert code == 0 and "'previous-champion' -> version 1" in out
    assert aliases(store) == {"challenger": "3", "champion": "2", "previous-champion": "1"}
    promoted, demoted = version_tags(store, "2"), version_tags(store, "1")
    assert promoted["promotion_reason"] == "better f1" and promoted["promoted_from"] == "1"
    assert demoted["replaced_by"] == "2" and demoted["demoted_by"] == "alice"
    assert datetime.fromisoformat(demoted["demoted_at"]) >= datetime.fromisoformat(demoted["promoted_at"])

    code, out, _ = refinery(capsys, "rollback", MODEL, "--tracking-uri", store)
    assert code == 0 and "'champion' -> version 1" in out
    assert aliases(store) == {"challenger": "3", "champion": "1", "previous-champion": "2"}
    assert version_tags(store, "1")["promotion_reason"] == "rollback from version 2"
    assert version_tags(store, "2")["replaced_by"] == "1"

    code, _, _ = refinery(
        capsys, "rollback", MODEL, "--reason", "v1 mislabels refunds", "--tracking-uri", store
    )
    assert code == 0
    assert aliases(store) == {"challenger": "3", "champion": "2", "previous-champion": "1"}
    assert version_tags(store, "2")["promotion_reason"] == "v1 mislabels refunds"

    code, out, _ = refinery(capsys, "promote", MODEL, "--version", "2", "--tracking-uri", store)
    assert code == 0 and "already 'champion'; nothing changed" in out
    assert aliases(store) == {"challenger": "3", "champion": "2", "previous-champion": "1"}


def test_aliases_set_by_hand_are_respected(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(tracking_uri=store)
    client.set_registered_model_alias(MODEL, "champion", "3")  # as in the MLflow UI
    client.set_registered_model_alias(MODEL, "previous-champion", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # team mode: no --tracking-uri

    _, out, _ = refinery(capsys, "models", MODEL)
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "champion" in rows["3"] and "challenger" in rows["3"] and "previous-champion" in rows["1"]

    assert refinery(capsys, "rollback", MODEL)[0] == 0
    assert aliases(store) == {"challenger": "3", "champion": "1", "previous-champion": "3"}
    assert refinery(capsys, "promote", MODEL, "--version", "2")[0] == 0
    assert aliases(store) == {"challenger": "3", "champion": "2", "previous-champion": "1"}

    client.delete_registered_model_alias(MODEL, "champion")  # no champion: a stale previous is dropped
    assert refinery(capsys, "promote", MODEL, "--version", "3")[0] == 0
    assert aliases(store) == {"challenger": "3", "champion": "3"}


def test_models_lists_versions_newest_first_with_aliases_metrics_gate_and_data(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "params.yaml").write_text(f"register:\n  tracking_uri: {store}\n", encoding="utf-8")
    refinery(capsys, "promote", MODEL, "--version", "2")  # the store named by ./params.yaml

    code, out, _ = refinery(capsys, "models", MODEL)

    assert code == 0
    title, header, *rows = out.splitlines()
    assert title == f"{MODEL}: 3 version(s)"
    assert header.split()[:5] == ["version", "aliases", "accuracy", "f1_macro", "gate"]
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]
    for row, version in zip(rows, ["3", "2", "1"], strict=True):
        accuracy, f1_macro = SCORES[version]
        assert f"{accuracy:.4f}" in row and f"{f1_macro:.4f}" in row, row
        assert "passed" in row and "files-md5:0123456789 " in row
    assert "challenger" in rows[0] and "champion" in rows[1] and "champion" not in rows[2]
    assert {len(line.split("passed")[0]) for line in rows} == {header.index("gate")}  # aligned


def test_unknown_model_or_version_and_nothing_to_roll_back_are_one_line_errors(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        ("promote", "nope", "--version", "1"): "error: no registered model 'nope' in sqlite:///",
        ("rollback", "nope"): "error: no registered model 'nope'",
        ("models", "nope"): "error: no registered model 'nope'",
        ("promote", MODEL, "--version", "9"): f"error: model '{MODEL}' has no version 9; versions: 1, 2, 3",
        ("rollback", MODEL): f"error: model '{MODEL}' has no 'previous-champion' alias: nothing to roll back",
    }
    for argv, expected in cases.items():
        code, _, error = refinery(capsys, *argv, "--tracking-uri", store)
        assert code == 1 and error.startswith(expected) and "\n" not in error, (argv, error)
    assert aliases(store) == {"challenger": "3"}

    code, _, error = refinery(capsys, "models", MODEL, "--tracking-uri", "sqlite:///missing.db")
    assert code == 1 and error.startswith("error: tracking store sqlite:///missing.db not found")
    assert not Path("missing.db").exists()


def test_predict_writes_input_columns_label_names_and_confidences(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    refinery(capsys, "promote", MODEL, "--version", "2")
    texts = ["my card was stolen", "what is the exchange rate", "lost my card", "hi", "card " * 300]
    source = tmp_path / "inbox.csv"
    pd.DataFrame({"id": ["a1", "a2", "a3", "a4", "a5"], "body": texts}).to_csv(source, index=False)
    output = tmp_path / "out" / "preds.csv"

    code, out, _ = refinery(
        capsys, "predict", "--model", f"models:/{MODEL}@champion", "--input", str(source),
        "--output", str(output), "--text-column", "body", "--batch-size", "2",
    )  # fmt: skip

    assert code == 0 and f"scored 5 rows with models:/{MODEL}@champion" in out
    preds = pd.read_csv(output)
    assert list(preds.columns) == ["id", "body", "label", "confidence"]
    assert preds["id"].tolist() == ["a1", "a2", "a3", "a4", "a5"] and preds["body"].iloc[0] == texts[0]
    assert set(preds["label"]) <= set(LABELS)
    assert preds["confidence"].between(1 / len(LABELS), 1.0).all()


def test_predict_bad_input_gives_a_one_line_error(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text('text,id\n"fine",1\n"two",2,extra\n', encoding="utf-8")
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"body": "hi"}\n', encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text("text\nhi\n", encoding="utf-8")
    cases = {
        (str(tmp_path / "absent.csv"), "champion"): "absent.csv: data file not found",
        (str(broken), "champion"): "broken.csv: line 3 (row 2): expected 2 fields, saw 3",
        (
            str(no_text),
            "champion",
        ): "no_text.jsonl: column 'text' (--text-column) not found; columns are: body",
        (str(good), "nope"): f"cannot load models:/{MODEL}@nope:",
    }
    for (source, alias), expected in cases.items():
        code, _, error = refinery(
            capsys, "predict", "--model", f"models:/{MODEL}@{alias}", "--input", source,
            "--output", str(tmp_path / "preds.csv"), "--tracking-uri", store,
        )  # fmt: skip
        assert code == 1 and expected in error and "\n" not in error, error
    assert not (tmp_path / "preds.csv").exists()
