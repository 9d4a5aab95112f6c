"""Zero-shot exact match of the base SmolLM2-135M-Instruct on BANKING77 (not run in CI).

The floor a fine-tuned SmolLM2 must beat: a stratified sample of the bundled test split
(`--per-intent` messages of each of the 77 intents, 770 by default), each asked through the
model's chat template with the list of intents; greedy decoding in left-padded batches. Answers
are normalised (strip, lower case, spaces → underscores) before exact match; answers that are no
intent at all are counted as "not a label". `--limit N` takes the first N of the sample, one
intent after the other, so `--limit 77` is one message per intent.

    python benchmarks/smollm2_zero_shot.py --limit 77
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.models.base_models import resolve_base_model

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "banking77"
INSTRUCTION = "Classify this customer message into a banking intent: {text}"
ANSWER_RULE = "Answer with the intent name only."


def stratified_sample(test_csv: Path, intents: list[str], per_intent: int, seed: int) -> pd.DataFrame:
    """`per_intent` random rows of each intent, ordered round-robin over the intents.

    Round-robin order makes every prefix of the sample as balanced as it can be, so `--limit`
    keeps the stratification.
    """
    frame = pd.read_csv(test_csv)
    sample = frame.groupby("category", group_keys=False).sample(n=per_intent, random_state=seed)
    sample["rank"] = sample.groupby("category").cumcount()
    sample["intent_order"] = sample["category"].map({name: i for i, name in enumerate(intents)})
    return sample.sort_values(["rank", "intent_order"]).reset_index(drop=True)


def build_prompt(text: str, intents: list[str]) -> str:
    """The user turn: the instruction with the message, the intents one per line, the answer rule."""
    listing = "\n".join(intents)
    return f"{INSTRUCTION.format(text=text)}\n\nIntents:\n{listing}\n\n{ANSWER_RULE}"


def normalise(answer: str) -> str:
    """Strip, lower-case, spaces to underscores: the form the intent names are written in."""
    return answer.strip().lower().replace(" ", "_")


def generate_answers(
    model: Any, tokenizer: Any, prompts: list[str], batch_size: int, max_new_tokens: int
) -> list[str]:
    """Greedy answers to `prompts`, batched with left padding (longest first, to pad little)."""
    tokenizer.padding_side = "left"
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        for prompt in prompts
    ]
    order = sorted(range(len(chats)), key=lambda i: -len(chats[i]))
    answers: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        batch_chats = [chats[i] for i in batch]
        inputs = tokenizer(batch_chats, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        answers.update(zip(batch, texts, strict=True))
        print(f"  {start + len(batch)}/{len(order)}", file=sys.stderr, flush=True)
    return [answers[i] for i in range(len(prompts))]


def score(answers: list[str], references: list[str], intents: list[str]) -> dict[str, Any]:
    """Exact match after normalisation, the share of answers that are no intent, common answers."""
    known = set(intents)
    normalised = [normalise(answer) for answer in answers]
    right = sum(a == r for a, r in zip(normalised, references, strict=True))
    not_a_label = sum(a not in known for a in normalised)
    return {
        "n": len(answers),
        "exact_match": right / len(answers),
        "correct": right,
        "not_a_label": not_a_label,
        "not_a_label_rate": not_a_label / len(answers),
        "most_common_answers": Counter(normalised).most_common(10),
    }


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only (77: one per intent)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--rows",
        type=Path,
        default=None,
        help="score these rows (CSV: text, reference) instead of a new sample, e.g. an SFT run's test rows",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda); fp32 either way")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: benchmarks/results/)")
    return parser.parse_args()


def main() -> None:
    """Sample, prompt, generate, score; print the summary and write it with every answer."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    intents: list[str] = json.loads((DATA / "categories.json").read_text())
    if args.rows is not None:
        sample = pd.read_csv(args.rows, keep_default_na=False).rename(columns={"reference": "category"})
    else:
        sample = stratified_sample(DATA / "test.csv", intents, args.per_intent, args.seed)
    if args.limit is not None:
        sample = sample.head(args.limit)
    started = time.monotonic()
    model_dir = resolve_base_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on a GPU too, as on the CPU
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(args.device).eval()
    load_seconds = time.monotonic() - started
    prompts = [build_prompt(text, intents) for text in sample["text"]]
    started = time.monotonic()
    answers = generate_answers(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    generate_seconds = time.monotonic() - started
    summary = score(answers, list(sample["category"]), intents)
    summary.update(
        model_dir=str(model_dir),
        load_seconds=round(load_seconds, 1),
        generate_seconds=round(generate_seconds, 1),
        seconds_per_prompt=round(generate_seconds / len(prompts), 2),
        prompt_tokens_mean=round(sum(len(tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)),
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        torch_threads=torch.get_num_threads(),
        host=platform.node(),
        device=torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor(),
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=2))
    name = f"smollm2-zero-shot-{date.today()}-{platform.node()}.json"
    out = args.out or REPO / "benchmarks" / "results" / name
    rows = [
        {"text": t, "reference": r, "answer": a}
        for t, r, a in zip(sample["text"], sample["category"], answers, strict=True)
    ]
    out.write_text(json.dumps({**summary, "answers": rows}, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
