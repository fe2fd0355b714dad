"""Liveness and readiness as the parent judges them from its worker processes' heartbeats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.middleware.heartbeat import Heartbeats
from workers.observability import heartbeat
from workers.ops import exporter
from workers.ops.exporter import STALE_AFTER_SECONDS, STARTUP_GRACE_SECONDS, Supervision, assess
from workers.vocabulary import ProcessState


def write_beat(directory: Path, pid: int, state: str, age: float = 0.0) -> None:
    record = {"pid": pid, "state": state, "at": time.monotonic() - age}
    (directory / f"{pid}.json").write_text(json.dumps(record))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def beats_dir(tmp_path: Path) -> Path:
    path = tmp_path / heartbeat.SUBDIRECTORY
    path.mkdir()
    return path


@pytest.fixture
def live_pids() -> Iterator[list[int]]:
    """Two processes that stay alive during the test (heartbeats name real pids)."""
    processes = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    yield [process.pid for process in processes]
    for process in processes:
        process.kill()
        process.wait()


def test_a_pod_whose_processes_all_consume_is_live_and_ready(beats_dir: Path, live_pids: list[int]) -> None:
    for pid in live_pids:
        write_beat(beats_dir, pid, ProcessState.CONSUMING)
    health = assess(Supervision(beats_dir, expected=2), broker_error=None)
    assert (health.live, health.ready, health.problems) == (True, True, [])
    assert sorted(process["pid"] for process in health.processes) == sorted(live_pids)


def test_a_stale_heartbeat_makes_the_pod_not_live(beats_dir: Path, live_pids: list[int]) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.CONSUMING)
    write_beat(beats_dir, live_pids[1], ProcessState.CONSUMING, age=STALE_AFTER_SECONDS + 1)
    health = assess(Supervision(beats_dir, expected=2), broker_error=None)
    assert (health.live, health.ready) == (False, False)
    assert health.problems == [f"worker process {live_pids[1]} is stale"]


def test_a_process_whose_threads_died_makes_the_pod_not_live(beats_dir: Path, live_pids: list[int]) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.THREAD_DIED)
    health = assess(Supervision(beats_dir, expected=1), broker_error=None)
    assert not health.live


def test_a_process_that_exited_is_swept_and_makes_the_pod_not_live(
    beats_dir: Path, live_pids: list[int]
) -> None:
    gone = dead_pid()
    write_beat(beats_dir, live_pids[0], ProcessState.CONSUMING)
    write_beat(beats_dir, gone, ProcessState.CONSUMING)
    run_dir = beats_dir.parent
    (run_dir / f"gauge_livesum_{gone}.db").write_bytes(b"")
    (run_dir / f"counter_{gone}.db").write_bytes(b"")
    supervision = Supervision(beats_dir, expected=2)

    health = assess(supervision, broker_error=None)

    assert not health.live
    assert f"worker process {gone} exited" in health.problems
    assert not (run_dir / f"gauge_livesum_{gone}.db").exists(), "its live gauges leave the sums"
    assert (run_dir / f"counter_{gone}.db").exists(), "its counters stay: counters never go down"
    assert not (beats_dir / f"{gone}.json").exists()
    assert not assess(supervision, broker_error=None).live, "and the pod stays not live"


def test_processes_that_have_not_reported_are_tolerated_during_start_up_only(
    beats_dir: Path, live_pids: list[int]
) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.CONSUMING)
    supervision = Supervision(beats_dir, expected=2)
    starting = assess(supervision, broker_error=None)
    later = assess(supervision, broker_error=None, now=supervision.started_at + STARTUP_GRACE_SECONDS + 1)
    assert (starting.live, starting.ready) == (True, False)
    assert "1 of 2 worker processes have not reported yet" in starting.problems
    assert not later.live


def test_a_starting_process_is_live_but_not_ready(beats_dir: Path, live_pids: list[int]) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.STARTING)
    health = assess(Supervision(beats_dir, expected=1), broker_error=None)
    assert (health.live, health.ready) == (True, False)


def test_without_the_broker_the_pod_is_live_but_not_ready(beats_dir: Path, live_pids: list[int]) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.CONSUMING)
    health = assess(Supervision(beats_dir, expected=1), broker_error="cannot read queues on amqp://x:***@h/")
    assert (health.live, health.ready) == (True, False)
    assert "cannot read queues on amqp://x:***@h/" in health.problems


def test_a_heartbeat_file_caught_half_written_is_skipped(beats_dir: Path) -> None:
    write_beat(beats_dir, os.getpid(), ProcessState.CONSUMING)
    (beats_dir / "12345.json").write_text('{"pid": 12')
    assert [beat.pid for beat in heartbeat.read_all(beats_dir)] == [os.getpid()]


def alive_thread() -> SimpleNamespace:
    return SimpleNamespace(is_alive=lambda: True)


def test_a_worker_process_reports_starting_consuming_stalled_and_stopping(beats_dir: Path) -> None:
    beat = Heartbeats(beats_dir)
    states = [beat.state()]
    worker = SimpleNamespace(workers=[alive_thread()], consumers={"q": alive_thread()})
    beat.after_worker_boot(broker=None, worker=worker)  # type: ignore[arg-type]
    states.append(heartbeat.read_all(beats_dir)[0].state)
    worker.workers.append(SimpleNamespace(is_alive=lambda: False))
    states.append(beat.state())
    beat.before_worker_shutdown(broker=None, worker=worker)  # type: ignore[arg-type]
    states.append(heartbeat.read_all(beats_dir)[0].state)
    assert states == [
        ProcessState.STARTING,
        ProcessState.CONSUMING,
        ProcessState.THREAD_DIED,
        ProcessState.STOPPING,
    ]


def test_heartbeats_start_only_under_hookline_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(heartbeat.MULTIPROC_ENV, raising=False)
    assert heartbeat.directory() is None
    monkeypatch.setenv(heartbeat.MULTIPROC_ENV, str(tmp_path))
    assert heartbeat.directory() is None, "a multiprocess directory alone is not hookline worker's"
    (tmp_path / heartbeat.SUBDIRECTORY).mkdir()
    assert heartbeat.directory() == tmp_path / heartbeat.SUBDIRECTORY


def test_an_unreachable_broker_reads_as_broker_down_and_not_ready(
    tmp_path: Path, live_pids: list[int]
) -> None:
    from support.metrics import free_port  # noqa: PLC0415 - test helper

    from workers.settings import Settings  # noqa: PLC0415 - after the fixtures set nothing

    (tmp_path / heartbeat.SUBDIRECTORY).mkdir()
    write_beat(tmp_path / heartbeat.SUBDIRECTORY, live_pids[0], ProcessState.CONSUMING)
    settings = Settings(
        amqp_url=f"amqp://guest:hunter2@127.0.0.1:{free_port()}/%2F",
        database_url=f"sqlite:///{tmp_path / 'none.db'}",
    )
    exposition = exporter.build(settings, tmp_path, expected=1)
    try:
        families = {family.name: family for family in exposition.registry.collect()}
        health = exposition.health()
    finally:
        exposition.close()
    assert [sample.value for sample in families["hookline_broker_up"].samples] == [0]
    assert families["hookline_queue_messages"].samples == []
    assert [sample.value for sample in families["hookline_database_up"].samples] == [0]
    assert (health.live, health.ready) == (True, False)
    assert "hunter2" not in " ".join(health.problems)


def test_a_process_that_stopped_on_sigterm_leaves_the_pod_live_but_not_ready(
    beats_dir: Path, live_pids: list[int]
) -> None:
    write_beat(beats_dir, live_pids[0], ProcessState.STOPPING)
    write_beat(beats_dir, dead_pid(), ProcessState.STOPPING)
    health = assess(Supervision(beats_dir, expected=2), broker_error=None)
    assert (health.live, health.ready) == (True, False)
