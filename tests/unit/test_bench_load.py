"""The bench's load: event batches, their pacing and timestamps; and the environment of its workers."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import psutil

from producer.event import Event
from workers.bench.load import BATCH, batches, make_events, precise_timestamp
from workers.bench.report import parse_timestamp
from workers.bench.run import Names, Options, log_phases, worker_env
from workers.bench.sampler import ProcessSampler

DEFAULTS = Options(
    events=10,
    subscriptions=1,
    rate=None,
    processes=1,
    threads=8,
    baseline=False,
    running_workers=False,
    amqp_url="amqp://guest:guest@127.0.0.1:5672/%2F",
    database_url=None,
    timeout=30.0,
    queue_type="quorum",
)


def options(threads: int = 8) -> Options:
    return replace(DEFAULTS, threads=threads)


def test_timestamps_carry_microseconds_and_are_valid_events() -> None:
    text = precise_timestamp(1714564800.000250)
    assert text == "2024-05-01T12:00:00.000250Z"
    event = Event.create("bench.x", {}, timestamp=text)
    assert parse_timestamp(event.timestamp) == 1714564800.00025


def test_made_events_are_numbered_and_unique() -> None:
    events = make_events("bench.x", 5, 3)
    assert [event.data for event in events] == [{"n": 5}, {"n": 6}, {"n": 7}]
    assert len({event.id for event in events}) == 3


def test_as_fast_as_possible_every_event_comes_in_full_batches() -> None:
    sizes = [len(batch) for batch in batches("bench.x", 2 * BATCH + 7, rate=None)]
    assert sizes == [BATCH, BATCH, 7]


def test_at_a_rate_the_events_are_spread_over_the_time_it_takes() -> None:
    started = time.monotonic()
    made = [event for batch in batches("bench.x", 30, rate=100.0) for event in batch]
    assert len(made) == 30
    assert [event.data["n"] for event in made] == list(range(30))
    assert time.monotonic() - started >= 0.25  # the 30th event is due 0.29 s after the first


def test_the_bench_s_workers_get_their_own_exchange_queues_and_database() -> None:
    env = worker_env({"PATH": "/bin", "HOOKLINE_EXCHANGE": "prod"}, options(), Names("abc"), "sqlite:///x.db")
    assert env["PATH"] == "/bin"
    assert env["HOOKLINE_EXCHANGE"] == env["HOOKLINE_QUEUE_PREFIX"] == "hookline.bench.abc"
    assert env["HOOKLINE_DATABASE_URL"] == "sqlite:///x.db"
    assert env["HOOKLINE_ALLOW_PRIVATE_NETWORKS"] == "true"
    assert env["HOOKLINE_QUEUE_TYPE"] == "quorum"
    # Metrics on, as in production, on a free port of loopback's own.
    assert env["HOOKLINE_METRICS_HOST"] == "127.0.0.1"
    assert int(env["HOOKLINE_METRICS_PORT"]) > 0


def test_the_bench_s_workers_declare_the_queue_type_the_bench_compares_with() -> None:
    classic = replace(DEFAULTS, queue_type="classic")
    env = worker_env({"HOOKLINE_QUEUE_TYPE": "quorum"}, classic, Names("abc"), "sqlite://")
    assert env["HOOKLINE_QUEUE_TYPE"] == "classic"


def test_the_bench_s_workers_run_with_the_default_per_endpoint_cap() -> None:
    assert "HOOKLINE_ENDPOINT_MAX_IN_FLIGHT" not in worker_env(
        {}, options(threads=12), Names("a"), "sqlite://"
    )


def test_the_sampler_keeps_each_process_s_peak_rss_and_the_cpu_it_used_meanwhile() -> None:
    me = psutil.Process(os.getpid())
    with ProcessSampler(lambda: [me], interval=0.01) as sampler:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:  # burn 0.2 s of CPU while sampled
            pass
        usage = sampler.stop()
    assert list(usage) == [me.pid]
    assert usage[me.pid].peak_rss >= me.memory_info().rss // 2
    assert 0.15 <= usage[me.pid].cpu_seconds < 5


def test_the_bench_s_workers_record_into_its_own_database_and_only_in_a_phase_with_the_log_on() -> None:
    on = worker_env(
        {"HOOKLINE_LOG_DATABASE_URL": "postgresql://prod/log"}, options(), Names("a"), "sqlite://x"
    )
    assert (on["HOOKLINE_LOG_ENABLED"], on["HOOKLINE_LOG_DATABASE_URL"]) == ("true", "sqlite://x")
    off = worker_env({}, options(), Names("a"), "sqlite://x", log=False)
    assert off["HOOKLINE_LOG_ENABLED"] == "false"


def test_log_both_runs_the_hookline_phase_on_then_off_so_warming_up_counts_against_the_log() -> None:
    assert log_phases(replace(DEFAULTS, log="both")) == [("hookline", True), ("hookline_log_off", False)]
    assert log_phases(replace(DEFAULTS, log="off")) == [("hookline", False)]
    assert log_phases(DEFAULTS) == [("hookline", True)]
