"""``hookline setup``: migrate the database and declare the broker topology, for deploy pipelines."""

from __future__ import annotations

import click

from producer.settings import load, redacted_url
from workers.broker import rabbitmq
from workers.broker.topology import DELAY_TIERS
from workers.cli.output import json_option, print_json
from workers.settings import Settings
from workers.subscriptions import db


@click.command()
@json_option
def setup(as_json: bool) -> None:
    """Migrate the database and declare exchange, queues and bindings.

    Safe to run any number of times; run it before workers roll out.
    """
    settings = load(Settings)
    applied = db.migrate(settings.database_url)
    declared = rabbitmq.ensure(settings)
    result = {
        "database": redacted_url(settings.database_url),
        "migrations_applied": applied,
        "exchange": declared.exchange,
        "queues": [
            declared.events_queue,
            declared.retries_queue,
            declared.invalid_events_queue,
            declared.dead_letters_queue,
        ],
        "delay_queues": list(declared.delay_queues.values()),
    }
    if as_json:
        print_json(result)
        return
    state = f"applied {', '.join(applied)}" if applied else "already up to date"
    click.echo(f"database  {result['database']}: {state}")
    click.echo(f"exchange  {declared.exchange} (topic, durable), all events bound to {declared.events_queue}")
    click.echo(f"queues    {', '.join(result['queues'])}")
    shortest, longest = (declared.delay_queue(tier) for tier in (DELAY_TIERS[0], DELAY_TIERS[-1]))
    click.echo(f"delays    {len(DELAY_TIERS)} queues, {shortest} … {longest}")
