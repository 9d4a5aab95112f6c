"""Simulate the per-class guard rails: how often do they fire for two equally good models, and how
often do they catch one class that truly got worse? Compares the corrections of tasks/guard_rails.py
with the old rule (any drop > max_drop trips).

Model of a run: per-class accuracies ~ Beta(11.5, 1) (mean 0.92, about 1 in 60 classes below 0.7,
like BANKING77's per-class recall of 0.6-1.0); each example is right with its class's accuracy. The
challenger copies the champion's outcome with probability `rho` (errors on the same hard examples)
and is otherwise drawn independently, so both models keep the same per-class accuracy. rho = 0 is
the headline; rho = 0.5 shows the effect of correlated errors. In a detection run one class has
accuracy 0.90 for the champion and a lower one for the challenger, drawn independently (rho 0).

    python scripts/simulate_guard_rails.py --simulations 1000 --seed 0 --out benchmarks/results/
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
from matplotlib.figure import Figure

from tasks.comparison.guard_rails import Correction, guard_rails

LAYOUTS: dict[str, tuple[int, int]] = {  # name: (classes, test examples per class)
    "BANKING77-like 77x40": (77, 40),
    "small-label 4x250": (4, 250),
    "CLINC150-like 150x30": (150, 30),
}
METHODS = ("westfall_young", "holm", "bh", "old rule")
BETA = (11.5, 1.0)
CHAMPION_RECALL = 0.90
CURVE = tuple(round(0.90 - 0.05 * i, 2) for i in range(15))  # challenger recall 0.90 ... 0.20
HEADLINE = (0.40, 0.30)

Tripped = Callable[[np.ndarray, np.ndarray, list[str], int], np.ndarray]


def _methods(max_drop: float) -> dict[str, Tripped]:
    """Per method: (champion, challenger, groups, seed) -> tripped flag per class (sorted names)."""

    def corrected(correction: Correction) -> Tripped:
        def run(a: np.ndarray, b: np.ndarray, groups: list[str], seed: int) -> np.ndarray:
            checks = guard_rails(a, b, groups, max_drop=max_drop, correction=correction, seed=seed)
            return np.array([check.tripped for check in checks])

        return run

    def old_rule(a: np.ndarray, b: np.ndarray, groups: list[str], seed: int) -> np.ndarray:
        classes, n = len(set(groups)), a.size // len(set(groups))
        drop = a.reshape(classes, n).mean(axis=1) - b.reshape(classes, n).mean(axis=1)
        return np.asarray(drop > max_drop + 1e-12)

    methods: dict[str, Tripped] = {m: corrected(cast(Correction, m)) for m in METHODS[:3]}
    return {**methods, "old rule": old_rule}


def _draw(
    rng: np.random.Generator, classes: int, n: int, rho: float, target_recall: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong per example for both models; class 0 drops to `target_recall` when given."""
    accuracy = rng.beta(*BETA, size=classes)
    if target_recall is not None:
        accuracy[0] = CHAMPION_RECALL
    p = np.repeat(accuracy, n)
    champion = rng.random(p.size) < p
    own = rng.random(p.size) < p
    challenger = np.where(rng.random(p.size) < rho, champion, own)
    if target_recall is not None:
        challenger[:n] = rng.random(n) < target_recall
    return champion.astype(float), challenger.astype(float)


def _scenario(
    layout: tuple[int, int], simulations: int, seed: int, rho: float, target: float | None, max_drop: float
) -> dict[str, dict[str, float]]:
    """Share of comparisons with any trip, with class 0 tripped, and with another class tripped."""
    classes, n = layout
    groups = [f"class{c:03d}" for c in range(classes) for _ in range(n)]
    rng, methods = np.random.default_rng(seed), _methods(max_drop)
    counts = {m: np.zeros(3) for m in methods}
    for i in range(simulations):
        a, b = _draw(rng, classes, n, rho, target)
        for name, method in methods.items():
            tripped = method(a, b, groups, seed + i)
            counts[name] += [tripped.any(), tripped[0], tripped[1:].any()]
    keys = ("any", "target", "other")
    return {m: {k: float(v) / simulations for k, v in zip(keys, c, strict=True)} for m, c in counts.items()}


