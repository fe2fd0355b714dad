"""One bench run: the receiver, the hookline phase (or two: log on and off), the baseline phase, the figures.

Everything a run creates is its own and removed at the end, on success, on an
error and on Ctrl-C or SIGTERM: an exchange and queues named
``hookline.bench.<run>`` (and ``….baseline``), a temporary SQLite database
(unless ``--database-url``), the subscriptions it added, and every process it
started. Removal runs in reverse order of creation (:class:`ExitStack`), so
workers stop before their queues are deleted.

With ``running_workers`` the bench uses workers someone else runs, with the
configured ``HOOKLINE_*`` settings: it adds its subscriptions to their
database (for a run-specific event type, ``bench.<run>``), publishes to their
exchange, and removes the subscriptions afterwards.

The delivery log (``log``): with it on, the bench starts ``hookline recorder``
beside its workers, measures its CPU too, and says how long after the last
delivery the log had written everything; ``both`` runs the hookline phase
twice on the same machine, log on then off, so their ratio is measured under
the same conditions (on first: whatever a first phase pays to warm up counts
against the log, not for it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import psutil

from producer.settings import ProducerSettings, load, redacted_url
from workers.bench import amqp, report
from workers.bench import load as loading
from workers.bench.processes import BaselineLoops, Receiver, Recorder, Workers, hookline_command
from workers.bench.progress import Progress
from workers.bench.sampler import ProcessSampler, Usage
from workers.broker.topology import Topology
from workers.errors import BenchError
from workers.settings import QueueType, Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox, generate_key
from workers.subscriptions.store import SubscriptionStore

POLL = 0.1  # seconds between looks at the receiver's count while waiting for deliveries
LOG_TIMEOUT = 120.0  # how long a phase waits for the recorder to write what the workers recorded
# The delivery log in the hookline phase: on (a recorder beside the workers), off, or both in turn.
LogMode = Literal["on", "off", "both"]


@dataclass(frozen=True)
class Options:
    events: int
    subscriptions: int
    rate: float | None  # events/s; None: as fast as possible
    processes: int
    threads: int
    baseline: bool
    running_workers: bool
    amqp_url: str
    database_url: str | None  # None: a temporary SQLite file
    timeout: float  # give up waiting once no delivery arrived for this long
    queue_type: QueueType  # of the bench's workers' queues and of the baseline's queue alike
    log: LogMode = "on"


@dataclass(frozen=True)
class Names:
    """A run's own names, so that it never touches another run's (or production's) queues."""

    run_id: str

    @property
    def prefix(self) -> str:
        return f"hookline.bench.{self.run_id}"

    @property
    def event_type(self) -> str:
        return f"bench.{self.run_id}"


def run(options: Options, progress: Progress) -> dict[str, Any]:
    """Run the bench; the result as ``--json`` prints it (the plot is the caller's)."""
    amqp.check_reachable(options.amqp_url)
    names = Names(uuid.uuid4().hex[:10])
    with _interrupt_on_sigterm(), ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hookline-bench-")))
        receiver = Receiver()
        stack.callback(receiver.stop)
        phases: dict[str, report.Phase] = {}
        for name, log in log_phases(options):
            if options.running_workers:
                phases[name] = _hookline_running(options, receiver, progress, names)
            else:
                phases[name] = _hookline_started(options, receiver, progress, names, workdir, log=log)
        if options.baseline:
            phases["baseline"] = _baseline(options, receiver, progress, names)
    # One bucket width for every timeline, so that they can be compared in the plot.
    width = report.bucket_width(max(report.span(phase) for phase in phases.values()))
    figures = {name: report.summarize(phase, width) for name, phase in phases.items()}
    return {
        "settings": _settings(options, names),
        "hookline": figures["hookline"],
        "hookline_log_off": figures.get("hookline_log_off"),
        "baseline": figures.get("baseline"),
        "ratio": report.ratio(figures["hookline"], figures.get("baseline")),
        "log_ratio": report.ratio(figures["hookline"], figures.get("hookline_log_off")),
    }


def log_phases(options: Options) -> list[tuple[str, bool]]:
    """The hookline phases to run, in order: their names in the result, and whether the log is on."""
    if options.log == "both":
        return [("hookline", True), ("hookline_log_off", False)]
    return [("hookline", options.log == "on")]


def _settings(options: Options, names: Names) -> dict[str, Any]:
    settings = {"run": names.prefix, **asdict(options)}
    settings["amqp_url"] = redacted_url(options.amqp_url)
    settings.pop("database_url")  # may hold a password; the figures do not depend on it
    settings["log_level"] = os.environ.get("HOOKLINE_LOG_LEVEL", "INFO").upper()
    return settings


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the clean-up below runs either way."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_env(
    base: Mapping[str, str], options: Options, names: Names, database_url: str, *, log: bool = True
) -> dict[str, str]:
    """The environment of workers the bench starts: its own exchange, queues and database (the log's too)."""
    return {
        **base,
        "HOOKLINE_AMQP_URL": options.amqp_url,
        "HOOKLINE_EXCHANGE": names.prefix,
        "HOOKLINE_QUEUE_PREFIX": names.prefix,
        "HOOKLINE_QUEUE_TYPE": options.queue_type,
        "HOOKLINE_DATABASE_URL": database_url,
        "HOOKLINE_LOG_DATABASE_URL": database_url,
        "HOOKLINE_LOG_ENABLED": "true" if log else "false",
        "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on loopback
        # Metrics on, as in production (multiprocess files included), on a free loopback port:
        # never the port a real worker may be serving on.
        "HOOKLINE_METRICS_HOST": "127.0.0.1",
        "HOOKLINE_METRICS_PORT": str(_free_port()),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hookline_started(
    options: Options, receiver: Receiver, progress: Progress, names: Names, workdir: Path, *, log: bool
) -> report.Phase:
    topology = Topology(exchange=names.prefix, prefix=names.prefix, queue_type=options.queue_type)
    with ExitStack() as stack:
        stack.callback(amqp.delete_topology, options.amqp_url, names.prefix, names.prefix)
        env = _set_up(stack, options, receiver, names, workdir, log=log)
        state = "on, with a recorder" if log else "off"
        progress.note(
            f"starting {options.processes} worker process(es) x {options.threads} threads, log {state}"
        )
        workers = Workers(env, workdir / "worker.log", options.processes, options.threads)
        stack.callback(workers.stop)
        workers.wait_consuming(options.amqp_url, [topology.events_queue, topology.retries_queue])
        recorder = _recorder(stack, env, workdir, options.amqp_url, topology) if log else None
        producer = ProducerSettings(amqp_url=options.amqp_url, exchange=names.prefix)
        parked = _parked(options.amqp_url, topology)
        phase_load = _hookline_load(options, names)
        with ProcessSampler(workers.processes) as sampler, ProcessSampler(_processes_of(recorder)) as logs:
            phase = _measure(phase_load, receiver, progress, producer, timeout=options.timeout, parked=parked)
            if recorder is not None:
                phase.log_caught_up_s = _log_caught_up(recorder, options.amqp_url, topology.log_queue, phase)
        _add_usage(phase, sampler.stop(), parent=workers.pid)
        if recorder is not None:
            phase.recorder_cpu_seconds = sum(usage.cpu_seconds for usage in logs.stop().values())
    phase.log = log
    return phase


def _set_up(
    stack: ExitStack, options: Options, receiver: Receiver, names: Names, workdir: Path, *, log: bool
) -> dict[str, str]:
    """``hookline setup`` and the bench's subscriptions (removed when ``stack`` closes); the workers' env."""
    database_url = options.database_url or f"sqlite:///{workdir / 'bench.db'}"
    env = worker_env(os.environ, options, names, database_url, log=log)
    if options.database_url is None:  # its own database: a secrets key of its own, gone with it
        env["HOOKLINE_SECRETS_KEY"] = generate_key()
        secrets = SecretBox([env["HOOKLINE_SECRETS_KEY"]])
    else:
        secrets = SecretBox.from_settings(load(Settings))
    _setup(env)
    _subscribe(stack, database_url, receiver.url, names.event_type, options.subscriptions, secrets=secrets)
    return env


def _recorder(
    stack: ExitStack, env: Mapping[str, str], workdir: Path, amqp_url: str, topology: Topology
) -> Recorder:
    """``hookline recorder`` beside the workers, consuming the log queue; stopped when ``stack`` closes."""
    recorder = Recorder(env, workdir / "recorder.log", _free_port())
    stack.callback(recorder.stop)
    recorder.wait_consuming(amqp_url, topology.log_queue)
    return recorder


def _processes_of(recorder: Recorder | None) -> Callable[[], list[psutil.Process]]:
    return recorder.processes if recorder is not None else list


def _log_caught_up(recorder: Recorder, amqp_url: str, queue: str, phase: report.Phase) -> float | None:
    """Seconds from the last delivery received until the log queue was empty and the recorder held nothing.

    None if that did not happen within :data:`LOG_TIMEOUT`.
    """
    last = max((float(row[0]) for row in phase.rows), default=time.time())
    deadline, quiet = time.monotonic() + LOG_TIMEOUT, 0
    while time.monotonic() < deadline:
        idle = amqp.queue_counts(amqp_url, queue)[0] == 0 and recorder.lag() == 0
        quiet = quiet + 1 if idle else 0
        if quiet >= 2:  # twice in a row: not the moment between two messages
            return round(max(time.time() - last, 0.0), 2)
        time.sleep(POLL)
    return None


def _hookline_running(options: Options, receiver: Receiver, progress: Progress, names: Names) -> report.Phase:
    settings = load(Settings)
    topology = Topology.from_settings(settings)
    if amqp.queue_counts(options.amqp_url, topology.events_queue)[1] == 0:
        raise BenchError(
            f"no worker consumes {topology.events_queue}: start `hookline worker` with the same "
            "HOOKLINE_* settings, or leave out --running-workers"
        )
    with ExitStack() as stack:
        secrets = SecretBox.from_settings(settings)
        _subscribe(
            stack,
            settings.database_url,
            receiver.url,
            names.event_type,
            options.subscriptions,
            secrets=secrets,
        )
        wait = settings.subscription_refresh_seconds + 1
        progress.note(f"waiting {wait:g}s for the workers to load the bench's subscriptions")
        time.sleep(wait)
        producer = ProducerSettings(amqp_url=options.amqp_url, exchange=settings.exchange)
        parked = _parked(options.amqp_url, topology)
        phase_load = _hookline_load(options, names)
        return _measure(phase_load, receiver, progress, producer, timeout=options.timeout, parked=parked)


def _setup(env: Mapping[str, str]) -> None:
    """``hookline setup`` as a user runs it: migrations and topology."""
    result = subprocess.run(  # noqa: S603 - our own command with fixed arguments
        [*hookline_command(), "setup", "--json"], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"hookline setup failed: {last}")


def _subscribe(
    stack: ExitStack, database_url: str, url: str, event_type: str, count: int, *, secrets: SecretBox
) -> None:
    """Add ``count`` subscriptions for ``event_type``, each on its own path; removed when ``stack`` closes."""
    engine = db.create_engine(database_url)
    stack.callback(engine.dispose)
    migrating.ensure_migrated(engine)
    store = SubscriptionStore(engine, secrets)
    for index in range(count):
        subscription = store.add(f"{url}/h/{index}", [event_type], description="hookline bench")
        stack.callback(store.remove, subscription.id)


@dataclass(frozen=True)
class Load:
    """What one phase publishes and expects to receive."""

    label: str
    path_prefix: str  # the receiver paths of this phase's deliveries
    event_type: str
    events: int
    expected: int  # deliveries
    rate: float | None


def _hookline_load(options: Options, names: Names) -> Load:
    expected = options.events * options.subscriptions
    return Load("hookline", "/h/", names.event_type, options.events, expected, options.rate)


def _baseline_load(options: Options, names: Names) -> Load:
    # As many deliveries as hookline made, one POST per event: the baseline has no fan-out.
    count = options.events * options.subscriptions
    rate = None if options.rate is None else options.rate * options.subscriptions
    return Load("baseline", "/b", names.event_type, count, count, rate)


def _parked(amqp_url: str, topology: Topology) -> Callable[[], dict[str, int]]:
    """Counts of the queues where hookline parks what it could not deliver."""

    def count() -> dict[str, int]:
        return {
            "dead_letters": amqp.queue_counts(amqp_url, topology.dead_letters_queue)[0],
            "invalid_events": amqp.queue_counts(amqp_url, topology.invalid_events_queue)[0],
        }

    return count


def _measure(
    load: Load,
    receiver: Receiver,
    progress: Progress,
    producer: ProducerSettings,
    *,
    timeout: float,
    parked: Callable[[], dict[str, int]] = dict,
) -> report.Phase:
    """Publish, wait for the deliveries, collect what arrived and what went wrong."""
    receiver.take()  # anything left over from an earlier phase is not this phase's
    before, refused_before = parked(), receiver.count()[1]
    progress.start(load.label, load.events, load.expected)
    with ProcessSampler(receiver.processes) as receiver_use:
        on_published = _watcher(progress, receiver)
        published = loading.publish(
            producer, load.event_type, load.events, rate=load.rate, on_published=on_published
        )
        _wait_for(receiver, load.expected, timeout, progress)
    progress.finish()
    rows = [row for row in receiver.take() if str(row[1]).startswith(load.path_prefix)]
    errors = {name: count - before.get(name, 0) for name, count in parked().items()}
    errors["refused_by_receiver"] = receiver.count()[1] - refused_before
    phase = report.Phase(load.events, load.expected, published, rows, rss=None, errors=errors)
    phase.receiver_cpu_seconds = sum(usage.cpu_seconds for usage in receiver_use.stop().values())
    return phase


def _add_usage(phase: report.Phase, usage: dict[int, Usage], parent: int | None = None) -> None:
    """Peak RSS per process (a ``parent`` that only supervises is left out) and the CPU of them all."""
    phase.rss = [process.peak_rss for pid, process in usage.items() if pid != parent]
    phase.cpu_seconds = sum(process.cpu_seconds for process in usage.values())


def _watcher(progress: Progress, receiver: Receiver) -> Callable[[int], None]:
    """The publisher's progress callback: counts confirms, and now and then the receiver's deliveries."""
    looked_at = 0.0

    def on_published(count: int) -> None:
        nonlocal looked_at
        progress.published(count)
        if progress.enabled and time.monotonic() - looked_at > 0.25:
            looked_at = time.monotonic()
            progress.received(receiver.count()[0])

    return on_published


def _wait_for(receiver: Receiver, expected: int, timeout: float, progress: Progress) -> None:
    """Until ``expected`` requests arrived, or none arrived for ``timeout`` seconds."""
    last, changed = -1, time.monotonic()
    while True:
        received = receiver.count()[0]
        progress.received(received)
        # A duplicate counts here too, so a run with duplicates and losses may stop a little early;
        # the figures count each delivery once and report the missing ones either way.
        if received >= expected:
            return
        if received != last:
            last, changed = received, time.monotonic()
        elif time.monotonic() - changed > timeout:
            return
        time.sleep(POLL)


def _baseline(options: Options, receiver: Receiver, progress: Progress, names: Names) -> report.Phase:
    name = f"{names.prefix}.baseline"  # its own exchange and queue
    with ExitStack() as stack:
        stack.callback(amqp.delete_baseline, options.amqp_url, name, name)
        amqp.declare_baseline(options.amqp_url, name, name, options.queue_type)
        progress.note(f"starting {options.processes} baseline process(es)")
        loops = BaselineLoops(options.amqp_url, name, f"{receiver.url}/b", options.processes)
        posts: dict[str, int] = {}
        stack.callback(lambda: posts.update(loops.stop()))
        loops.wait_consuming(options.amqp_url, name)
        producer = ProducerSettings(amqp_url=options.amqp_url, exchange=name)
        with ProcessSampler(loops.processes) as sampler:
            phase_load = _baseline_load(options, names)
            phase = _measure(phase_load, receiver, progress, producer, timeout=options.timeout)
        _add_usage(phase, sampler.stop())
    phase.errors["failed_posts"] = posts.get("errors", 0)
    return phase
