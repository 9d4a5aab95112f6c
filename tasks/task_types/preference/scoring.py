"""Scoring preference pairs: sequence log-probabilities and the DPO implicit reward.

A model's log-probability of an answer is the sum over its tokens given the prompt, on the same
ids and masks DPO trains on (TRL's preference collator). The implicit reward of an answer is
beta * (log p_policy - log p_reference); a pair is ranked right when the chosen answer's reward
is above the rejected one's (a tie is wrong, as in TRL's `rewards/accuracies`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import selective_log_softmax


def answer_logps(model: PreTrainedModel, pairs: Dataset, pad_token_id: int, batch_size: int) -> np.ndarray:
    """(pairs × 2) summed log-probabilities of the chosen and rejected answers under `model`."""
    collate = DataCollatorForPreference(pad_token_id=pad_token_id)
    rows = pairs.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"]).with_format(None)
    out: list[np.ndarray] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            ids = batch["input_ids"].to(model.device)
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(model.device)).logits
            token_logps = selective_log_softmax(logits[:, :-1].float(), ids[:, 1:])
            mask = batch["completion_mask"][:, 1:].to(model.device)
            sums = (token_logps * mask).sum(dim=1).cpu().numpy()
            half = len(sums) // 2
            out.append(np.stack([sums[:half], sums[half:]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


@dataclass(frozen=True)
class PairScores:
    """Per pair: the reward margin (chosen minus rejected) and whether chosen ranks above rejected."""

    margin: np.ndarray
    right: np.ndarray


def pair_scores(policy: np.ndarray, reference: np.ndarray, beta: float) -> PairScores:
    """Implicit-reward margins of (pairs × 2) chosen/rejected log-probs against the reference's."""
    rewards = beta * (np.asarray(policy, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    margin = rewards[:, 0] - rewards[:, 1]
    return PairScores(margin=margin, right=(margin > 0).astype(np.float64))


def preference_metrics(policy: np.ndarray, reference: np.ndarray, beta: float) -> dict[str, float]:
    """Preference accuracy, mean reward margin and the mean chosen / rejected log-probs of the policy."""
    scores = pair_scores(policy, reference, beta)
    n = len(scores.margin)
    return {
        "preference_accuracy": float(scores.right.mean()) if n else float("nan"),
        "reward_margin": float(scores.margin.mean()) if n else float("nan"),
        "logp_chosen": float(np.mean(policy[:, 0])) if n else float("nan"),
        "logp_rejected": float(np.mean(policy[:, 1])) if n else float("nan"),
        "n_test": n,
    }
