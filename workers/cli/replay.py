"""``hookline replay``: deliver a subscription's events of a time range again, from the delivery log.

It reads what it would resend, says so on stderr (how many, the first few),
asks on a terminal (``--yes`` skips the question; without a terminal and
without ``--yes`` it refuses), then publishes with progress on stderr; the
result goes to stdout. ``hookline subscriptions resume ID --replay`` runs the
same steps for the events skipped while the subscription was paused. What a
replay does and what a second one does: :mod:`workers.ops.replay`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import click

from producer.settings import load
from workers.cli import interaction
from workers.cli.moments import MOMENT
from workers.cli.output import json_option, print_json, print_table
from workers.deliverylog.store import LogStore
from workers.ops import replay as operations
from workers.ops.replay import SELECTIONS, Plan, Report
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.migrating import ensure_migrated
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore

PLAN_COLUMNS = ("event_id", "event_type", "received_at", "state")
SHOWN_BEFORE_ASKING = 5  # the first few of what a replay would resend, listed before the question


@click.command()
@click.option("--subscription", "subscription_id", required=True, metavar="ID", help="Replay to this one.")
@click.option("--since", required=True, type=MOMENT, help="Events received since then: 2h ago, or a time.")
@click.option("--until", type=MOMENT, default=None, help="... and before then [default: now].")
@click.option(
    "--state",
    "selection",
    type=click.Choice(list(SELECTIONS)),
    default="failed",
    show_default=True,
    help="Whose latest delivery is: failed (retrying or dead-lettered), dead, skipped, or all.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be resent; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def replay(
    *,
    subscription_id: str,
    since: datetime,
    until: datetime | None,
    selection: str,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Deliver a subscription's logged events of a time range again, with their webhook-ids.

    Each is signed afresh and starts from attempt 1, in a run of its own.
    Asks for confirmation unless --yes; without a terminal to ask on, refuses.
    Exits 1 if something could not be resent.
    """
    refuse_without_terminal(yes=yes or dry_run)
    settings = load(Settings)
    with open_stores(settings) as (subscriptions, log):
        planned = operations.plan(
            subscriptions, log, subscription_id, since=since, until=until, selection=selection
        )
    if dry_run:
        print_plan(planned, as_json=as_json)
        return
    report = resend(settings, planned, yes=yes)
    if report is None:
        click.echo("Nothing sent.", err=True)
        click.get_current_context().exit(1)
    print_report(report, as_json=as_json)
    if report.without_payload:
        click.get_current_context().exit(1)


def refuse_without_terminal(*, yes: bool) -> None:
    """Stop before reading anything when the question could not be asked."""
    if not (yes or interaction.stdin_is_terminal()):
        raise click.ClickException(
            "not replaying: no terminal to confirm on; pass --yes to replay anyway, or --dry-run to look"
        )


def resend(settings: Settings, planned: Plan, *, yes: bool, not_before: float | None = None) -> Report | None:
    """Say what will be resent, ask unless ``yes``, wait until ``not_before``, resend with progress.

    None if the answer was no. ``not_before`` (``time.monotonic()``) holds the
    replay back until the workers have reloaded a subscription just enabled.
    """
    tell_plan(planned)
    without_payload = [candidate.event_id for candidate in planned.without_payload]
    if not planned.sendable:
        return Report(without_payload=without_payload)
    question = f"Resend {_deliveries(len(planned.sendable))} to {planned.subscription_id}?"
    if not yes and not click.confirm(question, err=True):
        return None
    if not_before is not None:
        time.sleep(max(0.0, not_before - time.monotonic()))
    with interaction.Progress("replaying") as progress:
        return operations.replay(settings, planned, on_progress=progress)


def tell_plan(planned: Plan, *, first_few: bool = True) -> None:
    """On stderr: how many would be resent, the first few, and what cannot be."""
    sendable, missing = planned.sendable, planned.without_payload
    until = "now" if planned.until is None else _time(planned.until)
    click.echo(
        f"{_deliveries(len(sendable))} of {planned.subscription_id} to resend "
        f"(state {planned.selection}, received {_time(planned.since)} to {until})",
        err=True,
    )
    shown = sendable[:SHOWN_BEFORE_ASKING] if first_few else []
    for candidate in shown:
        click.echo(f"  {candidate.event_id}  {candidate.event_type}  {candidate.state}", err=True)
    if len(sendable) > len(shown) > 0:
        click.echo(f"  ... and {len(sendable) - len(shown)} more", err=True)
    if missing:
        click.echo(
            f"{_deliveries(len(missing))} cannot be resent: the log no longer keeps the payload", err=True
        )


def print_plan(planned: Plan, *, as_json: bool) -> None:
    if as_json:
        print_json(planned.to_record())
        return
    tell_plan(planned, first_few=False)  # the table below lists them all
    rows = [operations.candidate_record(candidate) for candidate in planned.sendable]
    if rows:
        print_table(rows, PLAN_COLUMNS)


def print_report(report: Report, *, as_json: bool) -> None:
    if report.log_not_told is not None:
        click.echo(f"note: the delivery log does not show these replays: {report.log_not_told}", err=True)
    if as_json:
        print_json(report.to_record())
        return
    for event_id, run_id in report.replayed:
        click.echo(f"replayed   {event_id}  run {run_id}")
    for event_id in report.without_payload:
        click.echo(f"no payload {event_id}", err=True)
    click.echo(f"{len(report.replayed)} replayed, {len(report.without_payload)} without a payload")


@contextlib.contextmanager
def open_stores(settings: Settings) -> Iterator[tuple[SubscriptionStore, LogStore]]:
    """The subscription store (with the secrets key: replay reads each subscription) and the log."""
    secrets = SecretBox.from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        ensure_migrated(engine)
        with LogStore.open(settings) as log:
            yield SubscriptionStore(engine, secrets), log
    finally:
        engine.dispose()


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _deliveries(number: int) -> str:
    return f"{number} deliver{'y' if number == 1 else 'ies'}"
