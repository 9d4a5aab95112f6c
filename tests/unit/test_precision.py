"""Which precision `train.precision` resolves to on each kind of hardware, what it refuses, what
`auto` reads from the precision study, and what each variant really computes in while training."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback

from tasks.core.config import ConfigError, TrainConfig
from tasks.training import precision
from tasks.training.arguments import (
    cpu_has_native_bf16,
    cuda_has_tf32,
    training_arguments,
    training_precision,
)
from tasks.training.checkpoints import checkpoint_key, fit
from tasks.training.precision import auto_cpu_precision
from tasks.training.precision_modes import linear_layers_in_bf16, matmul_backend, reduced_precision_matmuls
from tests.fixtures import build_tiny_classifier

CPU = not torch.cuda.is_available()


@pytest.mark.parametrize(
    ("cuda", "cuda_bf16", "expected"),
    [
        (True, True, "bf16"),  # Ampere and newer
        (True, False, "fp16"),  # older GPUs: fp16 with loss scaling
        (False, False, "fp32"),  # CPU: bf16 autocast cost accuracy beyond the 0.5-point budget
    ],
)
def test_auto_is_mixed_precision_on_cuda_only(cuda: bool, cuda_bf16: bool, expected: str) -> None:
    assert training_precision("auto", cuda, cuda_bf16) == expected


def test_explicit_precision_is_kept_where_the_hardware_has_it() -> None:
    assert training_precision("fp32", True, True) == "fp32"
    assert training_precision("bf16", False, False) == "bf16"  # asked for on a CPU
    assert training_precision("fp16", True, False) == "fp16"
    for variant in ("fp32_bf16_matmul", "bf16_linear"):
        assert training_precision(variant, False, False) == variant
        assert training_precision(variant, True, True) == variant


def test_impossible_precision_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.precision: fp16 needs a CUDA GPU"):
        training_precision("fp16", False, False)
    with pytest.raises(ConfigError, match=r"train\.precision: this CUDA GPU has no bf16"):
        training_precision("bf16", True, False)
    with pytest.raises(ConfigError, match=r"train\.precision: this CUDA GPU has no bf16 for bf16_linear"):
        training_precision("bf16_linear", True, False)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16(info)
    info.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_fp32_training_arguments_have_no_autocast(tmp_path: Path) -> None:
    args = training_arguments(TrainConfig(precision="fp32"), tmp_path)
    assert not args.bf16 and not args.fp16 and not args.torch_compile
    assert args.tf32 is (True if cuda_has_tf32() else None)  # TF32 only where tensor cores have it


def test_torch_compile_is_passed_to_the_trainer(tmp_path: Path) -> None:
    assert training_arguments(TrainConfig(torch_compile=True), tmp_path).torch_compile


def _decision(path: Path, variant: str, flags: list[str]) -> Path:
    path.write_text(json.dumps({"precision": variant, "cpu_flags": flags}), encoding="utf-8")
    return path


def test_auto_on_a_cpu_follows_the_committed_study_where_the_cpu_has_its_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    decision = _decision(tmp_path / "precision_study.json", "bf16_linear", ["avx512_bf16"])
    assert auto_cpu_precision(decision, info) == "bf16_linear"
    assert training_precision("auto", False, False, auto_cpu_precision(decision, info)) == "bf16_linear"
    assert (
        training_precision("auto", True, True, auto_cpu_precision(decision, info)) == "bf16"
    )  # CUDA: as before
    _decision(decision, "bf16_linear", ["amx_bf16"])  # measured on a CPU with AMX: not this one
    assert auto_cpu_precision(decision, info) == "fp32"
    assert auto_cpu_precision(tmp_path / "none.json", info) == "fp32"  # no study committed: fp32


def test_a_broken_decision_file_is_one_line_naming_it(tmp_path: Path) -> None:
    decision = _decision(tmp_path / "precision_study.json", "fp16", [])
    with pytest.raises(ConfigError, match=r"precision_study.json: precision 'fp16' is not one of"):
        auto_cpu_precision(decision)
    decision.write_text("{", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"precision_study.json: cannot read the precision study's decision"
    ):
        auto_cpu_precision(decision)


def test_each_variant_and_each_study_decision_is_its_own_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_tiny_classifier(tmp_path / "model", ["x", "y"])

    def key(variant: str) -> str:
        return checkpoint_key("tokens", TrainConfig(precision=variant), model, "code")

    keys = {v: key(v) for v in ("auto", "fp32", "bf16", "fp32_bf16_matmul", "bf16_linear")}
    assert len(set(keys.values())) == len(keys)  # a bf16_linear run never reuses an fp32 one
    monkeypatch.setattr(precision, "DECISION_FILE", _decision(tmp_path / "study.json", "bf16_linear", []))
    assert key("auto") != keys["auto"] and key("fp32") == keys["fp32"]  # a new decision: auto trains anew


class DtypeLog(TorchDispatchMode):
    """The dtypes of the tensors each aten operation received (after autocast's casts)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = collections.defaultdict(set)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = str(func.overloadpacket).removeprefix("aten.")
        self.seen[name] |= {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
        return func(*args, **(kwargs or {}))


def _tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=16, id2label={0: "a", 1: "b", 2: "c"}, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def _step(model: torch.nn.Module) -> DtypeLog:
    """One training forward and backward, its operations logged."""
    ids = torch.randint(0, 40, (4, 8))
    with DtypeLog() as log:
        model(
            input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 2, 0])
        ).loss.backward()
    return log


