"""The secrets key every test runs with, as a deployment does (``tests/conftest.py`` sets it).

A test of a missing key removes ``HOOKLINE_SECRETS_KEY``; a test of rotation makes
keys of its own with :func:`workers.subscriptions.secretbox.generate_key`.
"""

from __future__ import annotations

from workers.subscriptions.secretbox import SecretBox, generate_key

TEST_SECRETS_KEY = generate_key()


def box_with_the_test_key() -> SecretBox:
    """A box with the tests' key, as the workers and commands under test build from the environment."""
    return SecretBox([TEST_SECRETS_KEY])
