"""``hookline events`` and ``hookline deliveries``: read what the delivery log holds.

Read-only: they open the log's database (``HOOKLINE_LOG_DATABASE_URL``, or the
subscription store's), never the broker, and need no secrets key (the log
holds no secret). An id the log does not hold is a LogEntryNotFound, printed
as one line with exit 1 by the ``hookline`` root; a bad filter or cursor is a
usage error (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from producer.settings import load
from workers.cli.moments import MOMENT
from workers.cli.output import json_option, print_json, print_record, print_table
from workers.deliverylog.queries import (
    MAX_PAGE,
    DeliveryPage,
    EventHistory,
    StoredAttempt,
    StoredDelivery,
)
from workers.deliverylog.records import DeliveryState
from workers.deliverylog.shapes import delivery_json, event_json
from workers.deliverylog.store import LogStore, open_log_store
from workers.errors import InvalidSubscription
from workers.settings import Settings

LIST_COLUMNS = ("id", "received_at", "event_type", "event_id", "subscription", "state", "attempts", "last")
# What a receiver's answer may hold that would break a line or move the cursor, written as escapes.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
ATTEMPT_COLUMNS = ("attempt", "started_at", "duration", "status", "reason", "state", "next_attempt_at")


@click.group()
def events() -> None:
    """Show events as the delivery log recorded them."""


@events.command("show")
@click.argument("event_id", metavar="EVT_ID")
@json_option
def show_event(event_id: str, as_json: bool) -> None:
    """Show an event: its payload, and every delivery with its attempts."""
    with _log() as log:
        history = log.event(event_id)
    if as_json:
        print_json(event_json(history))
        return
    print_record(_event_fields(history))
    for each in history.deliveries:
        click.echo()
        click.echo(_delivery_headline(each.delivery))
        _print_attempts(each.attempts)


@click.group()
def deliveries() -> None:
    """List and show deliveries as the delivery log recorded them."""


@deliveries.command("list")
@click.option("--subscription", "subscription_id", metavar="ID", help="Only this subscription's.")
@click.option("--event-type", "pattern", metavar="PATTERN", help="Only event types matching (order.*, #).")
@click.option("--state", type=click.Choice([str(each) for each in DeliveryState]), help="Only in this state.")
@click.option("--since", type=MOMENT, help="Events received since then: a duration ago (2h) or a time.")
@click.option("--until", type=MOMENT, help="... and before then.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True, help="Page size.")
@click.option("--cursor", metavar="CURSOR", help="Start after the page that printed this cursor.")
@json_option
def list_(
    *,
    subscription_id: str | None,
    pattern: str | None,
    state: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List deliveries, newest event first, a page at a time."""
    with _log() as log:
        try:
            page = log.deliveries(
                subscription_id=subscription_id,
                event_type_pattern=pattern,
                state=None if state is None else DeliveryState(state),
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        except InvalidSubscription as exc:
            raise click.BadParameter(str(exc), param_hint="'--event-type'") from exc
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--cursor'") from exc
    if as_json:
        print_json(
            {"deliveries": [each.to_record() for each in page.deliveries], "next_cursor": page.next_cursor}
        )
        return
    _print_page(page)


@deliveries.command("show")
@click.argument("delivery_id", metavar="ID")
@json_option
def show_delivery(delivery_id: str, as_json: bool) -> None:
    """Show a delivery: where it stands, its event, and every attempt."""
    with _log() as log:
        history = log.delivery(delivery_id)
    if as_json:
        print_json(delivery_json(history, with_event=True))
        return
    fields = history.delivery.to_record()
    fields["run"] = fields["run"] or None
    if history.event is not None:
        fields["event_timestamp"] = history.event.timestamp
    print_record(fields)
    click.echo()
    _print_attempts(history.attempts)


@contextmanager
def _log() -> Iterator[LogStore]:
    with open_log_store(load(Settings)) as log:
        yield log


def _print_page(page: DeliveryPage) -> None:
    if page.deliveries:
        print_table([_list_row(each) for each in page.deliveries], LIST_COLUMNS)
    shown = f"{len(page.deliveries)} shown"
    if page.next_cursor is None:
        click.echo(f"{shown}; no more")
        return
    click.echo(f"{shown}; next page: {_next_page_command(page.next_cursor)}")


def _next_page_command(cursor: str) -> str:
    """This command again, with the cursor of the page after: the filters keep the pages consistent."""
    context = click.get_current_context()
    words = ["hookline", "deliveries", "list"]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if param.name in ("cursor", "as_json") or value is None or value == param.get_default(context):
            continue
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        words += [param.opts[0], _quoted(text)]
    return " ".join([*words, "--cursor", cursor])


def _quoted(text: str) -> str:
    return text if all(char.isalnum() or char in "._-:+" for char in text) else f"'{text}'"


def _list_row(delivery: StoredDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "received_at": delivery.received_at,
        "event_type": delivery.event_type,
        "event_id": delivery.event_id,
        "subscription": delivery.subscription_id,
        "state": str(delivery.state),
        "attempts": delivery.attempts,
        "last": _last(delivery.last_status, delivery.last_reason),
    }


def _last(status: int | None, reason: str | None) -> str | None:
    return " ".join(str(part) for part in (status, reason) if part is not None) or None


def _event_fields(history: EventHistory) -> dict[str, Any]:
    fields = history.event.to_record()
    fields["payload"] = "(no longer kept)" if history.event.payload is None else history.event.payload
    fields["deliveries"] = len(history.deliveries)
    return fields


def _delivery_headline(delivery: StoredDelivery) -> str:
    run = f" run {delivery.run}" if delivery.run else ""
    attempts = f"{delivery.attempts} attempt{'' if delivery.attempts == 1 else 's'}"
    last = _last(delivery.last_status, delivery.last_reason)
    due = f", next at {_time(delivery.next_attempt_at)}" if delivery.next_attempt_at else ""
    return (
        f"{delivery.id}  {delivery.subscription_id}{run}: {delivery.state}, {attempts}"
        + (f", last {last}" if last else "")
        + due
    )


def _print_attempts(attempts: tuple[StoredAttempt, ...]) -> None:
    if not attempts:
        click.echo("no attempts")
        return
    rows = [
        {**attempt.to_record(), "duration": f"{attempt.duration * 1000:.0f} ms", "state": str(attempt.state)}
        for attempt in attempts
    ]
    print_table(rows, ATTEMPT_COLUMNS)
    for attempt in attempts:
        if attempt.error:
            click.echo(f"attempt {attempt.attempt} error: {_one_line(attempt.error)}")
        if attempt.response_body:
            click.echo(f"attempt {attempt.attempt} response: {_one_line(attempt.response_body)}")


def _one_line(text: str) -> str:
    """A response body or error on one line: a receiver's newlines and control characters escaped."""
    return text.translate(_CONTROL_ESCAPES)


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
