"""``hookline dlq``: list, show, replay and purge dead-lettered deliveries.

No command declares anything: a queue that does not exist (``hookline setup``
not run, or a mistyped ``HOOKLINE_QUEUE_PREFIX``) is an error, not a new
queue. Broker and store errors propagate as HooklineError; the ``hookline`` root prints them as
one line and exits 1. ``replay`` and ``purge`` also exit 1 when something was
refused or not found, so scripts notice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from producer.settings import load
from workers.broker.topology import Topology
from workers.cli import interaction
from workers.cli.interaction import Progress
from workers.cli.output import json_option, print_json, print_record, print_table
from workers.cli.reports import print_purge, print_replay
from workers.durations import parse_duration
from workers.ops import dlq as operations
from workers.ops.dlq import Entry, Selection
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.migrating import ensure_migrated
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore

LIST_COLUMNS = (
    "id",
    "subscription",
    "event_type",
    "event_id",
    "attempts",
    "cause",
    "last",
    "dead_lettered_at",
)


@click.group()
def dlq() -> None:
    """Inspect, replay and purge dead-lettered deliveries."""


@dlq.command("list")
@click.option("--subscription", "subscription_id", metavar="ID", help="Only this subscription's.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most N.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the N oldest.")
@json_option
def list_(subscription_id: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List dead letters, oldest dead-lettered first, leaving them in the queue."""
    settings = _settings()
    selection = Selection.of_subscription(subscription_id) if subscription_id else Selection()
    with Progress("reading") as progress:
        listing = operations.page(settings, selection, offset=offset, limit=limit, on_progress=progress)
    if as_json:
        records = [entry.to_record() for entry in listing.entries]
        print_json({"queue": listing.queue, "total": listing.total, "dead_letters": records})
        return
    if listing.entries:
        print_table([_list_row(entry) for entry in listing.entries], LIST_COLUMNS)
    click.echo(f"{len(listing.entries)} shown; {_letters(listing.total)} in {listing.queue}")


def _list_row(entry: Entry) -> dict[str, Any]:
    letter = entry.letter
    if letter is None:
        return {"id": entry.id, "subscription": entry.subscription_id, "event_type": "(not a dead letter)"}
    last = " ".join(str(part) for part in (letter.last_status, letter.last_reason) if part is not None)
    return {
        "id": letter.id,
        "subscription": letter.subscription_id,
        "event_type": letter.event_type,
        "event_id": letter.event_id,
        "attempts": letter.attempts,
        "cause": letter.cause,
        "last": last or None,
        "dead_lettered_at": letter.dead_lettered_at,
    }


@dlq.command()
@click.argument("dead_letter_id", metavar="ID")
@json_option
def show(dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter with every field, payload included."""
    entry = operations.find(_settings(), dead_letter_id)
    if as_json:
        print_json(entry.to_record())
    else:
        print_record(entry.to_record())


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "everything", is_flag=True, help="Every dead letter in the queue.")
@click.option("--subscription", "subscription_id", metavar="ID", help="Every dead letter of this one.")
@json_option
def replay(ids: tuple[str, ...], everything: bool, subscription_id: str | None, as_json: bool) -> None:
    """Deliver dead letters again, from attempt 1.

    Each webhook keeps its webhook-id, so a receiver that already processed it
    can recognise it. Give exactly one of --all, --subscription or IDs. A dead letter whose
    subscription is disabled or removed is refused and stays in the queue.
    """
    selection = _one_selection(
        ids, everything=everything, subscription_id=subscription_id, forms="--all, --subscription or ID..."
    )
    settings = _settings()
    with _open_store(settings) as store, Progress("replaying") as progress:
        report = operations.replay(settings, selection, store, on_progress=progress)
    print_replay(report, as_json)
    if not report.complete:
        click.get_current_context().exit(1)


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "everything", is_flag=True, help="Every dead letter in the queue.")
@click.option(
    "--older-than", metavar="DURATION", help="Dead-lettered longer ago than DURATION (90, 30m, 12h, 7d)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def purge(ids: tuple[str, ...], everything: bool, older_than: str | None, yes: bool, as_json: bool) -> None:
    """Remove dead letters for good.

    Give exactly one of --all, --older-than or IDs. Asks for confirmation
    unless --yes; without a terminal to ask on, refuses instead.
    """
    selection = _one_selection(
        ids, everything=everything, older_than=older_than, forms="--all, --older-than or ID..."
    )
    if not yes and not interaction.stdin_is_terminal():
        raise click.ClickException("not purging: no terminal to confirm on; pass --yes to purge anyway")
    settings = _settings()
    if not yes:
        _confirm_purge(settings, selection)
    with Progress("purging") as progress:
        report = operations.purge(settings, selection, on_progress=progress)
    print_purge(report, as_json, _letters)
    if report.not_found:
        click.get_current_context().exit(1)


def _confirm_purge(settings: Settings, selection: Selection) -> None:
    with Progress("counting") as progress:
        selected = operations.count(settings, selection, on_progress=progress)
    if selected == 0:
        return  # nothing to lose: the purge reports what it did not find
    queue = Topology.from_settings(settings).dead_letters_queue
    # On stderr, like the progress bar: stdout carries only the result (--json included).
    if not click.confirm(f"Remove {_letters(selected)} from {queue} for good?", err=True):
        click.echo("Nothing removed.", err=True)
        click.get_current_context().exit(1)


def _one_selection(
    ids: tuple[str, ...],
    *,
    everything: bool,
    subscription_id: str | None = None,
    older_than: str | None = None,
    forms: str,
) -> Selection:
    """The one selection given, or a usage error: a command that resends or removes is never vague."""
    given = {
        "ID": bool(ids),
        "--all": everything,
        "--subscription": subscription_id is not None,
        "--older-than": older_than is not None,
    }
    chosen = [form for form, present in given.items() if present]
    if len(chosen) != 1:
        got = f" (got {' and '.join(chosen)})" if chosen else ""
        raise click.UsageError(f"give exactly one of {forms}{got}")
    if everything:
        return Selection()
    if subscription_id is not None:
        return Selection.of_subscription(subscription_id)
    if older_than is not None:
        return Selection.older_than(_seconds(older_than))
    return Selection.of_ids(ids)


def _seconds(duration: str) -> float:
    try:
        return parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--older-than'") from exc


def _settings() -> Settings:
    # Nothing is declared here: a mistyped HOOKLINE_QUEUE_PREFIX must not create queues. A
    # missing queue is one line saying so (workers/ops/dlq.py).
    return load(Settings)


@contextlib.contextmanager
def _open_store(settings: Settings) -> Iterator[SubscriptionStore]:
    """A store on the configured database, after checking the secrets key and the schema once."""
    # Replay reads each subscription, secrets and all: it needs the key the workers have.
    secrets = SecretBox.from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        ensure_migrated(engine)
        yield SubscriptionStore(engine, secrets)
    finally:
        engine.dispose()


def _letters(number: int) -> str:
    return f"{number} dead letter{'' if number == 1 else 's'}"
