"""Length-grouped batches whose order is shuffled (`train.group_by_length`, `train.length_group_batches`).

Batches of rows of similar length pad less, so training does fewer wasted FLOPs. transformers'
`LengthGroupedSampler` builds them by sorting mega-batches of 50 batches by length, longest first, and
keeps that order: within each mega-batch the model sees its batches from the longest rows to the
shortest, a saw-tooth curriculum that repeats through the epoch and ends every epoch on the shortest
rows. On sentiment this cost accuracy against random batches (the ablation in benchmarks/ablation.py).
`length_grouped_indices` builds the same batches, then shuffles their order across the whole epoch
(the batch with the longest row first, so an out-of-memory error comes at the first step), and takes
the group size from params: fewer batches per group mix lengths more within a batch and pad more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import Trainer


def length_grouped_indices(
    lengths: Sequence[int], batch_size: int, group_batches: int, generator: torch.Generator | None = None
) -> list[int]:
    """A permutation of `range(len(lengths))` whose consecutive `batch_size` slices are batches of rows
    of similar length: rows drawn at random in groups of `group_batches` batches, each group sorted by
    length and cut into batches, then every batch of the epoch in random order, the longest batch first.
    A group holds at most a quarter of the rows (transformers' rule too): on a small dataset, batches
    sorted over all of it would each hold one narrow band of lengths, and the model stopped learning
    on such batches in a 200-row test. The last batch of the epoch (`len(lengths) % batch_size` rows,
    if any) stays last, so a `drop_last` loader drops a short batch and no full one."""
    if batch_size < 1 or group_batches < 1:
        raise ValueError(f"batch_size ({batch_size}) and group_batches ({group_batches}) must be >= 1")
    order = torch.randperm(len(lengths), generator=generator).tolist()
    group = min(group_batches, max(1, len(lengths) // (4 * batch_size))) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        rows = sorted(order[start : start + group], key=lambda i: lengths[i], reverse=True)
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    # groups are whole batches, so only the last group can end in a short batch: it stays last
    short = batches.pop() if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    if shuffled:  # the batch holding the longest row goes first
        longest = max(range(len(shuffled)), key=lambda b: lengths[shuffled[b][0]])
        shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
    return [i for b in [*shuffled, short] for i in b]


class ShuffledLengthGroupedSampler(Sampler[int]):
    """`length_grouped_indices` as a sampler, a new order each epoch. Like transformers'
    `LengthGroupedSampler`, it draws from `generator` or, without one, from torch's global generator,
    which the Trainer seeds (and accelerate keeps in step across ranks)."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        group_batches: int,
        generator: torch.Generator | None = None,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.group_batches = group_batches
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(length_grouped_indices(self.lengths, self.batch_size, self.group_batches, self.generator))


def row_lengths(dataset: Any, input_name: str = "input_ids") -> list[int]:
    """Each row's length: the `length` column where the dataset has one, else its `input_name` tokens."""
    if "length" in dataset.column_names:
        return [int(n) for n in dataset["length"]]
    if input_name not in dataset.column_names:
        raise ValueError(f"train.group_by_length: the train split has no {input_name!r} or 'length' column")
    return [len(ids) for ids in dataset[input_name]]


class LengthGroupedTrainerMixin:
    """Put before a transformers `Trainer` (or TRL trainer) in the bases: with `train_sampling_strategy`
    "group_by_length", its train sampler is `ShuffledLengthGroupedSampler` over
    `length_group_batches` batches per group (`train.length_group_batches`), every other strategy
    unchanged."""

    def __init__(self, *args: Any, length_group_batches: int = 50, **kwargs: Any) -> None:
        self.length_group_batches = length_group_batches
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> Sampler[int] | None:
        dataset = self.train_dataset if train_dataset is None else train_dataset  # type: ignore[attr-defined]
        args = self.args  # type: ignore[attr-defined]
        if args.train_sampling_strategy != "group_by_length" or not hasattr(dataset, "column_names"):
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        batch = args.train_batch_size * args.gradient_accumulation_steps
        return ShuffledLengthGroupedSampler(row_lengths(dataset), batch, self.length_group_batches)


class LengthGroupedTrainer(LengthGroupedTrainerMixin, Trainer):
    """The task types' `Trainer`: `Trainer(...)` plus `length_group_batches=cfg.length_group_batches`."""
