"""Token classification, pure parts: the CoNLL reader and its errors, tag schemes and entities,
seqeval metrics on a hand-checked case, the label alignment to first sub-tokens, the data
contract's one-line failures with file:line, and the paired bootstrap of entity F1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import Params, TokenizeConfig
from tasks.core.errors import ConfigError, DataError
from tasks.core.sections import TokenClassificationConfig
from tasks.data.reading import read_frames, read_table
from tasks.data.splitting import Splits
from tasks.models.served_encoder import entity_spans
from tasks.task_types import task_type_for
from tasks.task_types.token_classification.comparison import found_per_entity, paired_bootstrap_f1
from tasks.task_types.token_classification.evaluation import entity_metrics, per_type_table
from tasks.task_types.token_classification.records import dominant_type, split_sentences, tag_names
from tasks.task_types.token_classification.schemes import (
    count_matches,
    entity_sets,
    micro_f1,
    scheme_break,
    sentence_counts,
    spans_as_tags,
    tag_problem,
)
from tasks.task_types.token_classification.tokenization import align_labels, tokenize_splits
from tasks.task_types.token_classification.validation import validate_sentences
from tests.fixtures import build_tiny_classifier

CONLL = """-DOCSTART- -X- -X- O

I PRP B-NP O
paid VBD B-VP O
$ $ B-NP B-MONEY
5 CD I-NP I-MONEY

