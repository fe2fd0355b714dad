"""Fixtures of the deployment tests (helpers are in deploy_support.py)."""

from __future__ import annotations

import pytest
from deploy_support import OVERLAYS, Rendered, render


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """One overlay, rendered; tests that take it run once per overlay."""
    return render(request.param)
