"""`task: preference`: params, pair records, the Great Expectations suite, tokenization and scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scripts.make_tiny_causal_lm import build_tiny_causal_lm
from tasks.core.config import ConfigError, Params, parse_params
from tasks.task_types import task_type_for
from tasks.task_types.causal_lm.templating import load_chat_tokenizer
from tasks.task_types.preference.records import canonical_pairs
from tasks.task_types.preference.scoring import answer_logps, pair_scores, preference_metrics
from tasks.task_types.preference.tokenization import encode_pair
from tasks.task_types.preference.validation import validate_pairs

WORDS = ["when will my card arrive", "what is the exchange rate", "card_arrival exchange_rate not sure"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), WORDS)


def preference_params(model_dir: Path, **preference: object) -> Params:
    return parse_params(
        {
            "task": "preference",
            "train": {"base_model": str(model_dir), "early_stopping_patience": None},
            "validate": {"min_examples_per_class": 1},
            "preference": preference,
        }
    )


def test_params_take_trl_loss_names_and_refuse_others_in_one_line(model_dir: Path) -> None:
    params = preference_params(model_dir, loss_type="ipo", beta=0.2)
    assert task_type_for(params).name == "preference" and params.preference.beta == 0.2
    with pytest.raises(
        ConfigError, match=r"^params: preference.loss_type must be one of TRL's DPO losses \("
    ):
        task_type_for(preference_params(model_dir, loss_type="dpo_but_better"))
    with pytest.raises(ConfigError, match=r"'preference.method' input should be 'dpo'"):
        preference_params(model_dir, method="orpo")
    with pytest.raises(ConfigError, match="preference.max_prompt_length must be below preference.max_length"):
        preference_params(model_dir, max_length=16, max_prompt_length=16)


def test_conversational_records_share_their_prompt_turns() -> None:
    user = {"role": "user", "content": "when will my card arrive"}
    frame = pd.DataFrame(
        {
            "chosen": [[user, {"role": "assistant", "content": "card_arrival"}]] * 2,
            "rejected": [
                [user, {"role": "assistant", "content": "exchange_rate"}],
                [{"role": "user", "content": "what is the rate"}, {"role": "assistant", "content": "x"}],
            ],
        }
    ).assign(source_file="chat.jsonl", source_row=[1, 2])
    pairs = canonical_pairs(frame, Params().preference)
    assert json.loads(pairs["prompt_messages"][0]) == [user] and pairs["prompt"][0] == user["content"]
    assert pairs["chosen"][0] == "card_arrival" and pairs["rejected"][0] == "exchange_rate"
    assert pairs["same_prompt"].tolist() == ["ok", "chosen and rejected have different prompt turns"]
    plain = pd.DataFrame(
        {"prompt": ["[URGENT] card lost"], "chosen": ["lost_or_stolen_card"], "rejected": ["[card_arrival]"]}
    )
    record = canonical_pairs(plain.assign(source_file="p.csv", source_row=[1]), Params().preference)
    assert record["problem"][0] == "ok" and record["prompt"][0] == "[URGENT] card lost"  # text, not JSON
    assert record["rejected"][0] == "[card_arrival]"


def test_every_validation_rule_fires_with_file_and_row(model_dir: Path) -> None:
    params = preference_params(model_dir, max_length=16, max_prompt_length=12)
    ask, long = "when will my card arrive", "when will my card arrive " * 3
    train = pd.DataFrame(
        {
            "prompt": [ask, "what is the exchange rate", ask, "what is the rate", ask, long, "my card"],
            "chosen": [
                "card_arrival",
                "",
                "card_arrival",
                "exchange_rate",
                "card_arrival",
                "card_arrival",
                "x",
            ],
            "rejected": ["not sure", "not sure", " ", "exchange_rate", "not sure", "not sure", None],
        }
    ).assign(source_file="train.jsonl", source_row=range(1, 8))
    user = {"role": "user", "content": "what is my rate"}
    chat = pd.DataFrame(
        {
            "chosen": [[user, {"role": "assistant", "content": "exchange_rate"}]],
            "rejected": [
                [{"role": "user", "content": "other"}, {"role": "assistant", "content": "not sure"}]
            ],
        }
    ).assign(source_file="test.jsonl", source_row=[1])
    test = pd.concat([chat, pd.DataFrame({"chosen": [[{"role": "user", "content": ask},
                                                        {"role": "assistant", "content": "card_arrival"}]],
                                          "rejected": [[{"role": "user", "content": ask},
                                                        {"role": "assistant", "content": "not sure"}]]})
                      .assign(source_file="test.jsonl", source_row=[2])], ignore_index=True)  # fmt: skip
    result = validate_pairs({"train": train, "test": test}, params)
    failed = {o.name: o for o in result.failed}
    rows: dict[str, list[tuple[str, int | None]]] = {}
    for outcome in result.failed:
        rows.setdefault(outcome.name, []).extend((r.file, r.row) for r in outcome.offending)
    assert rows["chosen_not_empty"] == [("train.jsonl", 2)]
    assert rows["rejected_not_empty"] == [("train.jsonl", 3), ("train.jsonl", 7)]
    assert rows["pairs_well_formed"] == [("train.jsonl", 7)]
    assert rows["chosen_differs_from_rejected"] == [("train.jsonl", 4)]
    assert rows["no_duplicate_pairs"] == [("train.jsonl", 1), ("train.jsonl", 5)]
    assert rows["same_prompt_in_both"] == [("test.jsonl", 1)]
    assert rows["no_train_test_leakage"] == [("test.jsonl", 2)]
    assert rows["few_pairs_truncated"] == rows["few_prompts_truncated"] == [("train.jsonl", 6)]
    assert "more than validate.max_truncated_fraction = 0.05" in failed["few_prompts_truncated"].fix
    message = result.failure_message(10)
    assert "\n" not in message and "chosen_not_empty on train.jsonl column 'chosen' (train.jsonl:2" in message

    missing = validate_pairs({"train": train.drop(columns="rejected")}, params)
    assert [o.name for o in missing.failed] == ["rejected_present"]
    clean = validate_pairs({"train": train.head(1)}, params)
    assert clean.success, clean.failure_message(10)


def test_pairs_keep_the_end_of_long_prompts_and_cut_answers_to_max_length(model_dir: Path) -> None:
    tokenizer = load_chat_tokenizer(model_dir)
    prompt = [{"role": "user", "content": "when will my card arrive " * 3}]
    whole = encode_pair(tokenizer, (prompt, "card_arrival", "not sure"), None, None)
    cut = encode_pair(tokenizer, (prompt, "card_arrival", "not sure"), 12, 8)
    assert cut.prompt_ids == whole.prompt_ids[-8:] and cut.prompt_tokens == len(whole.prompt_ids)
    assert cut.rejected_ids == whole.rejected_ids[:4] and len(cut.chosen_ids) <= 4
    assert cut.truncated(12, 8) and not whole.truncated(whole.total_tokens, None)
    assert tokenizer.decode(whole.chosen_ids).startswith("card_arrival")


def test_answer_logps_sum_the_answer_tokens_given_the_prompt(model_dir: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    tokenizer = load_chat_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    prompt = [{"role": "user", "content": "what is the rate"}]
    pair = encode_pair(tokenizer, (prompt, "exchange_rate", "not sure"), None, None)
    rows = Dataset.from_dict({"prompt_ids": [pair.prompt_ids] * 3, "chosen_ids": [pair.chosen_ids] * 3,
                              "rejected_ids": [pair.rejected_ids] * 3})  # fmt: skip
    got = answer_logps(model, rows, int(tokenizer.pad_token_id), batch_size=2)

    def by_hand(answer: list[int]) -> float:
        ids = torch.tensor([pair.prompt_ids + answer])
        with torch.inference_mode():
            logps = model(input_ids=ids).logits[0].log_softmax(-1)
        start = len(pair.prompt_ids)
        return sum(float(logps[start + k - 1, token]) for k, token in enumerate(answer))

    expected = [by_hand(pair.chosen_ids), by_hand(pair.rejected_ids)]
    assert got.shape == (3, 2) and np.allclose(got, [expected] * 3, atol=1e-4)


def test_preference_accuracy_and_margin_on_a_hand_checked_case() -> None:
    policy = np.array([[-1.0, -3.0], [-2.0, -2.0], [-5.0, -1.0]])
    reference = np.array([[-2.0, -2.0], [-2.0, -2.0], [-4.0, -2.0]])
    # rewards 0.5 * (policy - reference): (0.5, -0.5), (0, 0), (-0.5, 0.5); margins 1, 0 (a tie), -1
    scores = pair_scores(policy, reference, beta=0.5)
    assert scores.margin.tolist() == [1.0, 0.0, -1.0] and scores.right.tolist() == [1.0, 0.0, 0.0]
    metrics = preference_metrics(policy, reference, beta=0.5)
    assert metrics["preference_accuracy"] == pytest.approx(1 / 3) and metrics["reward_margin"] == 0.0
    assert metrics["logp_chosen"] == pytest.approx(-8 / 3) and metrics["logp_rejected"] == pytest.approx(-2.0)
    assert metrics["n_test"] == 3
