"""`champion` / `previous-champion` stay a consistent chain: half-done moves are finished,
concurrent moves are serialised, and automatic promotion is compare-and-set."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.registry.aliases import MOVE_TAG, aliases_of
from tasks.registry.promotion import ChampionMoved, promote, rollback

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("mlflow_isolated")]

MODEL = "tiny-intent"


def _registry(tmp_path: Path, versions: int) -> MlflowClient:
    """A real store with `versions` versions of MODEL (their source need not hold a model here)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model(MODEL)
    for _ in range(versions):
        client.create_model_version(MODEL, source=str(tmp_path / "model"))
    return client


def _chain(client: MlflowClient) -> tuple[str | None, str | None]:
    aliases = aliases_of(client.get_registered_model(MODEL))
    return aliases.get("champion"), aliases.get("previous-champion")


def test_a_move_interrupted_between_its_alias_writes_is_finished_by_the_next_call(tmp_path: Path) -> None:
    client = _registry(tmp_path, 3)
    promote(client, MODEL, "1")
    promote(client, MODEL, "2")
    # a promotion of 3 killed after its first write: champion moved, previous-champion not yet
    intent = {"champion": "3", "previous": "2", "state": "started"}
    client.set_registered_model_tag(MODEL, MOVE_TAG, json.dumps(intent))
    client.set_registered_model_alias(MODEL, "champion", "3")
    assert _chain(client) == ("3", "1")  # rollback would now skip version 2

    change = rollback(client, MODEL)

    assert (change.champion, change.previous_champion) == ("2", "3")
    assert _chain(client) == ("2", "3")
    assert json.loads(client.get_registered_model(MODEL).tags[MOVE_TAG])["state"] == "done"


def test_concurrent_promotions_leave_a_chain_of_versions_that_were_champion(tmp_path: Path) -> None:
    client = _registry(tmp_path, 5)
    promote(client, MODEL, "1")
    errors: list[BaseException] = []

    def promote_in_thread(version: str) -> None:
        try:
            promote(MlflowClient(tracking_uri=client.tracking_uri), MODEL, version)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=promote_in_thread, args=(v,)) for v in ("2", "3", "4", "5")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    champion, previous = _chain(client)
    assert champion is not None and previous is not None
    # each promotion replaced the one before it: walking `promoted_from` back visits every version
    chain = [champion]
    while (origin := client.get_model_version(MODEL, chain[-1]).tags.get("promoted_from", "none")) != "none":
        chain.append(origin)
    assert chain[1] == previous and sorted(chain) == ["1", "2", "3", "4", "5"]


def test_compare_and_set_refuses_a_champion_that_moved_since_the_comparison(tmp_path: Path) -> None:
    client = _registry(tmp_path, 3)
    promote(client, MODEL, "1")  # version 3 was compared with 1 ...
    promote(client, MODEL, "2")  # ... then someone promoted 2

    with pytest.raises(ChampionMoved, match=r"'champion' is version 2, not the version 1 that version 3"):
        promote(client, MODEL, "3", expected_champion="1")
    assert _chain(client) == ("2", "1")

    change = promote(client, MODEL, "3", expected_champion="2")
    assert change.changed and _chain(client) == ("3", "2")
