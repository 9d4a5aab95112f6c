"""Which checkpoint an interrupted training resumes from: the newest one that is whole.

A run killed while the Trainer writes `checkpoint-N/` leaves a folder that looks like a checkpoint
but is not (a missing or cut file). A checkpoint counts only when the marker this module's callback
writes after the Trainer's own save is there and its files open (the safetensors headers cover
their files, the torch archives have their central directory, `trainer_state.json` parses and
names step N). Otherwise the one before is used, or a fresh start, with a warning; the broken
folders are removed so the Trainer never writes into them again.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

SAVED_MARKER = "refinery-checkpoint-complete"
TRAINER_STATE = "trainer_state.json"
LOGGER = logging.getLogger(__name__)
_STEP = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class MarkSavedCheckpoints(TrainerCallback):
    """Write the completion marker into a checkpoint once the Trainer has saved all of it."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if folder.is_dir() and state.is_world_process_zero:  # rank 0 saves; it marks when done
            (folder / SAVED_MARKER).write_text(f"{state.global_step}\n", encoding="utf-8")


def _opens(path: Path) -> bool:
    """Whether a checkpoint file is whole enough to load: cheap checks of its structure."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt"):
                return True
        if path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path):
                return True
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, SafetensorError, zipfile.BadZipFile):
        return False
    return True


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from, or None when it is whole."""
    match = _STEP.match(folder.name)
    if not (folder / SAVED_MARKER).is_file():
        return "it was not completely written"
    broken = sorted(p.name for p in folder.iterdir() if p.is_file() and not _opens(p))
    if broken:
        return f"{', '.join(broken)} cannot be read"
    state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8")) if match else {}
    if not match or state.get("global_step") != int(match.group(1)):
        return f"{TRAINER_STATE} does not name its step"
    return None


def _checkpoints_newest_first(output_dir: Path) -> list[Path]:
    found = [p for p in output_dir.iterdir() if p.is_dir() and _STEP.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP.match(p.name).group(1)), reverse=True)  # type: ignore[union-attr]


def usable_checkpoint(output_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest whole checkpoint under `output_dir`, and a line for each newer broken one
    (removed, with a warning)."""
    skipped: list[str] = []
    if not output_dir.is_dir():
        return None, skipped
    for folder in _checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, skipped
        skipped.append(f"{folder.name} not used for resuming: {problem}")
        LOGGER.warning("checkpoint %s is not used for resuming (%s); removing it", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
    return None, skipped
