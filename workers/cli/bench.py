"""``hookline bench``: measure hookline end to end on this machine, optionally against a baseline.

The run itself is :mod:`workers.bench.run`; this module turns options into
:class:`~workers.bench.run.Options`, prints the figures and writes the plot.
A problem the user can fix (broker unreachable, workers missing) is one line
and exit 2; a run in which deliveries went missing prints its figures and
exits 1.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import cast

import click

from producer.settings import load
from workers.bench import plot, table
from workers.bench.progress import Progress
from workers.cli.output import json_option, print_json
from workers.cli.worker import default_processes
from workers.errors import BenchError
from workers.settings import Settings


class BenchFailed(click.ClickException):
    exit_code = 2  # cannot run: a problem the user can fix


@click.command()
@click.option("--events", "-n", type=click.IntRange(1, 10_000_000), default=5000, show_default=True)
@click.option(
    "--subscriptions",
    "-k",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Fan-out per event.",
)
@click.option(
    "--rate", type=click.FloatRange(min=0.1), help="Events/s to publish; default: as fast as possible."
)
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(1, 256),
    default=default_processes,  # as hookline worker's, which the bench starts
    show_default="CPUs available",
    help="Worker processes (and baseline processes).",
)
@click.option("--threads", "-t", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--baseline", is_flag=True, help="Also run the baseline loop and print hookline/baseline.")
@click.option(
    "--running-workers",
    is_flag=True,
    help="Use workers already running with the HOOKLINE_* settings instead of starting some.",
)
@click.option(
    "--log",
    type=click.Choice(["on", "off", "both"]),
    default="on",
    show_default=True,
    help="The delivery log in the hookline phase: on (a recorder beside the workers), off, or both "
    "(the phase twice, on then off, and their ratio).",
)
@click.option("--amqp-url", help="RabbitMQ URL; default: HOOKLINE_AMQP_URL.")
@click.option(
    "--database-url", help="Database for the bench's own workers; default: a temporary SQLite file."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Stop waiting once no delivery arrived for this many seconds.",
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG here."
)
@json_option
def bench(
    *,
    events: int,
    subscriptions: int,
    rate: float | None,
    processes: int,
    threads: int,
    baseline: bool,
    running_workers: bool,
    log: str,
    amqp_url: str | None,
    database_url: str | None,
    timeout: float,
    plot_path: Path | None,
    as_json: bool,
) -> None:
    """Publish events through RabbitMQ to hookline workers and a local receiver; print the figures.

    \b
    hookline bench --baseline                    # 5000 events, fan-out 1, vs the baseline
    hookline bench --subscriptions 10 --baseline # fan-out 10
    hookline bench --rate 300 --json             # latency at a given load
    hookline bench --log both                    # the delivery log's cost, same run

    Reports publish rate, deliveries/s (first publish to last receipt),
    latency from event timestamp to receipt (p50/p90/p99/max), peak RSS per
    worker process, and errors. Exits 1 if deliveries went missing.
    """
    if importlib.util.find_spec("psutil") is None:
        raise BenchFailed("hookline bench needs the bench extra: pip install 'hookline[worker,bench]'")
    # Here, not at the top: the run samples worker processes with psutil, from the bench extra.
    from workers.bench.run import LogMode, Options, run  # noqa: PLC0415

    if running_workers and log != "on":
        raise BenchFailed("--log is for the workers the bench starts: leave it out with --running-workers")
    settings = load(Settings)
    options = Options(
        events=events,
        subscriptions=subscriptions,
        rate=rate,
        processes=processes,
        threads=threads,
        baseline=baseline,
        running_workers=running_workers,
        amqp_url=amqp_url or settings.amqp_url,
        database_url=database_url,
        timeout=timeout,
        queue_type=settings.queue_type,
        log=cast(LogMode, log),
    )
    try:
        if plot_path is not None:
            plot.check_available()
        result = run(options, Progress(enabled=not as_json and sys.stderr.isatty()))
        if plot_path is not None:
            plot.write_plot(result, plot_path)
            result["plot"] = str(plot_path)
    except BenchError as exc:
        raise BenchFailed(str(exc)) from exc
    _print(result, as_json)
    phases = ("hookline", "hookline_log_off", "baseline")
    if any(result[name] and result[name]["errors"]["missing"] for name in phases):
        click.get_current_context().exit(1)


def _print(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    for line in table.render(result):
        click.echo(line)
