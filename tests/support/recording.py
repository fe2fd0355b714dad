"""``hookline recorder`` in a subprocess, and what the delivery log holds, read straight from its tables."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from support.processes import HOOKLINE, consumers, wait_until
from workers.deliverylog.tables import attempts_table, deliveries_table, events_table
from workers.subscriptions import db


class RecorderProcess:
    """``hookline recorder`` in its own process group, stopped with SIGTERM or killed with SIGKILL."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.env = env
        self.log_path = log_path
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RecorderProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [HOOKLINE, "recorder", *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        queue = f"{self.env['HOOKLINE_QUEUE_PREFIX']}.log"
        wait_until(
            lambda: consumers(self.env["HOOKLINE_AMQP_URL"], queue) > 0 or not self.running(),
            timeout=30,
            what=f"recorder consuming {queue}",
            log=self.log_path,
        )
        assert self.running(), self.log_path.read_text(errors="replace")[-3000:]
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.running():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass(frozen=True)
class LogContents:
    """Every row of the log's events, deliveries and attempts tables, as plain tuples."""

    events: list[tuple[str, int]]  # (id, matched)
    deliveries: list[tuple[str, str, str, str, int]]  # (event id, subscription id, run, state, attempts)
    attempts: list[tuple[str, int, str, int | None]]  # (delivery id, attempt, state, status)

    @property
    def event_ids(self) -> Counter[str]:
        return Counter(event_id for event_id, _ in self.events)

    def attempt_numbers(self) -> dict[str, list[int]]:
        """Each delivery's attempt numbers, in order, as many times as the log holds each."""
        numbers: dict[str, list[int]] = {}
        for delivery_id, attempt, _, _ in sorted(self.attempts):
            numbers.setdefault(delivery_id, []).append(attempt)
        return numbers


def read_log(database_url: str) -> LogContents:
    engine = db.create_engine(database_url)
    try:
        with engine.connect() as connection:
            events = connection.execute(sa.select(events_table.c.id, events_table.c.matched)).all()
            deliveries = connection.execute(
                sa.select(
                    deliveries_table.c.event_id,
                    deliveries_table.c.subscription_id,
                    deliveries_table.c.run,
                    deliveries_table.c.state,
                    deliveries_table.c.attempts,
                )
            ).all()
            attempts = connection.execute(
                sa.select(
                    attempts_table.c.delivery_id,
                    attempts_table.c.attempt,
                    attempts_table.c.state,
                    attempts_table.c.status,
                )
            ).all()
    finally:
        engine.dispose()
    return LogContents(
        [(row[0], row[1]) for row in events],
        [(row[0], row[1], row[2], row[3], row[4]) for row in deliveries],
        [(row[0], row[1], row[2], row[3]) for row in attempts],
    )
