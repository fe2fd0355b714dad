"""For the console's browser tests (tests/browser): the deployment under test, signing in, screenshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page

from support.api import Api
from support.receiver import Receiver

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
DESKTOP = {"width": 1280, "height": 860}


@dataclass
class Deployment:
    """``hookline api`` with a worker and a recorder, and the receiver its subscriptions point at."""

    api: Api
    receiver: Receiver
    failing_paths: set[str] = field(default_factory=set)  # the receiver answers 500 on these

    def console(self, path: str = "/") -> str:
        return f"{self.api.base}/console{path}"


def sign_in(page: Page, deployment: Deployment, key: str) -> None:
    page.goto(deployment.console("/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(deployment.console("/"))


def screenshot(page: Page, name: str) -> None:
    """A full-page PNG in docs/console/, which docs/console.md shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
