"""``hookline status``: the state of a deployment at a glance, for an operator.

Queue depths come from the broker, subscription states from the database. The
recent success ratio, breakers and in-flight counts come from worker pods'
``/metrics`` pages (``--metrics-url``), read twice ``--window`` seconds apart:
the ratio is over deliveries those pods finished in between. The delivery log's
backlog is the log queue's depth; how far behind the recorders were at their
last write comes from the log's database (each batch notes it), and their
``/metrics`` pages (``--recorder-url``) add their live lag and counters.
Whatever cannot be read is shown as such, and the command then exits 1.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from producer.settings import load, redacted_url
from workers.broker.topology import Topology
from workers.cli.output import json_option, print_json, print_table
from workers.deliverylog.queries import WriterProgress
from workers.deliverylog.store import LogStore
from workers.errors import HooklineError
from workers.ops import scrape
from workers.ops.queue_stats import ROLES, QueueReader
from workers.settings import Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.store import SubscriptionStore


@click.command()
@click.option(
    "--metrics-url",
    "metrics_urls",
    multiple=True,
    metavar="URL",
    help="A worker pod's metrics page, e.g. http://10.0.3.7:9191/metrics (repeatable).",
)
@click.option(
    "--window",
    type=click.FloatRange(0, 600),
    default=10.0,
    show_default=True,
    help="Seconds between the two reads of the metrics pages; 0 reads once: totals since the pods started.",
)
@click.option(
    "--recorder-url",
    "recorder_urls",
    multiple=True,
    metavar="URL",
    help="A recorder's metrics page, e.g. http://10.0.3.9:9192/metrics (repeatable): shows its lag.",
)
@json_option
def status(
    metrics_urls: tuple[str, ...], window: float, recorder_urls: tuple[str, ...], as_json: bool
) -> None:
    """Queue depths, dead letters, subscriptions, the delivery log's backlog and the recorders' last
    write, and (with --metrics-url and --recorder-url) the recent success ratio and the recorders' lag."""
    settings = load(Settings)
    broker = broker_report(settings)
    report = {
        "broker": broker,
        "subscriptions": subscriptions_report(settings),
        "workers": workers_report(list(metrics_urls), window) if metrics_urls else None,
        "log": log_report(settings, broker, list(recorder_urls)),
    }
    if as_json:
        print_json(report)
    else:
        print_report(report)
    if any(part is not None and part.get("error") for part in report.values()):
        sys.exit(1)


def broker_report(settings: Settings) -> dict[str, Any]:
    reader = QueueReader(settings.amqp_url, Topology.from_settings(settings))
    report: dict[str, Any] = {"url": redacted_url(settings.amqp_url), "error": None}
    try:
        stats = reader.read()
    except HooklineError as exc:
        return {**report, "error": str(exc), "queues": None, "dead_letters": None}
    finally:
        reader.close()
    queues = {
        role: {"messages": stats.messages.get(role), "consumers": stats.consumers.get(role)} for role in ROLES
    }
    missing = f"queues missing (run `hookline setup`): {', '.join(stats.missing)}" if stats.missing else None
    return {**report, "error": missing, "queues": queues, "dead_letters": stats.messages.get("dead_letters")}


def subscriptions_report(settings: Settings) -> dict[str, Any]:
    engine = db.create_engine(settings.database_url)
    try:
        migrating.ensure_migrated(engine)
        counts: dict[str, Any] = SubscriptionStore(engine).count_by_state()
    except HooklineError as exc:
        return {"error": str(exc)}
    finally:
        engine.dispose()
    disabled = sum(count for state, count in counts.items() if state.startswith("disabled_"))
    return {**counts, "enabled": counts["healthy"] + counts["failing"], "disabled": disabled, "error": None}


def workers_report(urls: list[str], window: float) -> dict[str, Any]:
    report: dict[str, Any] = {"sources": urls, "window_seconds": window or None}
    try:
        first = scrape.read(urls)
        if window:
            time.sleep(window)
            last = scrape.read(urls)
            recent = last.since(first)
        else:
            last = recent = first
    except HooklineError as exc:
        return {**report, "error": str(exc)}
    return {
        **report,
        "deliveries": recent.get("hookline_deliveries_total"),
        "success_ratio": recent.success_ratio(),
        "attempts": recent.get("hookline_delivery_attempts_total"),
        "in_flight": sum(last.get("hookline_deliveries_in_flight").values()),
        "circuit_breakers_open": sum(last.get("hookline_circuit_breakers_open").values()),
        "processes": last.get("hookline_worker_processes"),
        "error": None,
    }