def test_bf16_linear_runs_the_gemms_in_bf16_and_everything_else_in_fp32() -> None:
    model = _tiny_bert()
    with linear_layers_in_bf16(model) as layers:
        log = _step(model)
    assert layers == 8  # q, k, v, attention output, intermediate, output, pooler, classifier
    gemms = {op: log.seen[op] for op in ("addmm", "mm") if op in log.seen}
    assert gemms and all(dtypes == {torch.bfloat16} for dtypes in gemms.values())  # forward and backward
    for op in ("native_layer_norm", "gelu", "_scaled_dot_product_flash_attention_for_cpu", "_log_softmax"):
        assert log.seen[op] == {torch.float32}, op  # norms, activations, attention and the loss stay fp32
    assert all(p.dtype == torch.float32 and p.grad is not None for p in model.parameters() if p.requires_grad)
    assert not any("forward" in m.__dict__ for m in model.modules())  # the plain model again
    assert _step(model).seen["addmm"] == {torch.float32}


def test_bf16_autocast_differs_from_bf16_linear_outside_the_gemms() -> None:
    """What `bf16` computes in, for the comparison: activations after a linear layer stay bf16."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log = _step(_tiny_bert())
    assert log.seen["addmm"] == {torch.bfloat16} and log.seen["gelu"] == {torch.bfloat16}
    assert log.seen["native_layer_norm"] == {torch.float32}


def test_reduced_precision_matmuls_are_set_in_the_block_and_restored_after() -> None:
    backend = matmul_backend(not CPU)
    before = backend.fp32_precision
    with pytest.raises(RuntimeError, match="stop"), reduced_precision_matmuls(not CPU):
        assert backend.fp32_precision == ("bf16" if CPU else "tf32")
        with reduced_precision_matmuls(not CPU):  # a second user (a sweep's trials in threads)
            pass
        assert backend.fp32_precision == ("bf16" if CPU else "tf32")  # the first one still trains
        raise RuntimeError("stop")
    assert backend.fp32_precision == before


class Seen(TrainerCallback):
    """What the model and torch were set to while the Trainer took its steps."""

    def __init__(self) -> None:
        self.matmul: set[str] = set()
        self.patched: set[bool] = set()

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.matmul.add(matmul_backend(cuda=False).fp32_precision)
        self.patched.add("forward" in model.classifier.__dict__)


@pytest.mark.skipif(not CPU, reason="checks the CPU's oneDNN setting")
@pytest.mark.parametrize(
    ("variant", "matmul_mode", "patched"), [("fp32_bf16_matmul", "bf16", False), ("bf16_linear", None, True)]
)
def test_a_training_runs_in_its_variant_and_leaves_torch_as_it_was(
    variant: Any, matmul_mode: str | None, patched: bool, tmp_path: Path
) -> None:
    before = matmul_backend(cuda=False).fp32_precision
    cfg = TrainConfig(
        precision=variant, max_steps=2, batch_size=4, group_by_length=False, progress_bars=False
    )
    rows = [
        {"input_ids": torch.arange(1, 9), "attention_mask": torch.ones(8), "labels": i % 3} for i in range(8)
    ]
    seen, model = Seen(), _tiny_bert()
    args = training_arguments(cfg, tmp_path, evaluate=False)
    assert not args.bf16  # the variant's own mechanism, not the Trainer's autocast
    summary = fit(Trainer(model=model, args=args, train_dataset=rows, callbacks=[seen]), cfg, tmp_path)
    assert summary["precision"] == variant and summary["global_steps"] == 2
    assert seen.matmul == {matmul_mode or before} and seen.patched == {patched}  # while it trained
    assert matmul_backend(cuda=False).fp32_precision == before and "forward" not in model.classifier.__dict__
