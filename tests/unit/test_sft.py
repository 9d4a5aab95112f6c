"""Causal-LM fine-tuning pieces: records to messages, templating and loss masks, packing, LoRA
targets, the generation metrics, and the SFT validation suite on a tiny word-level tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.core.config import ConfigError, DataConfig, LoraSettings, SftConfig, TrainConfig, parse_params
from tasks.core.errors import RefineryError
from tasks.metrics.loading import load_metric
from tasks.models.lora import quantization_config, target_modules
from tasks.task_types import task_type_for
from tasks.task_types.causal_lm.records import canonical_frame, role_problem
from tasks.task_types.causal_lm.templating import (
    DEFAULT_CHAT_TEMPLATE,
    IGNORE,
    Encoded,
    encode_example,
    load_chat_tokenizer,
)
from tasks.task_types.causal_lm.training import collator, sft_config
from tasks.task_types.causal_lm.validation import validate_sft

WORDS = ["when will my card arrive", "card_arrival", "what is the rate", "exchange_rate", "be brief"]
CHAT = [
    {"role": "user", "content": "when will my card arrive"},
    {"role": "assistant", "content": "card_arrival"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), WORDS)


def test_labels_mask_exactly_the_prompt_tokens(model_dir: Path) -> None:
    tokenizer = load_chat_tokenizer(model_dir)  # the model's own chat template
    encoded = encode_example(tokenizer, CHAT, None)
    tokens = tokenizer.convert_ids_to_tokens(encoded.input_ids)
    assert tokens == ["<|", "user", "|>", "when", "will", "my", "card", "arrive",
                      "<|", "assistant", "|>", "card_arrival", "</s>"]  # fmt: skip
    assert encoded.labels == [IGNORE] * 11 + encoded.input_ids[11:]
    assert encoded.response_tokens == 2


def test_default_template_when_the_tokenizer_has_none(tmp_path: Path) -> None:
    tokenizer = load_chat_tokenizer(build_tiny_causal_lm(tmp_path, WORDS, chat_template=False))
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    conversation = [{"role": "system", "content": "be brief"}, *CHAT, *CHAT]
    encoded = encode_example(tokenizer, conversation, None)
    learned = [
        token for token, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE
    ]
    assert tokenizer.decode(learned) == "card_arrival </s> card_arrival </s>"  # both assistant turns
    cut = encode_example(tokenizer, conversation, 12)
    assert len(cut.input_ids) == 12 and cut.total_tokens == len(encoded.input_ids)


def test_collator_pads_ids_and_ignores_padding_in_the_loss(model_dir: Path) -> None:
    tokenizer = load_chat_tokenizer(model_dir)
    batch = collator(tokenizer)(
        [
            {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [IGNORE, 6, 7]},
            {"input_ids": [5], "attention_mask": [1], "labels": [5]},
        ]
    )
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [5, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def _sft_trainer(model_dir: Path, tmp_path: Path, records: list[Encoded], pack_length: int | None) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    cfg = TrainConfig(base_model=str(model_dir), early_stopping_patience=None, progress_bars=False)
    data = Dataset.from_dict(
        {"input_ids": [e.input_ids for e in records], "labels": [e.labels for e in records]}
    )
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    args = sft_config(cfg, tmp_path / "out", pack_length)
    tokenizer = load_chat_tokenizer(model_dir)
    return SFTTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer
    )


def test_trl_trains_on_exactly_our_masked_positions(model_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_chat_tokenizer(model_dir)
    encoded = encode_example(tokenizer, CHAT, None)
    trainer = _sft_trainer(model_dir, tmp_path, [encoded], pack_length=None)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["input_ids"][0].tolist() == encoded.input_ids
    assert batch["labels"][0].tolist() == [IGNORE] * 11 + encoded.input_ids[11:]  # the response only


def test_trl_packing_keeps_examples_whole_and_apart(model_dir: Path, tmp_path: Path) -> None:
    import torch

    tokenizer = load_chat_tokenizer(model_dir)
    questions, answers = ["when will my card arrive", "what is the rate"], ["card_arrival", "exchange_rate"]
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q in questions
        for a in answers
    ]
    examples = [encode_example(tokenizer, chat, None) for chat in chats]
    trainer = _sft_trainer(
        model_dir, tmp_path, examples, pack_length=2 * max(len(e.input_ids) for e in examples)
    )
    packed = trainer.train_dataset
    assert len(packed) < len(examples)
    pieces = []
    for row in packed:
        start = 0
        for length in row["seq_lengths"]:
            pieces.append(row["input_ids"][start : start + length])
            start += length
    assert sorted(pieces) == sorted(e.input_ids for e in examples)  # whole examples, none cut
    with torch.no_grad():
        batch = trainer.data_collator([packed[i] for i in range(len(packed))])
        loss = float(trainer.compute_loss(trainer.model, dict(batch)))
        total, tokens = 0.0, 0
        for e in examples:  # each example alone: what the model sees without packing
            out = trainer.model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
            counted = sum(label != IGNORE for label in e.labels[1:])
            total, tokens = total + float(out.loss) * counted, tokens + counted
    assert loss == pytest.approx(total / tokens, abs=1e-5)  # no example attends to another


def test_records_become_messages_with_roles_checked() -> None:
    data, cfg = DataConfig(), SftConfig(system_prompt="be brief")
    alpaca = pd.DataFrame(
        {
            "instruction": ["Name the intent", None],
            "input": ["my card", None],
            "output": ["card_arrival", "x"],
        }
    ).assign(source_file="f.jsonl", source_row=[1, 2])
    frame = canonical_frame(alpaca, data, cfg)
    assert frame["prompt"][0] == "Name the intent\n\nmy card" and frame["reference"][0] == "card_arrival"
    assert list(frame["role_order"]) == ["ok", "missing or malformed record"]
    assert role_problem([{"role": "assistant", "content": "a"}]) == "turn 1 is 'assistant', expected 'user'"
    assert role_problem([{"role": "user", "content": "a"}]) == "does not end with an assistant turn"
    labelled = pd.DataFrame(
        {"text": [" lost my card "], "label": ["lost"], "source_file": "f", "source_row": [1]}
    )
    built = canonical_frame(labelled, data, SftConfig(from_classification=True))
    assert built["prompt"][0] == "Classify this customer message into a banking intent: lost my card"
    assert built["reference"][0] == "lost" and built["label"][0] == "lost"


def test_lora_targets_default_to_peft_and_qlora_needs_cuda() -> None:
    # PEFT's own defaults per architecture (no table of ours): the query and value projections
    assert target_modules("llama", LoraSettings()) == ["q_proj", "v_proj"]
    assert target_modules("gpt2", LoraSettings()) == ["c_attn"]
    assert target_modules("bert", LoraSettings()) == ["query", "value"]
    assert target_modules("x", LoraSettings(target_modules=["fc"])) == ["fc"]
    assert target_modules("x", LoraSettings(target_modules="all-linear")) == "all-linear"
    with pytest.raises(
        RefineryError, match="train.lora.target_modules: PEFT has no default for model type 'x'"
    ):
        target_modules("x", LoraSettings())
    with pytest.raises(RefineryError, match="CUDA GPU and the bitsandbytes"):
        quantization_config(LoraSettings(enabled=True, quantize_4bit=True))


def test_generation_metrics() -> None:
    exact = load_metric("exact_match").compute(predictions=["a  b", "c"], references=["a b", "d"])
    rouge = load_metric("rouge_l").compute(predictions=["the cat sat", ""], references=["the cat", ""])
    assert exact == {"exact_match": 0.5}
    assert rouge is not None and rouge["rouge_l"] == pytest.approx((0.8 + 1.0) / 2)
    each = load_metric("exact_match").compute(
        predictions=["a  b", "c"], references=["a b", "d"], return_per_example=True
    )
    assert each == {"exact_match": 0.5, "exact_match_per_example": [1.0, 0.0]}


def test_causal_lm_params_select_on_loss() -> None:
    with pytest.raises(
        ConfigError, match="train.metric_for_best_model must be 'loss' when task is causal_lm"
    ):
        task_type_for(parse_params({"task": "causal_lm"}))
    causal = parse_params({"task": "causal_lm", "train": {"metric_for_best_model": "loss"}})
    assert task_type_for(causal).name == "causal_lm"


def test_validation_reports_a_truncated_away_response_with_its_row(model_dir: Path) -> None:
    params = parse_params(
        {
            "task": "causal_lm",
            "train": {"early_stopping_patience": None},
            "validate": {"min_examples_per_class": 1},
        }
    )
    long = "when will my card arrive " * 4
    records = pd.DataFrame(
        {"instruction": ["what is the rate", long, "when will my card arrive", "what is the rate"],
         "output": ["exchange_rate", "card_arrival", "", "exchange_rate"]}
    ).assign(source_file="train.jsonl", source_row=[1, 2, 3, 4])  # fmt: skip
    tokenizer = load_chat_tokenizer(model_dir)
    result = validate_sft({"train": records}, params, tokenizer, max_length=16)
    failed = {o.name: o for o in result.failed}
    assert set(failed) == {"responses_survive_truncation", "few_examples_truncated", "output_not_empty",
                           "no_duplicate_examples"}  # fmt: skip
    assert "train.jsonl:2 '0'" in failed["responses_survive_truncation"].describe(10)
    assert [row.row for row in failed["output_not_empty"].offending] == [3]
    assert "responses_survive_truncation on train.jsonl" in result.failure_message(10)
    truncated = failed["few_examples_truncated"].fix
    assert "of 4 examples" in truncated and "more than validate.max_truncated_fraction = 0.05" in truncated
    assert "raise tokenize.max_length" in truncated
    assert "2 duplicate examples (50.0 %) exceed validate.max_duplicate_fraction" in failed[
        "no_duplicate_examples"
    ].describe(10)
    at_the_cap = validate_sft({"train": records}, params, tokenizer, max_length=16, model_cap=16)
    capped = next(o for o in at_the_cap.failed if o.name == "few_examples_truncated").fix
    assert "the model's maximum length is 16 tokens, so raising tokenize.max_length cannot help" in capped


def test_padding_with_the_eos_token_still_teaches_the_model_to_stop(model_dir: Path, tmp_path: Path) -> None:
    """SmolLM2 pads with its end-of-turn token: padding must be masked by position, not by id."""
    import shutil

    same_pad = tmp_path / "pad-is-eos"
    shutil.copytree(model_dir, same_pad)
    tokenizer = load_chat_tokenizer(model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(str(same_pad))
    eos = tokenizer.eos_token_id
    longer = [{"role": "user", "content": "when will my card arrive be brief"}, CHAT[1]]
    short, long = (encode_example(tokenizer, messages, None) for messages in (CHAT, longer))
    assert short.labels[-1] == long.labels[-1] == eos  # each response ends with a learned EOS

    trainer = _sft_trainer(same_pad, tmp_path, [short, long], pack_length=None)
    assert trainer.processing_class.pad_token_id == eos
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    padding = len(long.input_ids) - len(short.input_ids)
    assert batch["input_ids"][0].tolist() == short.input_ids + [eos] * padding
    assert batch["labels"][0].tolist() == short.labels + [IGNORE] * padding  # the real EOS keeps its label
    assert batch["labels"][1].tolist() == long.labels


def test_null_max_length_covers_every_validated_row_even_when_sampling_drops_the_longest(
    model_dir: Path,
) -> None:
    from tasks.task_types.causal_lm.records import split_sft
    from tasks.task_types.causal_lm.tokenization import tokenize
    from tasks.task_types.causal_lm.validation import validate_records

    params = parse_params(
        {
            "task": "causal_lm",
            "data": {"max_train_samples": 6, "validation_fraction": 0.2, "test_fraction": 0.2, "seed": 0},
            "train": {"base_model": str(model_dir), "early_stopping_patience": None},
            "tokenize": {"max_length": None},
            "validate": {"min_examples_per_class": 1, "max_duplicate_fraction": 1.0},
        }
    )
    short = ["what is the rate", "when will my card arrive"] * 10
    long = "when will my card arrive " * 6  # the longest row: most samples of 6 leave it out
    records = pd.DataFrame(
        {"instruction": [*short, long], "output": ["exchange_rate", "card_arrival"] * 10 + ["card_arrival"]}
    ).assign(source_file="train.jsonl", source_row=range(1, 22))
    result = validate_records({"train": records}, params)
    assert result.success, result.failure_message(10)
    splits = split_sft({"train": records}, params.data, params.sft)
    assert long not in set(splits.train["prompt"])  # the sampled train split lacks the longest row
    _, meta = tokenize(splits, model_dir, params)
    assert meta["truncated_examples"] == 0
    assert meta["max_length"] <= result.statistics["max_length"]
