"""``hookline bench`` refuses to start with one clear line when it cannot run."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from workers.cli import cli

HOOKLINE = str(Path(sys.executable).with_name("hookline"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns: nothing listens there


def test_an_unreachable_broker_is_one_line_and_exit_2() -> None:
    url = f"amqp://guest:secret@127.0.0.1:{closed_port()}/%2F"
    result = subprocess.run(
        [HOOKLINE, "bench", "--events", "1", "--amqp-url", url],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:" in lines[0]
    assert "secret" not in result.stderr
    assert result.stdout == ""


def test_without_the_bench_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def without_psutil(name: str, *args: Any) -> Any:
        return None if name == "psutil" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_psutil)
    result = CliRunner().invoke(cli, ["bench", "--events", "1"])
    assert result.exit_code == 2
    assert "pip install 'hookline[worker,bench]'" in result.output
    assert "Traceback" not in result.output
