"""One configuration: `params.yaml` parsed once into typed, validated models.

Every step receives its own typed section; nothing below this module reads YAML.
Errors name the key path and what was expected, in one line. Which `task:` values exist, and the
rules a task type adds (e.g. a causal LM selects checkpoints on loss), live with the task types
(`tasks.task_types`), which check the parsed params before any step runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from tasks.core.errors import ConfigError
from tasks.core.sections import (
    CacheConfig,
    DistributedConfig,
    MultiLabelConfig,
    PreferenceConfig,
    SweepConfig,
    TokenClassificationConfig,
    _Section,
)


class DataConfig(_Section):
    """Where the examples come from and how they are split."""

    name: str = "banking77"  # the data set's name in MLflow and the model card
    license: str | None = None  # the data's licence and attribution, for the model card; null: not stated
    train_path: str = "data/banking77/train.csv"
    test_path: str | None = "data/banking77/test.csv"  # null: split test_fraction off train
    # json: array or JSON Lines; conll: token classification's one token and tag per line
    format: Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "conll"] = "auto"
    csv_delimiter: str | None = None  # null: "," for csv, tab for tsv
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None  # the second text of a pair (sequence_classification, regression)
    label_delimiter: str = ","  # multi_label_classification: separates the labels of a CSV/TSV cell
    labels_path: str | None = None  # a JSON list of label names in id order; null: from train
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # of train, for early stopping
    seed: int = 42
    max_train_samples: int | None = Field(None, gt=0)  # stratified cap on train; null: all
    max_test_samples: int | None = Field(None, gt=0)


class ValidateConfig(_Section):
    """Thresholds of the Great Expectations suite."""

    min_text_length: int = Field(1, ge=1)  # characters after stripping blanks
    max_text_length: int = Field(2000, ge=1)  # characters; longer rows are usually a broken quote
    min_examples_per_class: int = Field(2, ge=1)  # in train, before the validation split
    max_duplicate_fraction: float = Field(0.0, ge=0.0, le=1.0)  # share of rows sharing a text
    allow_leakage: bool = False  # true: test texts also in train are reported, not refused
    max_failed_rows_shown: int = Field(10, ge=1)
    max_truncated_fraction: float = Field(0.05, ge=0.0, le=1.0)  # causal_lm: examples cut at max_length


class TokenizeConfig(_Section):
    """How texts become token ids."""

    max_length: int | None = Field(None, gt=0)  # null: length_percentile of the train lengths
    length_percentile: float = Field(99.0, gt=0.0, le=100.0)
    batch_size: int = Field(1000, gt=0)
    num_proc: int | None = Field(None, gt=0)
    cache_dir: str = ".cache/refinery/tokenized"
    # text pairs: longest_first cuts the longer text first; only_second never cuts the first text
    truncation: Literal["longest_first", "only_second"] = "longest_first"


class SftConfig(_Section):
    """Instruction / chat examples for `task: causal_lm`: record shape and field mapping."""

    format: Literal["auto", "instruction", "chat"] = "auto"  # auto: chat when the messages field exists
    instruction_field: str = "instruction"
    input_field: str = "input"  # optional: appended to the instruction when present and non-empty
    output_field: str = "output"
    messages_field: str = "messages"  # a list of {role, content}: system?, then user/assistant turns
    system_prompt: str | None = None  # prepended as a system message to instruction records
    from_classification: bool = False  # build instruction records from data.text_column/label_column
    instruction_template: str = "Classify this customer message into a banking intent: {text}"
    packing: bool = False  # concatenate short train examples up to max_length

    @model_validator(mode="after")
    def _template_has_text(self) -> SftConfig:
        if self.from_classification and "{text}" not in self.instruction_template:
            raise ValueError("sft.instruction_template must contain '{text}'")
        return self


class LoraSettings(_Section):
    """Low-rank adapters (PEFT); target modules default to PEFT's own choice per architecture."""

    enabled: bool = False
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # null: PEFT's default for the architecture; "all-linear": every linear layer but the output head
    target_modules: list[str] | Literal["all-linear"] | None = None
    quantize_4bit: bool = False  # QLoRA: needs CUDA and bitsandbytes


