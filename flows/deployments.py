"""The Refinery deployments, served by one long-running process: `python -m flows.deployments`.

`make up` starts this process against the local Prefect and MLflow servers (PREFECT_API_URL and
MLFLOW_TRACKING_URI in its environment); the team stack runs it in the `deployments` container.
A run takes the deployment's parameters, each overridable per run:

    prefect deployment run 'finetune/banking77' --param overrides='{"train.max_steps": 20}'
    prefect deployment run 'sweep/banking77' --param overrides='{"sweep.trials": 12}' --param study=lr
"""

from __future__ import annotations

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.finetune import TRAINING_LIMIT, finetune
from flows.sweep import sweep

TRAINING_SLOTS = 1  # two trainings on the same cores are each slower than one after the other
NIGHTLY = "0 2 * * *"


def refinery_deployments() -> list[RunnerDeployment]:
    """The deployments this repository declares, run in the serving process: `finetune` and `sweep`."""
    return [
        RunnerDeployment.from_flow(
            finetune,
            name="banking77",
            description="Fine-tune, gate and register the BANKING77 intent model from params.yaml.",
            parameters={"params_path": "params.yaml", "overrides": {}},
            tags=["refinery"],
            # declared for the team to switch on (UI or `prefect deployment schedule resume`),
            # inactive so that serving never starts a training by itself
            schedules=[Cron(NIGHTLY, timezone="UTC", active=False)],
        ),
        RunnerDeployment.from_flow(
            sweep,
            name="banking77",
            description="Search params.yaml's sweep.space on validation, then gate and register the best.",
            parameters={"params_path": "params.yaml", "overrides": {}, "study": None, "register": True},
            tags=["refinery", "sweep"],
        ),
    ]


def ensure_training_limit(slots: int = TRAINING_SLOTS) -> None:
    """Create (or resize) the global concurrency limit the flow's training step occupies."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(TRAINING_LIMIT, slots)


def main() -> None:
    """Create the training limit, then serve the deployments until stopped."""
    ensure_training_limit()
    serve(*refinery_deployments())


if __name__ == "__main__":
    main()
