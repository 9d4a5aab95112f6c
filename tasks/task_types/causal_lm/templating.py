"""Chat templating for causal-LM fine-tuning: conversations to token ids, loss only on responses.

Each example is rendered with the tokenizer's chat template, or with `DEFAULT_CHAT_TEMPLATE`
when it has none (then saved with the model, so inference renders prompts the same way).
Labels are -100 (ignored by the loss) on every prompt position and the token ids on assistant
turns; a token straddling the prompt/response boundary counts as prompt. Examples longer than
`max_length` are cut on the right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from tasks.core.config import TokenizeConfig
from tasks.core.errors import RefineryError
from tasks.models.tokenizers import load_tokenizer, model_max_length

IGNORE = -100  # the label the loss skips
# The documented default: "### User:" / "### Assistant:" blocks, a system text first, and the
# end-of-sequence token closing every response so the model learns where to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)


def load_chat_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """The fast tokenizer with a chat template (its own or the default) and a padding token."""
    return with_chat_defaults(load_tokenizer(model_dir), f"train.base_model: the tokenizer in {model_dir}")


def with_chat_defaults(tokenizer: PreTrainedTokenizerBase, where: str) -> PreTrainedTokenizerBase:
    """`tokenizer` with the default chat template when it has none and a padding token."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.eos_token is None:
        raise RefineryError(f"{where} has no end-of-sequence token")
    return tokenizer


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation: bool) -> str:
    """The chat template applied to `messages`, as text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    assert isinstance(text, str)
    return text


def response_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> tuple[str, list]:
    """The rendered conversation and the character spans of its assistant turns."""
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], generation=True)
        upto = render(tokenizer, messages[: i + 1], generation=False)
        if not upto.startswith(prefix):
            raise RefineryError(
                "tokenize: the chat template renders a prompt that is not a prefix of the conversation; "
                "responses cannot be located (use a template with add_generation_prompt support)"
            )
        spans.append((len(prefix), len(prefix) + len(upto[len(prefix) :].rstrip())))
    return render(tokenizer, messages, generation=False), spans


@dataclass(frozen=True)
class Encoded:
    """One templated example: ids and labels cut to max_length, and its length before the cut."""

    input_ids: list[int]
    labels: list[int]
    total_tokens: int

    @property
    def response_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode_example(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_length: int | None
) -> Encoded:
    """Token ids of the templated conversation; labels only where a token starts in a response."""
    text, spans = response_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    labels = [
        token if any(lo <= start < hi for lo, hi in spans) else IGNORE
        for token, (start, _end) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    cut = len(ids) if max_length is None else max_length
    return Encoded(input_ids=ids[:cut], labels=labels[:cut], total_tokens=len(ids))


def max_length_for(
    records: list[list[dict[str, str]]],
    tokenizer: PreTrainedTokenizerBase,
    model_dir: Path,
    cfg: TokenizeConfig,
) -> int:
    """`tokenize.max_length`, else the longest templated example of `records`; capped by the model.

    Unlike the classifier's percentile rule, no example is cut by default: a cut loses the
    response, which is all the example teaches. Validation passes every row it checks and
    tokenization every row of its splits (a subset of those), so with null nothing that passed
    validation is cut.
    """
    cap = model_max_length(tokenizer, model_dir)
    if cfg.max_length is not None:
        return min(cfg.max_length, cap)
    lengths = [encode_example(tokenizer, m, None).total_tokens for m in records]
    return min(cap, max([8, *lengths]))
