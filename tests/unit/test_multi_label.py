"""Multi-label classification: label cells, hand-checked metrics, thresholds chosen on validation,
the row bootstrap of micro-F1, the data contract (file:row offenders) and the params checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.comparison.statistics import paired_bootstrap_scores
from tasks.core.config import ChampionGateConfig, DataConfig, MultiLabelConfig, Params, ValidateConfig
from tasks.core.errors import ConfigError, DataError, DataValidationError
from tasks.data.reading import read_frames
from tasks.task_types import TASK_TYPES
from tasks.task_types.multi_label.comparison import metric_of, paired_bootstrap_sets
from tasks.task_types.multi_label.decision import read_thresholds, store_thresholds
from tasks.task_types.multi_label.metrics import choose_thresholds, multi_label_metrics, per_label_table
from tasks.task_types.multi_label.records import LabelCell, multi_hot, parse_cell, split_frames
from tasks.task_types.multi_label.validation import validate_frames
from tasks.validation.report import ValidationResult, check

# three rows, three labels: 4 true positives, 1 false positive (row 2, c), 1 false negative (row 1, c)
REFERENCES = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
PREDICTIONS = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]])
DATA = DataConfig(text_column="text", label_column="labels", label_delimiter="|")
LABELS = ["balance", "refund", "transfer"]


@pytest.mark.parametrize(
    ("value", "delimited", "expected"),
    [
        (["refund", " balance "], False, LabelCell(["refund", "balance"])),
        (np.array(["refund", "refund"], dtype=object), False, LabelCell(["refund"])),  # Parquet; once
        ([], False, LabelCell([])),
        ([3, 7], False, LabelCell(["3", "7"])),
        (None, False, LabelCell(None)),  # a JSON null: missing, not empty
        ("refund | balance", True, LabelCell(["refund", "balance"])),
        (float("nan"), True, LabelCell([])),  # an empty CSV cell: no label
        ("", True, LabelCell([])),
    ],
)
def test_label_cells_read_as_label_sets(value: object, delimited: bool, expected: LabelCell) -> None:
    assert parse_cell(value, "|", delimited) == expected


@pytest.mark.parametrize(
    ("value", "delimited", "problem"),
    [
        ([{"name": "refund"}], False, "holds dict"),
        (["refund", None], False, "holds NoneType"),
        ([["refund"]], False, "holds list"),
        ('["refund", "balance"]', True, "nested value"),
        ("refund||balance", True, "empty label"),
        ({"refund": 1}, False, "holds a dict"),
    ],
)
def test_malformed_label_cells_say_why(value: object, delimited: bool, problem: str) -> None:
    cell = parse_cell(value, "|", delimited)
    assert cell.labels is None and cell.problem is not None and problem in cell.problem


def test_metrics_by_hand_on_three_rows() -> None:
    metrics = multi_label_metrics(REFERENCES, PREDICTIONS)
    assert metrics == pytest.approx(
        {
            "f1_micro": 0.8,  # 2·4 / (2·4 + 1 + 1)
            "precision_micro": 0.8,  # 4 / 5 predicted
            "recall_micro": 0.8,  # 4 / 5 true
            "f1_macro": 2 / 3,  # a: 1, b: 1, c: 0
            "f1_weighted": 0.8,  # (2·1 + 2·1 + 1·0) / 5
            "subset_accuracy": 1 / 3,  # only row 3 has every label right
            "hamming_loss": 2 / 9,  # 2 wrong of 9 decisions
        }
    )
    table = per_label_table(REFERENCES, PREDICTIONS, ["a", "b", "c"])
    assert table.to_dict("list") == {
        "label": ["a", "b", "c"],
        "precision": [1.0, 1.0, 0.0],
        "recall": [1.0, 1.0, 0.0],
        "f1": [1.0, 1.0, 0.0],
        "support": [2, 2, 1],
    }


def test_thresholds_global_per_label_and_default() -> None:
    references = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    probabilities = np.array([[0.9, 0.1, 0.1], [0.3, 0.2, 0.1], [0.2, 0.8, 0.3], [0.1, 0.6, 0.2]])
    # one threshold: t in (0.6, 0.8] gets micro-F1 0.8 (a's 0.3 is missed; anything lower lets b's 0.6
    # or c's 0.3 in); of the tied grid values the one nearest 0.5
    assert choose_thresholds(probabilities, references, "global", 0.5) == [0.65, 0.65, 0.65]
    # per label: a is perfect for t in (0.2, 0.3], b for t in (0.6, 0.8] (ties: nearest the global
    # threshold); c has no validation positive and keeps the global one
    assert choose_thresholds(probabilities, references, "per_label", 0.5) == [0.3, 0.65, 0.65]
    assert choose_thresholds(np.zeros((0, 3)), np.zeros((0, 3)), "per_label", 0.4) == [0.4] * 3


def test_thresholds_are_stored_in_the_model_config(tmp_path: Path) -> None:
    config = {"id2label": {"0": "a", "1": "b"}, "model_type": "bert"}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    store_thresholds(tmp_path, [0.3, 0.65], "per_label", 12)
    assert read_thresholds(tmp_path) == [0.3, 0.65]
    record = json.loads((tmp_path / "thresholds.json").read_text(encoding="utf-8"))
    assert record == {"rule": "per_label", "validation_rows": 12, "thresholds": {"a": 0.3, "b": 0.65}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(Exception, match="no 'multi_label_thresholds'"):
        read_thresholds(tmp_path)


def test_bootstrap_recomputes_micro_f1_of_resampled_rows() -> None:
    rng = np.random.default_rng(1)
    references = rng.integers(0, 2, size=(60, 4))
    champion = np.where(rng.random((60, 4)) < 0.3, 1 - references, references)  # ~30 % decisions wrong
    challenger = np.where(rng.random((60, 4)) < 0.1, 1 - references, references)
    cfg = ChampionGateConfig(resamples=300)
    for metric in ("f1_micro", "f1_macro", "subset_accuracy"):
        boot = paired_bootstrap_sets(references, champion, challenger, metric, cfg)
        assert boot.champion == pytest.approx(multi_label_metrics(references, champion)[metric])
        assert boot.challenger == pytest.approx(multi_label_metrics(references, challenger)[metric])
        assert boot.low <= boot.delta <= boot.high and boot.low > 0, boot
    same = paired_bootstrap_sets(references, champion, champion, "f1_micro", cfg)
    assert (same.low, same.delta, same.high) == (0.0, 0.0, 0.0)
    # subset accuracy is a mean of per-row scores: the same interval as the shared bootstrap's width
    exact = paired_bootstrap_scores(
        (champion == references).all(1), (challenger == references).all(1), "subset_accuracy", 300
    )
    subset = paired_bootstrap_sets(references, champion, challenger, "subset_accuracy", cfg)
    assert subset.delta == pytest.approx(exact.delta)
    assert subset.high - subset.low == pytest.approx(exact.high - exact.low, rel=0.35)


def test_metric_of_summed_counts_matches_a_hand_count() -> None:
    tp, fp, fn = np.array([2.0, 2.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])
    sums = np.concatenate([tp, fp, fn, [1.0]])
    assert metric_of("f1_micro", sums, 3) == pytest.approx(0.8)
    assert metric_of("f1_macro", sums, 3) == pytest.approx(2 / 3)
    assert metric_of("subset_accuracy", sums, 3) == pytest.approx(1 / 3)


def _frame(file: str, rows: list[tuple[object, object]]) -> pd.DataFrame:
    """A frame as the reader returns it, plus source_file / source_row."""
    frame = pd.DataFrame({"text": [r[0] for r in rows], "labels": [r[1] for r in rows]})
    return frame.assign(source_file=file, source_row=range(1, len(frame) + 1))


def _clean(tag: str, n: int = 3) -> list[tuple[object, object]]:
    sets = [["balance"], ["refund", "transfer"], ["balance", "refund"], ["transfer"]]
    return [(f"{tag} message {i} about {'/'.join(s)}", s) for i in range(n) for s in sets]


def _validate(
    train: list[tuple[object, object]],
    test: list[tuple[object, object]] | None = None,
    known: list[str] | None = None,
    allow_empty: bool = True,
    cfg: ValidateConfig | None = None,
) -> ValidationResult:
    frames = {"train": _frame("data/train.jsonl", train)}
    if test is not None:
        frames["test"] = _frame("data/test.jsonl", test)
    multi_label = MultiLabelConfig(allow_empty=allow_empty)
    return validate_frames(frames, DATA, cfg or ValidateConfig(), multi_label, known)


def _failed(result: ValidationResult) -> dict[str, list[tuple[str, int | None, str | None]]]:
    """Each failed expectation's offenders as (file, row, value), over every file it ran on."""
    failed: dict[str, list[tuple[str, int | None, str | None]]] = {}
    for o in result.expectations:
        if not o.success:
            failed.setdefault(o.name, []).extend((r.file, r.row, r.value) for r in o.offending)
    return failed


