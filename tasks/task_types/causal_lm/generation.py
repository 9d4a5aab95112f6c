"""Scoring a fine-tuned causal LM on the test split: loss, perplexity and greedy generations.

Eval loss is the mean cross-entropy over response tokens (the same masking as training), and
perplexity its exponential. Generation is greedy, in left-padded batches, from the prompt the
chat template renders (every turn before the last assistant answer); outputs are scored against
that answer with exact match and ROUGE-L through local `evaluate` modules (tasks/metrics/).
When the records came from a classification dataset (`sft.from_classification`), answers are
also checked against the known label set: `not_a_label` is the share of answers that are no
label at all (they count as wrong), the clearest sign a classifier-like LLM is off its task.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from tasks.core.config import EvaluateConfig, Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.data.splitting import SPLITS, split_off
from tasks.metrics.loading import load_metric
from tasks.task_types.causal_lm.records import NO_LABEL
from tasks.task_types.causal_lm.templating import IGNORE, load_chat_tokenizer, render
from tasks.task_types.causal_lm.training import collator
from tasks.tokenization.cache import load_tokenized


def prompt_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every message before the last assistant answer: what the model is asked."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def language_model_loss(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int
) -> dict[str, float]:
    """Mean loss per response token over `dataset` (labels -100 elsewhere) and its perplexity."""
    collate = collator(tokenizer)
    rows = dataset.select_columns(["input_ids", "attention_mask", "labels"]).with_format(None)
    total, tokens = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            inputs = {name: tensor.to(model.device) for name, tensor in batch.items()}
            counted = int((inputs["labels"][:, 1:] != IGNORE).sum())  # the loss predicts shifted labels
            if counted:
                total += float(model(**inputs).loss) * counted
                tokens += counted
    loss = total / tokens if tokens else float("nan")
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 700.0)) if tokens else float("nan")}


def generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], cfg: EvaluateConfig
) -> list[str]:
    """Greedy continuations of `prompts` (already templated), in batches, without the prompt."""
    tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt's last real token
    outputs: list[str] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(prompts), cfg.batch_size):
            batch = tokenizer(
                prompts[start : start + cfg.batch_size],
                add_special_tokens=False,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            generated = model.generate(  # type: ignore[operator]
                **batch,
                max_new_tokens=cfg.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = generated[:, batch["input_ids"].shape[1] :]
            outputs += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return outputs


@dataclass(frozen=True)
class GenerationResult:
    """The test metrics and the table of generations they came from."""

    metrics: dict[str, float]
    table: pd.DataFrame


def score_generations(
    outputs: list[str], references: list[str]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Exact match and mean ROUGE-L of the outputs, and both per example (the champion
    comparison bootstraps these)."""
    means: dict[str, float] = {}
    per_example: dict[str, list[float]] = {}
    for name in ("exact_match", "rouge_l"):
        scores = load_metric(name).compute(
            predictions=outputs, references=references, return_per_example=True
        )
        assert scores is not None
        means[name], per_example[name] = scores[name], [float(s) for s in scores[f"{name}_per_example"]]
    return means, per_example


def generation_rows(test: pd.DataFrame, cfg: EvaluateConfig) -> pd.DataFrame:
    """The test rows generations are scored on: all of them, or `max_generation_examples` of them
    sampled with `evaluate.seed`, stratified by label (a test file grouped by class would otherwise
    score only its first classes). The champion comparison takes the same rows."""
    if cfg.max_generation_examples is None or cfg.max_generation_examples >= len(test):
        return test
    _, sample = split_off(test, cfg.max_generation_examples, cfg.seed, "evaluate.max_generation_examples")
    return sample


def known_labels(layout: RunLayout, params: Params) -> list[str] | None:
    """The labels answers should be one of: every split's `label` when the records came from a
    classification dataset (`sft.from_classification`), else None (free-form answers)."""
    if not params.sft.from_classification:
        return None
    labels: set[str] = set()
    for name in SPLITS:
        path = layout.splits_dir / f"{name}.parquet"
        if path.is_file():
            labels |= {str(label) for label in pd.read_parquet(path, columns=["label"])["label"]}
    return sorted(labels - {NO_LABEL})


def not_a_label(outputs: list[str], labels: Collection[str]) -> list[bool]:
    """Whether each output is none of `labels`, compared as exact match compares (whitespace collapsed)."""
    known = {" ".join(label.split()) for label in labels}
    return [" ".join(output.split()) not in known for output in outputs]


def generate_answers(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: pd.DataFrame, cfg: EvaluateConfig
) -> list[str]:
    """Greedy answers to each row's conversation, prompted with `tokenizer`'s chat template."""
    conversations = [json.loads(text) for text in rows["messages"]]
    prompts = [render(tokenizer, prompt_messages(m), generation=True) for m in conversations]
    return generate(model, tokenizer, prompts, cfg)


def evaluate_causal_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test: pd.DataFrame,
    tokenized: Dataset,
    cfg: EvaluateConfig,
    labels: Collection[str] | None = None,
) -> GenerationResult:
    """Loss and perplexity on the tokenized test split, generations scored on (a sample of) its rows;
    with `labels`, the share and count of answers that are none of them."""
    if len(test) == 0:
        raise RefineryError("evaluate: the test split is empty; nothing to score")
    metrics = language_model_loss(model, tokenizer, tokenized, cfg.batch_size)
    rows = generation_rows(test, cfg)
    outputs = generate_answers(model, tokenizer, rows, cfg)
    references = [str(r) for r in rows["reference"]]
    scores, per_example = score_generations(outputs, references)
    table = pd.DataFrame(
        {
            "prompt": rows["prompt"].to_numpy(),
            "reference": references,
            "output": outputs,
            "exact_match": per_example["exact_match"],
            "rouge_l": [round(s, 4) for s in per_example["rouge_l"]],
            "source_file": rows["source_file"].to_numpy(),
            "source_row": rows["source_row"].to_numpy(),
        }
    )
    if labels is not None:
        table.insert(3, "not_a_label", not_a_label(outputs, labels))
        count = int(table["not_a_label"].sum())
        scores |= {"not_a_label": count / len(rows) if len(rows) else 0.0, "n_not_a_label": count}
    return GenerationResult({**metrics, **scores, "n_test": len(test), "n_generated": len(rows)}, table)


def load_causal_lm(model_dir: Path) -> PreTrainedModel:
    """The trained (merged) causal LM, on the GPU when there is one."""
    if not (model_dir / "config.json").is_file():
        raise RefineryError(f"evaluate: no trained model in {model_dir}; run the train step first")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))  # type: ignore[arg-type]
    return model


def evaluate_run(params: Params, layout: RunLayout) -> dict[str, float]:
    """Score the run's causal LM on its test split; write generations.csv; return the metrics."""
    model = load_causal_lm(layout.model_dir)
    tokenizer = load_chat_tokenizer(layout.model_dir)
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    tokenized = load_tokenized(layout)["test"]
    labels = known_labels(layout, params)
    result = evaluate_causal_lm(model, tokenizer, test, tokenized, params.evaluate, labels)
    layout.eval_dir.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(layout.generations_csv, index=False)
    return result.metrics
