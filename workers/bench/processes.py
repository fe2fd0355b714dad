"""The processes a bench run starts: the receiver, hookline workers and recorder, baseline loops.

Each runs in its own session, so a Ctrl-C on the terminal reaches only the
bench, which then stops them in order (workers before their queues are
deleted). Stopping is SIGTERM, a wait, then SIGKILL to the whole process group,
so no worker child outlives the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from workers.bench import amqp
from workers.errors import BenchError

STOP_TIMEOUT = 30.0


def hookline_command() -> list[str]:
    """This interpreter's ``hookline``, so the bench runs the same installation it was started from."""
    script = Path(sys.executable).with_name("hookline")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from workers.cli import main; main()"]


class Child:
    """One process in its own session; its stdin is a pipe whose end tells it the parent is gone."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[bytes] = subprocess.PIPE,
        stderr: int | IO[bytes] = subprocess.DEVNULL,
    ) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules, fixed arguments
            list(argv), env=env, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bytes:
        """SIGTERM, wait, then SIGKILL the group; returns what it printed on stdout (if piped)."""
        self.terminate()
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            out, _ = self.process.communicate()
        self._kill_group()  # children the leader left behind, if any
        return out or b""

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already empty
            os.killpg(self.process.pid, signal.SIGKILL)


class Receiver:
    """The fast receiver (:mod:`workers.bench.receiver`) in its own process, and a client to read it."""

    def __init__(self) -> None:
        self._child = Child([sys.executable, "-m", "workers.bench.receiver", "--host", "127.0.0.1"])
        assert self._child.process.stdout is not None  # noqa: S101 - piped above
        line = self._child.process.stdout.readline()
        if not line.strip().isdigit():
            self._child.stop()
            raise BenchError("the bench receiver did not start")
        self.url = f"http://127.0.0.1:{int(line)}"
        self._client = httpx.Client(base_url=self.url, timeout=60.0)

    def processes(self) -> list[psutil.Process]:
        return _existing([self._child.pid])

    def count(self) -> tuple[int, int]:
        """``(recorded, refused)`` requests so far."""
        recorded, refused = self._client.get("/_bench/count").text.split()
        return int(recorded), int(refused)

    def take(self) -> list[list[Any]]:
        """Every record so far (``[wall, path, webhook_id, body]``); the receiver forgets them."""
        rows: list[list[Any]] = self._client.post("/_bench/take").json()
        return rows

    def stop(self) -> None:
        self._client.close()
        self._child.stop()


class Workers:
    """``hookline worker`` started by the bench, logging to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, processes: int, threads: int) -> None:
        self.log_path = log_path
        self.count = processes
        argv = [*hookline_command(), "worker", "--processes", str(processes), "--threads", str(threads)]
        with log_path.open("ab") as log:
            self._child = Child(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_consuming(self, amqp_url: str, queues: Sequence[str], timeout: float = 60.0) -> None:
        """Until every worker process consumes every queue, or :class:`BenchError` with the log's end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._child.running():
                raise BenchError(f"hookline worker exited at start: {self.log_tail()}")
            if all(amqp.queue_counts(amqp_url, queue)[1] >= self.count for queue in queues):
                return
            time.sleep(0.2)
        raise BenchError(f"hookline worker did not start consuming within {timeout:.0f}s: {self.log_tail()}")

    @property
    def pid(self) -> int:
        """The ``hookline worker`` parent, which supervises the worker processes and forwards their logs."""
        return self._child.pid

    def processes(self) -> list[psutil.Process]:
        """The parent and the worker processes (its children)."""
        try:
            parent = psutil.Process(self._child.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def stop(self) -> None:
        self._child.stop()


class Recorder:
    """``hookline recorder`` started by the bench beside its workers, logging to the workers' file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, metrics_port: int) -> None:
        self.log_path = log_path
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        argv = [*hookline_command(), "recorder", "--metrics-port", str(metrics_port)]
        with log_path.open("ab") as log:
            self._child = Child(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_consuming(self, amqp_url: str, queue: str, timeout: float = 60.0) -> None:
        """Until it consumes the log queue, or :class:`BenchError` with the log's end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._child.running():
                raise BenchError(f"hookline recorder exited at start: {_tail(self.log_path)}")
            if amqp.queue_counts(amqp_url, queue)[1] >= 1:
                return
            time.sleep(0.2)
        raise BenchError(f"hookline recorder did not start consuming within {timeout:.0f}s")

    def lag(self) -> float | None:
        """The recorder's ``hookline_recorder_lag_seconds``, or None if its page cannot be read."""
        try:
            page = httpx.get(self.metrics_url, timeout=5.0).text
        except httpx.HTTPError:
            return None
        for line in page.splitlines():
            if line.startswith("hookline_recorder_lag_seconds "):
                return float(line.split()[1])
        return None

    def processes(self) -> list[psutil.Process]:
        return _existing([self._child.pid])

    def stop(self) -> None:
        self._child.stop()


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "(nothing logged)"


class BaselineLoops:
    """``processes`` baseline loops (:mod:`workers.bench.baseline`) on one queue."""

    def __init__(self, amqp_url: str, queue: str, url: str, processes: int) -> None:
        argv = [sys.executable, "-m", "workers.bench.baseline", "--amqp-url", amqp_url, "--queue", queue]
        self._children = [Child([*argv, "--url", url]) for _ in range(processes)]

    def wait_consuming(self, amqp_url: str, queue: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not all(child.running() for child in self._children):
                raise BenchError("a baseline process exited at start")
            if amqp.queue_counts(amqp_url, queue)[1] >= len(self._children):
                return
            time.sleep(0.2)
        raise BenchError(f"the baseline processes did not start consuming within {timeout:.0f}s")

    def processes(self) -> list[psutil.Process]:
        return _existing([child.pid for child in self._children])

    def stop(self) -> dict[str, int]:
        """Stop every loop; their summed ``{"posted", "errors"}``."""
        totals = {"posted": 0, "errors": 0}
        for child in self._children:
            child.terminate()  # all at once: each then has the same time to finish
        for child in self._children:
            out = child.stop().decode(errors="replace").strip()
            counts = json.loads(out.splitlines()[-1]) if out else {}
            for key in totals:
                totals[key] += int(counts.get(key, 0))
        return totals


def _existing(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found
