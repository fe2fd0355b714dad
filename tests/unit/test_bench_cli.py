"""``hookline bench`` refuses to start with one clear line when it cannot run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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
