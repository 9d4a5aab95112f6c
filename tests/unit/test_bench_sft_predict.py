"""The sft and predict benchmark workloads' own arithmetic: padding, non-padding tokens, FLOPs per
token, the plain script's records, and the ratio rows and verdicts of their tables."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from benchmarks.predict_bench import padded_tokens, padding_profile, predict_table
from benchmarks.sft_bench import (
    SftSetup,
    lora_flops_per_token,
    non_padding_tokens,
    padding_orders,
    prompt_completion,
    sft_rows,
    sft_table,
)


def test_padded_tokens_pads_each_batch_to_its_longest_row() -> None:
    lengths = np.array([3, 1, 5, 2, 2])
    assert padded_tokens(lengths, np.arange(5), 2) == 3 * 2 + 5 * 2 + 2 * 1
    assert padded_tokens(lengths, np.array([2, 0, 3, 4, 1]), 2) == 5 * 2 + 2 * 2 + 1 * 1


def test_padding_profile_token_order_pads_least_and_bounds_the_ratio() -> None:
    # characters mislead: the 40-character text is 2 tokens, the 5-character one 9
    lengths = np.array([9, 1, 8, 2, 1, 9, 2, 8])
    chars = np.array([5, 10, 6, 40, 30, 7, 20, 4])
    found = padding_profile(lengths, chars, 2)
    assert found["real_tokens"] == 40 and found["mean_tokens"] == 5.0
    assert found["padded_token_order"] == 9 * 2 + 8 * 2 + 2 * 2 + 1 * 2
    assert found["padded_file_order"] == 9 * 2 + 8 * 2 + 9 * 2 + 8 * 2
    assert found["padded_character_order"] > found["padded_token_order"]
    assert found["padding_bound"] == pytest.approx(68 / 40)


def test_non_padding_tokens_counts_every_id_once_per_epoch() -> None:
    assert non_padding_tokens([[1, 2, 3], [4], []], 2.0) == 8.0
    assert non_padding_tokens([], 1.0) == 0.0


def test_length_grouped_batches_pad_less_than_random_ones() -> None:
    lengths = [20 + (i * 37) % 100 for i in range(640)]
    found = padding_orders(lengths, 16, 0)
    assert 1.0 <= found["length_grouped"] < found["random"]


def test_lora_flops_count_forward_and_activation_gradients_of_every_matmul() -> None:
    config = {"hidden_size": 4, "num_hidden_layers": 2, "vocab_size": 10, "num_key_value_heads": 1,
              "num_attention_heads": 2, "intermediate_size": 8}  # fmt: skip
    per_layer = 2 * 16 + 2 * 4 * 2 + 3 * 4 * 8  # q, o; k, v (kv width 2); gate, up, down
    assert lora_flops_per_token(config) == 4 * (2 * per_layer + 10 * 4)


def test_prompt_completion_keeps_every_turn_before_the_answer() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "Classify: hi"},
        {"role": "assistant", "content": "greeting"},
    ]
    (record,) = prompt_completion([json.dumps(messages)])
    assert record == {"prompt": messages[:2], "completion": messages[2:]}


def _sft_result(plain_rate: float, ours_rate: float) -> dict:
    run = {"wall_s": 100.0, "train_runtime_s": 50.0, "peak_rss_mb": 4000.0}
    median = {"plain": {**run, "tokens_per_s": plain_rate}, "refinery": {**run, "tokens_per_s": ours_rate}}
    return {
        "device": "cpu", "precision": "fp32", "peak_flops": 1e11, "flops_per_token": 1e9, "repeats": 1,
        "train_examples": 43, "modes": {"padded": {"median": median}},
    }  # fmt: skip


def test_sft_rows_give_refinery_over_plain_and_utilisation() -> None:
    rows = {metric: (plain, ours, ratio) for metric, plain, ours, ratio in sft_rows(_sft_result(60.0, 96.0))}
    assert rows["padded: tokens_per_s"] == (60.0, 96.0, pytest.approx(1.6))
    assert rows["padded: wall_s"][2] == 1.0
    assert rows["padded: utilisation (fp32 peak)"][:2] == (pytest.approx(0.6), pytest.approx(0.96))


def test_sft_table_says_whether_the_target_is_met() -> None:
    assert "1.60 ≥ 1.5: met" in sft_table(_sft_result(60.0, 96.0))
    assert "1.20 ≥ 1.5: **missed**" in sft_table(_sft_result(60.0, 72.0))


def test_sft_setup_checks_the_modes_and_takes_the_sizes_and_precision() -> None:
    args = argparse.Namespace(
        sft_modes="padded,stuffed", quick=False, repeats=1, sft_train_samples=10, sft_test_samples=2,
        precision="bf16",
    )  # fmt: skip
    with pytest.raises(SystemExit, match="unknown mode"):
        SftSetup.from_args(args)
    setup = SftSetup.from_args(argparse.Namespace(**{**vars(args), "sft_modes": "packed"}))
    assert (setup.modes, setup.train_samples, setup.test_samples, setup.precision) == (
        ("packed",),
        10,
        2,
        "bf16",
    )


def test_predict_table_shows_each_set_and_its_ratio() -> None:
    padding = {"real_tokens": 100, "mean_tokens": 10.0, "padded_file_order": 250, "padded_token_order": 110,
               "padded_character_order": 140, "padding_bound": 250 / 110}  # fmt: skip
    found = {
        "texts": 10, "ratio": 2.25, "label_agreement": 1.0, "padding": padding,
        "texts_per_s": {"plain": 100.0, "refinery": 225.0, "refinery_character_order": 180.0},
        "command": {"wall_s": 12.0, "texts_per_s": 0.8},
    }  # fmt: skip
    table = predict_table({"batch_size": 64, "threads": 2, "repeats": 3, "sets": {"sst2": found}})
    row = next(line for line in table.splitlines() if line.startswith("| sst2"))
    assert "| 100 | 225 | 2.25 | 180 (1.80) | 2.50, 1.10, 1.40 | 100.00% |" in row
