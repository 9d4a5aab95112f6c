"""The precision study's logic on synthetic per-example results: pairing, the table and the decision
`train.precision: auto` follows. No training: the runs are made up, the arithmetic is real."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.measures import correctness
from benchmarks.precision_study import (
    StudyRunner,
    decide,
    decision_record,
    paired_difference,
    run_precision_study,
    study_plan,
    study_table,
    summarize,
    train_variants,
)
from tasks.core.config import ChampionGateConfig
from tasks.training.precision import auto_cpu_precision

GATE = ChampionGateConfig()
ROWS = 400


def _bits(rng: np.random.Generator, accuracy: float) -> str:
    return "".join("1" if right else "0" for right in rng.random(ROWS) < accuracy)


def _runs(accuracy: dict[str, float], speed: dict[str, float], seeds: int = 5) -> dict[str, Any]:
    """Per variant, `seeds` runs whose rows are right with probability `accuracy[variant]`."""
    rng = np.random.default_rng(0)
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in accuracy}
    for variant, acc in accuracy.items():
        for i in range(seeds):
            right = _bits(rng, acc)
            speed_i = speed[variant] * (1 + 0.01 * i)
            runs[variant].append(
                {
                    "seed": 42 + i,
                    "samples_per_s": speed_i,
                    "accuracy": right.count("1") / ROWS,
                    "right": right,
                }
            )
    return {"rows": [f"test.csv:{r}" for r in range(ROWS)], "runs": runs}


def test_the_difference_is_paired_by_row_and_pooled_over_seeds() -> None:
    rng = np.random.default_rng(1)
    reference = (rng.random((5, ROWS)) < 0.8).astype(float)
    variant = reference.copy()
    variant[:, :20] = 1.0 - variant[:, :20]  # 20 rows flipped on every seed
    found = paired_difference(reference, variant, GATE)
    expected = (variant.mean() - reference.mean()).item()
    assert found["delta"] == pytest.approx(expected)
    assert found["per_seed"] == pytest.approx((variant.mean(axis=1) - reference.mean(axis=1)).tolist())
    assert found["low"] <= found["delta"] <= found["high"]
    same = paired_difference(reference, reference.copy(), GATE)  # paired: no difference, no width
    assert same["low"] == same["high"] == same["delta"] == 0.0
    with pytest.raises(ValueError, match="shapes"):
        paired_difference(reference, variant[:4], GATE)


def test_correctness_pairs_two_runs_row_by_row_whatever_their_order(tmp_path: Path) -> None:
    def write(name: str, rows: list[int], labels: list[str], predictions: list[str]) -> Path:
        frame = {
            "text": "t",
            "label": labels,
            "prediction": predictions,
            "source_file": "test.csv",
            "source_row": rows,
        }
        pd.DataFrame(frame).to_csv(tmp_path / name, index=False)
        return tmp_path / name

    first = correctness(write("a.csv", [1, 2, 10], ["x", "y", "007"], ["x", "x", "007"]))
    second = correctness(write("b.csv", [10, 2, 1], ["007", "y", "x"], ["7", "y", "x"]))
    assert first.index.tolist() == second.index.tolist() == ["test.csv:1", "test.csv:10", "test.csv:2"]
    assert first.tolist() == [1.0, 1.0, 0.0] and second.tolist() == [1.0, 0.0, 1.0]  # "007" is not "7"


def test_summary_has_median_speed_ratio_and_the_interval_against_fp32() -> None:
    workload = _runs(
        {"fp32": 0.85, "bf16_linear": 0.85, "bf16": 0.75}, {"fp32": 100, "bf16_linear": 150, "bf16": 200}
    )
    summary = summarize(workload, GATE)
    assert summary["fp32"]["speed_ratio"] == 1.0 and summary["fp32"]["delta"] == 0.0
    assert summary["bf16_linear"]["samples_per_s"] == pytest.approx(153.0)  # median of 150 x 1.00 … 1.04
    assert summary["bf16_linear"]["speed_ratio"] == pytest.approx(1.5)
    assert summary["bf16"]["high"] < 0 and summary["bf16"]["delta"] == pytest.approx(-0.1, abs=0.03)
    assert summary["bf16_linear"]["low"] < 0 < summary["bf16_linear"]["high"]
    workload["runs"]["bf16"][0]["seed"] = 99
    with pytest.raises(ValueError, match="bf16: seeds .* differ from fp32's"):
        summarize(workload, GATE)


def _row(ratio: float, low: float, high: float) -> dict[str, Any]:
    return {"speed_ratio": ratio, "low": low, "high": high}


def test_the_decision_is_the_fastest_variant_whose_interval_holds_on_both_workloads() -> None:
    fp32 = _row(1.0, 0.0, 0.0)
    summaries = {
        "banking77": {"fp32": fp32, "bf16": _row(2.0, -0.01, 0.005), "bf16_linear": _row(1.6, -0.004, 0.003)},
        "sst2": {"fp32": fp32, "bf16": _row(2.1, -0.04, -0.002), "bf16_linear": _row(1.5, -0.01, 0.01)},
    }
    decision = decide(summaries)
    assert decision["precision"] == "bf16_linear"  # bf16 is faster but lies below fp32 on SST-2
    assert decision["standing"]["bf16_linear"]["speed_ratio"] == pytest.approx((1.6 * 1.5) ** 0.5)
    assert not decision["standing"]["bf16"]["accuracy_holds"]
    summaries["sst2"]["bf16"] = _row(2.1, 0.001, 0.02)  # an interval above zero holds too
    assert decide(summaries)["precision"] == "bf16"
    slow = {name: {"fp32": fp32, "fp32_bf16_matmul": _row(0.97, -0.001, 0.001)} for name in summaries}
    assert decide(slow)["precision"] == "fp32"  # none faster: fp32


def _results(seeds: int = 5, quick: bool = False) -> dict[str, Any]:
    study = {}
    for name in ("banking77", "sst2"):
        trained = _runs({"fp32": 0.85, "bf16_linear": 0.85}, {"fp32": 100, "bf16_linear": 150}, seeds)
        study[name] = {**trained, "summary": summarize(trained, GATE)}
    return {
        "date": "2026-12-01", "host": "vm", "cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu",
        "args": {"seeds": seeds, "epochs": 3.0, "quick": quick},
        "gemm_flops": {"fp32": 2.0e11, "fp32_bf16_matmul": 2.1e11, "bf16": 8.3e11},
        "bootstrap": {"resamples": GATE.resamples, "confidence": GATE.confidence},
        "precision_study": study,
        "decision": decide({name: s["summary"] for name, s in study.items()}),
    }  # fmt: skip


def test_the_table_shows_each_variant_on_both_workloads_and_the_decision() -> None:
    results = _results()
    table = study_table(results)
    row = results["precision_study"]["sst2"]["summary"]["bf16_linear"]
    assert f"{row['samples_per_s']:.1f} ({row['speed_ratio']:.2f}×)" in table
    assert f"{row['delta'] * 100:+.2f} [{row['low'] * 100:+.2f}, {row['high'] * 100:+.2f}]" in table
    assert table.count("| bf16_linear |") == 1 and table.count("| fp32 |") == 1
    assert "Decision: **bf16_linear**" in table and "fp32 in oneDNN's bf16 mode 210" in table


def test_the_written_decision_is_what_auto_follows(tmp_path: Path) -> None:
    record = decision_record(
        _results(), "benchmarks/results/x-precision-study.json", {"avx512f", "avx512_bf16"}
    )
    assert record["precision"] == "bf16_linear" and record["cpu_flags"] == ["avx512_bf16"]
    assert set(record["evidence"]) == {"banking77", "sst2"}
    decision, info = tmp_path / "precision_study.json", tmp_path / "cpuinfo"
    decision.write_text(json.dumps(record), encoding="utf-8")
    info.write_text("flags\t: avx512f avx512_bf16\n", encoding="utf-8")
    assert auto_cpu_precision(decision, info) == "bf16_linear"
    with pytest.raises(SystemExit, match="4 seeds \\(at least 5\\); --quick subsets"):
        decision_record(_results(seeds=4, quick=True), "x.json", set())


def test_every_variant_trains_on_the_same_seeds_in_a_rotating_order(tmp_path: Path) -> None:
    order: list[tuple[str, int]] = []

    def params(work: Path, spec: dict[str, Any], args: Any, cache: Path, seed: int) -> dict[str, Any]:
        return {"train": {"seed": seed}}

    def run(run_dir: Path, params_path: Path, env: dict[str, str]) -> dict[str, Any]:
        import yaml

        train = yaml.safe_load(params_path.read_text())["train"]
        order.append((train["precision"], train["seed"]))
        (run_dir / "eval").mkdir(parents=True)
        frame = {"label": ["a", "b"], "prediction": ["a", "a"], "source_file": "t.csv", "source_row": [1, 2]}
        pd.DataFrame(frame).to_csv(run_dir / "eval" / "predictions.csv", index=False)
        return {"samples_per_s": 1.0, "accuracy": 0.5, "reused_training": 0.0}

    args = argparse.Namespace(seeds=3)
    trained = train_variants({}, args, {}, StudyRunner(params, run), ["fp32", "bf16", "bf16_linear"])
    assert [v for v, _ in order[:3]] == ["fp32", "bf16", "bf16_linear"]
    assert [v for v, _ in order[3:6]] == ["bf16", "bf16_linear", "fp32"]  # seed 43 starts one further
    assert {v: [r["seed"] for r in runs] for v, runs in trained["runs"].items()} == {
        v: [42, 43, 44] for v in ("fp32", "bf16", "bf16_linear")
    }
    assert trained["rows"] == ["t.csv:1", "t.csv:2"] and trained["runs"]["bf16"][0]["right"] == "10"


def test_the_plan_refuses_before_training_what_could_not_decide() -> None:
    def plan(**given: Any) -> tuple[list[str], list[str]]:
        args = {"study_variants": "fp32,bf16_linear", "workloads": "banking77,sst2,distributed", "seeds": 5,
                "quick": False, "write_decision": True, **given}  # fmt: skip
        return study_plan(argparse.Namespace(**args))

    assert plan() == (["fp32", "bf16_linear"], ["banking77", "sst2"])  # distributed: not a study workload
    with pytest.raises(SystemExit, match="--study-variants: bf17; give variants of train.precision"):
        plan(study_variants="fp32,bf17")
    with pytest.raises(SystemExit, match="--study-variants: no fp32"):
        plan(study_variants="bf16")
    with pytest.raises(SystemExit, match="--write-decision: this study would have workloads sst2 \\(both of"):
        plan(workloads="sst2")
    assert plan(workloads="sst2", seeds=1, write_decision=False)[1] == ["sst2"]  # a smoke run may


def test_a_study_decides_on_the_workloads_earlier_runs_trained(tmp_path: Path) -> None:
    results = _results()
    for name in ("banking77", "sst2"):  # one workload per earlier run, as the study can be run
        alone = {**results, "precision_study": {name: results["precision_study"][name]}}
        (tmp_path / f"{name}.json").write_text(json.dumps(alone), encoding="utf-8")
    args = argparse.Namespace(
        study_variants="fp32,bf16_linear", workloads="banking77,sst2", seeds=5, quick=False, epochs=3.0,
        write_decision=False, study_from=[str(tmp_path / "banking77.json"), str(tmp_path / "sst2.json")],
    )  # fmt: skip

    def untrained(*given: Any) -> dict[str, Any]:
        raise AssertionError("a workload an earlier study trained was trained again")

    header = {key: results[key] for key in ("date", "host", "cpu", "cores", "torch")}
    fresh = {**header, "args": vars(args), "gemm_flops": dict(results["gemm_flops"])}
    runner = StudyRunner(untrained, untrained)
    table = run_precision_study(fresh, {}, args, {}, runner, tmp_path / "merged")
    assert "Decision: **bf16_linear**" in table and f"sst2 from {tmp_path / 'sst2.json'}" in table
    assert json.loads((tmp_path / "merged-precision-study.json").read_text())["decision"]["workloads"] == [
        "banking77",
        "sst2",
    ]
    args.seeds = 6
    with pytest.raises(SystemExit, match="banking77.json has seeds 5, this study 6"):
        run_precision_study({**fresh, "args": vars(args)}, {}, args, {}, runner, tmp_path / "merged")
    args.seeds, args.study_variants = 5, "fp32,bf16"
    with pytest.raises(SystemExit, match="banking77 trained fp32, bf16_linear, this study fp32, bf16"):
        run_precision_study(fresh, {}, args, {}, runner, tmp_path / "merged")
    args.study_variants = "fp32,bf16_linear"
    with pytest.raises(SystemExit, match="ran on cpu AMD EPYC, this study on Intel"):
        run_precision_study({**fresh, "cpu": "Intel"}, {}, args, {}, runner, tmp_path / "merged")
