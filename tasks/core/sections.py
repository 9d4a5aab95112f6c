"""Params sections of their own concern: training on several processes, the cache budget, sweeps.

`tasks.core.config` assembles them into `Params`; kept apart so each file stays readable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DistributedConfig(_Section):
    """How many processes train, and on which engine: torchrun (one node or several) or Ray Train.

    `train.batch_size` stays the batch of one optimizer micro-step across all processes: each of the
    `processes × nodes` ranks takes `batch_size / world_size`, so the global batch (and the result,
    within noise) does not depend on the launcher.
    """

    launcher: Literal["none", "torchrun", "ray"] = "none"
    processes: int = Field(1, ge=1)  # torchrun: processes per node (one per GPU); ray: workers
    nodes: int = Field(1, ge=1)  # torchrun across nodes, meeting at rdzv_endpoint
    rdzv_endpoint: str | None = None  # host:port of the c10d rendezvous; required when nodes > 1
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"  # fsdp: the Trainer's fsdp options
    deepspeed_config: str | None = None  # a DeepSpeed JSON config; strategy deepspeed (CUDA only)
    ray_address: str | None = None  # null: a local Ray for the run; "auto" or "ray://host:10001"
    resources_per_worker: dict[str, float] = Field(default_factory=lambda: {"CPU": 1.0, "GPU": 0.0})

    @property
    def world_size(self) -> int:
        """How many ranks train together."""
        return self.processes * self.nodes

    @model_validator(mode="after")
    def _consistent(self) -> DistributedConfig:
        key = "train.distributed"
        if self.launcher == "none" and self.world_size > 1:
            raise ValueError(f"{key}.processes and nodes above 1 need {key}.launcher torchrun or ray")
        if self.nodes > 1 and self.launcher != "torchrun":
            raise ValueError(f"{key}.nodes is torchrun's; Ray places its workers on the cluster's nodes")
        if self.nodes > 1 and not self.rdzv_endpoint:
            raise ValueError(f"{key}.rdzv_endpoint (host:port) is required when {key}.nodes > 1")
        if (self.strategy == "deepspeed") != (self.deepspeed_config is not None):
            raise ValueError(f"{key}.deepspeed_config is set exactly when {key}.strategy is deepspeed")
        if self.ray_address is not None and self.launcher != "ray":
            raise ValueError(f"{key}.ray_address is only used when {key}.launcher is ray")
        negative = sorted(name for name, amount in self.resources_per_worker.items() if amount < 0)
        if negative:
            raise ValueError(f"{key}.resources_per_worker.{negative[0]} must be >= 0")
        return self


class CacheConfig(_Section):
    """How much disk `refinery gc` lets the caches (tokenized entries, checkpoints, `trained/`) keep."""

    budget_gb: float = Field(20.0, gt=0.0)  # least recently used entries beyond it are removed


class SweepConfig(_Section):
    """A hyper-parameter search (`refinery sweep`): Optuna trials chosen on the validation split only."""

    metric: str = "accuracy"  # a validation metric the trainer reports (eval_<metric>); loss: minimised
    trials: int = Field(20, gt=0)  # in all, counted over a resumed study
    timeout_s: float | None = Field(None, gt=0)  # stop starting trials after this long; null: no limit
    sampler: Literal["tpe", "random", "grid"] = "tpe"  # grid: every space key needs `choices`
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(5, ge=0)  # median: trials finished before any is pruned
    parallel: int = Field(1, gt=0)  # trials at once, each with 1/parallel of the cores
    storage: str | None = None  # an SQLAlchemy URL; null: SQLite beside the tokenize cache
    # dotted train:/tokenize: keys -> {low, high, log?, step?} or {choices: [...]}
    space: dict[str, Any] = Field(default_factory=dict)


class PreferenceConfig(_Section):
    """Preference pairs for `task: preference` (DPO with TRL): fields, loss and lengths.

    A record has a prompt and two answers, `chosen` preferred over `rejected`: plain strings, or
    conversational (`chosen`/`rejected` as message lists ending on the assistant answer, the prompt
    optional when both lists carry the same turns before it). `loss_type` is one of TRL's DPO losses
    (checked against the installed TRL by the task type).
    """

    method: Literal["dpo"] = "dpo"  # ORPO lives only in trl.experimental: not offered (README)
    beta: float = Field(0.1, gt=0.0)  # deviation from the reference model; also scales the reward
    loss_type: str = "sigmoid"  # TRL's DPOConfig.loss_type: sigmoid (DPO), ipo, hinge, robust, ...
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    max_length: int | None = Field(None, gt=0)  # prompt + answer tokens; null: the longest pair
    max_prompt_length: int | None = Field(None, gt=0)  # prompt tokens kept (its end); null: all

    @model_validator(mode="after")
    def _prompt_fits(self) -> PreferenceConfig:
        short, long = self.max_prompt_length, self.max_length
        if short is not None and long is not None and short >= long:
            raise ValueError("preference.max_prompt_length must be below preference.max_length")
        return self


class MultiLabelConfig(_Section):
    """`task: multi_label_classification`: how labels are decided and which label sets are accepted."""

    # the decision threshold, chosen on validation to maximise F1: one for all labels, or one per label
    threshold: Literal["global", "per_label"] = "global"
    default_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # used when there is no validation split
    allow_empty: bool = True  # rows with no label at all (none applies) are valid examples


class TokenClassificationConfig(_Section):
    """`task: token_classification`: the record fields and the tag scheme of entity tagging."""

    tokens_field: str = "tokens"  # JSONL/Parquet: a list of tokens per sentence
    tags_field: str = "tags"  # JSONL/Parquet: a list of tags, one per token
    scheme: Literal["IOB2", "IOE2", "IOBES", "BILOU"] = "IOB2"  # seqeval's scheme for strict scoring
    mode: Literal["strict", "default"] = "strict"  # strict: an entity counts only with a valid scheme
