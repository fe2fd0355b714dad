"""A real ``hookline api`` process on a free loopback port, for the API's integration tests.

:func:`running_api` runs ``hookline setup``, creates a read-write and a
read-only key with ``hookline api-keys create``, starts the server and waits
for ``/healthz``; at the end it stops it with SIGTERM, as Kubernetes does.
:func:`isolated_env` gives a module its own exchange, queues and database,
removed afterwards, for fixtures that outlive one test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg

from support.processes import HOOKLINE, run_json, wait_until
from support.secrets import TEST_SECRETS_KEY
from support.topology import delete_topology

Setup = Literal["all", "database", "none"]
AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Api:
    """The server under test: its address, environment, keys and log."""

    base: str
    metrics: str
    env: dict[str, str]
    key: str
    read_only_key: str
    log: Path
    process: subprocess.Popen[bytes]

    def call(
        self, method: str, path: str, *, key: str | None = "default", base: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request; ``key`` is the read-write key by default, None sends none; ``base`` another port."""
        headers = dict(kwargs.pop("headers", {}))
        given = self.key if key == "default" else key
        if given is not None:
            headers["Authorization"] = f"Bearer {given}"
        return httpx.request(method, (base or self.base) + path, headers=headers, timeout=30, **kwargs)


@contextmanager
def isolated_env(directory: Path, database: str) -> Iterator[dict[str, str]]:
    """HOOKLINE_* settings of an exchange, queues and database (``sqlite`` or ``postgresql``) of their own."""
    name = "t" + uuid.uuid4().hex[:10]
    with _database(directory, database, name) as database_url:
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("HOOKLINE_")},
            "HOOKLINE_AMQP_URL": AMQP_URL,
            "HOOKLINE_EXCHANGE": f"hookline.{name}",
            "HOOKLINE_QUEUE_PREFIX": f"hookline.{name}",
            "HOOKLINE_DATABASE_URL": database_url,
            "HOOKLINE_SECRETS_KEY": TEST_SECRETS_KEY,
            "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the test receivers listen on loopback
            "HOOKLINE_LOG_FORMAT": "json",
        }
        try:
            yield env
        finally:
            delete_topology(AMQP_URL, env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"])


@contextmanager
def _database(directory: Path, database: str, name: str) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "hookline_{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/hookline_{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "hookline_{name}" WITH (FORCE)')


@contextmanager
def running_api(env: dict[str, str], log: Path, *, setup: Setup = "all") -> Iterator[Api]:
    """The server, after ``setup``: ``all`` (`hookline setup`), ``database`` (migrations only: no
    exchange, no queues) or ``none`` (an empty database: no keys either)."""
    api_port, metrics_port = free_ports(2)
    env = {
        **env,
        "HOOKLINE_API_HOST": "127.0.0.1",
        "HOOKLINE_API_PORT": str(api_port),
        "HOOKLINE_API_METRICS_PORT": str(metrics_port),
    }
    key = read_only_key = ""
    if setup == "all":
        run_json(env, "setup")
    elif setup == "database":
        migrate_only(env)
    if setup != "none":
        key = run_json(env, "api-keys", "create", "--name", "tests")["key"]
        read_only_key = run_json(env, "api-keys", "create", "--name", "tests, read only", "--read-only")[
            "key"
        ]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [HOOKLINE, "api"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{env['HOOKLINE_API_PORT']}"
    api = Api(
        base, f"http://127.0.0.1:{env['HOOKLINE_API_METRICS_PORT']}", env, key, read_only_key, log, process
    )
    try:
        wait_until(lambda: _answers(base), timeout=30, what="hookline api answering /healthz", log=log)
        yield api
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def migrate_only(env: dict[str, str]) -> None:
    """Migrate the database, but declare nothing on the broker: no exchange, no queue."""
    from workers.subscriptions import migrating  # noqa: PLC0415 - the only caller that needs it

    migrating.migrate(env["HOOKLINE_DATABASE_URL"])


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago (held together, so distinct)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
