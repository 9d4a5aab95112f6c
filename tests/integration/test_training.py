"""Training on a tiny model: the loss falls, an interrupted run resumes from its checkpoint, and a
finished one is reused by a run with the same inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tasks.core.config import DataConfig, TokenizeConfig, TrainConfig
from tasks.models.tokenizers import load_tokenizer
from tasks.task_types.classification.records import split_frames
from tasks.task_types.classification.tokenization import tokenize_splits
from tasks.task_types.classification.training import train_classifier
from tasks.training.checkpoints import COMPLETE_MARKER
from tasks.training.precision import auto_cpu_precision
from tasks.training.resumption import SAVED_MARKER
from tests.integration.conftest import banking_sample, tiny_params

pytestmark = pytest.mark.integration


class Interrupt(TrainerCallback):
    """Stops the process-equivalent of a kill after `at_step` steps."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step >= self.at_step:
            raise KeyboardInterrupt(f"interrupted at step {state.global_step}")


def _tokenized(model_dir: Path) -> tuple[Any, list[str]]:
    frame = banking_sample()
    frame["source_file"], frame["source_row"] = "sample.csv", range(1, len(frame) + 1)
    cfg = DataConfig(test_path=None, label_column="category")
    splits = split_frames({"train": frame}, cfg)
    return tokenize_splits(splits, load_tokenizer(model_dir), 32, TokenizeConfig()), splits.labels


def test_interrupted_training_resumes_from_last_checkpoint(tmp_path: Path, tiny_base_model: Path) -> None:
    tokenized, labels = _tokenized(tiny_base_model)
    tokenizer = load_tokenizer(tiny_base_model)
    cfg = TrainConfig(
        base_model=str(tiny_base_model),
        max_steps=8,
        batch_size=8,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=2,
        early_stopping_patience=None,
        save_total_limit=10,
        progress_bars=False,
    )
    out = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(tokenized, tokenizer, tiny_base_model, labels, cfg, out, callbacks=[Interrupt(5)])
    assert (out / "checkpoint-4").is_dir() and not (out / COMPLETE_MARKER).exists()

    trainer, summary = train_classifier(tokenized, tokenizer, tiny_base_model, labels, cfg, out)
    assert summary["resumed"] is True and summary["global_steps"] == 8
    assert (out / COMPLETE_MARKER).exists()
    evaluated_at = [e["step"] for e in trainer.state.log_history if "eval_loss" in e]
    assert evaluated_at == [2, 4, 6, 8]  # the resumed state carries the first attempt's evaluations

    _, again = train_classifier(tokenized, tokenizer, tiny_base_model, labels, cfg, out)
    assert again["resumed"] is False  # a finished run is not resumed: same inputs train afresh


