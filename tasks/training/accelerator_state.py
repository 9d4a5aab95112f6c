"""One accelerate state for Trainers that run at once in threads of one process.

accelerate keeps its state process-wide, and every new `TrainingArguments` resets it (then the
Trainer built from them sets it again). Trials of a sweep that run in threads (`sweep.parallel`)
would reset it under each other's running training: `AcceleratorState object has no attribute
distributed_type`. Inside `shared_accelerator_state`, the state is set once, for the precision
every trial trains in, and the arguments built meanwhile use it (`use_configured_state`) instead
of resetting it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from tasks.training.precision import AUTOCAST

_shared = {"active": False}


@contextmanager
def shared_accelerator_state(precision: str) -> Iterator[None]:
    """Trainers built in the block (any thread) share one state for `precision` (a resolved variant)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=AUTOCAST[precision])
    _shared["active"] = True
    try:
        yield
    finally:
        _shared["active"] = False
        AcceleratorState._reset_state(reset_partial_state=True)


def configured_state_values() -> dict[str, Any]:
    """`TrainingArguments` fields that keep the shared state, inside `shared_accelerator_state`."""
    return {"accelerator_config": {"use_configured_state": True}} if _shared["active"] else {}
