"""The temporary Prefect API `refinery run` and `sweep` start themselves (`tasks.cli.prefect_api`).

Each case runs in a fresh interpreter with no Prefect API configured and its own PREFECT_HOME, as a
user's shell starts `refinery run`: the settings Prefect reads once at import are the subject here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SERVED = """
import os, sys
from prefect import flow
from prefect.settings import get_current_settings
from tasks.cli.prefect_api import prefect_api

@flow(name="hello")
def hello() -> int:
    return 41 + 1

with prefect_api() as api:
    api.wait_until_healthy()
    assert get_current_settings().api.url == api.url == os.environ["PREFECT_API_URL"], api.url
    assert hello() == 42
    print("server module loaded here:", "prefect.server.api.server" in sys.modules)
    process = api.process
print("stopped:", process.poll() is not None)
print("url after:", os.environ.get("PREFECT_API_URL"), get_current_settings().api.url)
"""

CONFIGURED = """
from tasks.cli.prefect_api import prefect_api
with prefect_api() as api:
    print("started:", api is not None)
"""

TOO_SLOW = """
from tasks.cli.prefect_api import PrefectApiError, prefect_api
try:
    with prefect_api() as api:
        api.wait_until_healthy()
except PrefectApiError as err:
    print("error:", err)
    print("stopped:", api.process.poll() is not None)
"""


def _python(script: str, tmp_path: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(PYTHONPATH=str(REPO_ROOT), PREFECT_HOME=str(tmp_path / "prefect"), **env)
    # as `refinery run` sets them (tasks.cli.main.EPHEMERAL_DEFAULTS): Prefect's own 20 s to start is
    # too short for a 2-core machine that is training in the other test worker
    base.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    base.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=base, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_flow_runs_on_the_api_started_first_and_the_api_stops_after(tmp_path: Path) -> None:
    out = _python(SERVED, tmp_path)
    assert "server module loaded here: False" in out  # the server runs in its own process only
    assert "stopped: True" in out
    assert "url after: None None" in out  # the process's own setting is restored
    assert (tmp_path / "prefect" / "prefect.db").is_file()  # the same local database as before


def test_a_configured_api_is_used_as_it_is(tmp_path: Path) -> None:
    out = _python(CONFIGURED, tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert "started: False" in out


def test_an_api_that_does_not_start_in_time_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    out = _python(TOO_SLOW, tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    error = next(line for line in out.splitlines() if line.startswith("error:"))
    assert "did not answer within 1 s (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)" in error
    assert "prefect server start" in error
    assert "stopped: True" in out
