"""The reference: what a Hugging Face tutorial does, with nothing else.

`AutoTokenizer`, `Dataset.map` (truncation, no padding), `AutoModelForSequenceClassification`,
`Trainer` with its default collator (dynamic padding over random batches), `train()`,
`predict()` on the test set. No validation, tracking or registration. Same model, data, epochs, learning rate
and batch size as the Refinery run it is compared with. Prints one JSON line of measurements.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="category")
    parser.add_argument("--sep", default=",")
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--output-dir", default="/tmp/plain-trainer")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--predictions", default=None, help="write each test row's label and prediction here")
    args = parser.parse_args()

    start = time.perf_counter()
    train_frame = pd.read_csv(args.train, sep=args.sep)
    test_frame = pd.read_csv(args.test, sep=args.sep)
    if args.max_train_samples:
        train_frame = train_frame.sample(n=args.max_train_samples, random_state=args.seed)
    labels = sorted(set(train_frame[args.label_column].astype(str)))
    label2id = {name: i for i, name in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def encode(batch: dict[str, list[object]]) -> dict[str, object]:
        encoded = tokenizer([str(t) for t in batch[args.text_column]], truncation=True)
        encoded["labels"] = [label2id[str(v)] for v in batch[args.label_column]]
        return dict(encoded)

    columns = [args.text_column, args.label_column]
    train = Dataset.from_pandas(train_frame[columns], preserve_index=False).map(
        encode, batched=True, remove_columns=columns
    )
    test = Dataset.from_pandas(test_frame[columns], preserve_index=False).map(
        encode, batched=True, remove_columns=columns
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), ignore_mismatched_sizes=True
    )

    def accuracy(prediction: object) -> dict[str, float]:
        logits, refs = prediction.predictions, prediction.label_ids  # type: ignore[attr-defined]
        return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == refs))}

    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output_dir,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            num_train_epochs=args.epochs,
            seed=args.seed,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
        ),
        train_dataset=train,
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    result = trainer.train()
    predicted = trainer.predict(test)  # one pass: the accuracy and, with --predictions, each row's answer
    scores = predicted.metrics or {}
    if args.predictions:
        pd.DataFrame(
            {
                "label": test_frame[args.label_column].astype(str).to_numpy(),
                "prediction": [labels[i] for i in np.argmax(predicted.predictions, axis=-1)],
            }
        ).to_csv(args.predictions, index=False)
    tokens = int(sum(len(ids) for ids in train["input_ids"]))
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - start,
                "train_runtime_s": result.metrics["train_runtime"],
                "train_samples_per_second": result.metrics["train_samples_per_second"],
                "train_examples": len(train),
                "train_tokens_per_epoch": tokens,
                "epochs": args.epochs,
                "test_accuracy": scores["test_accuracy"],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "output_dir": str(Path(args.output_dir)),
            }
        )
    )


if __name__ == "__main__":
    main()