# what `train.precision` accepts; tasks/training/precision.py says what each one computes in
Precision = Literal["auto", "fp32", "bf16", "fp16", "fp32_bf16_matmul", "bf16_linear"]


class TrainConfig(_Section):
    """Fine-tuning hyper-parameters, passed to the HF Trainer."""

    base_model: str = "minilm"  # minilm (packaged), a local model directory, or a hub id
    learning_rate: float = Field(3e-4, gt=0.0)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(128, gt=0)
    epochs: float = Field(3.0, gt=0.0)
    max_steps: int = -1  # > 0 overrides epochs
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0)
    seed: int = 42
    gradient_accumulation_steps: int = Field(1, gt=0)
    group_by_length: bool = True  # batches of rows of similar length, in random order (training/sampling.py)
    # batches per length group (at most a quarter of the rows): fewer mix lengths more within a batch
    # and pad more (50: 5 % padding on BANKING77, random batches pad 190 %)
    length_group_batches: int = Field(50, ge=1)
    # auto: bf16 autocast on CUDA (fp16 on GPUs without bf16); on a CPU the precision study's choice
    # (tasks/training/precision_study.json), fp32 without one. The variants: tasks/training/precision.py.
    # Weights stay fp32 in every one.
    precision: Precision = "auto"
    torch_compile: bool = False  # torch.compile the model: pays off on CUDA for long runs
    early_stopping_patience: int | None = Field(2, ge=1)  # evaluations without gain; null: off
    # a validation metric of the task type (its check_params lists them); loss and errors: minimised
    metric_for_best_model: str = "accuracy"
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    eval_steps: int | None = Field(None, gt=0)
    logging_steps: int = Field(50, gt=0)
    save_total_limit: int = Field(2, ge=1)
    checkpoint_dir: str = ".cache/refinery/checkpoints"
    resume: bool = True
    reuse_trained: bool = True
    progress_bars: bool = True
    lora: LoraSettings = LoraSettings()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _steps_need_eval_steps(self) -> TrainConfig:
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("train.eval_steps is required when train.eval_strategy is 'steps'")
        ranks = self.distributed.world_size
        if self.batch_size % ranks:
            raise ValueError(
                f"train.batch_size ({self.batch_size}) must be a multiple of train.distributed.processes"
                f" x nodes ({ranks}): it is the global batch, split evenly across the processes"
            )
        if self.lora.enabled and self.distributed.strategy == "fsdp":
            # checked on an H200 (scripts/cuda_check.py): FSDP's state-dict hooks expect the adapter's
            # base_layer weights that merging removes, so rank 0 failed to save after training
            raise ValueError(
                "train.distributed.strategy: fsdp cannot save a LoRA model (train.lora.enabled); "
                "use ddp (each rank holds the frozen model, only the adapters are synced) or deepspeed"
            )
        return self


class EvaluateConfig(_Section):
    """Scoring of the test split."""

    batch_size: int = Field(128, gt=0)
    # finished evaluations and champion comparisons, kept under a key of their inputs for re-runs
    cache_dir: str = ".cache/refinery/results"
    max_new_tokens: int = Field(32, gt=0)  # causal_lm: greedy generation length
    # causal_lm: cap on generated test rows, a sample stratified by label (seeded by `seed`), not the first
    max_generation_examples: int | None = Field(None, gt=0)
    seed: int = 0  # the sample of max_generation_examples
    examples_shown: int = Field(20, ge=0)  # causal_lm: rows of the generations table in the artifact


class GuardRailSettings(_Section):
    """How a class (or slice) is shown worse: a one-sided paired test per group, corrected for testing
    every group at once; a group trips when shown worse and its drop exceeds max_class_drop."""

    correction: Literal["westfall_young", "holm", "bh", "none"] = "westfall_young"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # family-wise error (false discovery rate for bh)
    min_support: int = Field(10, ge=1)  # a group with fewer test examples is reported, cannot trip
    permutations: int = Field(2000, ge=100)  # sign flips for Westfall-Young and non-binary scores


