"""The causal-LM reference: what TRL's SFT quickstart does with LoRA, with nothing else.

A JSONL file of conversational prompt-completion records (`prompt`: the messages before the answer,
`completion`: the assistant's answer), `AutoModelForCausalLM`, a PEFT `LoraConfig` and TRL's
`SFTTrainer` with its own defaults (its tokenization and chat template, loss on completions only,
dynamic padding over batches in random order, gradient checkpointing on), then `train()`. No
validation, evaluation, tracking or registration. The hyper-parameters given are those of the
Refinery run it is compared with; `--packing` packs best-fit-decreasing into padding-free batches
(TRL's `packing=True`), `--padding-free` flattens each batch without packing (TRL's `padding_free`).
Prints one JSON line of measurements; the token count is of the non-padding tokens trained on.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import pandas as pd
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True, help="JSONL of prompt / completion message lists")
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.03)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast")
    parser.add_argument("--packing", action="store_true", help="TRL's packing (bfd: padding-free)")
    parser.add_argument("--padding-free", action="store_true", help="TRL's padding_free, no packing")
    parser.add_argument("--no-gradient-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--output-dir", default="/tmp/plain-sft")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    start = time.perf_counter()
    train = Dataset.from_pandas(pd.read_json(args.train, lines=True), preserve_index=False)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)  # fp32 weights; bf16: autocast, as Refinery
    config = SFTConfig(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        warmup_steps=args.warmup_ratio,
        weight_decay=args.weight_decay,
        seed=args.seed,
        max_length=None if args.padding_free and not args.packing else args.max_length,
        packing=args.packing,
        padding_free=args.padding_free,
        activation_checkpointing=None if args.checkpointing else False,  # None: TRL's default (on)
        bf16=args.precision == "bf16",
        fp16=args.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    peft = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=train, processing_class=tokenizer, peft_config=peft
    )
    prepared = trainer.train_dataset
    assert isinstance(prepared, Dataset)
    tokens = sum(len(ids) for ids in prepared["input_ids"])  # packed or not: no padding yet
    result = trainer.train()
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - start,
                "train_runtime_s": result.metrics["train_runtime"],
                "train_examples": len(train),
                "train_sequences": len(prepared),
                "train_tokens_per_epoch": tokens,
                "epochs": args.epochs,
                "global_steps": result.global_step,
                "train_loss": result.training_loss,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
