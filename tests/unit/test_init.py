"""`refinery init`: a params file for one's own data, in every format, that `refinery run` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.cli.main import main as refinery
from tasks.task_types import load_task_params

INTENTS = ("refund", "delivery", "password")


def _examples(per_class: int = 6) -> pd.DataFrame:
    """Distinct texts in columns named as users name them (not `text` / `label`)."""
    rows = [(f"customer message {i} about my {intent} issue, number {i}", intent, i)
            for intent in INTENTS for i in range(per_class)]  # fmt: skip
    return pd.DataFrame(rows, columns=["sentence", "intent", "id"])


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_init_writes_params_that_parse_for_every_format(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(_examples(), tmp_path / f"tickets{suffix}")
    out = tmp_path / "conf" / "params.yaml"
    assert refinery(["init", str(data), "--output", str(out)]) == 0
    params = load_task_params(out)
    assert (params.data.text_column, params.data.label_column) == ("sentence", "intent")
    assert params.data.train_path == str(data) and params.data.labels_path is None
    assert params.data.format == suffix[1:] and params.register_.model_name == "tickets-classifier"
    text = out.read_text(encoding="utf-8")
    assert "one of: auto | csv | tsv | json | jsonl | parquet" in text  # commented, with allowed values
    printed = capsys.readouterr().out
    assert f"{len(INTENTS) * 6} train rows" in printed and "(3 classes)" in printed
    assert "warning" not in printed


def test_semicolon_csv_and_a_test_file(tmp_path: Path) -> None:
    frame = _examples()
    train = tmp_path / "train.csv"
    frame.to_csv(train, index=False, sep=";")
    test = _write(
        _examples(2).assign(sentence=lambda f: "held out " + f["sentence"]), tmp_path / "test.jsonl"
    )
    out = tmp_path / "params.yaml"
    assert refinery(["init", str(train), "--test", str(test), "--output", str(out)]) == 0
    params = load_task_params(out)
    assert params.data.csv_delimiter == ";" and params.data.test_path == str(test)


def test_columns_that_cannot_be_guessed_name_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"a fairly long free text number {i} with words" for i in range(12)]
    frame = pd.DataFrame({"a": texts, "b": [t.upper() for t in texts]})
    data = _write(frame, tmp_path / "unknown.csv")
    out = tmp_path / "params.yaml"
    assert refinery(["init", str(data), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot tell which column holds the text" in err
    assert "pass --text-column NAME" in err and not out.exists()
    code = refinery(["init", str(data), "--output", str(out), "--text-column", "a", "--label-column", "c"])
    assert code == 1 and "--label-column 'c' is not a column; columns: a, b" in capsys.readouterr().err


def test_warns_what_validation_would_refuse_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _examples()
    frame = pd.concat([frame, frame.head(2), pd.DataFrame([("one lonely example", "other", 99)],
                                                           columns=frame.columns)])  # fmt: skip
    data = _write(frame, tmp_path / "dirty.csv")
    out = tmp_path / "params.yaml"
    assert refinery(["init", str(data), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: validation would refuse: no_duplicate_texts" in printed
    assert "4 duplicate texts (19.0 %) exceed validate.max_duplicate_fraction = 0" in printed
    assert "1 of 4 classes have fewer examples than validate.min_examples_per_class = 2" in printed
    assert "# Validation would refuse: no_duplicate_texts" in out.read_text(encoding="utf-8")
    load_task_params(out)  # still a valid file: the user decides between the data and the keys


def test_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(_examples(), tmp_path / "tickets.csv")
    out = tmp_path / "params.yaml"
    out.write_text("# mine\n", encoding="utf-8")
    assert refinery(["init", str(data), "--output", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "# mine\n"
    assert refinery(["init", str(data), "--output", str(out), "--force"]) == 0
    assert load_task_params(out).data.text_column == "sentence"
