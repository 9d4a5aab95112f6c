"""The pruning callback: a trial the pruner rejects stops at that evaluation, but never at the last one,
where training is over and pruning would only throw the finished trial's value away."""

from __future__ import annotations

import optuna
from transformers import TrainerControl, TrainerState, TrainingArguments

from tasks.sweeps.trial import PruningReport


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _evaluate(report: PruningReport, step: int, max_steps: int) -> TrainerControl:
    state, control = TrainerState(global_step=step, max_steps=max_steps), TrainerControl()
    args = TrainingArguments(output_dir="unused", report_to=[])
    report.on_evaluate(args, state, control, metrics={"eval_accuracy": 0.5})
    return control


def test_pruned_mid_training_stops_but_the_last_evaluation_completes() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    seen: list[tuple[int, float]] = []

    mid = PruningReport(study.ask(), "accuracy", lambda s, v: seen.append((s, v)))
    assert _evaluate(mid, step=2, max_steps=4).should_training_stop and mid.pruned

    last = PruningReport(study.ask(), "accuracy")
    assert not _evaluate(last, step=4, max_steps=4).should_training_stop and not last.pruned
    assert last.trial.should_prune()  # the pruner would have pruned it: only the last step saves it
    assert seen == [(1, 0.5)]
