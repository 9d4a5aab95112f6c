"""Build the example named-entity data set (`data/ner/`) from the bundled BANKING77, offline.

    python scripts/make_ner_example.py [--data data/banking77] [--out data/ner]

Each customer message is split into words and punctuation and tagged in IOB2 by fixed rules:
MONEY for amounts ("$100", "50 euros", "£20"), CURRENCY for a currency named alone ("euros",
"USD"), CARD_BRAND for Visa / Mastercard / Amex / Maestro / American Express, COUNTRY for a short
list of countries. Test messages also in train are left out. A seeded sample keeps it small and
balanced: per entity type up to 60 train and 20 test messages that have one, and half as many
messages without any entity.
Train is written as CoNLL (`token tag` lines, a blank line between sentences), test as JSON Lines
(`tokens`, `tags`), so both readers are exercised.

BANKING77 by PolyAI (https://huggingface.co/datasets/PolyAI/banking77), CC BY 4.0: the derived
data carries the same licence and attribution.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

LICENSE = "CC BY 4.0; BANKING77 dataset by PolyAI (https://huggingface.co/datasets/PolyAI/banking77)"
TOKEN = re.compile(r"[$£€]|\d+(?:[.,]\d+)*|\w+(?:'\w+)?|[^\w\s]")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SYMBOLS = {"$", "£", "€"}
CURRENCIES = {"euro", "euros", "dollar", "dollars", "pound", "pounds", "usd", "eur", "gbp", "yen", "sterling"}
BRANDS = {("visa",), ("mastercard",), ("amex",), ("maestro",), ("american", "express")}
COUNTRIES = {
    *((name,) for name in ("uk", "usa", "spain", "france", "germany", "china", "italy", "mexico",
                           "canada", "japan", "thailand", "india", "australia", "ireland", "portugal")),
    ("united", "kingdom"),
    ("united", "states"),
}  # fmt: skip
TYPES = ("MONEY", "CURRENCY", "CARD_BRAND", "COUNTRY")


def _phrase(words: list[str], at: int, phrases: set[tuple[str, ...]]) -> int:
    """The length of the longest phrase of `phrases` starting at word `at` (0: none)."""
    return max((len(p) for p in phrases if tuple(words[at : at + len(p)]) == p), default=0)


def _money(words: list[str], at: int) -> int:
    """The length of an amount starting at `at`: symbol + number (+ currency), or number + currency."""
    if words[at] in SYMBOLS and at + 1 < len(words) and NUMBER.fullmatch(words[at + 1]):
        return 3 if at + 2 < len(words) and words[at + 2] in CURRENCIES else 2
    if NUMBER.fullmatch(words[at]) and at + 1 < len(words) and words[at + 1] in CURRENCIES:
        return 2
    return 0


def tag(text: str) -> tuple[list[str], list[str]]:
    """The message's tokens and their IOB2 tags by the rules above."""
    tokens = TOKEN.findall(text)
    words = [t.lower() for t in tokens]
    tags = ["O"] * len(tokens)
    at = 0
    while at < len(words):
        spans = (
            ("MONEY", _money(words, at)),
            ("CURRENCY", 1 if words[at] in CURRENCIES else 0),
            ("CARD_BRAND", _phrase(words, at, BRANDS)),
            ("COUNTRY", _phrase(words, at, COUNTRIES)),
        )
        kind, size = next(((k, n) for k, n in spans if n), ("O", 1))
        if kind != "O":
            tags[at : at + size] = [f"B-{kind}"] + [f"I-{kind}"] * (size - 1)
        at += size
    return tokens, tags


def sample(frame: pd.DataFrame, per_type: int, seed: int) -> pd.DataFrame:
    """Up to `per_type` tagged messages per entity type, plus half as many without entities."""
    frame = frame.drop_duplicates("text").reset_index(drop=True)
    tagged = [tag(text) for text in frame["text"]]
    frame = frame.assign(tokens=[t for t, _ in tagged], tags=[g for _, g in tagged])
    chosen: set[int] = set()
    for kind in TYPES:
        has = frame[frame["tags"].map(lambda tags, k=kind: f"B-{k}" in tags)]
        chosen |= set(has.sample(min(per_type, len(has)), random_state=seed).index)
    plain = frame[frame["tags"].map(lambda tags: set(tags) == {"O"})]
    chosen |= set(plain.sample(len(chosen) // 2, random_state=seed).index)
    return frame.loc[sorted(chosen), ["tokens", "tags"]]


def write_conll(frame: pd.DataFrame, path: Path) -> None:
    blocks = [
        "\n".join(f"{t} {g}" for t, g in zip(row.tokens, row.tags, strict=True)) for row in frame.itertuples()
    ]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    lines = [
        json.dumps({"tokens": row.tokens, "tags": row.tags}, ensure_ascii=False) for row in frame.itertuples()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/banking77"))
    parser.add_argument("--out", type=Path, default=Path("data/ner"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_rows, test_rows = pd.read_csv(args.data / "train.csv"), pd.read_csv(args.data / "test.csv")
    seen = {" ".join(TOKEN.findall(text)) for text in train_rows["text"]}  # BANKING77 repeats a few
    test_rows = test_rows[[" ".join(TOKEN.findall(text)) not in seen for text in test_rows["text"]]]
    train = sample(train_rows, 60, args.seed)
    test = sample(test_rows, 20, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_conll(train, args.out / "train.conll")
    write_jsonl(test, args.out / "test.jsonl")
    (args.out / "LICENSE.txt").write_text(f"Derived from BANKING77. {LICENSE}\n", encoding="utf-8")
    print(f"{args.out}: {len(train)} train sentences (CoNLL), {len(test)} test sentences (JSONL)")


if __name__ == "__main__":
    main()
