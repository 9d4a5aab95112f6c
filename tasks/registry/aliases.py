"""Moving `champion` and `previous-champion` together, so the chain stays whole.

MLflow sets one alias per call and has no transaction, so a move is made safe three ways:
- one move at a time per registered model: a file lock (beside the SQLite store, or in the user's
  cache for a server; moves from several machines against one server rely on the next two; the
  register step's look-up-then-register holds a lock of its own the same way);
- the intended move is written first as a tag of the registered model, and a move left half-done
  (a crash between the alias writes) is finished by the next promotion or rollback;
- after writing, the aliases are read back and written again when another writer got in between.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from mlflow import MlflowClient
from mlflow.entities.model_registry import RegisteredModel

from tasks.core.errors import RefineryError
from tasks.registry.tracking import sqlite_store_file

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MOVE_TAG = "refinery.alias_move"  # {"champion": to, "previous": from, "state": "started" | "done"}
LOCK_TIMEOUT_S = 300.0
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class AliasChange:
    """The outcome of a promotion or rollback: where `champion` and `previous-champion` point now."""

    model_name: str
    champion: str
    previous_champion: str | None
    changed: bool

    def message(self) -> str:
        """One line for the terminal."""
        if not self.changed:
            return f"{self.model_name}: version {self.champion} is already '{CHAMPION}'; nothing changed"
        previous = (
            f"'{PREVIOUS_CHAMPION}' -> version {self.previous_champion}"
            if self.previous_champion
            else f"no '{PREVIOUS_CHAMPION}' (there was no champion before)"
        )
        return f"{self.model_name}: '{CHAMPION}' -> version {self.champion}; {previous}"


def aliases_of(model: RegisteredModel) -> dict[str, str]:
    """Alias -> version, as strings (the SQL store returns versions as integers)."""
    return {str(alias): str(version) for alias, version in model.aliases.items()}


def _lock_file(tracking_uri: str, name: str, purpose: str) -> Path:
    digest = hashlib.sha256(f"{tracking_uri}\n{name}".encode()).hexdigest()[:16]
    store = sqlite_store_file(tracking_uri)
    folder = store.resolve().parent if store is not None else Path.home() / ".cache" / "refinery" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".refinery-{purpose}-{digest}.lock"


@contextmanager
def _held(path: Path, what: str) -> Iterator[None]:
    try:
        with FileLock(str(path), timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise RefineryError(
            f"{what} has held {path} for {LOCK_TIMEOUT_S:.0f} s; "
            "try again, or remove the file if no refinery process is running"
        ) from None


@contextmanager
def alias_lock(client: MlflowClient, name: str) -> Iterator[None]:
    """Hold the one lock under which the aliases of `name` move."""
    with _held(_lock_file(str(client.tracking_uri), name, "aliases"), f"another promotion of '{name}'"):
        yield


@contextmanager
def registration_lock(tracking_uri: str, name: str) -> Iterator[None]:
    """Hold the lock under which a version of `name` is looked up and, when none holds these
    weights, registered: two runs of the same training at once register it once."""
    with _held(_lock_file(tracking_uri, name, "register"), f"another registration of '{name}'"):
        yield


def _write(client: MlflowClient, name: str, to: str, previous: str | None) -> None:
    client.set_registered_model_alias(name, CHAMPION, to)
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous)
    else:  # stale: rollback would jump to a version never replaced
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)


def _matches(client: MlflowClient, name: str, to: str, previous: str | None) -> bool:
    aliases = aliases_of(client.get_registered_model(name))
    return aliases.get(CHAMPION) == to and aliases.get(PREVIOUS_CHAMPION) == previous


def set_chain(client: MlflowClient, name: str, to: str, previous: str | None) -> None:
    """`champion` -> `to`, `previous-champion` -> `previous` (removed when None), written as one
    recorded move and checked by reading the registry back."""
    intent = {"champion": to, "previous": previous, "state": "started"}
    client.set_registered_model_tag(name, MOVE_TAG, json.dumps(intent))
    for _ in range(3):
        _write(client, name, to, previous)
        if _matches(client, name, to, previous):
            client.set_registered_model_tag(name, MOVE_TAG, json.dumps({**intent, "state": "done"}))
            return
        LOGGER.warning("%s: the aliases changed while being moved; writing them again", name)
    raise RefineryError(f"model '{name}': another process keeps moving '{CHAMPION}'; try again")


def repair_half_done_move(client: MlflowClient, name: str) -> RegisteredModel:
    """Finish a move an interrupted promotion or rollback left half-done; the model as it is now."""
    model = client.get_registered_model(name)
    raw = model.tags.get(MOVE_TAG)
    intent = json.loads(raw) if raw else {}
    if intent.get("state") != "started":
        return model
    to, previous = str(intent["champion"]), intent.get("previous")
    LOGGER.warning("%s: finishing an interrupted move of '%s' to version %s", name, CHAMPION, to)
    set_chain(client, name, to, None if previous is None else str(previous))
    return client.get_registered_model(name)