def _plot(curves: dict[str, dict[str, list[float]]], out: Path) -> None:
    """Detection rate of class 0 against the challenger's recall, one panel per layout."""
    fig = Figure(figsize=(5.0 * len(curves), 4.2), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (layout, per_method) in zip(axes, curves.items(), strict=True):
        for method, rates in per_method.items():
            style = {"holm": "--", "bh": ":"}.get(method, "-")  # holm and bh often coincide
            drops = [CHAMPION_RECALL - r for r in CURVE]
            ax.plot(drops, rates, linestyle=style, marker="o", markersize=3, label=method)
        ax.axhline(0.85, color="grey", linewidth=0.6, linestyle=":")
        ax.set(title=layout, xlabel="true recall drop of one class (from 0.90)", ylabel="share tripped")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right", fontsize=8)
    fig.savefig(out, dpi=120)


def _markdown(results: dict[str, dict[str, dict[str, dict[str, float]]]], args: argparse.Namespace) -> str:
    """The comparison table of the methods per layout."""
    lines = [
        "# Guard rails: false alarms and detection (simulation)",
        "",
        f"`python scripts/simulate_guard_rails.py --simulations {args.simulations} --seed {args.seed}`; "
        f"per-class accuracy ~ Beta{BETA}, max_drop {args.max_drop}, alpha 0.05, min_support 10, "
        f"2000 permutations. False alarm: share of comparisons of two equally good models in which any "
        f"class trips (errors independent, rho 0; or correlated, rho 0.5). Detection: share in which "
        f"the one class whose recall truly falls from 0.90 trips ({args.simulations} comparisons each; "
        f"curve points {args.curve_simulations}).",
        "",
        "| layout | method | false alarm (rho 0) | false alarm (rho 0.5) | detect 0.90→0.40 | "
        "detect 0.90→0.30 | other class tripped in detect runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for layout, per in results.items():
        for m in METHODS:
            lines.append(
                f"| {layout} | {m} | {per['null rho 0'][m]['any']:.1%} | "
                f"{per['null rho 0.5'][m]['any']:.1%} | "
                f"{per['detect 0.40'][m]['target']:.1%} | {per['detect 0.30'][m]['target']:.1%} | "
                f"{per['detect 0.40'][m]['other']:.1%} |"
            )
    lines += [
        "",
        "Targets: false alarm <= 5 %, detect 0.90→0.40 >= 85 %, detect 0.90→0.30 >= 95 %. Monte-Carlo "
        f"standard error at a true 5 %: {(0.05 * 0.95 / args.simulations) ** 0.5:.1%}. "
        "Curve: guard-rails-simulation.png and .csv.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000, help="comparisons per headline scenario")
    parser.add_argument("--curve-simulations", type=int, default=300, help="comparisons per curve point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    rows: list[dict[str, object]] = []
    for layout_name in args.layouts:
        started, layout, sims = time.perf_counter(), LAYOUTS[layout_name], args.simulations
        per: dict[str, dict[str, dict[str, float]]] = {
            "null rho 0": _scenario(layout, sims, args.seed, 0.0, None, args.max_drop),
            "null rho 0.5": _scenario(layout, sims, args.seed + 1, 0.5, None, args.max_drop),
        }
        curves[layout_name] = {m: [] for m in METHODS}
        for k, recall in enumerate(CURVE):
            n_sims = sims if recall in HEADLINE else args.curve_simulations
            point = _scenario(layout, n_sims, args.seed + 100 + k, 0.0, recall, args.max_drop)
            if recall in HEADLINE:
                per[f"detect {recall:.2f}"] = point
            for m in METHODS:
                curves[layout_name][m].append(point[m]["target"])
                rows.append(
                    {
                        "layout": layout_name,
                        "method": m,
                        "challenger_recall": recall,
                        "drop": round(CHAMPION_RECALL - recall, 2),
                        "simulations": n_sims,
                        "detection": point[m]["target"],
                        "other_tripped": point[m]["other"],
                    }
                )
        results[layout_name] = per
        print(f"{layout_name}: {time.perf_counter() - started:.0f}s", flush=True)
    stem = args.out / "guard-rails-simulation"
    with stem.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(curves, stem.with_suffix(".png"))
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results, "curves": curves}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(_markdown(results, args), encoding="utf-8")
    print(_markdown(results, args))


if __name__ == "__main__":
    main()