def log_report(settings: Settings, broker: dict[str, Any], recorder_urls: list[str]) -> dict[str, Any]:
    """The log queue's backlog (from the broker report) and, if their pages are given, the recorders' lag."""
    queues = broker["queues"] or {}
    log = queues.get("log") or {}
    report: dict[str, Any] = {
        "enabled": settings.log_enabled,
        "queue": Topology.from_settings(settings).log_queue,
        "messages": log.get("messages"),
        "recorders": log.get("consumers"),
        "invalid": (queues.get("invalid_log") or {}).get("messages"),
        **_progress(settings),
        "recorder": recorder_report(recorder_urls) if recorder_urls else None,
    }
    return {**report, "error": report.pop("progress_error") or (report["recorder"] or {}).get("error")}


def _progress(settings: Settings) -> dict[str, Any]:
    """When the recorders last wrote, and how far behind they were then (from the log's database)."""

    def read() -> WriterProgress:
        store = LogStore.open(settings)
        try:
            return store.progress()
        finally:
            store.close()

    progress, error = WriterProgress.report(read, log_enabled=settings.log_enabled)
    return {**progress.to_record(), "progress_error": error}


def recorder_report(urls: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"sources": urls}
    try:
        sample = scrape.read(urls)
    except HooklineError as exc:
        return {**report, "error": str(exc)}
    lag = sample.get("hookline_recorder_lag_seconds").get("")
    return {
        **report,
        "lag_seconds": lag,
        "records_written": sample.get("hookline_recorder_records_written_total"),
        "write_errors": sum(sample.get("hookline_recorder_write_errors_total").values()),
        "error": None if lag is not None else f"no hookline_recorder_lag_seconds on {', '.join(urls)}",
    }


def print_report(report: dict[str, Any]) -> None:
    broker = report["broker"]
    click.echo(f"broker: {broker['url']}" + (f"  ERROR {broker['error']}" if broker["error"] else ""))
    if broker["queues"] is not None:
        rows = [{"queue": role, **counts} for role, counts in broker["queues"].items()]
        click.echo("")
        print_table(rows, ("queue", "messages", "consumers"))
    click.echo("")
    _print_subscriptions(report["subscriptions"])
    if report["workers"] is not None:
        click.echo("")
        _print_workers(report["workers"])
    click.echo("")
    _print_log(report["log"])


def _print_subscriptions(subscriptions: dict[str, Any]) -> None:
    if subscriptions["error"]:
        click.echo(f"subscriptions: ERROR {subscriptions['error']}")
        return
    click.echo(
        f"subscriptions: {subscriptions['enabled']} enabled ({subscriptions['failing']} failing), "
        f"{subscriptions['disabled']} disabled (failing {subscriptions['disabled_failing']}, "
        f"gone {subscriptions['disabled_gone']}, manual {subscriptions['disabled_manual']})"
    )


def _print_workers(workers: dict[str, Any]) -> None:
    if workers["error"]:
        click.echo(f"workers: ERROR {workers['error']}")
        return
    window = workers["window_seconds"]
    span = f"in the last {window:g} s" if window else "since the workers started"
    deliveries = workers["deliveries"]
    finished = sum(deliveries.get(outcome, 0) for outcome in scrape.FINISHED)
    ratio = workers["success_ratio"]
    shown = "-" if ratio is None else f"{ratio:.1%}"
    click.echo(f"workers ({len(workers['sources'])} metrics pages), {span}:")
    click.echo(f"  deliveries finished {finished:g}, success ratio {shown}  {_counts(deliveries)}")
    click.echo(f"  attempts {sum(workers['attempts'].values()):g}  {_counts(workers['attempts'])}")
    click.echo(
        f"  now: {workers['in_flight']:g} in flight, {workers['circuit_breakers_open']:g} circuit breakers "
        f"open, processes {_counts(workers['processes'])}"
    )


def _print_log(log: dict[str, Any]) -> None:
    if not log["enabled"]:
        click.echo("delivery log: off (HOOKLINE_LOG_ENABLED=false)")
    elif log["messages"] is not None:
        invalid = f", {log['invalid']} parked as invalid" if log["invalid"] else ""
        recorders = log["recorders"]
        click.echo(
            f"delivery log: {log['messages']} messages waiting in {log['queue']}, "
            f"{recorders} recorder{'' if recorders == 1 else 's'} consuming{invalid}"
        )
    recorder = log["recorder"]
    if log["error"] and log["error"] != (recorder or {}).get("error"):
        click.echo(f"delivery log: ERROR {log['error']}")
    elif log["last_write_at"] is not None:
        click.echo(f"recorders: last wrote at {log['last_write_at']}, {log['lag_seconds']:.1f} s behind then")
    if recorder is None:
        return
    if recorder["error"]:
        click.echo(f"recorder: ERROR {recorder['error']}")
        return
    click.echo(
        f"recorder ({len(recorder['sources'])} metrics pages): lag {recorder['lag_seconds']:.1f} s, "
        f"records written {_counts(recorder['records_written'])}, write errors {recorder['write_errors']:g}"
    )


def _counts(values: dict[str, float]) -> str:
    return ", ".join(f"{label} {value:g}" for label, value in sorted(values.items()) if value) or "(none)"
