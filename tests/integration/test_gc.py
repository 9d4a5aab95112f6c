"""`refinery gc`: cache entries beyond the budget go, least recently used first; the entries a
registered version (in a real MLflow store) trained from stay; a dry run removes nothing."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tasks.cli.main import main as refinery
from tasks.tokenization.cache import META_FILE
from tasks.training.cache_entries import cache_entries, over_budget

pytestmark = pytest.mark.integration

MB = 1_000_000


def _listing(*caches: Path) -> list[str]:
    """Every file and folder under the caches (the MLflow store beside them may add its lock file)."""
    return sorted(str(p) for cache in caches for p in cache.rglob("*"))


def _file(path: Path, megabytes: float, used: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * int(megabytes * MB))
    os.utime(path, (used, used))
    os.utime(path.parent, (used, used))


def _caches(root: Path) -> tuple[Path, Path]:
    """Two tokenized entries, two trainings (checkpoints + trained/), 1 MB each, known last uses."""
    tokenized, checkpoints = root / "tokenized", root / "checkpoints"
    day = 86_400.0
    _file(tokenized / "tok-old" / META_FILE, 1, 1 * day)
    _file(tokenized / "tok-new" / META_FILE, 1, 9 * day)
    _file(tokenized / "tok-x.tmp-host-1-abc" / "data.arrow", 5, 1 * day)  # a build in progress
    _file(checkpoints / "ck-registered" / "checkpoint-4" / "model.safetensors", 1, 0.5 * day)
    _file(checkpoints / "ck-registered" / "trained" / "metrics.json", 1, 0.5 * day)
    _file(checkpoints / "ck-other" / "checkpoint-4" / "model.safetensors", 1, 2 * day)
    _file(checkpoints / "ck-other" / "trained" / "metrics.json", 1, 8 * day)
    return tokenized, checkpoints


def test_entries_beyond_the_budget_least_recently_used_first(tmp_path: Path) -> None:
    entries = cache_entries(*_caches(tmp_path))
    assert sorted((e.kind, e.key) for e in entries) == [
        ("checkpoints", "ck-other"), ("checkpoints", "ck-registered"), ("tokenized", "tok-new"),
        ("tokenized", "tok-old"), ("trained", "ck-other"), ("trained", "ck-registered"),
    ]  # fmt: skip
    chosen = over_budget(entries, budget_bytes=3 * MB, protected={"ck-registered"})
    assert [(e.kind, e.key) for e in chosen] == [
        ("tokenized", "tok-old"),  # day 1
        ("checkpoints", "ck-other"),  # day 2 (ck-registered's, older still, are protected)
        ("trained", "ck-other"),  # day 8: then 3 MB are left, the budget
    ]
    assert over_budget(entries, budget_bytes=6 * MB, protected=set()) == []


def test_refinery_gc_keeps_a_registered_versions_entries_and_a_dry_run_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenized, checkpoints = _caches(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("tiny-intent")
    tags = {"tokenized_key": "tok-old", "checkpoint_key": "ck-registered"}  # as the register step tags it
    client.create_model_version("tiny-intent", source=str(tmp_path / "model"), tags=tags)
    params = tmp_path / "params.yaml"
    raw = {
        "tokenize": {"cache_dir": str(tokenized)},
        "train": {"checkpoint_dir": str(checkpoints)},
        "register": {"tracking_uri": uri},
        "cache": {"budget_gb": 0.002},
    }
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    before = _listing(tokenized, checkpoints)

    assert refinery(["gc", "--params", str(params), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert _listing(tokenized, checkpoints) == before
    assert "would remove checkpoints ck-other" in dry and "tokenized tok-old" not in dry

    assert refinery(["gc", "--params", str(params)]) == 0
    done = capsys.readouterr().out
    kept = {(e.kind, e.key) for e in cache_entries(tokenized, checkpoints)}
    assert kept == {
        ("tokenized", "tok-old"), ("checkpoints", "ck-registered"), ("trained", "ck-registered"),
    }  # fmt: skip  # the registered version's three: over the 2 MB budget, and kept all the same
    assert "removed tokenized tok-new" in done and "3 entries kept for registered versions" in done
    assert (tokenized / "tok-x.tmp-host-1-abc").is_dir()  # a build in progress is not an entry

    assert refinery(["gc", "--params", str(params), "--budget", "0"]) == 0
    assert {(e.kind, e.key) for e in cache_entries(tokenized, checkpoints)} == kept


def test_refinery_gc_against_a_server_that_is_down_fails_at_once_and_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenized, checkpoints = _caches(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = tmp_path / "params.yaml"
    raw = {"tokenize": {"cache_dir": str(tokenized)}, "train": {"checkpoint_dir": str(checkpoints)}}
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    before = _listing(tokenized, checkpoints)
    started = time.monotonic()
    code = refinery(
        ["gc", "--params", str(params), "--budget", "0", "--tracking-uri", f"http://127.0.0.1:{port}"]
    )
    assert code != 0 and time.monotonic() - started < 60
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"tracking server http://127.0.0.1:{port} does not answer" in error
    assert "nothing removed" in error
    assert _listing(tokenized, checkpoints) == before
