"""Build the example text-pair data set (`data/pairs/`) from the bundled BANKING77, offline.

    python scripts/make_pairs_example.py [--data data/banking77] [--out data/pairs]

Duplicate-question style pairs of customer messages: `duplicate` when both messages have the same
intent, `different` otherwise; balanced. Half of the `different` pairs are hard negatives: two
intents whose names share a word (card_arrival / card_delivery_estimate), the other half unrelated
intents. Train pairs come from BANKING77's train file, test pairs from its test file, every pair
once. CSV with `question1`, `question2`, `label` and `kind` (same_intent, shared_word, unrelated: a
slice column for the champion's guard rails).

BANKING77 by PolyAI (https://huggingface.co/datasets/PolyAI/banking77), CC BY 4.0: the derived
pairs carry the same licence and attribution.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pandas as pd

LICENSE = "CC BY 4.0; BANKING77 dataset by PolyAI (https://huggingface.co/datasets/PolyAI/banking77)"
FUNCTION_WORDS = frozenset({"or", "by", "on", "for", "in", "of", "the", "a", "to", "is"})


def name_words(intent: str) -> frozenset[str]:
    """The words of an intent's name that carry meaning (card_not_working: card, not, working)."""
    return frozenset(w for w in intent.split("_") if w not in FUNCTION_WORDS)


def texts_by_intent(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Each intent's distinct messages (stripped), in file order."""
    frame = frame.assign(text=frame["text"].str.strip()).drop_duplicates("text")
    return {intent: group.tolist() for intent, group in frame.groupby("category")["text"]}


def _kind(first: str, second: str) -> str:
    if first == second:
        return "same_intent"
    return "shared_word" if name_words(first) & name_words(second) else "unrelated"


def sample_pairs(texts: dict[str, list[str]], per_kind: dict[str, int], seed: int) -> pd.DataFrame:
    """`per_kind[k]` distinct pairs of each kind, drawn with a seeded generator."""
    rng = random.Random(seed)
    intents = sorted(texts)
    partners = {kind: [(a, b) for a in intents for b in intents if _kind(a, b) == kind] for kind in per_kind}
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for kind, count in per_kind.items():
        made = 0
        while made < count:
            first, second = rng.choice(partners[kind])
            one, two = rng.choice(texts[first]), rng.choice(texts[second])
            if one == two or (one, two) in seen:
                continue
            seen.add((one, two))
            label = "duplicate" if kind == "same_intent" else "different"
            rows.append({"question1": one, "question2": two, "label": label, "kind": kind})
            made += 1
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def build(data: Path, out: Path, seed: int = 0) -> dict[str, int]:
    """Write `train.csv` and `test.csv` under `out`; their sizes."""
    sizes = {"train": 400, "test": 120}
    out.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        texts = texts_by_intent(pd.read_csv(data / f"{name}.csv"))
        half = size // 2
        per_kind = {"same_intent": half, "shared_word": half // 2, "unrelated": half - half // 2}
        sample_pairs(texts, per_kind, seed).to_csv(out / f"{name}.csv", index=False)
    (out / "LICENSE.txt").write_text(f"Derived from BANKING77. {LICENSE}\n", encoding="utf-8")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--out", type=Path, default=Path("data/pairs"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = build(args.data, args.out, args.seed)
    print(f"wrote {args.out}: {sizes['train']} train and {sizes['test']} test pairs")


if __name__ == "__main__":
    main()
