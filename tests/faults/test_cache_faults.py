"""Faults around the tokenization cache with real processes: SIGKILL while an entry is being
published, and a disk that fills up (RLIMIT_FSIZE) while it is written."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, DatasetDict, load_from_disk

from tasks.tokenization.cache import STAGING, publish_cached
from tests.faults.conftest import child_env
from tests.fixtures import build_tiny_classifier

pytestmark = pytest.mark.faults

ROWS = 400_000
# a child that publishes one large entry `k` into the cache given as argv[1], from the model argv[2]
PUBLISH = """
import sys
from pathlib import Path
from datasets import Dataset, DatasetDict
from tasks.core.errors import RefineryError
from tasks.tokenization.cache import publish_cached

rows = {"input_ids": [[i, i + 1, i + 2, i + 3] for i in range(ROWS)]}
build = lambda: (DatasetDict({"train": Dataset.from_dict(rows)}), {})
try:
    publish_cached(Path(sys.argv[1]), "k", Path(sys.argv[2]), build)
except RefineryError as err:
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(1)
""".replace("ROWS", str(ROWS))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny"), ["x", "y"])


def _small_build() -> tuple[DatasetDict, dict[str, Any]]:
    return DatasetDict({"train": Dataset.from_dict({"input_ids": [[1, 2]] * 10})}), {}


def test_a_kill_during_publication_never_leaves_a_partial_entry(tmp_path: Path, model_dir: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    child = subprocess.Popen([sys.executable, "-c", PUBLISH, str(cache), str(model_dir)], env=child_env())
    deadline = time.monotonic() + 240
    while not any(STAGING in p.name for p in cache.iterdir()):  # it is writing its staging folder
        assert child.poll() is None and time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)

    assert not (cache / "k").exists()  # killed before the atomic rename: no entry at all
    assert any(STAGING in p.name for p in cache.iterdir())  # what the kill left behind
    path, meta = publish_cached(cache, "k", model_dir, _small_build)  # the next run
    assert meta["cache_hit"] is False and load_from_disk(str(path))["train"].num_rows == 10
    assert [p.name for p in cache.iterdir()] == ["k"]  # the killed build's staging folder is gone


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path: Path, model_dir: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    full = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(cache), str(model_dir)],
        env=child_env(),
        preexec_fn=_limit_file_size,  # every file the child writes stops at 256 KiB: EFBIG
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 1 and len(errors) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert "no space left on device writing" in errors[0] and str(cache) in errors[0]
    assert "tokenize.cache_dir" in errors[0]
    assert list(cache.iterdir()) == []  # no entry, no staging folder

    path, meta = publish_cached(cache, "k", model_dir, _small_build)
    assert meta["cache_hit"] is False and load_from_disk(str(path))["train"].num_rows == 10
