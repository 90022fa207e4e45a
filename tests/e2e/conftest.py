"""Fixtures for the browser tests: two tiny models, the app on a temp workspace, Chromium.

The app runs as a subprocess (``python app.py --workspace W --model-dir A --port P``), exactly
as a user starts it; a second model is registered as a candidate through the store so that
Compare has two versions. Tests skip with a reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loop.bootstrap import install_model
from store import Store
from tests.e2e.tiny_model import make_tiny_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "screenshots"
START_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chromium_missing() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Model A (150 steps) and a different model B (60 steps, another seed)."""
    root = tmp_path_factory.mktemp("models")
    return (make_tiny_model(root / "tiny-a", steps=150, seed=0),
            make_tiny_model(root / "tiny-b", steps=60, seed=3))


class RunningApp:
    """The app subprocess, its URL and its workspace."""

    def __init__(self, workspace: Path, port: int, process: subprocess.Popen, log: Path) -> None:
        self.workspace, self.port, self.process, self.log = workspace, port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def store(self) -> Store:
        """A Store on the app's workspace (the test process's own connection)."""
        return Store.open(self.workspace)


def start_app(workspace: Path, model_dir: Path, log: Path, extra: tuple[str, ...] = (),
              env_overrides: dict[str, str] | None = None) -> RunningApp:
    """Start ``app.py`` and wait until it serves its URL (one torch thread unless overridden)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEMGAN_AUTHOR": "e2e-tester",
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", **(env_overrides or {})}
    handle = open(log, "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--workspace", str(workspace), "--model-dir",
         str(model_dir), "--port", str(port), *extra], cwd=REPO, env=env, stdout=handle,
        stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        if "Running on local URL" in log.read_text():
            return RunningApp(workspace, port, process, log)
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"app.py did not start within {START_TIMEOUT_S} s:\n{log.read_text()}")


def stop_app(app: RunningApp) -> None:
    """Terminate the app subprocess (kill if it does not stop)."""
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait()


@pytest.fixture(scope="session")
def app(tiny_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[RunningApp]:
    """The app on a fresh workspace with production v1 (model A) and candidate v2 (model B)."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("app")
    running = start_app(root / "workspace", tiny_models[0], root / "app.log")
    with running.store() as store:
        install_model(store, tiny_models[1], status="candidate", parent_version=1)
    yield running
    stop_app(running)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app: RunningApp) -> Iterator[object]:
    """A fresh page on the app, with the first sample of the queue shown."""
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app.url)
    page.wait_for_selector("#sem-image img")
    yield page
    context.close()
