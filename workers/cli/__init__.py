"""The ``hookline`` command.

Subcommands load lazily, so ``hookline publish`` works on a producer-only
install (``pip install hookline``) while the worker commands, which need the
``worker`` extra, say so plainly instead of failing with a traceback.

The top layer: a command may import anything in ``workers``; nothing imports
``cli`` but the ``hookline`` entry point.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from producer.errors import ConfigurationError, ProducerError

# command name -> (module, attribute, one-line help); the module is imported
# only when the command runs, and `hookline --help` imports none of them.
COMMANDS = {
    "api": ("workers.cli.api", "api", "Serve the REST API (needs the api extra)."),
    "api-keys": ("workers.cli.api_keys", "api_keys", "Create, list and revoke API keys."),
    "bench": ("workers.cli.bench", "bench", "Measure throughput and latency on this machine."),
    "crashed": (
        "workers.cli.parked",
        "crashed",
        "Inspect, replay and purge messages whose worker crashed.",
    ),
    "deliveries": ("workers.cli.history", "deliveries", "List and show deliveries from the delivery log."),
    "dlq": ("workers.cli.dlq", "dlq", "Inspect, replay and purge dead-lettered deliveries."),
    "events": ("workers.cli.history", "events", "Show an event and its deliveries from the delivery log."),
    "invalid": ("workers.cli.parked", "invalid", "Inspect, replay and purge events parked as invalid."),
    "publish": ("workers.cli.publish", "publish", "Publish events to the exchange."),
    "receive": (
        "workers.cli.receive",
        "receive",
        "Run a local receiver that prints webhooks (for trying it out).",
    ),
    "recorder": ("workers.cli.recorder", "recorder", "Write what the workers record to the delivery log."),
    "replay": (
        "workers.cli.replay",
        "replay",
        "Deliver a subscription's logged events of a time range again.",
    ),
    "secrets-key": ("workers.cli.secrets_key", "secrets_key", "Print a new key for HOOKLINE_SECRETS_KEY."),
    "setup": ("workers.cli.setup", "setup", "Migrate the database and declare exchange and queues."),
    "status": ("workers.cli.status", "status", "Show queues, dead letters, subscriptions and success ratio."),
    "subscriptions": ("workers.cli.subscriptions", "subscriptions", "Manage webhook subscriptions."),
    "worker": ("workers.cli.worker", "worker", "Run fan-out and delivery workers."),
}

WORKER_EXTRA_HINT = "this command needs the worker extra: pip install 'hookline[worker]'"


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's signature
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002 - click's
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in ("workers", "producer"):
                raise
            raise click.ClickException(f"{WORKER_EXTRA_HINT} (missing module {exc.name!r})") from exc
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)  # noqa: S101 - a programming error, not user input
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:  # noqa: ARG002 - click's
        with formatter.section("Commands"):
            formatter.write_dl([(name, short_help) for name, (_, _, short_help) in sorted(COMMANDS.items())])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hookline")
def cli() -> None:
    """hookline: deliver events from a RabbitMQ exchange as signed webhooks."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: known errors become one line on stderr and a non-zero exit, not a traceback."""
    try:
        return cli.main(args=argv, prog_name="hookline", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        click.echo(f"hookline: {exc}", err=True)
        sys.exit(2)
    except ProducerError as exc:
        click.echo(f"hookline: {exc}", err=True)
        sys.exit(1)
    except _hookline_error() as exc:
        click.echo(f"hookline: {exc}", err=True)
        sys.exit(1)


def _hookline_error() -> type[Exception]:
    # workers.errors needs nothing beyond the base install, but keep the import
    # local so that a broken worker module never breaks `hookline publish`.
    from workers.errors import HooklineError  # noqa: PLC0415 - see above

    return HooklineError
