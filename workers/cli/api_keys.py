"""``hookline api-keys``: create, list and revoke the keys that ``hookline api`` accepts.

A key is printed once, by ``create``, and stored as a hash only: a lost key
cannot be shown again, only revoked and replaced. ``list`` shows each key's id,
name, first characters, whether it is read-only, and when it was created, last
used and revoked. Keys live in the subscription store's database
(``HOOKLINE_DATABASE_URL``), so these commands need no secrets key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from producer.settings import load
from workers.api.keys import ApiKey, ApiKeyStore
from workers.cli.output import json_option, print_json, print_record, print_table
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.migrating import ensure_migrated

LIST_COLUMNS = ("id", "name", "prefix", "access", "created_at", "last_used_at", "revoked_at")
SHOWN_ONCE = "Give this key to its user now: it is stored hashed and cannot be shown again."


@contextmanager
def _open_keys() -> Iterator[ApiKeyStore]:
    settings = load(Settings)
    engine = create_engine(settings.database_url)
    try:
        ensure_migrated(engine)
        yield ApiKeyStore(engine)
    finally:
        engine.dispose()


@click.group("api-keys")
def api_keys() -> None:
    """Manage the API keys of `hookline api`."""


@api_keys.command()
@click.option("--name", required=True, help="Who or what uses the key, to tell keys apart.")
@click.option("--read-only", is_flag=True, help="The key may read, never change anything.")
@json_option
def create(name: str, read_only: bool, as_json: bool) -> None:
    """Create a key and print it, this one time."""
    with _open_keys() as keys:
        created = keys.create(name, read_only=read_only)
    record = {**created.key.to_record(), "key": created.token}
    if as_json:
        print_json(record)
        click.echo(SHOWN_ONCE, err=True)
        return
    click.echo(f"Created API key {created.key.id}.")
    print_record(record)
    click.echo(SHOWN_ONCE)


@api_keys.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List keys, oldest first, revoked ones included (never the keys themselves)."""
    with _open_keys() as keys:
        found = keys.list()
    if as_json:
        print_json([key.to_record() for key in found])
    elif not found:
        click.echo("No API keys.")
    else:
        print_table([_row(key) for key in found], LIST_COLUMNS)


def _row(key: ApiKey) -> dict[str, object]:
    return {**key.to_record(), "prefix": f"{key.prefix}…", "access": "read" if key.read_only else "write"}


@api_keys.command()
@click.argument("key_id", metavar="ID")
@json_option
def revoke(key_id: str, as_json: bool) -> None:
    """Revoke a key for good: `hookline api` refuses it within seconds."""
    with _open_keys() as keys:
        revoked = keys.revoke(key_id)
    if as_json:
        print_json(revoked.to_record())
    else:
        click.echo(f"Revoked API key {revoked.id} ({revoked.name}).")
