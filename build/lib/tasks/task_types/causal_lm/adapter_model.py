"""A LoRA adapter served with a reference to its base model, as an MLflow "model from code".

MLflow logs this file itself (`python_model=<this path>`); loading it builds the base causal
LM from `model_config["base_model"]` (a local directory), applies the logged adapter and
generates greedily from prompts rendered with the logged tokenizer's chat template.
Kept free of other Refinery imports so the logged model loads wherever its requirements do.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel, PythonModelContext


class AdapterModel(PythonModel):
    """Base model + LoRA adapter; `predict(["prompt", ...])` returns the generated answers."""

    def load_context(self, context: PythonModelContext) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = context.model_config or {}
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts["adapter"])
        self.tokenizer.padding_side = "left"
        base = AutoModelForCausalLM.from_pretrained(str(config["base_model"]))
        self.model = PeftModel.from_pretrained(base, context.artifacts["adapter"]).eval()

    def predict(
        self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None
    ) -> list[str]:
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.iloc[:, 0].tolist()
        prompts = [model_input] if isinstance(model_input, str) else [str(p) for p in model_input]
        system = self.config.get("system_prompt")
        rendered = [
            self.tokenizer.apply_chat_template(
                [
                    *([{"role": "system", "content": system}] if system else []),
                    {"role": "user", "content": p},
                ],
                tokenize=False,
                add_generation_prompt=True,
            )
            for p in prompts
        ]
        batch = self.tokenizer(rendered, add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=int(self.config.get("max_new_tokens", 32)),
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


mlflow.models.set_model(AdapterModel())
