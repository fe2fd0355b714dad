"""``hookline subscriptions``: add, list, show, update, pause and resume, test, remove and rotate secrets.

Store errors (unknown id, invalid URL, pattern or secret, unmigrated database)
propagate as StoreError; the ``hookline`` root prints them as one line and exits 1.
Secrets are printed only by ``add``, ``rotate-secret`` and ``show --show-secret``.
A command that changes a subscription then tells the running workers, on the
broker, so that they reload it at once (:mod:`workers.broker.changes`); if the
broker cannot be reached, a note says so and the workers see the change at
their next periodic reload. Every command needs ``HOOKLINE_SECRETS_KEY``, since each reads or writes them
(encrypted in the database); without it, each refuses with one line (exit 2).

``disable`` and ``enable`` are also ``pause`` and ``resume``: while a
subscription is disabled, the workers record the events that match it as
skipped deliveries, and ``resume --replay`` resends them (:mod:`workers.cli.replay`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import click

from producer.settings import load
from workers.broker import changes
from workers.broker.topology import Topology
from workers.cli import replay as replay_cli
from workers.cli.interaction import confirm_or_stop
from workers.cli.output import json_option, print_json, print_record, print_table
from workers.errors import DeliveryFailed
from workers.ops import probe
from workers.ops import replay as replay_operations
from workers.ops.replay import Plan, Report
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.migrating import ensure_migrated
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import Subscription, SubscriptionStore

LIST_COLUMNS = ("id", "url", "events", "enabled", "description")
# How long workers told of a change take to reload: one round trip to RabbitMQ and one SELECT, with room.
RELOAD_SECONDS = 1.0
# `resume --replay` looks at events received this long before the pause too, as the workers' clocks and
# the one that stamped the pause may disagree; only skipped deliveries are resent, so it costs little.
CLOCK_MARGIN = timedelta(minutes=1)
SAVE_IT_NOW = (
    "Give this secret to the receiver now: other commands mask it "
    "(`hookline subscriptions show ID --show-secret` prints it again)."
)


@contextmanager
def _open_store(settings: Settings | None = None) -> Iterator[SubscriptionStore]:
    """A store on the configured database, after checking the secrets key and the schema once."""
    settings = settings or load(Settings)
    secrets = SecretBox.from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        ensure_migrated(engine)
        yield SubscriptionStore(engine, secrets)
    finally:
        engine.dispose()


@contextmanager
def _changing_store(settings: Settings | None = None) -> Iterator[SubscriptionStore]:
    """:func:`_open_store`, and once the change is committed, the workers are told of it."""
    settings = settings or load(Settings)
    with _open_store(settings) as store:
        yield store
    _announce(settings)


def _announce(settings: Settings) -> float:
    """Tell the workers that subscriptions changed; how many seconds they may take to see it."""
    exchange = Topology.from_settings(settings).subscription_changes_exchange
    not_told = changes.announce(settings.amqp_url, exchange)
    if not_told is None:
        return RELOAD_SECONDS
    seconds = settings.subscription_refresh_seconds
    click.echo(
        f"note: workers not told of the change ({not_told}); they see it within {seconds:g}s", err=True
    )
    return seconds


@click.group()
def subscriptions() -> None:
    """Manage webhook subscriptions."""


@subscriptions.command()
@click.option("--url", required=True, help="Where to POST webhooks (http or https).")
@click.option(
    "--event",
    "events",
    required=True,
    multiple=True,
    metavar="PATTERN",
    help="Event type pattern: order.created, order.*, order.# or #. Repeat for more.",
)
@click.option("--secret", default=None, metavar="whsec_...", help="Signing secret; generated if omitted.")
@click.option("--description", default="", help="Free text for operators.")
@json_option
def add(url: str, events: tuple[str, ...], secret: str | None, description: str, as_json: bool) -> None:
    """Subscribe URL to events; prints the signing secret this one time."""
    with _changing_store() as store:
        subscription = store.add(url, events, secret=secret, description=description)
    if as_json:
        print_json(subscription.to_record(show_secret=True))
        click.echo(SAVE_IT_NOW, err=True)
        return
    click.echo(f"Added subscription {subscription.id}.")
    print_record(subscription.to_record(show_secret=True))
    click.echo(SAVE_IT_NOW)


@subscriptions.command("list")
@click.option("--enabled/--disabled", "enabled", default=None, help="Only enabled, or only disabled ones.")
@json_option
def list_(enabled: bool | None, as_json: bool) -> None:
    """List subscriptions, oldest first (secrets are never shown)."""
    with _open_store() as store:
        found = store.list(enabled=enabled)
    if as_json:
        print_json([subscription.to_record(show_secret=False) for subscription in found])
    elif not found:
        click.echo("No subscriptions.")
    else:
        print_table([_list_row(subscription) for subscription in found], LIST_COLUMNS)


def _list_row(subscription: Subscription) -> dict[str, object]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": subscription.event_patterns,
        "enabled": _enabled_cell(subscription),
        "description": subscription.description,
    }


def _enabled_cell(subscription: Subscription) -> str:
    """``yes``, ``no``, or ``no (reason)`` when the store recorded why: ``no (gone)``."""
    if subscription.enabled:
        return "yes"
    reason = subscription.disabled_reason
    return "no" if reason is None else f"no ({reason})"


@subscriptions.command()
@click.argument("subscription_id", metavar="ID")
@click.option("--show-secret", is_flag=True, help="Print the secrets instead of masking them.")
@json_option
def show(subscription_id: str, show_secret: bool, as_json: bool) -> None:
    """Show one subscription."""
    with _open_store() as store:
        subscription = store.get(subscription_id)
    _print(subscription, as_json=as_json, show_secret=show_secret)


@subscriptions.command()
@click.argument("subscription_id", metavar="ID")
@click.option("--url", default=None, help="Where to POST webhooks from now on.")
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="PATTERN",
    help="Event type patterns, replacing all the current ones. Repeat for more.",
)
@click.option("--description", default=None, help="Free text for operators.")
@json_option
def update(
    subscription_id: str, url: str | None, events: tuple[str, ...], description: str | None, as_json: bool
) -> None:
    """Change a subscription's URL, events or description; its id and secret stay."""
    if url is None and not events and description is None:
        raise click.UsageError("nothing to update: give --url, --event or --description")
    with _changing_store() as store:
        subscription = store.update(
            subscription_id, url=url, event_patterns=events or None, description=description
        )
    _print(subscription, as_json=as_json)


