"""Delivery log lines: one JSON object each, with what an operator needs and nothing secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.processes import Worker, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Received, Receiver

pytestmark = pytest.mark.integration

TOKEN = "tok3n-in-the-query"  # noqa: S105 - a stand-in for a credential a subscriber puts in its URL


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def events_named(path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(path) if line.get("event") == name]


def test_delivery_lines_carry_ids_attempt_host_status_or_reason_and_duration_but_no_secret(
    hookline_env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env = {**hookline_env, "HOOKLINE_LOG_FORMAT": "json", "HOOKLINE_RETRY_SCHEDULE": "1s"}
    run_hookline(env, "setup")
    subscription = run_json(
        env, "subscriptions", "add", "--url", f"{hook_receiver.url}/in?token={TOKEN}", "--event", "#"
    )
    seen: set[str] = set()

    def fail_first(request: Received) -> int:
        first = request.headers["webhook-id"] not in seen
        seen.add(request.headers["webhook-id"])
        return 503 if first else 200

    hook_receiver.respond = fail_first
    log = tmp_path / "worker.log"
    prefix = env["HOOKLINE_QUEUE_PREFIX"]
    workers.append(Worker(env, log).start([f"{prefix}.events", f"{prefix}.retries"]))
    [event_id] = publish(env)
    wait_until(
        lambda: len(events_named(log, "delivered")) == 1, timeout=30, what="the delivered line", log=log
    )

    [failed] = events_named(log, "delivery_failed")
    [delivered] = events_named(log, "delivered")
    common = {"event_id": event_id, "subscription_id": subscription["id"], "host": "127.0.0.1"}
    assert failed.items() >= {**common, "attempt": 1, "reason": "http_status", "status": 503}.items()
    assert delivered.items() >= {**common, "attempt": 2, "status": 200}.items()
    assert failed["duration"] >= 0
    assert delivered["duration"] >= 0
    text = log.read_text()
    assert TOKEN not in text
    assert subscription["secret"] not in text
