"""The console in a real browser: Debian's Chromium driven by Playwright, against a whole hookline.

One module-wide deployment (``hookline api``, a worker, a recorder, a receiver
on loopback) and one browser, for the module too. Chromium is Debian's
(``apt-get install chromium``; ``.ci/run`` installs it), found on PATH or at
``HOOKLINE_TEST_CHROMIUM``: Playwright's own browsers cannot be downloaded here.
Without it the tests fail, saying so: a console nobody drove is not tested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from support.api import isolated_env, running_api
from support.console import DESKTOP, Deployment
from support.processes import Worker
from support.receiver import Received, receiver
from support.recording import RecorderProcess


def chromium_path() -> str:
    found = os.environ.get("HOOKLINE_TEST_CHROMIUM") or shutil.which("chromium")
    if not found or not Path(found).exists():
        pytest.fail(
            "Chromium not found: install Debian's (`apt-get install chromium`, as .ci/run does) "
            "or set HOOKLINE_TEST_CHROMIUM to its path",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module, closed with it: Playwright's sync API runs an event loop on this
    thread while it is open, which later tests' asyncio.run would find running."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("console-browser")
    with isolated_env(directory, "sqlite") as env, receiver() as hooks:
        env.update(
            {
                "HOOKLINE_METRICS_PORT": "0",
                "HOOKLINE_RETRY_SCHEDULE": "",  # a failed attempt is a dead letter at once
                "HOOKLINE_BREAKER_FAILURES": "1000",  # the failures are planned, not an outage
            }
        )
        with running_api(env, directory / "api.log") as api:
            deployed = Deployment(api, hooks)
            hooks.respond = lambda got: _answer(deployed, got)
            prefix = env["HOOKLINE_QUEUE_PREFIX"]
            worker = Worker(api.env, directory / "worker.log").start(
                [f"{prefix}.events", f"{prefix}.retries"]
            )
            try:
                recorder = RecorderProcess(api.env, directory / "recorder.log", "--metrics-port", "0").start()
                try:
                    yield deployed
                finally:
                    recorder.kill()
            finally:
                worker.kill()


def _answer(deployed: Deployment, got: Received) -> int:
    return 500 if got.path in deployed.failing_paths else 200


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookie) per test, at the width the docs' screenshots are taken."""
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
