"""What a `train.precision` variant switches on around `Trainer.train`, and switches off after.

The Trainer's own flags cover `bf16` and `fp16` (autocast). The two others need more:
`fp32_bf16_matmul` sets torch's process-wide fp32 matmul precision, and `bf16_linear` runs each
`nn.Linear` of the model under bf16 autocast. Both hold for the training alone (a later step, or
the next training in this process, computes as before), in every rank: torchrun's and Ray's
ranks train through the same `fit`. Trials of a sweep that train at once in threads share the
process-wide setting: the first to start sets it, the last to finish restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

_matmul_lock = threading.Lock()
_matmul_users: dict[str, Any] = {"count": 0, "saved": None}


def matmul_backend(cuda: bool) -> Any:
    """torch's fp32 matmul setting for the device: CUDA's, or oneDNN's on a CPU."""
    backends: Any = torch.backends  # `mkldnn.matmul` is set up at run time: not in torch's stubs
    return backends.cuda.matmul if cuda else backends.mkldnn.matmul


@contextmanager
def reduced_precision_matmuls(cuda: bool) -> Iterator[None]:
    """fp32 GEMMs may use bf16 math (oneDNN on a CPU) or TF32 (CUDA) in the block; restored after.

    torch's per-backend setting (the API `set_float32_matmul_precision("medium")` maps onto):
    reading the legacy global one after mixing the two APIs raises in torch >= 2.9.
    """
    backend, mode = matmul_backend(cuda), "tf32" if cuda else "bf16"
    with _matmul_lock:
        if _matmul_users["count"] == 0:
            _matmul_users["saved"] = backend.fp32_precision
            backend.fp32_precision = mode
        _matmul_users["count"] += 1
    try:
        yield
    finally:
        with _matmul_lock:
            _matmul_users["count"] -= 1
            if _matmul_users["count"] == 0:
                backend.fp32_precision = _matmul_users["saved"]


def _bf16_forward(linear: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
    """`linear`'s forward under bf16 autocast, its output back in the input's dtype."""
    forward = type(linear).forward.__get__(linear)

    def bf16_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = forward(x)
        return out.to(x.dtype)

    return bf16_forward


@contextmanager
def linear_layers_in_bf16(model: nn.Module) -> Iterator[int]:
    """Every fp32 `nn.Linear` of `model` computes in bf16 in the block (yields how many); the rest of
    the model (attention scores, softmax, norms, activations, residuals) stays fp32."""
    layers = [
        module
        for module in model.modules()
        if isinstance(module, nn.Linear) and module.weight.dtype == torch.float32  # not 4-bit ones
    ]
    for layer in layers:
        layer.__dict__["forward"] = _bf16_forward(layer)  # this instance's, over the class's
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)  # the class's forward again


@contextmanager
def precision_applied(precision: str, model: nn.Module | None) -> Iterator[None]:
    """Around a training of `model` in the resolved `precision`: what the Trainer's flags do not set."""
    with ExitStack() as stack:
        if precision == "fp32_bf16_matmul":
            stack.enter_context(reduced_precision_matmuls(torch.cuda.is_available()))
        if precision == "bf16_linear" and model is not None:  # a Trainer without a model cannot train
            stack.enter_context(linear_layers_in_bf16(model))
        yield