@subscriptions.command()
@click.argument("subscription_id", metavar="ID")
@click.option(
    "--replay", "replay_skipped", is_flag=True, help="Then resend the events skipped while disabled."
)
@click.option("--yes", is_flag=True, help="With --replay: do not ask for confirmation.")
@json_option
def enable(subscription_id: str, replay_skipped: bool, yes: bool, as_json: bool) -> None:
    """Resume deliveries, however it was disabled; its failure record starts afresh (alias: resume).

    With --replay, the events skipped while it was disabled are then resent,
    after saying how many and asking (see `hookline replay`).
    """
    if not replay_skipped:
        with _changing_store() as store:
            subscription = store.set_enabled(subscription_id, True)
        _print(subscription, as_json=as_json)
        return
    replay_cli.refuse_without_terminal(yes=yes)
    settings = load(Settings)
    with replay_cli.open_stores(settings) as (store, log):
        disabled_at = store.get(subscription_id).disabled_at
        subscription = store.set_enabled(subscription_id, True)
        ready = time.monotonic() + _announce(settings)
        if disabled_at is None:
            click.echo(f"{subscription_id} was not disabled: nothing to replay", err=True)
            _print(subscription, as_json=as_json)
            return
        since = disabled_at - CLOCK_MARGIN
        planned = replay_operations.plan(store, log, subscription_id, since=since, selection="skipped")
    report = replay_cli.resend(settings, planned, yes=yes, not_before=ready)
    _print_resumed(subscription, planned, report, as_json=as_json)


def _print_resumed(
    subscription: Subscription, planned: Plan, report: Report | None, *, as_json: bool
) -> None:
    """The subscription, then what was replayed; exit 1 unless every skipped event was resent."""
    if as_json:
        replayed = None if report is None else report.to_record()
        print_json({**subscription.to_record(show_secret=False), "replay": replayed})
    else:
        print_record(subscription.to_record(show_secret=False))
        if report is not None:
            replay_cli.print_report(report, as_json=False)
    if report is None:
        since = planned.since.isoformat(timespec="seconds")
        click.echo(
            f"Resumed; nothing replayed. Later: hookline replay --subscription {subscription.id} "
            f"--state skipped --since {since}",
            err=True,
        )
    if report is None or report.without_payload:
        click.get_current_context().exit(1)