def test_a_cut_or_unmarked_last_checkpoint_falls_back_to_the_one_before(
    tmp_path: Path, tiny_base_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenized, labels = _tokenized(tiny_base_model)
    tokenizer = load_tokenizer(tiny_base_model)
    cfg = TrainConfig(
        base_model=str(tiny_base_model),
        max_steps=8,
        batch_size=8,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=2,
        early_stopping_patience=None,
        save_total_limit=10,
        progress_bars=False,
    )
    out = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(tokenized, tokenizer, tiny_base_model, labels, cfg, out, callbacks=[Interrupt(7)])
    weights = out / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut by a full disk or a kill
    (out / "checkpoint-4" / SAVED_MARKER).unlink()  # killed while the Trainer was still writing it

    trainer, summary = train_classifier(tokenized, tokenizer, tiny_base_model, labels, cfg, out)

    warning = capsys.readouterr().err
    assert "checkpoint-6 not used for resuming: model.safetensors cannot be read" in warning
    assert "checkpoint-4 not used for resuming: it was not completely written" in warning
    assert "resuming from checkpoint-2" in warning
    assert summary["resumed"] is True and summary["checkpoints_skipped"] == 2
    assert summary["global_steps"] == 8
    evaluated_at = [e["step"] for e in trainer.state.log_history if "eval_loss" in e]
    assert evaluated_at == [2, 4, 6, 8]  # steps 3-8 trained again from checkpoint-2


def test_loss_falls_on_a_fixed_tiny_set(tmp_path: Path, tiny_base_model: Path) -> None:
    tokenized, labels = _tokenized(tiny_base_model)
    cfg = TrainConfig(
        base_model=str(tiny_base_model),
        epochs=8,
        batch_size=16,
        learning_rate=5e-3,
        early_stopping_patience=None,
        logging_steps=5,
        progress_bars=False,
    )
    trainer, summary = train_classifier(
        tokenized, load_tokenizer(tiny_base_model), tiny_base_model, labels, cfg, tmp_path / "ckpt"
    )
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses[-1] < losses[0] * 0.9
    assert summary["epochs_completed"] == pytest.approx(8.0)
    # precision `auto`: mixed precision on CUDA; on a CPU the precision study's choice (fp32 without one)
    on_cuda = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert summary["precision"] == (on_cuda if torch.cuda.is_available() else auto_cpu_precision())


def test_a_finished_training_is_reused_by_a_run_with_the_same_inputs(
    tmp_path: Path, tiny_base_model: Path, sample_csv: Path
) -> None:
    from tasks.core.config import load_params
    from tasks.core.layout import RunLayout
    from tasks.steps import tokenization, training, validation

    params_path = tiny_params(tmp_path, tiny_base_model, sample_csv, train={"max_steps": 4})

    def run(name: str, **overrides: Any) -> tuple[RunLayout, dict[str, Any]]:
        params = load_params(params_path, overrides)
        layout = RunLayout(tmp_path / name)
        validation.run_step(params, layout)
        tokenization.run_step(params, layout)
        return layout, training.run_step(params, layout)

    first_dir, first = run("first")
    again_dir, again = run("again")
    assert "reused" not in first and again["reused"] is True
    assert again["checkpoint_dir"] == first["checkpoint_dir"] and again["global_steps"] == 4
    weights = "model.safetensors"
    assert (again_dir.model_dir / weights).read_bytes() == (first_dir.model_dir / weights).read_bytes()
    assert (again_dir.train_history).read_text() == (first_dir.train_history).read_text()

    _, changed = run("changed", **{"train.learning_rate": 1e-3})
    assert "reused" not in changed and changed["checkpoint_dir"] != first["checkpoint_dir"]
    _, retrained = run("retrained", **{"train.reuse_trained": False})
    assert "reused" not in retrained and retrained["checkpoint_dir"] == first["checkpoint_dir"]


def test_a_compiled_model_trains_and_saves_plain_weights(tmp_path: Path, tiny_base_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from tasks.models.lora import save_trained

    tokenized, labels = _tokenized(tiny_base_model)
    # fp32 pinned: under bf16, accelerate wraps trainer.model's forward in autocast, and the
    # comparison below is between the saved weights and the trained ones, not between precisions
    cfg = TrainConfig(
        base_model=str(tiny_base_model), epochs=1, batch_size=16, early_stopping_patience=None,
        progress_bars=False, torch_compile=True, precision="fp32",
    )  # fmt: skip
    trainer, summary = train_classifier(
        tokenized, load_tokenizer(tiny_base_model), tiny_base_model, labels, cfg, tmp_path / "ckpt"
    )
    assert type(trainer.model_wrapped).__name__ == "OptimizedModule"  # ran through torch.compile
    assert summary["global_steps"] > 0
    save_trained(trainer.model, tmp_path / "model", tiny_base_model)
    # the saved weights carry no `_orig_mod.` prefix: they load into a plain model, nothing missing
    reloaded, info = AutoModelForSequenceClassification.from_pretrained(
        str(tmp_path / "model"), output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = {k: torch.tensor([tokenized["test"][0][k]]) for k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        expected = trainer.model.eval()(**batch).logits
        assert torch.allclose(reloaded.eval()(**batch).logits, expected, atol=1e-5)


def test_the_trainer_draws_length_grouped_batches_in_random_order(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    from torch.utils.data import RandomSampler
    from transformers import DataCollatorWithPadding

    from tasks.task_types.classification.training import load_base_model
    from tasks.training.arguments import training_arguments
    from tasks.training.sampling import LengthGroupedTrainer, ShuffledLengthGroupedSampler

    tokenized, labels = _tokenized(tiny_base_model)
    train = tokenized["train"]
    cfg = TrainConfig(
        base_model=str(tiny_base_model), batch_size=8, gradient_accumulation_steps=2, length_group_batches=3,
        progress_bars=False, precision="fp32",
    )  # fmt: skip
    trainer = LengthGroupedTrainer(
        length_group_batches=cfg.length_group_batches,
        model=load_base_model(tiny_base_model, labels, cfg.lora),
        args=training_arguments(cfg, tmp_path / "grouped", evaluate=False),
        train_dataset=train,
        data_collator=DataCollatorWithPadding(load_tokenizer(tiny_base_model)),
    )
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, ShuffledLengthGroupedSampler)
    assert (sampler.batch_size, sampler.group_batches) == (16, 3)  # groups the accumulated batch
    first = next(iter(trainer.get_train_dataloader()))
    assert first["input_ids"].shape[1] == max(len(ids) for ids in train["input_ids"])  # longest first
    random = TrainConfig(base_model=str(tiny_base_model), group_by_length=False, progress_bars=False)
    trainer.args = training_arguments(random, tmp_path / "random", evaluate=False)
    assert isinstance(trainer._get_train_sampler(), RandomSampler)
