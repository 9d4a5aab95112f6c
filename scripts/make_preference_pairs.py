"""Build the example preference data set (`data/preference/`) from the bundled BANKING77, offline.

    python scripts/make_preference_pairs.py [--data data/banking77] [--out data/preference]

Each pair asks to classify one customer message (the SFT example's instruction); `chosen` is its
intent and `rejected` the intent most easily confused with it: the nearest other intent by
cosine similarity of the intents' mean TF-IDF vectors over the train texts (e.g. card_arrival vs
card_delivery_estimate). A seeded, stratified sample keeps it small: 4 messages per intent from
train (308 pairs) and 2 per intent from test (154 pairs). JSON Lines with `prompt`, `chosen`,
`rejected` and `intent` (a slice column for the champion's guard rails).

BANKING77 by PolyAI (https://huggingface.co/datasets/PolyAI/banking77), CC BY 4.0: the derived
pairs carry the same licence and attribution.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

INSTRUCTION = "Classify this customer message into a banking intent: {text}"
LICENSE = "CC BY 4.0; BANKING77 dataset by PolyAI (https://huggingface.co/datasets/PolyAI/banking77)"


def confusable_intents(train: pd.DataFrame) -> dict[str, str]:
    """Each intent's nearest other intent by the cosine of their mean TF-IDF vectors."""
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(train["text"])
    intents = sorted(train["category"].unique())
    centroids = np.vstack(
        [np.asarray(vectors[(train["category"] == i).to_numpy()].mean(axis=0)) for i in intents]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    similarity = centroids @ centroids.T
    np.fill_diagonal(similarity, -1.0)
    return {intent: intents[int(similarity[k].argmax())] for k, intent in enumerate(intents)}


def pairs(frame: pd.DataFrame, per_intent: int, rival: dict[str, str], seed: int) -> pd.DataFrame:
    """`per_intent` messages of every intent (seeded), as prompt / chosen / rejected records."""
    sample = (
        frame.drop_duplicates("text")
        .groupby("category", group_keys=False)
        .sample(per_intent, random_state=seed)
    )
    return pd.DataFrame(
        {
            "prompt": [INSTRUCTION.format(text=t.strip()) for t in sample["text"]],
            "chosen": sample["category"].to_numpy(),
            "rejected": [rival[c] for c in sample["category"]],
            "intent": sample["category"].to_numpy(),
        }
    )


def build(data: Path, out: Path, seed: int = 0) -> dict[str, int]:
    """Write `train.jsonl` and `test.jsonl` under `out`; their sizes."""
    train, test = pd.read_csv(data / "train.csv"), pd.read_csv(data / "test.csv")
    rival = confusable_intents(train)
    test_pairs = pairs(test, 2, rival, seed)
    held_out = set(test_pairs["prompt"])
    train_pairs = pairs(train, 4, rival, seed)
    train_pairs = train_pairs[~train_pairs["prompt"].isin(held_out)]  # no prompt leaks into test
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("train", train_pairs), ("test", test_pairs)):
        frame.to_json(out / f"{name}.jsonl", orient="records", lines=True, force_ascii=False)
    (out / "LICENSE.txt").write_text(f"Derived from BANKING77. {LICENSE}\n", encoding="utf-8")
    (out / "confusable_intents.json").write_text(json.dumps(rival, indent=1) + "\n", encoding="utf-8")
    return {"train": len(train_pairs), "test": len(test_pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--out", type=Path, default=Path("data/preference"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = build(args.data, args.out, args.seed)
    print(f"{args.out}: {sizes['train']} train pairs, {sizes['test']} test pairs")


if __name__ == "__main__":
    main()
