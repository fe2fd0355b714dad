"""Run the real ``hookline`` command as a user would, in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika

from workers.broker.nodes import Nodes

HOOKLINE = str(Path(sys.executable).with_name("hookline"))


def run_hookline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [HOOKLINE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"hookline {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def run_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(run_hookline(env, *args, "--json").stdout)


class Worker:
    """``hookline worker`` in its own process group, stopped with SIGTERM like Kubernetes does."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.env = env
        self.log_path = log_path
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_for_queues: list[str]) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [HOOKLINE, "worker", "--processes", "1", "--threads", "4", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: all(consumers(self.env["HOOKLINE_AMQP_URL"], q) > 0 for q in wait_for_queues),
            timeout=30,
            what=f"worker consuming {wait_for_queues}",
            log=self.log_path,
        )
        return self

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def consumers(amqp_url: str, queue: str) -> int:
    return _declare_passive(amqp_url, queue)[1]


def messages(amqp_url: str, queue: str) -> int:
    return _declare_passive(amqp_url, queue)[0]


def queue_exists(amqp_url: str, queue: str) -> bool:
    connection = Nodes(amqp_url).connect()
    try:
        connection.channel().queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        return False
    else:
        return True
    finally:
        if connection.is_open:
            connection.close()


def _declare_passive(amqp_url: str, queue: str) -> tuple[int, int]:
    connection = Nodes(amqp_url).connect()
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return 0, 0
    else:
        return frame.method.message_count, frame.method.consumer_count
    finally:
        connection.close()


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def dead_letters(env: dict[str, str]) -> list[dict[str, Any]]:
    connection = Nodes(env["HOOKLINE_AMQP_URL"]).connect()
    channel = connection.channel()
    letters = []
    while True:
        method, properties, body = channel.basic_get(f"{env['HOOKLINE_QUEUE_PREFIX']}.deliveries.dead")
        if method is None:
            break
        letters.append(
            {**json.loads(body), "message_id": properties.message_id, "headers": properties.headers}
        )
    connection.close()  # unacked: they go back to the queue
    return letters
