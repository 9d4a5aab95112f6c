"""Lineage hashes: the data files a run read (DVC's md5 when tracked), and every weights shard."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tasks.core.config import DataConfig
from tasks.lineage.data import data_hashes, file_md5
from tasks.models.base_models import weights_fingerprint
from tests.conftest import REPO_ROOT


def test_a_tracked_file_hashes_to_the_md5_dvc_recorded_for_it() -> None:
    # data.dvc's directory listing (the remote keeps earlier listings too: older commits pull them)
    listing = yaml.safe_load((REPO_ROOT / "data.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    manifest = REPO_ROOT / "infra" / "dvc-remote" / "files" / "md5" / listing[:2] / listing[2:]
    recorded = {entry["relpath"]: entry["md5"] for entry in json.loads(manifest.read_text())}
    hashes = data_hashes(DataConfig(), REPO_ROOT)  # data/banking77/train.csv and test.csv
    assert hashes.train == f"md5:{recorded['banking77/train.csv']}"
    assert hashes.test == f"md5:{recorded['banking77/test.csv']}"
    assert hashes.combined == f"{hashes.train}+{hashes.test}"


def test_data_from_elsewhere_gets_its_own_hash_and_each_file_is_recorded(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\na,x\n")
    test.write_text("text,label\nb,y\n")
    both = data_hashes(DataConfig(train_path=str(train), test_path=str(test)))
    assert both.train == file_md5(train) and both.test == file_md5(test) and both.train != both.test
    alone = data_hashes(DataConfig(train_path=str(train), test_path=None))
    assert alone.test == "none" and alone.combined == alone.train
    test.write_text("text,label\nc,y\n")  # a changed test file changes the data hash
    assert data_hashes(DataConfig(train_path=str(train), test_path=str(test))).combined != both.combined


def test_weights_fingerprint_covers_every_shard_and_the_index(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    for shard in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (tmp_path / shard).write_bytes(b"weights " + shard.encode())
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    (tmp_path / "pytorch_model-00001-of-00001.bin").write_bytes(b"bin")
    base = weights_fingerprint(tmp_path)
    for changed in (
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model-00001-of-00001.bin",
    ):
        original = (tmp_path / changed).read_bytes()
        (tmp_path / changed).write_bytes(original + b"!")
        assert weights_fingerprint(tmp_path) != base, changed
        (tmp_path / changed).write_bytes(original)
    assert weights_fingerprint(tmp_path) == base
