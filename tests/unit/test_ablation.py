"""The accuracy ablation's logic with made-up trainings: each arm's params, the pairing of the plain
script's rows with Refinery's, which default is found to cost accuracy, the table and the plan."""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.ablation import (
    ARMS,
    AblationRunner,
    ablation_plan,
    ablation_table,
    arm_params,
    earlier_plain,
    plain_correctness,
    summarize_arms,
    train_arms,
)
from tasks.core.config import ChampionGateConfig

GATE = ChampionGateConfig()
REPO = Path(__file__).resolve().parents[2]
ROWS = 600


def _default_params() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_each_arm_switches_off_its_default_alone_in_the_given_precision() -> None:
    defaults = _default_params()
    for arm in ARMS:
        raw = arm_params(_default_params(), arm, "fp32")
        assert raw["train"]["precision"] == "fp32"
        changed = {
            (section, key)
            for section in ("train", "tokenize")
            for key in raw[section]
            if raw[section][key] != defaults[section][key] and key != "precision"
        }
        assert changed == {(s, k) for s, values in ARMS[arm][1].items() for k in values}
    assert arm_params(_default_params(), "no_best_model", "bf16")["train"]["early_stopping_patience"] is None
    assert arm_params(_default_params(), "no_length_cap", "fp32")["tokenize"]["length_percentile"] == 100.0


def test_the_plain_scripts_rows_pair_with_refinerys_by_source_row(tmp_path: Path) -> None:
    test_csv = tmp_path / "test.csv"
    pd.DataFrame(
        {"text": ["a", "b", "c"], "label": ["x", "007", "y"], "source_file": "t.csv", "source_row": [3, 1, 2]}
    ).to_csv(test_csv, index=False)
    answers = tmp_path / "predictions.csv"
    pd.DataFrame({"label": ["x", "007", "y"], "prediction": ["x", "7", "y"]}).to_csv(answers, index=False)
    right = plain_correctness(answers, test_csv)
    assert right.index.tolist() == ["t.csv:1", "t.csv:2", "t.csv:3"]  # as `correctness` orders Refinery's
    assert right.tolist() == [0.0, 1.0, 1.0]  # row 1's "007" was answered "7"
    pd.DataFrame({"label": ["x"], "prediction": ["x"]}).to_csv(answers, index=False)
    with pytest.raises(RuntimeError, match="1 predictions for 3 rows"):
        plain_correctness(answers, test_csv)