def test_clean_label_sets_pass() -> None:
    result = _validate(_clean("train"), _clean("test", 1), known=LABELS)
    assert result.success, result.failure_message(10)
    assert result.statistics["labels_train"] == 3 and result.statistics["labels_per_row_train"] == 1.5


def test_unknown_and_unseen_labels_point_at_their_rows() -> None:
    train = [*_clean("train"), ("please refund me", ["refnud"])]
    result = _validate(train, [*_clean("test", 1), ("a wire", ["wire"])], known=LABELS)
    failed = _failed(result)
    assert ("data/train.jsonl", 13, "refnud") in failed["labels_in_known_set"]
    assert ("data/test.jsonl", 5, "wire") in failed["labels_in_known_set"]
    assert failed["test_labels_seen_in_train"] == [("data/test.jsonl", 5, "wire")]
    with pytest.raises(DataValidationError, match=r"data/train\.jsonl:13 'refnud'"):
        check(result, ValidateConfig())


def test_empty_sets_pass_unless_refused_and_missing_cells_fail() -> None:
    train = [*_clean("train"), ("nothing to tag here", []), ("no cell at all", None)]
    allowed = _failed(_validate(train))
    assert list(allowed) == ["label_not_null"] and allowed["label_not_null"] == [
        ("data/train.jsonl", 14, None)
    ]
    refused = _failed(_validate(train, allow_empty=False))
    assert refused["label_set_not_empty"] == [("data/train.jsonl", 13, "[]")]