with O
visa B-CARD_BRAND
"""


def test_conll_reader_keeps_the_last_field_as_tag_and_the_start_line_as_row(tmp_path: Path) -> None:
    for suffix in (".conll", ".bio", ".iob"):
        path = tmp_path / f"train{suffix}"
        path.write_text(CONLL, encoding="utf-8")
        frame = read_table(path)
        assert frame["tokens"].tolist() == [["I", "paid", "$", "5"], ["with", "visa"]]
        assert frame["tags"].tolist() == [["O", "O", "B-MONEY", "I-MONEY"], ["O", "B-CARD_BRAND"]]
        assert frame["source_row"].tolist() == [3, 8] and frame["source_file"].iloc[0] == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I O\nvisa\n", "train.conll: line 2: expected a token and its tag separated by blanks, got 'visa'"),
        ("-DOCSTART- O\n\n\n", "train.conll: no sentences"),
    ],
)
def test_conll_reader_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "train.conll").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message.replace("$", r"\$")):
        read_table(tmp_path / "train.conll")


def test_seqeval_metrics_on_a_hand_checked_case() -> None:
    truth = [["B-MONEY", "I-MONEY", "O", "B-CARD"], ["O", "B-CUR"]]
    found = [["B-MONEY", "I-MONEY", "O", "I-CARD"], ["B-CUR", "O"]]
    # strict IOB2: the stray I-CARD is no entity; found {MONEY, CUR@0}, true {MONEY, CARD, CUR@1}
    strict = entity_metrics(truth, found, TokenClassificationConfig())
    assert strict == pytest.approx({"f1": 0.4, "precision": 0.5, "recall": 1 / 3, "accuracy": 0.5})
    # conlleval's reading: I-CARD opens CARD, so TP 2 (MONEY, CARD), FP 1, FN 1
    lenient = entity_metrics(truth, found, TokenClassificationConfig(mode="default"))
    assert lenient == pytest.approx({"f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3, "accuracy": 0.5})
    counts = sentence_counts(truth, found, "strict", "IOB2")
    assert counts.tolist() == [[1, 0, 1], [0, 1, 1]] and micro_f1(counts) == pytest.approx(0.4)
    table = per_type_table(truth, found, TokenClassificationConfig()).set_index("label")
    assert table.loc["MONEY", "f1"] == 1.0 and table.loc["CARD", "recall"] == 0.0
    assert table["support"].to_dict() == {"CARD": 1, "CUR": 1, "MONEY": 1}


@pytest.mark.parametrize(
    ("tags", "scheme", "broken"),
    [
        (["O", "I-MONEY", "I-MONEY"], "IOB2", 1),
        (["B-MONEY", "I-CUR"], "IOB2", 1),
        (["B-MONEY", "I-MONEY", "O", "B-CUR"], "IOB2", None),
        (["B-MONEY", "O"], "IOBES", 0),  # a B without its E
        (["B-MONEY", "E-MONEY", "S-CUR"], "IOBES", None),
        (["I-X", "E-X", "E-Y"], "IOE2", None),
        (["U-X", "B-Y", "I-Y", "L-Y"], "BILOU", None),
    ],
)
def test_scheme_break_finds_the_first_tag_outside_a_well_formed_entity(
    tags: list[str], scheme: str, broken: int | None
) -> None:
    assert scheme_break(tags, scheme) == broken


def test_tag_form_per_scheme() -> None:
    assert tag_problem("B-MONEY", "IOB2") is None and tag_problem("O", "BILOU") is None
    assert tag_problem("E-MONEY", "IOB2") == "'E-MONEY' is not O or B/I-TYPE"
    assert tag_problem("MONEY", "IOBES") == "'MONEY' is not O or B/I/E/S-TYPE"


@pytest.mark.parametrize("scheme", ["IOB2", "IOE2", "IOBES", "BILOU"])
def test_spans_written_as_tags_read_back_as_the_same_spans(scheme: str) -> None:
    spans = [("MONEY", 0, 2), ("CUR", 2, 3), ("COUNTRY", 4, 7)]
    tags = spans_as_tags(spans, 8, scheme)
    assert entity_sets([tags], "strict", scheme) == [set(spans)] and entity_spans(tags) == spans


def test_lenient_entities_match_the_served_decoding() -> None:
    for tags in (["I-X", "I-X", "O", "B-Y"], ["B-X", "I-Y", "O"], ["B-X", "B-X", "I-X"]):
        assert entity_sets([tags], "default", "IOB2") == [set(entity_spans(tags))]


def test_labels_go_to_the_first_sub_token_of_each_word(tmp_path: Path) -> None:
    assert align_labels([None, 0, 0, 1, None], [3, 5]) == [-100, 3, -100, 5, -100]
    model = build_tiny_classifier(tmp_path / "tiny", ["x", "y"])
    from tasks.models.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(model)
    frame = pd.DataFrame({"tokens": [["my", "visa", "card"], ["refund", "visa", "fee", "pin"]],
                          "tags": [["O", "B-CARD", "O"], ["O", "B-CARD", "O", "O"]],
                          "source_file": "t.conll", "source_row": [1, 5]})  # fmt: skip
    splits = Splits(frame, frame.iloc[0:0], frame, ["O", "B-CARD"])
    tokenized = tokenize_splits(splits, tokenizer, 6, TokenizeConfig())["train"]
    first = tokenized[0]  # "visa" splits into letters; cut at 6: [CLS] my v ##i ##s [SEP]
    assert tokenizer.convert_ids_to_tokens(first["input_ids"])[:3] == ["[CLS]", "my", "v"]
    assert first["labels"] == [-100, 0, 1, -100, -100, -100]  # cut at 6: "card" lost
    assert tokenized["truncated"] == [True, True]


def test_the_served_model_tags_words_as_evaluation_does(tmp_path: Path) -> None:
    """A random token classifier (so it predicts many entities): the pyfunc's entity spans for the
    joined tokens equal the spans of the tags evaluation predicts, words past max_length included."""
    import torch
    from mlflow.pyfunc import PythonModelContext
    from transformers import AutoConfig, BertForTokenClassification

    from tasks.models.served_encoder import ServedEncoder
    from tasks.models.tokenizers import load_tokenizer
    from tasks.task_types.token_classification.evaluation import predict_tags
    from tests.fixtures import WORDS

    labels = ["O", "B-X", "I-X"]
    path = build_tiny_classifier(tmp_path / "tagger", labels)
    torch.manual_seed(3)
    BertForTokenClassification(AutoConfig.from_pretrained(path)).save_pretrained(str(path))
    sentences = [WORDS[i : i + 3 + i % 9] for i in range(0, 40, 3)]
    frame = pd.DataFrame({"tokens": sentences, "tags": [["O"] * len(s) for s in sentences],
                          "source_file": "t.jsonl", "source_row": range(1, len(sentences) + 1)})  # fmt: skip
    splits = Splits(frame, frame.iloc[0:0], frame, labels)
    tokenizer = load_tokenizer(path)
    tokenized = tokenize_splits(splits, tokenizer, 8, TokenizeConfig())["test"]
    model = BertForTokenClassification.from_pretrained(str(path))
    kept = predict_tags(model, tokenizer, tokenized, labels, batch_size=4)
    served = ServedEncoder()
    served.load_context(
        PythonModelContext({"model": str(path)}, {"kind": "token_classification", "max_length": 8})
    )
    found = served.predict(None, pd.DataFrame({"text": [" ".join(s) for s in sentences]}))["entities"]
    spans = [[(e["type"], e["start_token"], e["end_token"]) for e in row] for row in found]
    assert spans == [entity_spans(tags) for tags in kept] and sum(map(len, spans)) > 5
    assert any(len(tags) < len(s) for tags, s in zip(kept, sentences, strict=True))  # some words cut off


def _params(tmp_path: Path, train: str, test: str, **data: object) -> Params:
    (tmp_path / "train.conll").write_text(train, encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(test, encoding="utf-8")
    return Params.model_validate({
        "task": "token_classification",
        "data": {"train_path": str(tmp_path / "train.conll"), "test_path": str(tmp_path / "test.jsonl"),
                 "labels_path": None, **data},
        "validate": {"min_examples_per_class": 1},
    })  # fmt: skip


def test_the_contract_names_file_and_line_of_each_bad_sentence(tmp_path: Path) -> None:
    test = "\n".join(json.dumps(r) for r in [
        {"tokens": ["a", "b"], "tags": ["O"]},
        {"tokens": "a b", "tags": ["O", "O"]},
        {"tokens": [], "tags": []},
        {"tokens": ["pay", "$", "5"], "tags": ["O", "I-MONEY", "I-MONEY"]},
        {"tokens": ["x y", "z"], "tags": ["O", "O"]},
        {"tokens": ["in", "spain"], "tags": ["O", "B-COUNTRY"]},
    ])  # fmt: skip
    params = _params(tmp_path, CONLL + "\nmy O\namex I-CARD_BRAND\n", test)
    result = validate_sentences(read_frames(params.data), params)
    failed = {o.name + " " + o.file.rsplit("/", 1)[-1]: o.describe(5) for o in result.failed}
    train, jsonl = str(tmp_path / "train.conll"), str(tmp_path / "test.jsonl")
    assert set(failed) == {"tags_follow_scheme train.conll", "tokens_are_words test.jsonl",
                           "tags_match_tokens test.jsonl", "tags_follow_scheme test.jsonl",
                           "tags_in_known_set test.jsonl"}  # fmt: skip
    assert f"{train}:12 \"'I-CARD_BRAND' after 'O' (token 2)\"" in failed["tags_follow_scheme train.conll"]
    assert f"{jsonl}:1 '1 tags for 2 tokens'" in failed["tags_match_tokens test.jsonl"]
    shape = failed["tokens_are_words test.jsonl"]
    assert f"{jsonl}:2 'str, not a list'" in shape and f"{jsonl}:3 'no tokens'" in shape
    assert f"{jsonl}:5 \"token 1 'x y' is blank or holds a blank\"" in shape
    assert f"{jsonl}:4 \"'I-MONEY' after 'O' (token 2)\"" in failed["tags_follow_scheme test.jsonl"]
    assert f"{jsonl}:6 \"'B-COUNTRY' (token 2)\"" in failed["tags_in_known_set test.jsonl"]


def test_the_contract_reports_missing_fields_and_lenient_mode_accepts_iob1(tmp_path: Path) -> None:
    params = _params(
        tmp_path, CONLL.replace("B-MONEY", "I-MONEY"), json.dumps({"words": ["a"], "tags": ["O"]})
    )
    result = validate_sentences(read_frames(params.data), params)
    assert [o.name for o in result.failed] == ["tags_follow_scheme", "tokens_field_present"]
    assert "column missing" in result.failure_message(3)
    lenient = params.model_copy(update={"token_classification": TokenClassificationConfig(mode="default")})
    assert [o.name for o in validate_sentences(read_frames(params.data), lenient).failed] == [
        "tokens_field_present"
    ]


def test_split_frames_hold_tokens_tags_text_and_the_main_entity_type(tmp_path: Path) -> None:
    test = json.dumps(
        {"tokens": ["pay", "$", "5", "by", "visa"], "tags": ["O", "B-MONEY", "I-MONEY", "O", "B-CARD_BRAND"]}
    )
    params = _params(tmp_path, CONLL, test)
    splits = split_sentences(read_frames(params.data), params.data, params.token_classification)
    assert splits.labels == ["O", "B-CARD_BRAND", "B-MONEY", "I-MONEY"]
    row = splits.test.iloc[0]
    assert row["text"] == "pay $ 5 by visa" and row["label"] == "MONEY" and row["source_row"] == 1
    assert dominant_type(["O"]) == "O" and dominant_type(["B-B", "B-A"]) == "A"
    listed = tmp_path / "tags.json"
    listed.write_text('["O", "B-MONEY", "I-MONEY", "B-CARD_BRAND"]')
    assert tag_names([["O"]], listed) == ["O", "B-MONEY", "I-MONEY", "B-CARD_BRAND"]


def test_paired_bootstrap_of_entity_f1_recomputes_f1_from_summed_counts() -> None:
    champion = np.array([[1, 0, 1], [0, 1, 1], [2, 0, 0], [0, 0, 0]])
    challenger = np.array([[2, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 0]])
    boot = paired_bootstrap_f1(champion, challenger, resamples=500, confidence=0.9, seed=0)
    assert boot.champion == pytest.approx(6 / 9) and boot.challenger == pytest.approx(1.0)  # 2*3/(6+1+2)
    assert boot.metric == "f1" and boot.delta == pytest.approx(1 / 3) and boot.low <= boot.delta <= boot.high
    same = paired_bootstrap_f1(champion, champion, resamples=100, confidence=0.95, seed=0)
    assert (same.low, same.delta, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="challenger"):
        paired_bootstrap_f1(champion, challenger[:2], resamples=10, confidence=0.9, seed=0)


def test_entity_recall_rows_for_the_guard_rails() -> None:
    truth = [{("MONEY", 0, 2), ("CUR", 3, 4)}, {("CUR", 0, 1)}]
    found = [{("MONEY", 0, 2)}, {("CUR", 0, 2)}]
    scores, types = found_per_entity(truth, found)
    assert scores.tolist() == [1.0, 0.0, 0.0] and types == ["MONEY", "CUR", "CUR"]
    assert count_matches(truth, found).tolist() == [[1, 0, 1], [0, 1, 1]]


def test_params_name_only_metrics_the_task_reports() -> None:
    base = {"task": "token_classification", "gate": {"thresholds": {"f1": 0.5}}}
    task_type_for(Params.model_validate({**base, "train": {"metric_for_best_model": "f1"}}))
    with pytest.raises(
        ConfigError, match="gate.thresholds.f1_macro: task token_classification reports no such"
    ):
        task_type_for(Params.model_validate({**base, "gate": {"thresholds": {"f1_macro": 0.5}}}))
    with pytest.raises(ConfigError, match="train.metric_for_best_model must be one of f1, precision"):
        task_type_for(Params.model_validate({**base, "train": {"metric_for_best_model": "f1_macro"}}))
