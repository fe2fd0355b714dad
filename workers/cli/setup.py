"""``hookline setup``: migrate the databases (subscriptions, delivery log) and declare the broker topology.

After migrating it encrypts, with the newest ``HOOKLINE_SECRETS_KEY``, every
stored signing secret that is not yet: secrets stored before hookline encrypted
them, and those encrypted with an older key (the last step of a key rotation).
"""

from __future__ import annotations

from typing import Any

import click

from producer.settings import load
from workers.broker import rabbitmq
from workers.broker.topology import DELAY_TIERS
from workers.cli.output import json_option, print_json
from workers.deliverylog.schema import migrate_log
from workers.settings import Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore


@click.command()
@json_option
def setup(as_json: bool) -> None:
    """Migrate the database and declare exchange, queues and bindings.

    Safe to run any number of times; run it before workers roll out.
    """
    settings = load(Settings)
    secrets = SecretBox.from_settings(settings)  # refuses before changing anything if the key is unset
    applied = migrating.migrate(settings.database_url)
    sealed = _reseal(settings.database_url, secrets)
    log_applied = _migrate_log(settings.log_database)
    declared = rabbitmq.ensure(settings)
    result = {
        "database": db.mask_url(settings.database_url),
        "migrations_applied": applied,
        "log_database": db.mask_url(settings.log_database),
        "log_migrations_applied": log_applied,
        "secrets": sealed,
        "exchange": declared.exchange,
        "queue_type": declared.queue_type,
        "queues": [
            declared.events_queue,
            declared.retries_queue,
            declared.invalid_events_queue,
            declared.dead_letters_queue,
            declared.log_queue,
            declared.invalid_log_queue,
        ],
        "delay_queues": list(declared.delay_queues.values()),
    }
    if as_json:
        print_json(result)
        return
    state = f"applied {', '.join(applied)}" if applied else "already up to date"
    click.echo(f"database  {result['database']}: {state}")
    log_state = f"applied {', '.join(log_applied)}" if log_applied else "already up to date"
    click.echo(f"log       {result['log_database']}: {log_state}")
    click.echo(f"secrets   {_describe(sealed)}")
    click.echo(f"exchange  {declared.exchange} (topic, durable), all events bound to {declared.events_queue}")
    click.echo(f"queues    {', '.join(result['queues'])} ({declared.queue_type})")
    shortest, longest = (declared.delay_queue(tier) for tier in (DELAY_TIERS[0], DELAY_TIERS[-1]))
    click.echo(f"delays    {len(DELAY_TIERS)} queues, {shortest} … {longest}")


def _migrate_log(url: str) -> list[str]:
    """Migrate the delivery log's schema, in its own database or beside the subscriptions."""
    engine = db.create_engine(url)  # a new SQLite file is made readable by its owner only
    try:
        return migrate_log(engine)
    finally:
        engine.dispose()


def _reseal(database_url: str, secrets: SecretBox) -> dict[str, Any]:
    """Encrypt every stored secret the newest key did not encrypt; what was found and done."""
    engine = db.create_engine(database_url)
    try:
        report = SubscriptionStore(engine, secrets).reseal_secrets()
    finally:
        engine.dispose()
    return {
        "encrypted": secrets.encrypts,
        "keys": secrets.key_count,
        "subscriptions": report.subscriptions,
        "reencrypted": report.resealed,
    }


def _describe(sealed: dict[str, Any]) -> str:
    if not sealed["encrypted"]:
        return "NOT encrypted (no HOOKLINE_SECRETS_KEY; HOOKLINE_ALLOW_PLAINTEXT_SECRETS is for development)"
    keys = "HOOKLINE_SECRETS_KEY" if sealed["keys"] == 1 else f"the first of {sealed['keys']} keys"
    counts = f"{sealed['reencrypted']} of {sealed['subscriptions']} subscriptions re-encrypted now"
    return f"encrypted with {keys}, {counts}"
