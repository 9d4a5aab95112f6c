"""Prefect's temporary local API for one `refinery run` or `refinery sweep`, started first.

Without a configured Prefect server, a flow starts a temporary API itself: `uvicorn` serving
`prefect.server.api.server:create_app` in a child process, on a free port of 127.0.0.1, with the
same settings and the same local database. It does so only when the flow starts, after the pipeline's
libraries have loaded, and the process imports Prefect's whole server first (seconds) just to find
that class. Here the command starts the same child process itself, before anything heavy loads, and
points this process at it (`PREFECT_API_URL`): the server starts on the other core while the
pipeline's libraries load, and this process never imports the server. The runs land in the same
database as before; `prefect server start` later shows them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tasks.core.errors import RefineryError

PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind its port (another process took it)


class PrefectApiError(RefineryError):
    """The temporary Prefect API did not start."""


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPrefectApi:
    """The child process serving the API on 127.0.0.1; `stop()` ends it."""

    def __init__(self, environment: dict[str, str], startup_timeout_s: float) -> None:
        self._environment = environment
        self._timeout_s = startup_timeout_s
        # its output: shown only when it fails to start; closed by stop()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.port = _free_port()
        self.process = self._spawn()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> subprocess.Popen[bytes]:
        import prefect  # the package only (already loaded with its settings), not its server

        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent),
             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=self._environment, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_until_healthy(self) -> None:
        """Block until `/health` answers 200; a clear error when the server exits or times out."""
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status == PORT_IN_USE:  # the port was taken between our probe and its bind
                self.port = _free_port()
                self.process = self._spawn()
                continue
            if status is not None:
                raise PrefectApiError(
                    f"the temporary Prefect API exited with status {status}: {self._output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        output = self._output()
        self.stop()
        raise PrefectApiError(
            f"the temporary Prefect API did not answer within {self._timeout_s:g} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); "
            f"start one with `prefect server start` and set PREFECT_API_URL. Its output: {output}"
        )

    def _output(self) -> str:
        if self._log.closed:
            return "(not kept)"
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-5:]) or "(none)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _start() -> TemporaryPrefectApi | None:
    """The temporary API, started; None when a Prefect API is configured or temporary ones are off."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    environment = {
        **os.environ,
        # as Prefect's own temporary server: no UI, the ephemeral server's service settings
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **settings.to_environment_variables(exclude_unset=True),
    }
    return TemporaryPrefectApi(environment, float(settings.server.ephemeral.startup_timeout_seconds))


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send what Prefect's background workers still hold (logs, events); Prefect does this at exit,
    which is after the temporary API has stopped."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextlib.contextmanager
def prefect_api() -> Iterator[TemporaryPrefectApi | None]:
    """Start the temporary API (when one is needed) and point this process's Prefect at it; the
    caller calls `wait_until_healthy()` before the flow starts. Stopped, and the setting undone, at exit."""
    from prefect.context import refresh_global_settings_context

    api = _start()
    if api is None:
        yield None
        return
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api.url
    refresh_global_settings_context()  # Prefect reads its settings once: re-read with the URL
    try:
        yield api
    finally:
        _drain_prefect_workers()  # the run's last logs and events reach the API before it stops
        api.stop()
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        refresh_global_settings_context()