def test_rare_labels_and_malformed_cells_are_named() -> None:
    train = [*_clean("train"), ("one fee", ["fee"]), ("a broken cell", [{"name": "fee"}])]
    result = _validate(train, cfg=ValidateConfig(min_examples_per_class=2))
    failed = _failed(result)
    assert failed["classes_have_min_examples"] == [("data/train.jsonl", None, "fee")]
    [(file, row, value)] = failed["label_cell_well_formed"]
    assert (file, row) == ("data/train.jsonl", 14) and value is not None and "holds dict" in value
    assert result.failure_message(10).count("\n") == 0


def test_text_checks_and_leakage_as_for_a_classifier() -> None:
    train = [*_clean("train"), ("   ", ["refund"])]
    result = _validate(train, [*_clean("test", 1), ("train message 0 about balance", ["balance"])])
    failed = _failed(result)
    assert failed["text_not_empty"] == [("data/train.jsonl", 13, "   ")]
    assert failed["no_train_test_leakage"] == [("data/test.jsonl", 5, "train message 0 about balance")]


def test_csv_and_jsonl_label_cells_give_the_same_splits(tmp_path: Path) -> None:
    rows = _clean("train", 4)
    pd.DataFrame({"text": [r[0] for r in rows], "labels": [r[1] for r in rows]}).to_json(
        tmp_path / "train.jsonl", orient="records", lines=True
    )
    test = [("a refund and a transfer", "refund | transfer"), ("nothing", ""), ("my balance", "balance")]
    pd.DataFrame(test, columns=["text", "labels"]).to_csv(tmp_path / "test.csv", index=False)
    data = DataConfig(
        train_path=str(tmp_path / "train.jsonl"), test_path=str(tmp_path / "test.csv"),
        text_column="text", label_column="labels", label_delimiter="|", validation_fraction=0.25,
    )  # fmt: skip
    splits = split_frames(read_frames(data), data)
    assert splits.labels == LABELS and len(splits.train) == 12 and len(splits.validation) == 4
    assert splits.test["labels"].tolist() == [["refund", "transfer"], [], ["balance"]]
    assert np.asarray(splits.test["targets"].tolist()).tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert splits.test["label"].tolist() == ["refund", "", "balance"]  # rarest in train; ties by name
    assert multi_hot([["transfer", "unknown"]], LABELS).tolist() == [[0.0, 0.0, 1.0]]


def test_an_unreadable_cell_at_split_time_is_one_line(tmp_path: Path) -> None:
    frames = {"train": _frame("data/train.jsonl", [*_clean("train"), ("odd", [1.5])])}
    with pytest.raises(
        DataError, match=r"^data/train\.jsonl:13: column 'labels' \(data\.label_column\) holds float"
    ):
        split_frames(frames, DATA)


