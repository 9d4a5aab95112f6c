"""Build a tiny, randomly initialised causal LM (2-layer Llama) for smoke runs, offline.

    python scripts/make_tiny_causal_lm.py .cache/tiny-causal-lm [--texts data/banking77/train.csv]

The word-level tokenizer is trained on the given texts (CSV `text`/`category` columns, or JSONL
values) so every word of the data has an id; it carries a small chat template. The model learns
nothing useful in a few steps: it exists to run the pipeline end to end, not to score well.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ ' ' + eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)
TEMPLATE_WORDS = "<| system user assistant |> ### User Assistant : Classify this customer message into a"


def build_tiny_causal_lm(path: Path, texts: Iterable[str], chat_template: bool = True, seed: int = 0) -> Path:
    """Save a 2-layer, hidden-64 Llama and a word-level fast tokenizer trained on `texts` into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL, min_frequency=1)
    backend.train_from_iterator([*texts, TEMPLATE_WORDS], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=256,
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _texts(path: Path) -> list[str]:
    if path.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [str(v) for column in frame.columns for v in frame[column]]
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.dumps(record, ensure_ascii=False) for record in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("output", type=Path, help="directory to create")
    parser.add_argument("--texts", type=Path, default=Path("data/banking77/train.csv"))
    args = parser.parse_args()
    build_tiny_causal_lm(args.output, _texts(args.texts))
    print(f"tiny causal LM written to {args.output}; set train.base_model: {args.output}")


if __name__ == "__main__":
    main()
