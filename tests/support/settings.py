"""A setting that is wrong must stop the process with one line that names it."""

from __future__ import annotations

import pytest

from producer.errors import ConfigurationError
from producer.settings import ProducerSettings, load
from workers.settings import Settings


def one_line_error(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    settings: type[ProducerSettings] = Settings,
) -> str:
    """Set ``variable`` to ``value``, load ``settings`` and return the error, checked to be one line."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load(settings)
    message = str(caught.value)
    assert "\n" not in message
    return message