def test_params_checks_name_the_key() -> None:
    task = TASK_TYPES["multi_label_classification"]
    base = {
        "task": "multi_label_classification",
        "gate": {"thresholds": {"f1_micro": 0.5}, "maximums": {"hamming_loss": 0.1}},
        "train": {"metric_for_best_model": "hamming_loss"},
    }
    task.check_params(Params.model_validate(base))
    with pytest.raises(ConfigError, match="gate.thresholds.accuracy: task multi_label_classification"):
        task.check_params(Params.model_validate({**base, "gate": {"thresholds": {"accuracy": 0.5}}}))
    with pytest.raises(ConfigError, match="train.metric_for_best_model must be one of f1_micro"):
        task.check_params(Params.model_validate({**base, "train": {"metric_for_best_model": "accuracy"}}))
    with pytest.raises(
        ConfigError, match="gate.champion.metric must be f1_micro or f1_macro or subset_accuracy"
    ):
        task.check_params(Params.model_validate({**base, "gate": {"champion": {"metric": "accuracy"}}}))
    with pytest.raises(ConfigError, match="data.label_delimiter"):
        task.check_params(Params.model_validate({**base, "data": {"label_delimiter": " "}}))


def test_text_pairs_are_split_and_checked_as_pairs() -> None:
    data = DataConfig(text_column="text", label_column="labels", text_pair_column="reply")
    rows = _clean("train")
    frame = _frame("data/train.jsonl", rows).assign(reply=[f"reply {i}" for i in range(len(rows))])
    splits = split_frames({"train": frame}, data)
    assert {"text", "text_pair", "labels", "targets"} <= set(splits.train.columns)
    frame.loc[2, "reply"] = None
    result = validate_frames({"train": frame}, data, ValidateConfig(), MultiLabelConfig())
    assert _failed(result) == {"text_pair_not_null": [("data/train.jsonl", 3, None)]}


def test_checkpoints_are_scored_at_their_best_global_threshold_not_at_half() -> None:
    """Early in training every sigmoid is below 0.5 although the labels are already ranked right:
    at 0.5 that checkpoint would score F1 0 and early stopping would keep the first epoch."""
    from transformers import EvalPrediction

    from tasks.task_types.multi_label.training import compute_metrics

    probabilities = np.array([[0.30, 0.05, 0.02], [0.04, 0.28, 0.03], [0.31, 0.02, 0.26]])
    logits = np.log(probabilities / (1.0 - probabilities))
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]], dtype=np.float32)
    scored = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert scored["f1_micro"] == 1.0 and scored["subset_accuracy"] == 1.0
    assert 0.05 < scored["threshold"] <= 0.26


@pytest.mark.parametrize("architecture", ["bert", "roberta", "gpt2"])
def test_every_sigmoid_starts_at_its_label_train_frequency(tmp_path: Path, architecture: str) -> None:
    """The head's biases start at the log-odds of each label's train frequency. From 0.5, the first
    steps pushed every logit down together and GoEmotions' 28-label model collapsed to one answer."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, BertConfig, GPT2Config, RobertaConfig

    from tasks.core.config import LoraSettings
    from tasks.task_types.multi_label.training import label_priors, load_base_model

    small = {"vocab_size": 64, "num_attention_heads": 2, "intermediate_size": 64}
    config = {
        "bert": BertConfig(hidden_size=32, num_hidden_layers=1, **small),
        "roberta": RobertaConfig(hidden_size=32, num_hidden_layers=1, pad_token_id=1, **small),
        "gpt2": GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=32, vocab_size=64, pad_token_id=0),
    }[architecture]
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(tmp_path))
    rows = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    train = Dataset.from_dict({"labels": rows})
    priors = label_priors(train)
    assert priors == pytest.approx([3.5 / 5, 1.5 / 5, 0.5 / 5])  # smoothed: never 0 or 1
    model = load_base_model(tmp_path, ["a", "b", "c"], LoraSettings(), priors).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[5, 6, 7], [8, 9, 10]])).logits
    starts = torch.sigmoid(logits).mean(dim=0).numpy()
    if architecture == "gpt2":  # its `score` head has no bias: it starts at 0.5
        assert starts == pytest.approx([0.5] * 3, abs=0.1)
    else:
        assert starts == pytest.approx(priors, abs=0.03)