class ChampionGateConfig(_Section):
    """Champion–challenger comparison: when a `champion` exists, the challenger must beat it
    (`test: superiority`) or be shown no worse than it by more than `margin` (`non_inferiority`)."""

    # the difference that is bootstrapped; auto: the task type's first (accuracy for a classifier,
    # exact_match for a causal LM); the task type checks that it scores this metric
    metric: str = "auto"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # level of the bootstrap interval
    resamples: int = Field(1000, ge=100)
    seed: int = 0
    # superiority: "is the challenger better?"; non_inferiority: "is it at least as good?" (a refresh)
    test: Literal["superiority", "non_inferiority"] = "superiority"
    min_delta: float = Field(0.0, ge=-1.0, le=1.0)  # superiority: the interval's lower bound must exceed this
    margin: float = Field(0.0, ge=0.0, le=1.0)  # non_inferiority: the lower bound must exceed -margin
    max_class_drop: float = Field(0.05, ge=0.0, le=1.0)  # the smallest drop per group that matters
    guard_rails: GuardRailSettings = GuardRailSettings()
    slice_column: str | None = None  # a column of the test data: guard rails per slice, not per class
    # a champion trained on rows of this run's test split is scored on examples it learned: such a
    # comparison refuses the challenger unless this is true
    allow_overlap: bool = False


DEFAULT_THRESHOLDS = {"accuracy": 0.85, "f1_macro": 0.80}


class GateConfig(_Section):
    """Minimum metrics a model must reach to be registered."""

    champion: ChampionGateConfig = ChampionGateConfig()
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))  # minimums
    maximums: dict[str, float] = Field(default_factory=dict)  # lower-is-better metrics, e.g. perplexity
    on_fail: Literal["fail", "complete"] = "fail"


class RegisterConfig(_Section):
    """Where and under which name the model is tracked and registered."""

    model_name: str = "banking77-intent"  # the registered model's name
    experiment: str = "refinery"
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI, when set, wins
    alias: str = "challenger"
    promotion: Literal["manual", "auto"] = "manual"  # auto: a passing challenger becomes `champion`
    causal_lm_format: Literal["merged", "adapter"] = "merged"  # adapter: LoRA weights + base reference
    # transient tracking-store failures (connection, 5xx, SQLite locked): attempts in all, first wait
    retry_attempts: int = Field(4, ge=1)
    retry_wait_seconds: float = Field(2.0, gt=0)


class Params(_Section):
    """The whole pipeline's configuration, one section per step."""

    task: str = "sequence_classification"  # a name in tasks.task_types.TASK_TYPES
    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    sft: SftConfig = SftConfig()
    preference: PreferenceConfig = PreferenceConfig()
    multi_label: MultiLabelConfig = MultiLabelConfig()
    token_classification: TokenClassificationConfig = TokenClassificationConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()
    register_: RegisterConfig = Field(RegisterConfig(), alias="register")
    cache: CacheConfig = CacheConfig()
    sweep: SweepConfig = SweepConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration, with the same keys as params.yaml."""
        return self.model_dump(by_alias=True, mode="json")


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    path = (
        ".".join(str(p) for p in first["loc"])
        .replace("validate_", "validate")
        .replace("register_", "register")
    )
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key '{path}'"
    if kind == "value_error":  # a cross-field rule: its message names the keys
        return f"{source}: {first['msg'].removeprefix('Value error, ')}"
    got = first.get("input")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: '{path}' {first['msg'].lower()}, got {got!r}{more}"


def parse_value(text: str) -> Any:
    """Parse one `--set` value the way YAML would (numbers, booleans, null, lists)."""
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted keys (`train.learning_rate`) replaced."""
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for dotted, value in overrides.items():
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{dotted}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return merged


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a raw mapping into `Params`, raising `ConfigError` with the key path."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read `path`, apply dotted overrides, and validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(f"{path}:{where} not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return parse_params(apply_overrides(raw, overrides or {}), str(path))
