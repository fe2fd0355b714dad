"""``hookline bench`` end to end, small: a smoke run that keeps the bench working (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pika
import pika.exceptions
import pytest
from support.processes import HOOKLINE

pytestmark = pytest.mark.integration


def test_a_small_bench_with_baseline_and_the_log_both_ways_delivers_everything_and_cleans_up(
    amqp_url: str, tmp_path: Path
) -> None:
    plot = tmp_path / "bench.png"
    argv = [HOOKLINE, "bench", "--events", "200", "--processes", "1", "--threads", "4", "--baseline"]
    argv += ["--log", "both"]
    result = subprocess.run(
        [*argv, "--json", "--plot", str(plot)],
        env={**os.environ, "HOOKLINE_AMQP_URL": amqp_url, "HOOKLINE_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in ("hookline", "hookline_log_off", "baseline"):
        phase = figures[name]
        assert phase["deliveries"] == phase["deliveries_expected"] == 200, phase["errors"]
        assert not any(phase["errors"].values()), phase["errors"]
        assert phase["deliveries_per_s"] > 0
        assert phase["publish_rate"] > 0
        assert set(phase["latency_ms"]) == {"p50", "p90", "p99", "max"}
        assert sum(row["deliveries_per_s"] for row in phase["timeline"]) > 0
    assert len(figures["hookline"]["worker_rss_mib"]) == 1
    assert figures["hookline"]["worker_rss_mib"][0] > 0
    assert figures["ratio"] > 0
    # With the log on, a recorder ran beside the workers and wrote everything they recorded.
    assert (figures["hookline"]["log"], figures["hookline_log_off"]["log"]) == (True, False)
    assert figures["hookline"]["log_caught_up_s"] is not None
    assert figures["hookline"]["cpu_ms_per_delivery"]["recorder"] > 0
    assert figures["log_ratio"] > 0
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    run = figures["settings"]["run"]
    assert run.startswith("hookline.bench.")
    assert not queue_exists(amqp_url, f"{run}.events")
    assert not queue_exists(amqp_url, f"{run}.retries")
    assert not queue_exists(amqp_url, f"{run}.log")
    assert not queue_exists(amqp_url, f"{run}.baseline")


def queue_exists(amqp_url: str, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()
    return True