@subscriptions.command()
@click.argument("subscription_id", metavar="ID")
@json_option
def disable(subscription_id: str, as_json: bool) -> None:
    """Stop deliveries, keeping the events that come meanwhile in the log as skipped (alias: pause).

    Deliveries under way become dead letters, replayable after enable.
    """
    with _changing_store() as store:
        subscription = store.set_enabled(subscription_id, False)
    _print(subscription, as_json=as_json)


subscriptions.add_command(enable, "resume")
subscriptions.add_command(disable, "pause")


@subscriptions.command()
@click.argument("subscription_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def remove(subscription_id: str, yes: bool, as_json: bool) -> None:
    """Delete a subscription for good, its secret with it.

    Asks for confirmation unless --yes; without a terminal to ask on, refuses.
    """
    with _changing_store() as store:
        subscription = store.get(subscription_id)
        events = ",".join(subscription.event_patterns)
        confirm_or_stop(
            f"Remove {subscription.id} ({probe.host_of(subscription.url)}, {events}) for good?",
            yes=yes,
            refusal="not removing: no terminal to confirm on; pass --yes to remove anyway",
        )
        store.remove(subscription_id)
    if as_json:
        print_json({"id": subscription_id, "removed": True})
    else:
        click.echo(f"Removed subscription {subscription_id}.")


@subscriptions.command("test")
@click.argument("subscription_id", metavar="ID")
@json_option
def test_(subscription_id: str, as_json: bool) -> None:
    """Send a signed hookline.test event to the endpoint now, and print what it answered.

    Made as a worker makes an attempt (address guard, TLS, timeout), but
    through no queue, never retried and not logged. Exits 1 unless it answered 2xx.
    """
    settings = load(Settings)
    with _open_store(settings) as store:
        subscription = store.get(subscription_id)
    try:
        answer = probe.send_test(settings, subscription)
    except DeliveryFailed as exc:
        _no_answer(subscription, exc, as_json=as_json)
        return
    if as_json:
        print_json(answer.to_record())
    else:
        print_record(answer.to_record())
    if not answer.ok:
        click.get_current_context().exit(1)


def _no_answer(subscription: Subscription, failure: DeliveryFailed, *, as_json: bool) -> None:
    host = probe.host_of(subscription.url)
    if as_json:
        print_json(
            {
                "subscription_id": subscription.id,
                "host": host,
                "ok": False,
                "reason": failure.reason,
                "error": str(failure),
            }
        )
    click.echo(f"hookline: no answer from {host} ({failure.reason}): {failure}", err=True)
    click.get_current_context().exit(1)


@subscriptions.command("rotate-secret")
@click.argument("subscription_id", metavar="ID")
@click.option("--secret", default=None, metavar="whsec_...", help="The new secret; generated if omitted.")
@click.option(
    "--grace",
    type=click.IntRange(min=0),
    default=None,
    metavar="SECONDS",
    help="How long the old secret stays valid [default: HOOKLINE_SECRET_ROTATION_GRACE_SECONDS].",
)
@json_option
def rotate_secret(subscription_id: str, secret: str | None, grace: int | None, as_json: bool) -> None:
    """Replace the signing secret; webhooks carry both signatures during the grace period."""
    settings = load(Settings)
    seconds = settings.secret_rotation_grace_seconds if grace is None else grace
    with _changing_store(settings) as store:
        subscription = store.rotate_secret(
            subscription_id, new_secret=secret, grace=timedelta(seconds=seconds)
        )
    # The new secret is shown, never the old one: the receiver already has that.
    record = subscription.to_record(show_secret=False)
    record["secret"] = subscription.secret
    if as_json:
        print_json(record)
        return
    click.echo(f"New secret for {subscription.id}: {subscription.secret}")
    expires_at = subscription.previous_secret_expires_at
    if expires_at is None:
        click.echo("The old secret is no longer valid (no grace period).")
    else:
        click.echo(f"The old secret stays valid until {expires_at.isoformat(timespec='seconds')}.")
    click.echo(SAVE_IT_NOW)


def _print(subscription: Subscription, *, as_json: bool, show_secret: bool = False) -> None:
    record = subscription.to_record(show_secret=show_secret)
    if as_json:
        print_json(record)
    else:
        print_record(record)
