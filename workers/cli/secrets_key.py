"""``hookline secrets-key``: print a new key for ``HOOKLINE_SECRETS_KEY``.

Only the key is printed, on one line, so that it can be captured
(``$(hookline secrets-key)``) or written to a file; nothing is read or stored.
"""

from __future__ import annotations

import click

from workers.subscriptions.secretbox import generate_key


@click.command("secrets-key")
def secrets_key() -> None:
    """Print a new random key for HOOKLINE_SECRETS_KEY (a Fernet key).

    \b
    First key: set HOOKLINE_SECRETS_KEY=KEY, then run `hookline setup`.
    Rotation:  set HOOKLINE_SECRETS_KEY=NEW,OLD and restart the workers,
               run `hookline setup` (it re-encrypts every secret with NEW),
               then set HOOKLINE_SECRETS_KEY=NEW and restart them again.
    Back the key up apart from the database: without it, the secrets in a
    database backup cannot be read; with it, a stolen backup can be.
    """
    click.echo(generate_key())
