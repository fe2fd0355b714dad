"""A publishing service installs only the base package: the producer must not need the worker extra."""

from __future__ import annotations

import json
import subprocess
import sys

import producer

WORKER_ONLY = [
    "workers",
    "dramatiq",
    "httpx",
    "sqlalchemy",
    "structlog",
    "prometheus_client",
    "psycopg",
    "alembic",
]
# Makes `import dramatiq` and the like fail, as on an install without the worker extra.
WITHOUT_WORKER_EXTRA = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def modules_loaded_by(statement: str) -> set[str]:
    result = run_python(f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in json.loads(result.stdout)}


def test_importing_producer_loads_nothing_from_the_workers_or_the_worker_extra() -> None:
    loaded = modules_loaded_by("import producer, producer.event, producer.publisher, producer.settings")
    assert "pika" in loaded  # the check sees real imports
    assert loaded.isdisjoint(WORKER_ONLY), sorted(loaded & set(WORKER_ONLY))


def test_the_publish_command_loads_nothing_from_the_worker_extra() -> None:
    loaded = modules_loaded_by("import workers.cli.publish")
    assert "click" in loaded
    assert loaded.isdisjoint(WORKER_ONLY[1:]), sorted(loaded & set(WORKER_ONLY[1:]))


def test_hookline_publish_runs_where_the_worker_extra_is_not_installed() -> None:
    blocked = WITHOUT_WORKER_EXTRA.format(names=WORKER_ONLY[1:])
    code = blocked + "from workers.cli import main\nmain(['publish', '--help'])"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "Usage: hookline publish" in result.stdout


def test_the_package_exports_the_event_the_publisher_its_settings_and_every_error() -> None:
    assert set(producer.__all__) == {
        "Event",
        "Publisher",
        "ProducerSettings",
        "ProducerError",
        "ConfigurationError",
        "InvalidEvent",
        "EventTooLarge",
        "PublishError",
        "BrokerUnavailable",
        "ExchangeNotFound",
        "EventUnroutable",
        "EventNacked",
        "ConfirmTimeout",
    }
    assert all(hasattr(producer, name) for name in producer.__all__)
