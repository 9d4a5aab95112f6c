"""Build the example multi-label data set (`data/multi_label/`) from the bundled BANKING77, offline.

    python scripts/make_multi_label_example.py [--data data/banking77] [--out data/multi_label]

Support messages that carry several tags: each message joins one to three BANKING77 texts of
different intents (of eight), and its labels are those intents. Every source text is used once,
train messages from BANKING77's train split and test messages from its test split (no text in
both). Seeded. Train is JSON Lines with a list of labels (400 messages); test is CSV with the
labels separated by "|" (160 messages), so both label readers are exercised; `labels.json` lists
the eight intents in id order (`data.labels_path`).

BANKING77 by PolyAI (https://huggingface.co/datasets/PolyAI/banking77), CC BY 4.0: the derived
messages carry the same licence and attribution.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

INTENTS = [
    "card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pending_transfer",
    "declined_card_payment", "change_pin", "cash_withdrawal_charge",
]  # fmt: skip
SIZES = (1, 2, 3)
SIZE_SHARES = (0.35, 0.45, 0.2)  # how many intents a message joins
LICENSE = "CC BY 4.0; BANKING77 dataset by PolyAI (https://huggingface.co/datasets/PolyAI/banking77)"


def messages(frame: pd.DataFrame, count: int, seed: int, intents: list[str] = INTENTS) -> pd.DataFrame:
    """`count` messages, each of one to three texts of different `intents` (BANKING77's `category`);
    every text used at most once."""
    rng = np.random.default_rng(seed)
    pools = {
        intent: list(rng.permutation(frame.loc[frame["category"] == intent, "text"].str.strip().tolist()))
        for intent in intents
    }
    rows = []
    for _ in range(count):
        left = [intent for intent in intents if pools[intent]]
        size = min(int(rng.choice(SIZES, p=SIZE_SHARES)), len(left))
        chosen = [str(i) for i in rng.choice(left, size=size, replace=False)]
        rows.append({"text": " ".join(pools[intent].pop() for intent in chosen), "labels": chosen})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--out", type=Path, default=Path("data/multi_label"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = messages(pd.read_csv(args.data / "train.csv"), 400, args.seed)
    test = messages(pd.read_csv(args.data / "test.csv"), 160, args.seed + 1)
    args.out.mkdir(parents=True, exist_ok=True)
    train.to_json(args.out / "train.jsonl", orient="records", lines=True, force_ascii=False)
    test.assign(labels=test["labels"].map("|".join)).to_csv(args.out / "test.csv", index=False)
    (args.out / "labels.json").write_text(json.dumps(INTENTS, indent=1) + "\n", encoding="utf-8")
    (args.out / "LICENSE.txt").write_text(f"Derived from BANKING77. {LICENSE}\n", encoding="utf-8")
    for name, frame in (("train", train), ("test", test)):
        per_row = frame["labels"].map(len).mean()
        print(f"{name}: {len(frame)} messages, {per_row:.2f} labels per message")


if __name__ == "__main__":
    main()
