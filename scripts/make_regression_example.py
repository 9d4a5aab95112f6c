"""Build the example regression data set (`data/regression/`) from the bundled BANKING77, offline.

    python scripts/make_regression_example.py [--data data/banking77] [--out data/regression]

Graded relatedness of two customer messages: `score` is the Jaccard overlap of the meaningful words
of their intents' names (1.0 for the same intent, 0.5 for card_not_working / contactless_not_working,
0.25 for card_arrival / card_delivery_estimate, 0.0 for unrelated intents). Pairs are balanced over
five score levels (0, below 0.25, 0.25 to 0.5, 0.5 to 1, 1). Train pairs come from BANKING77's train
file, test pairs from its test file, every pair once. CSV with `text1`, `text2`, `score` and `level`
(a slice column for the champion's guard rails).

BANKING77 by PolyAI (https://huggingface.co/datasets/PolyAI/banking77), CC BY 4.0: the derived
pairs carry the same licence and attribution.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's packages
from scripts.make_pairs_example import LICENSE, name_words, texts_by_intent

LEVELS = ("unrelated", "low", "medium", "high", "same_intent")


def relatedness(first: str, second: str) -> float:
    """Jaccard overlap of the meaningful words of two intent names, to three decimals."""
    a, b = name_words(first), name_words(second)
    return round(len(a & b) / len(a | b), 3)


def level(score: float) -> str:
    """The score's level: what the sample is balanced over."""
    if score >= 1.0:
        return "same_intent"
    if score >= 0.5:
        return "high"
    if score >= 0.25:
        return "medium"
    return "low" if score > 0.0 else "unrelated"


def sample_pairs(texts: dict[str, list[str]], per_level: int, seed: int) -> pd.DataFrame:
    """`per_level` distinct pairs of every level the intents have, drawn with a seeded generator."""
    rng = random.Random(seed)
    intents = sorted(texts)
    by_level: dict[str, list[tuple[str, str]]] = {name: [] for name in LEVELS}
    for a in intents:
        for b in intents:
            by_level[level(relatedness(a, b))].append((a, b))
    rows: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for name in (name for name in LEVELS if by_level[name]):
        made = 0
        while made < per_level:
            first, second = rng.choice(by_level[name])
            one, two = rng.choice(texts[first]), rng.choice(texts[second])
            if one == two or (one, two) in seen:
                continue
            seen.add((one, two))
            rows.append({"text1": one, "text2": two, "score": relatedness(first, second), "level": name})
            made += 1
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def build(data: Path, out: Path, seed: int = 0) -> dict[str, int]:
    """Write `train.csv` and `test.csv` under `out`; their sizes."""
    per_level = {"train": 80, "test": 24}
    out.mkdir(parents=True, exist_ok=True)
    for name, count in per_level.items():
        texts = texts_by_intent(pd.read_csv(data / f"{name}.csv"))
        sample_pairs(texts, count, seed).to_csv(out / f"{name}.csv", index=False)
    (out / "LICENSE.txt").write_text(f"Derived from BANKING77. {LICENSE}\n", encoding="utf-8")
    return {name: count * len(LEVELS) for name, count in per_level.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--out", type=Path, default=Path("data/regression"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = build(args.data, args.out, args.seed)
    print(f"wrote {args.out}: {sizes['train']} train and {sizes['test']} test pairs")


if __name__ == "__main__":
    main()
