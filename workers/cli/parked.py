"""``hookline invalid`` and ``hookline crashed``: list, show, replay and purge parked raw messages.

One implementation, two groups: ``invalid`` reads ``<prefix>.events.invalid``,
``crashed`` the actor queues' ``.XQ`` companions (see :mod:`workers.ops.parked`).
Like ``hookline dlq``, nothing here declares a queue, and ``replay`` and
``purge`` exit 1 when something was refused or not found.
"""

from __future__ import annotations

import click

from producer.settings import load
from workers.cli import interaction
from workers.cli.interaction import Progress
from workers.cli.output import json_option, print_json, print_record, print_table
from workers.cli.reports import print_purge, print_replay
from workers.ops import parked as operations
from workers.ops.parked import Kind
from workers.settings import Settings

LIST_COLUMNS = ("id", "queue", "routing_key", "bytes", "parked_at", "reason")
HELP = {
    Kind.INVALID: "Inspect, replay and purge events parked as invalid (<prefix>.events.invalid) and "
    "delivery-log messages the recorder could not store (<prefix>.log.invalid).",
    Kind.CRASHED: "Inspect, replay and purge messages whose worker crashed (<prefix>.events.XQ, "
    "<prefix>.retries.XQ).",
}


def _group(kind: Kind) -> click.Group:
    group = click.Group(kind.value, help=HELP[kind])
    group.add_command(_list_command(kind))
    group.add_command(_show_command(kind))
    group.add_command(_replay_command(kind))
    group.add_command(_purge_command(kind))
    return group


def _list_command(kind: Kind) -> click.Command:
    @click.command("list")
    @click.option(
        "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most N."
    )
    @click.option(
        "--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the N oldest."
    )
    @json_option
    def list_(limit: int, offset: int, as_json: bool) -> None:
        """List parked messages, queue by queue, oldest parked first, leaving them where they are."""
        with Progress("reading") as progress:
            listing = operations.page(_settings(), kind, offset=offset, limit=limit, on_progress=progress)
        if as_json:
            records = [entry.to_record() for entry in listing.entries]
            print_json({"queues": listing.totals, "messages": records})
            return
        if listing.entries:
            print_table([entry.to_record(with_body=False) for entry in listing.entries], LIST_COLUMNS)
        held = ", ".join(f"{_messages(total)} in {queue}" for queue, total in listing.totals.items())
        click.echo(f"{len(listing.entries)} shown; {held}")

    return list_


def _show_command(kind: Kind) -> click.Command:
    @click.command()
    @click.argument("parked_id", metavar="ID")
    @json_option
    def show(parked_id: str, as_json: bool) -> None:
        """Show one parked message with its headers' story and its body."""
        record = operations.find(_settings(), kind, parked_id).to_record()
        print_json(record) if as_json else print_record(record)

    return show


def _replay_command(kind: Kind) -> click.Command:
    @click.command()
    @click.argument("ids", nargs=-1, metavar="[ID]...")
    @click.option("--all", "everything", is_flag=True, help="Every parked message.")
    @json_option
    def replay(ids: tuple[str, ...], everything: bool, as_json: bool) -> None:
        """Publish parked messages again where they came from (events: the exchange, with their
        routing key). Give --all or IDs. A message that fails the same way is parked again."""
        with Progress("replaying") as progress:
            report = operations.replay(_settings(), kind, _ids(ids, everything), on_progress=progress)
        print_replay(report, as_json)
        if not report.complete:
            click.get_current_context().exit(1)

    return replay


def _purge_command(kind: Kind) -> click.Command:
    @click.command()
    @click.argument("ids", nargs=-1, metavar="[ID]...")
    @click.option("--all", "everything", is_flag=True, help="Every parked message.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @json_option
    def purge(ids: tuple[str, ...], everything: bool, yes: bool, as_json: bool) -> None:
        """Remove parked messages for good. Give --all or IDs. Asks for confirmation unless --yes;
        without a terminal to ask on, refuses instead."""
        selected = _ids(ids, everything)
        settings = _settings()
        what = "every message" if selected is None else _messages(len(selected))
        queues = ", ".join(operations.queues_of(settings, kind))
        interaction.confirm_or_stop(
            f"Remove {what} from {queues} for good?",
            yes=yes,
            refusal="not purging: no terminal to confirm on; pass --yes to purge anyway",
        )
        with Progress("purging") as progress:
            report = operations.purge(settings, kind, selected, on_progress=progress)
        print_purge(report, as_json, _messages)
        if report.not_found:
            click.get_current_context().exit(1)

    return purge


def _ids(ids: tuple[str, ...], everything: bool) -> list[str] | None:
    """The ids given, None for --all, or a usage error: a command that resends or removes is never vague."""
    if bool(ids) == everything:
        raise click.UsageError("give exactly one of --all or ID...")
    return None if everything else list(ids)


def _settings() -> Settings:
    return load(Settings)  # nothing is declared: a mistyped prefix must not create queues


def _messages(number: int) -> str:
    return f"{number} message{'' if number == 1 else 's'}"


invalid = _group(Kind.INVALID)
crashed = _group(Kind.CRASHED)
