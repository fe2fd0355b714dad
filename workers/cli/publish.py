"""``hookline publish``: publish one event, or many from JSON lines on stdin.

Needs only the base install (click and the producer): no worker extra.
Broker errors of a single publish propagate as :class:`~producer.errors.PublishError`
(the ``hookline`` root prints one line and exits 1); in bulk mode they are
reported per input line, like invalid lines, and the exit code is 1.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from producer.errors import InvalidEvent
from producer.event import Event, decode_json, new_event_id, now_timestamp
from producer.publisher import Publisher
from workers import settings as _all_settings  # noqa: F401 - its names make a misspelt worker setting an error here too
from workers.cli.output import json_option, print_json

CHUNK = 10_000  # lines validated and handed to publish_many at a time: bounds memory, keeps the pipe full


@click.command()
@click.argument("event_type", metavar="[TYPE]", required=False)
@click.option("--data", help="The event's data, a JSON object. Without it, events are read from stdin.")
@click.option("--id", "event_id", help="The event id (idempotency key); default: a new evt_… id.")
@click.option("--timestamp", help="RFC 3339 date-time with timezone; default: now.")
@json_option
def publish(
    event_type: str | None, data: str | None, event_id: str | None, timestamp: str | None, as_json: bool
) -> None:
    """Publish events to the exchange and wait for the broker to confirm them.

    \b
    One event:     hookline publish order.created --data '{"order_id": 42}'
    Many, by type: hookline publish order.created < data.jsonl   (a line: the data object)
    Many, whole:   hookline publish < events.jsonl               (a line: {"type", "data", ...})

    A whole-event line needs "type" and "data"; "id" and "timestamp" are
    generated when left out.

    Prints the event id (one event) or a summary (many). Invalid lines are
    reported with their line number and not published; the exit code is 1
    if any event was not published.
    """
    if data is None:
        if event_id is not None or timestamp is not None:
            raise click.UsageError("--id and --timestamp apply to one event, given with --data")
        _publish_lines(event_type, as_json)
        return
    if event_type is None:
        raise click.UsageError("TYPE is required with --data")
    parsed = _parse_data(data)
    try:
        event = Event.create(event_type, parsed, id=event_id, timestamp=timestamp)
        publisher = Publisher()
        event.to_json(max_bytes=publisher.settings.max_event_bytes)
    except InvalidEvent as exc:
        raise click.UsageError(str(exc)) from exc
    with publisher:
        publisher.publish(event)
    if as_json:
        print_json({"id": event.id, "type": event.type, "timestamp": event.timestamp, "data": event.data})
    else:
        click.echo(event.id)


def _parse_data(text: str) -> dict[str, Any]:
    try:
        value = decode_json(text)
    except InvalidEvent as exc:
        raise click.BadParameter(str(exc), param_hint="'--data'") from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="'--data'")
    return value


@dataclass
class _Outcome:
    published: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, line: int, error: str) -> None:
        self.failed.append({"line": line, "error": error})


def _publish_lines(event_type: str | None, as_json: bool) -> None:
    if event_type is not None:
        _check_type(event_type)
    publisher = Publisher()  # settings errors surface before stdin is read
    stdin = sys.stdin.buffer
    if stdin.isatty():
        click.echo("reading JSON lines from stdin (end with Ctrl-D)", err=True)
    lines = stdin.read().split(b"\n")
    outcome = _Outcome()
    with publisher, _progress(len(lines)) as advance:
        for start in range(0, len(lines), CHUNK):
            _publish_chunk(publisher, lines, start, event_type=event_type, outcome=outcome, advance=advance)
    outcome.failed.sort(key=lambda failure: int(failure["line"]))
    _report(outcome, as_json)
    if outcome.failed:
        click.get_current_context().exit(1)


def _check_type(event_type: str) -> None:
    try:
        Event.create(event_type, {})
    except InvalidEvent as exc:
        raise click.BadParameter(str(exc), param_hint="'TYPE'") from exc


def _publish_chunk(
    publisher: Publisher,
    lines: list[bytes],
    start: int,
    *,
    event_type: str | None,
    outcome: _Outcome,
    advance: Callable[[int], None],
) -> None:
    """Validate lines ``start`` to ``start + CHUNK`` and publish the valid ones."""
    line_of: dict[int, int] = {}  # id(event) -> line number, to report the broker's failures per line
    events: list[Event] = []
    max_bytes = publisher.settings.max_event_bytes
    for number, raw in enumerate(lines[start : start + CHUNK], start=start + 1):
        if not raw.strip():
            advance(1)  # blank lines, such as the one after a final newline, are not events
            continue
        try:
            event = _event_from_line(raw, event_type)
            event.to_json(max_bytes=max_bytes)
        except InvalidEvent as exc:
            outcome.fail(number, str(exc))
            advance(1)
            continue
        line_of[id(event)] = number
        events.append(event)
    failures = publisher.publish_many(events, on_confirmed=advance)
    for event, error in failures:
        outcome.fail(line_of[id(event)], str(error))
    advance(len(failures))
    outcome.published += len(events) - len(failures)


def _event_from_line(raw: bytes, event_type: str | None) -> Event:
    """The event on one input line: its data (with TYPE), or a whole event, id and timestamp optional."""
    value = decode_json(raw)
    if event_type is not None:
        if not isinstance(value, dict):
            raise InvalidEvent("the line must be a JSON object: the event's data")
        return Event.create(event_type, value)
    if isinstance(value, dict):
        value = {"id": new_event_id(), "timestamp": now_timestamp(), **value}
    return Event.from_mapping(value)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; otherwise nothing, so pipes and logs stay clean."""
    if not sys.stderr.isatty():
        yield lambda _count: None
        return
    with click.progressbar(length=total, label="publishing", file=sys.stderr) as bar:
        yield bar.update


def _report(outcome: _Outcome, as_json: bool) -> None:
    if as_json:
        print_json({"published": outcome.published, "failed": outcome.failed})
        return
    for failure in outcome.failed:
        click.echo(f"line {failure['line']}: {failure['error']}", err=True)
    summary = f"published {outcome.published} event{'' if outcome.published == 1 else 's'}"
    if outcome.failed:
        summary += f", {len(outcome.failed)} failed"
    click.echo(summary)