def _fake_runner(tmp_path: Path, accuracy: dict[str, float], calls: list[tuple[str, int]]) -> AblationRunner:
    """Trainings that answer each of ROWS test rows right with the arm's probability."""
    rows = list(range(1, ROWS + 1))

    def answers(who: str, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(zlib.crc32(f"{who}-{seed}".encode()))
        right = rng.random(ROWS) < accuracy[who]
        return pd.DataFrame({"label": "a", "prediction": np.where(right, "a", "b")})

    def files(work: Path, spec: dict[str, Any], args: argparse.Namespace) -> tuple[Path, Path]:
        test = work / "plain_test.csv"
        pd.DataFrame({"text": "t", "label": "a", "source_file": "t.csv", "source_row": rows}).to_csv(test)
        return work / "plain_train.csv", test

    def params(work: Path, spec: dict[str, Any], args: Any, cache: Path, seed: int) -> dict[str, Any]:
        raw = _default_params()
        raw["train"]["seed"] = seed
        return raw

    def arm_of(train: dict[str, Any], tokenize: dict[str, Any]) -> str:
        for arm, (_, values) in ARMS.items():
            sections = {"train": train, "tokenize": tokenize}
            if values and all(sections[s][k] == v for s, kv in values.items() for k, v in kv.items()):
                return arm
        return "refinery"

    def refinery(run_dir: Path, params_path: Path, env: dict[str, str]) -> dict[str, Any]:
        raw = yaml.safe_load(params_path.read_text())
        who, seed = arm_of(raw["train"], raw["tokenize"]), raw["train"]["seed"]
        calls.append((who, seed))
        (run_dir / "eval").mkdir(parents=True)
        frame = answers(who, seed).assign(source_file="t.csv", source_row=rows)
        frame.sample(frac=1.0, random_state=seed).to_csv(run_dir / "eval" / "predictions.csv", index=False)
        return {"samples_per_s": 200.0 + seed, "accuracy": 0.0, "reused_training": 0.0}

    def plain(
        work: Path, files: tuple[Path, Path], seed: int, env: dict[str, str], out: Path
    ) -> dict[str, Any]:
        calls.append(("plain", seed))
        answers("plain", seed).to_csv(out, index=False)
        return {"samples_per_s": 50.0 + seed, "accuracy": 0.0}

    return AblationRunner(params, refinery, plain, files)


def test_a_default_that_costs_accuracy_is_found_against_the_plain_script(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    accuracy = {"plain": 0.85, "refinery": 0.80, "no_best_model": 0.85, "no_length_grouping": 0.80}
    runner = _fake_runner(tmp_path, accuracy, calls)
    arms = ["refinery", "no_best_model", "no_length_grouping"]
    trained = train_arms({}, argparse.Namespace(seeds=5, precision=None), {}, runner, arms)
    assert calls[:4] == [("plain", 42), ("refinery", 42), ("no_best_model", 42), ("no_length_grouping", 42)]
    assert calls[4][0] == "refinery" and calls[7] == ("plain", 43)  # seed 43 starts one further
    assert {who: [r["seed"] for r in runs] for who, runs in trained["runs"].items()} == {
        who: [42, 43, 44, 45, 46] for who in ["plain", *arms]
    }
    summary = summarize_arms(trained, GATE)
    assert summary["refinery"]["speed_ratio"] == pytest.approx(244 / 94)  # medians: seed 44
    assert summary["refinery"]["high"] < 0  # 5 points under the plain script, beyond the noise
    assert summary["no_best_model"]["low"] < 0 < summary["no_best_model"]["high"]
    assert summary["no_best_model"]["default_costs_accuracy"]  # switching it off alone recovers them
    assert not summary["no_length_grouping"]["default_costs_accuracy"]
    assert not summary["refinery"]["default_costs_accuracy"]
    results = {
        "date": "2026-12-01", "host": "vm", "cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu",
        "args": {"seeds": 5, "epochs": 3.0, "precision": None},
        "bootstrap": {"resamples": GATE.resamples, "confidence": GATE.confidence},
        "ablation": {"sst2": {**trained, "summary": summary}},
    }  # fmt: skip
    table = ablation_table(results)
    assert table.count("| no_best_model |") == 1 and "| plain | — (the plain Trainer script)" in table
    row = next(line for line in table.splitlines() if line.startswith("| no_best_model |"))
    assert row.endswith("| **yes** |") and f"{summary['no_best_model']['delta'] * 100:+.2f} [" in row
    assert "train.precision fp32" in table


def test_the_plain_scripts_runs_come_from_an_earlier_ablation_on_the_same_machine(tmp_path: Path) -> None:
    accuracy = {"plain": 0.85, "refinery": 0.84, "length_groups_of_8": 0.85}
    first = train_arms(
        {}, argparse.Namespace(seeds=3, precision=None), {}, _fake_runner(tmp_path, accuracy, []), []
    )
    machine = {"cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu"}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({**machine, "args": {"seeds": 3, "epochs": 3.0, "quick": False},
                                   "ablation": {"sst2": first}}))  # fmt: skip
    args = argparse.Namespace(seeds=3, epochs=3.0, quick=False, precision=None, plain_from=str(earlier))
    calls: list[tuple[str, int]] = []
    plain = earlier_plain(args, "sst2", dict(machine))
    trained = train_arms(
        {}, args, {}, _fake_runner(tmp_path, accuracy, calls), ["refinery", "length_groups_of_8"], plain
    )
    assert "plain" not in {who for who, _ in calls} and len(calls) == 6  # the plain script did not train
    assert trained["runs"]["plain"] == first["runs"]["plain"] and trained["plain_from"] == str(earlier)
    summary = summarize_arms(trained, GATE)
    results = {
        "date": "2026-12-01", "host": "vm", **machine, "args": {"seeds": 3, "epochs": 3.0, "precision": None},
        "bootstrap": {"resamples": GATE.resamples, "confidence": GATE.confidence},
        "ablation": {"sst2": {**trained, "summary": summary}},
    }  # fmt: skip
    assert "| plain | — (the plain Trainer script; its runs from earlier.json)" in ablation_table(results)
    with pytest.raises(SystemExit, match="ran on torch 2.13.0\\+cpu, this ablation on 2.14.0"):
        earlier_plain(args, "sst2", {**machine, "torch": "2.14.0"})
    with pytest.raises(SystemExit, match="has seeds 3, this ablation 5"):
        earlier_plain(argparse.Namespace(**{**vars(args), "seeds": 5}), "sst2", dict(machine))
    with pytest.raises(SystemExit, match="no plain-script runs of banking77"):
        earlier_plain(args, "banking77", dict(machine))
    plain["rows"] = plain["rows"][1:]
    with pytest.raises(SystemExit, match="other test rows than this run's"):
        train_arms({}, args, {}, _fake_runner(tmp_path, accuracy, []), ["refinery"], plain)


def test_the_plan_refuses_an_unknown_arm_and_always_keeps_the_defaults() -> None:
    def plan(**given: Any) -> tuple[list[str], list[str]]:
        args = {"ablation_arms": "no_best_model", "workloads": "banking77,sst2,distributed", **given}
        return ablation_plan(argparse.Namespace(**args))

    assert plan() == (["refinery", "no_best_model"], ["banking77", "sst2"])
    assert plan(workloads="emotion")[1] == ["emotion"]
    with pytest.raises(SystemExit, match="--ablation-arms: no_dropout; give arms of refinery, "):
        plan(ablation_arms="no_best_model,no_dropout")


def test_refinery_reads_the_workloads_files_by_the_paths_the_plain_scripts_rows_name(tmp_path: Path) -> None:
    """BANKING77's workload names its files relative to the repository: Refinery must get them absolute,
    or its rows (`data/...:12`) never pair with the plain script's (`/.../data/...:12`)."""
    from benchmarks.run import refinery_params, split_files, workloads

    spec = workloads(False)["banking77"]
    assert not Path(spec["test"]).is_absolute()
    args = argparse.Namespace(epochs=1, precision=None)
    raw = refinery_params(tmp_path, spec, args, tmp_path / "cache")
    _, test_csv = split_files(tmp_path, spec, args)
    assert set(pd.read_csv(test_csv, dtype=str)["source_file"]) == {raw["data"]["test_path"]}
    assert Path(raw["data"]["train_path"]).is_absolute()
