"""The MLflow UI of the team stack in a real browser: Debian's chromium driven by Playwright.

What a team member would check: the experiment lists the runs, the compare view opens for two of
them, the registered model shows which version is `champion`. Screenshots go to
test-artifacts/mlflow-ui/ (CI keeps them). Browser downloads (`playwright install`) do not work
offline; the system chromium does, installed with apt when missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import EXPERIMENT, MODEL_NAME, TeamStack, TrainedRun

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "mlflow-ui"
TIMEOUT_MS = 60_000  # the UI bundle is large and the machine small


def _ensure_chromium() -> None:
    """Install Debian's chromium when it is missing (CI runs as root), or skip saying why."""
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"SKIPPED LOUDLY: {CHROMIUM} is missing; install it: sudo apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, check=False)
        if done.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: `{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless chromium for the module."""
    _ensure_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("SKIPPED LOUDLY: playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _champion(client: MlflowClient) -> str:
    """The champion version; when no `refinery promote` ran yet, the newest version becomes it."""
    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)
    except MlflowException:
        newest = max((v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")), key=int)
        client.set_registered_model_alias(MODEL_NAME, "champion", str(newest))
        return str(newest)


def test_runs_compare_view_and_champion_alias(
    stack_up: TeamStack, trained: list[TrainedRun], browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    expect.set_options(timeout=TIMEOUT_MS)  # assertions have their own 5 s default, apart from the page's
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = stack_up.stack.mlflow_url
    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) >= 2
    champion = _champion(client)

    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/#/experiments/{experiment.experiment_id}/runs")
    names = [run.info.run_name for run in runs[:2]]
    for name in names:
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "experiment-runs.png"))

    for name in names:
        row = page.get_by_role("row").filter(has_text=name)
        row.get_by_role("checkbox", name=re.compile("row selection")).check()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(re.compile(r".*/compare-runs\?.*"))
    expect(page.get_by_text("Comparing 2 Runs")).to_be_visible()
    for run in runs[:2]:
        expect(page.get_by_text(run.info.run_id).first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "compare-runs.png"), full_page=True)

    page.goto(f"{url}/#/models/{MODEL_NAME}")
    champion_row = page.get_by_role("row").filter(has_text=f"Version {champion}")
    expect(champion_row).to_contain_text(re.compile(r"@\s*champion\b"))  # not previous-champion
    page.screenshot(path=str(SCREENSHOTS / "registered-model.png"))
    page.close()
