"""Logging a fine-tuned causal LM to MLflow: the merged model or the adapter with its base.

`register.causal_lm_format: merged` logs the merged weights with the transformers flavor as a
`text-generation` pipeline whose prompt template is the chat template around the user's text;
`adapter` logs only the LoRA weights and tokenizer as a pyfunc (`adapter_model.py` beside this
file) that rebuilds the model from the base directory it references. Either way
`mlflow.pyfunc.load_model(uri).predict(["..."])` returns the generated answers.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema

from tasks.core.config import Params
from tasks.core.errors import RefineryError
from tasks.core.layout import RunLayout
from tasks.models.base_models import base_model_dir
from tasks.models.lora import ADAPTER_DIR
from tasks.registry.registration import pip_requirements
from tasks.task_types.causal_lm.templating import load_chat_tokenizer, render

SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("string")]))
_PLACEHOLDER = "REFINERYPROMPTPLACEHOLDER"


def prompt_template(layout: RunLayout, system_prompt: str | None) -> str:
    """The chat template around `{prompt}` as a `str.format` template (MLflow's prompt_template)."""
    tokenizer = load_chat_tokenizer(layout.model_dir)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    text = render(tokenizer, [*system, {"role": "user", "content": _PLACEHOLDER}], generation=True)
    return text.replace("{", "{{").replace("}", "}}").replace(_PLACEHOLDER, "{prompt}")


def log_causal_lm(params: Params, layout: RunLayout, card: str, examples: list[str]) -> ModelInfo:
    """Log the merged model (transformers flavor) or the adapter + base reference (pyfunc)."""

    generation = {"max_new_tokens": params.evaluate.max_new_tokens, "do_sample": False}
    if params.register_.causal_lm_format == "adapter":
        adapter = layout.model_dir / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise RefineryError(
                "register.causal_lm_format: adapter needs a LoRA training (train.lora.enabled: true)"
            )
        base = str(base_model_dir(params, layout).resolve())
        info: ModelInfo = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("adapter_model.py")),
            artifacts={"adapter": str(adapter)},
            model_config={**generation, "base_model": base, "system_prompt": params.sft.system_prompt},
            signature=SIGNATURE,
            pip_requirements=pip_requirements("peft"),
        )
        return info
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(layout.model_dir))
    card_data = ModelCardData(library_name="transformers", pipeline_tag="text-generation").to_yaml()
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": load_chat_tokenizer(layout.model_dir)},
        task="text-generation",
        name="model",
        signature=SIGNATURE,
        input_example=examples[:1],
        prompt_template=prompt_template(layout, params.sft.system_prompt),
        model_config=generation,
        pip_requirements=pip_requirements(),
        model_card=ModelCard(f"---\n{card_data}\n---\n{card}"),
    )
    return info


def example_prompts(layout: RunLayout, count: int = 3) -> list[str]:
    """A few test prompts (the last user turn): the input example stored with the model."""
    import pandas as pd

    frame = pd.read_parquet(layout.splits_dir / "test.parquet", columns=["prompt"])
    return [str(text) for text in frame["prompt"].head(count)]


def card_texts(params: Params, labels: list[str]) -> tuple[str, str]:
    """The model card's first line and its limitations, for a causal LM."""
    how = "LoRA adapters merged into" if params.train.lora.enabled else "full fine-tuning of"
    summary = (
        f"Instruction-tuned causal language model: {how} `{params.train.base_model}`, "
        f"registered as the {params.register_.causal_lm_format} model."
    )
    limitations = (
        "- Generates free text in the style of its training responses; it can state wrong things\n"
        "  fluently. Exact match and ROUGE-L on the held-out set are in `eval/generations.csv`.\n"
        "- Prompts are rendered with the chat template stored with the tokenizer; other formats\n"
        "  degrade the answers. Keep a person in the loop for decisions that affect customers.\n"
    )
    return summary, limitations
