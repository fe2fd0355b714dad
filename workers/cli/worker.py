"""``hookline worker``: run fan-out and delivery workers (a thin front over the dramatiq CLI).

Before any process starts, the parent checks what every worker needs (settings,
a secrets key that decrypts the stored secrets, a migrated database, a
reachable broker) so a mistake is one clear line, not a
traceback from each child. It then serves ``/metrics``, ``/healthz`` and
``/readyz`` on ``HOOKLINE_METRICS_PORT`` for as long as the workers run (see
:mod:`workers.metrics_server`).
"""

from __future__ import annotations

import os
import sys

import click

from producer.settings import load
from workers.broker import rabbitmq
from workers.observability import logs
from workers.ops import server as metrics_server
from workers.settings import Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore

QUEUES = ("events", "retries")


def default_processes() -> int:
    # The CPUs this process may run on, which a container's cpuset limits.
    return len(os.sched_getaffinity(0))


@click.command()
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(1, 256),
    default=default_processes,
    show_default="CPUs available",
    help="Worker processes.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Threads per process (concurrent messages per process).",
)
@click.option(
    "--queues",
    "-Q",
    "queues",
    type=click.Choice(QUEUES),
    multiple=True,
    help="Consume only these queues (repeatable); default all of them.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(1, 3600),
    default=60.0,
    show_default=True,
    help="Seconds to let in-flight messages finish after SIGTERM.",
)
def worker(processes: int, threads: int, queues: tuple[str, ...], shutdown_timeout: float) -> None:
    """Consume events and deliveries until SIGTERM or Ctrl-C.

    SIGTERM stops taking new messages and lets in-flight ones finish;
    unfinished ones are redelivered by RabbitMQ to another worker.
    """
    settings = load(Settings)
    secrets = _check_subscriptions(settings)
    declared = rabbitmq.ensure(settings)
    # Children log through a pipe, never a terminal: decide the format here.
    os.environ["HOOKLINE_LOG_FORMAT"] = logs.resolve_format(settings, sys.stderr)
    logs.configure(load(Settings))
    if not secrets.encrypts:  # allowed for development only: never without a line saying so
        logs.get_logger(component="worker").warning("secrets_stored_unencrypted")
    names = {"events": declared.events_queue, "retries": declared.retries_queue}
    selected = [names[queue] for queue in (queues or QUEUES)]
    with metrics_server.serving(settings, processes=processes):
        code = _run_dramatiq(processes, threads, selected, shutdown_timeout)
    sys.exit(code)


def _check_subscriptions(settings: Settings) -> SecretBox:
    """The secrets key is set, the database migrated, and the key decrypts every stored secret."""
    secrets = SecretBox.from_settings(settings)
    engine = db.create_engine(settings.database_url)
    try:
        migrating.ensure_migrated(engine)
        # What each worker process does when it boots: a wrong key is one line here, not one per child.
        SubscriptionStore(engine, secrets).load_all()
    finally:
        engine.dispose()
    return secrets


def _run_dramatiq(processes: int, threads: int, queues: list[str], shutdown_timeout: float) -> int:
    from dramatiq.cli import main, make_argument_parser  # noqa: PLC0415 - heavy, only this command needs it

    argv = ["workers.app:boot", "--processes", str(processes), "--threads", str(threads)]
    argv += ["--worker-shutdown-timeout", str(int(shutdown_timeout * 1000)), "--skip-logging"]
    argv += ["--queues", *queues]
    args = make_argument_parser().parse_args(argv)  # type: ignore[no-untyped-call] # unannotated in dramatiq
    return int(main(args) or 0)  # type: ignore[no-untyped-call] # unannotated in dramatiq
