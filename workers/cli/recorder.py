"""``hookline recorder``: write the records workers publish to ``<prefix>.log`` into the delivery log.

Before it consumes, it checks what it needs (the log's database migrated, the
broker reachable, the log queues declared), so a mistake is one line and exit
code 1 or 2. It then runs :class:`workers.ops.recorder.Recorder` until SIGTERM
or Ctrl-C, serving ``/metrics``, ``/healthz`` and ``/readyz`` on
``--metrics-port`` (its own: not the worker's 9191).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from producer.settings import load
from workers.broker.topology import Topology
from workers.deliverylog.store import open_log_store
from workers.observability import logs
from workers.ops import recorder as recording
from workers.ops import server as metrics_server
from workers.settings import Settings

DEFAULT_METRICS_PORT = 9192  # beside the worker's 9191, so both run on one host


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz (on HOOKLINE_METRICS_HOST); 0 serves nothing.",
)
@click.option(
    "--batch-records",
    type=click.IntRange(1, 100_000),
    default=recording.Options.batch_records,
    show_default=True,
    help="Records written in one transaction, at most (a message's records are never split).",
)
@click.option(
    "--linger-ms",
    type=click.IntRange(0, 60_000),
    default=int(recording.Options.linger * 1000),
    show_default=True,
    help="Milliseconds a batch waits for more records after its first.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(1, 65_535),
    default=recording.Options.prefetch,
    show_default=True,
    help="Messages the broker sends ahead of the recorder's acks.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(1, 3600),
    default=recording.Options.shutdown_timeout,
    show_default=True,
    help="Seconds SIGTERM waits for a database that does not answer before leaving the batch to the queue.",
)
def recorder(
    metrics_port: int, batch_records: int, linger_ms: int, prefetch: int, shutdown_timeout: float
) -> None:
    """Consume the log queue and write events and attempts to the delivery log until SIGTERM or Ctrl-C.

    Records are written in batches, each in one transaction, and acked only
    once written: a recorder killed at any moment loses nothing. While the
    database is down it waits and tries again; webhooks are not delayed.
    """
    settings = load(Settings)
    logs.configure(settings)
    options = recording.Options(
        batch_records=batch_records,
        linger=linger_ms / 1000,
        prefetch=prefetch,
        shutdown_timeout=shutdown_timeout,
    )
    topology = Topology.from_settings(settings)
    with open_log_store(settings) as store:
        recording.declare(settings.amqp_url, topology)
        running = recording.Recorder(settings.amqp_url, topology, store, options)
        stop = _stop_on_signals()
        if metrics_port == 0:
            running.run(stop)
            return
        with metrics_server.serve(settings.metrics_host, metrics_port, lambda: running):
            running.run(stop)


def _stop_on_signals() -> threading.Event:
    """An event SIGTERM and SIGINT set: the recorder finishes its batch and returns."""
    stop = threading.Event()

    def stopping(signum: int, _frame: FrameType | None) -> None:
        logs.get_logger(component="recorder").info("recorder_stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    return stop
