"""Length-grouped batches in random order (tasks/training/sampling.py)."""

from __future__ import annotations

import pytest
import torch

from tasks.training.sampling import length_grouped_indices, row_lengths


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _padded(order: list[int], lengths: list[int], size: int) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in _batches(order, size))


LENGTHS = [(i * 37) % 61 + 3 for i in range(1003)]  # 1003 rows: 31 full batches of 32 and 11 rows left


def test_every_row_once_the_longest_batch_first_and_the_short_batch_last() -> None:
    order = length_grouped_indices(LENGTHS, 32, 4, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(len(LENGTHS)))
    batches = _batches(order, 32)
    assert max(LENGTHS) in [LENGTHS[i] for i in batches[0]]
    assert [len(b) for b in batches] == [32] * 31 + [11]  # a drop_last loader drops 11 rows, no full batch


def test_batches_pad_less_the_larger_the_groups_of_at_most_a_quarter_of_the_rows() -> None:
    def padded(groups: int, lengths: list[int] = LENGTHS) -> int:
        return _padded(
            length_grouped_indices(lengths, 32, groups, torch.Generator().manual_seed(0)), lengths, 32
        )

    shuffled = _padded(
        torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist(), LENGTHS, 32
    )
    assert padded(7) < padded(2) < padded(1) <= shuffled * 1.05
    assert padded(50) == padded(7)  # 1003 rows: groups of at most 7 batches of 32 (a quarter of the rows)
    many = LENGTHS * 8  # 8024 rows: groups of 50 batches fit
    assert padded(50, many) < padded(7, many) and padded(50, many) < 1.05 * sum(many)


def test_the_batch_order_is_random_not_longest_to_shortest() -> None:
    """transformers' sampler goes from the longest batch of each group to its shortest; here the
    shortest batch of the epoch lands anywhere, and seldom at the end."""
    last_is_shortest, positions = 0, []
    for seed in range(60):
        order = length_grouped_indices(LENGTHS[:992], 32, 7, torch.Generator().manual_seed(seed))
        longest_rows = [max(LENGTHS[i] for i in b) for b in _batches(order, 32)]
        shortest = longest_rows.index(min(longest_rows))
        positions.append(shortest)
        last_is_shortest += shortest == len(longest_rows) - 1
    assert last_is_shortest <= 8  # 1 in 30 by chance: 2 of 60 expected
    assert len(set(positions)) >= 15


def test_the_same_generator_state_gives_the_same_order_and_bad_sizes_fail() -> None:
    first = length_grouped_indices(LENGTHS, 16, 8, torch.Generator().manual_seed(7))
    assert first == length_grouped_indices(LENGTHS, 16, 8, torch.Generator().manual_seed(7))
    assert first != length_grouped_indices(LENGTHS, 16, 8, torch.Generator().manual_seed(8))
    with pytest.raises(ValueError, match="group_batches"):
        length_grouped_indices(LENGTHS, 16, 0)


def test_row_lengths_reads_the_length_column_or_counts_tokens() -> None:
    from datasets import Dataset

    assert row_lengths(Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]]})) == [2, 1, 3]
    assert row_lengths(Dataset.from_dict({"input_ids": [[1]], "length": [9]})) == [9]
    with pytest.raises(ValueError, match="train.group_by_length"):
        row_lengths(Dataset.from_dict({"text": ["a"]}))
