"""`make backup DIR=…` and `make restore DIR=…`: the stack's two databases and its MLflow artifacts.

Backup runs while the stack serves, and is consistent by ordering: the databases are copied first,
the artifacts after. Each database copy is one snapshot (pg_dump reads in a single transaction; the
sqlite3 backup API copies under one read lock). MLflow uploads an artifact before any row refers to
it (a run's files, then the logged model and the version that point at them) and never rewrites
one, so every artifact a row of the snapshot names is already on disk when the copy starts; files
that appear during the copy belong to rows the snapshot does not have, and are harmless extras.
(`mlflow gc` deleting the files of deleted runs between the two steps is the one way to break
this: do not run it during a backup.)

Restore is stop-the-world: the servers must be stopped (`make down`). It starts only the stack's
PostgreSQL (initialising a new data directory when the old one is gone), recreates the Prefect and
MLflow databases from the dumps, replaces the artifact directory, and leaves PostgreSQL running
for `make up`. A backup restores into the kind of database it was taken from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from infra.database import DATABASES, HOST, SUPERUSER, LocalPostgres
from infra.stack import Stack, StackError, down, running, up
from tasks.core.errors import RefineryError

MANIFEST = "manifest.json"
ARTIFACTS = "mlartifacts"


def _server(stack: Stack) -> LocalPostgres:
    server = stack.local_postgres()
    if server is None:
        raise StackError("backup covers the stack's own databases; unset the two *_URL variables")
    return server


def _pg(server: LocalPostgres, tool: str, *args: str) -> None:
    """Run pg_dump / pg_restore against the stack's server; the password comes from PGPASSFILE."""
    command = [str(server.bin / tool), "-h", HOST, "-p", str(server.port), "-U", SUPERUSER, *args]
    env = {**os.environ, **server.client_env()}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"{tool} failed: {last}")


def _with_database(stack: Stack) -> bool:
    """Start the stack's PostgreSQL alone when it is not running; whether this call started it."""
    return "postgres" in up(stack, only={"postgres"})


def backup(stack: Stack, target: Path) -> dict[str, object]:
    """Copy the databases, then the artifacts, into `target` (which must be new or empty)."""
    if target.exists() and any(target.iterdir()):
        raise StackError(f"{target} is not empty: back up into a new directory")
    if os.environ.get("MLFLOW_ARTIFACTS_DESTINATION"):
        raise StackError("MLFLOW_ARTIFACTS_DESTINATION is set: back that store up with its own tools")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)  # the dumps hold everything the servers know
    if stack.db == "postgres":
        server = _server(stack)
        if not (server.data_dir / "PG_VERSION").is_file():
            raise StackError(
                f"no PostgreSQL data in {server.data_dir}: was the stack started with DB=sqlite?"
            )
        started = _with_database(stack)
        try:
            for name in DATABASES:
                _pg(server, "pg_dump", "--format=custom", f"--file={target / f'{name}.dump'}", name)
        finally:
            if started:
                down(stack, only={"postgres"})
    else:
        for name, path in stack.sqlite_files.items():
            if not path.is_file():
                raise StackError(f"no {name} store at {path}: was the stack started with DB=postgres?")
            with sqlite3.connect(path) as source, sqlite3.connect(target / f"{name}.db") as copy:
                source.backup(copy)
    if stack.artifacts_dir.is_dir():  # after the databases: see the module's docstring
        shutil.copytree(stack.artifacts_dir, target / ARTIFACTS)
    manifest: dict[str, object] = {"db": stack.db, "created": datetime.now(UTC).isoformat()}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _read_manifest(source: Path) -> dict[str, object]:
    try:
        manifest: dict[str, object] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StackError(f"{source} holds no backup ({MANIFEST} missing or unreadable)") from None
    return manifest


def _restore_postgres(stack: Stack, source: Path) -> None:
    server = _server(stack)
    _with_database(stack)
    for name in DATABASES:
        connection = server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        options = ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction"]
        _pg(server, "pg_restore", *options, f"--dbname={name}", str(source / f"{name}.dump"))


def _restore_sqlite(stack: Stack, source: Path) -> None:
    for name, path in stack.sqlite_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        with sqlite3.connect(source / f"{name}.db") as backup_db, sqlite3.connect(path) as live:
            backup_db.backup(live)


def restore(stack: Stack, source: Path) -> dict[str, object]:
    """Put the backup in `source` back into the stopped stack; returns its manifest."""
    manifest = _read_manifest(source)
    busy = running(stack) - {"postgres"}
    if busy:
        raise StackError(f"stop the stack first (make down): {', '.join(sorted(busy))} still running")
    kind = str(manifest.get("db"))
    target = dataclasses.replace(stack, db=kind)
    target.root.mkdir(parents=True, exist_ok=True)
    if kind == "postgres":
        _restore_postgres(target, source)
    else:
        _restore_sqlite(target, source)
    if target.artifacts_dir.exists():
        shutil.rmtree(target.artifacts_dir)
    if (source / ARTIFACTS).is_dir():
        shutil.copytree(source / ARTIFACTS, target.artifacts_dir)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.backup backup|restore DIR`."""
    parser = argparse.ArgumentParser(prog="python -m infra.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["backup", "restore"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        stack = Stack.from_env()
        if args.command == "backup":
            manifest = backup(stack, args.directory.resolve())
            print(f"backed up the {manifest['db']} stack in {stack.root} to {args.directory}")
        else:
            manifest = restore(stack, args.directory.resolve())
            kind, created = manifest["db"], manifest["created"]
            print(f"restored {args.directory} ({kind}, taken {created}); start it: make up DB={kind}")
    except RefineryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
