"""A real Prometheus server (Debian's /usr/bin/prometheus) on loopback, for tests that scrape a worker."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.metrics import free_port, get
from support.processes import wait_until


@contextmanager
def prometheus(tmp_path: Path, target: str, rule_files: list[Path] = ()) -> Iterator[str]:  # type: ignore[assignment]
    """Prometheus scraping ``target`` (host:port) every second as job "hookline"; yields its base URL."""
    executable = shutil.which("prometheus")
    assert executable, "prometheus is missing: install Debian's prometheus package (.ci/run does)"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "hookline", "static_configs": [{"targets": [target]}]}],
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                executable,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{address}"
    try:
        wait_until(lambda: _ready(url), timeout=60, what="prometheus ready", log=log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return get(f"{url}/-/ready")[0] == 200
    except OSError:
        return False


def api(url: str, path: str, **params: str) -> Any:
    status, body = get(f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}", accept="application/json")
    answer = json.loads(body)
    assert status == 200, answer
    assert answer["status"] == "success", answer
    return answer["data"]


def query(url: str, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
    """An instant query's result: each series' labels (without __name__) and value."""
    result = api(url, "query", query=promql)["result"]
    return {
        tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__")): float(
            series["value"][1]
        )
        for series in result
    }


def scalar(url: str, promql: str) -> float | None:
    """The value of a query that yields at most one series (None when it yields none)."""
    values = list(query(url, promql).values())
    assert len(values) <= 1, values
    return values[0] if values else None
