"""The HTTP server of ``hookline worker`` and ``hookline recorder``: ``/metrics``, ``/healthz``, ``/readyz``.

:func:`serving` is the worker's (the sum of its processes' metrics); :func:`serve`
serves any :class:`Exposition` on a port, as the recorder does its own.

It runs as threads of the parent process, which dramatiq's CLI then forks into
the worker processes. Two things keep forking and these threads apart:

- :class:`ForkGuard`: a fork waits until no request is being answered, and no
  request starts while a fork is under way, so a child never inherits a lock
  one of these threads held (a logger's, the import system's, a pool's);
- in each child, the inherited listening socket is closed at once, so only
  the parent ever accepts on the port.

Forks happen only while the worker processes start, so the guard costs
nothing afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from workers.errors import MetricsServerError
from workers.observability import heartbeat
from workers.observability.logs import get_logger
from workers.settings import Settings

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

log = get_logger(component="metrics_server")

FORK_WAIT_SECONDS = 10.0


class ForkGuard:
    """Lets threads work concurrently, but never while this process forks."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._busy = 0
        self._forking = False
        self.child_cleanups: list[Callable[[], None]] = []

    @contextmanager
    def working(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._forking)
            self._busy += 1
        try:
            yield
        finally:
            with self._condition:
                self._busy -= 1
                self._condition.notify_all()

    def before_fork(self) -> None:
        with self._condition:
            self._forking = True
            # Bounded: a request stuck on a dead broker must not hold the workers' start for long.
            self._condition.wait_for(lambda: self._busy == 0, timeout=FORK_WAIT_SECONDS)

    def after_fork_in_parent(self) -> None:
        with self._condition:
            self._forking = False
            self._condition.notify_all()

    def after_fork_in_child(self) -> None:
        self._condition = threading.Condition()
        self._busy = 0
        self._forking = False
        cleanups, self.child_cleanups = self.child_cleanups, []
        for cleanup in cleanups:
            cleanup()


GUARD = ForkGuard()
os.register_at_fork(
    before=GUARD.before_fork,
    after_in_parent=GUARD.after_fork_in_parent,
    after_in_child=GUARD.after_fork_in_child,
)


class Health(Protocol):
    """What ``/healthz`` and ``/readyz`` answer: their status, and the JSON body."""

    @property
    def live(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    def body(self, ready: bool) -> dict[str, object]: ...


class Exposition(Protocol):
    """Everything the three paths answer from: the series to expose, and the health now."""

    @property
    def registry(self) -> Collector: ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exposition: Exposition


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with GUARD.working():
            try:
                status, content_type, body = _respond(
                    self.server.exposition, urlsplit(self.path).path, self.headers.get("Accept")
                )
            except Exception:
                log.exception("metrics_request_failed", path=urlsplit(self.path).path)
                status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Silent: probes and scrapes every few seconds would drown the worker's own log lines."""


def _respond(exposition: Exposition, path: str, accept: str | None) -> tuple[int, str, bytes]:
    from prometheus_client.exposition import choose_encoder  # noqa: PLC0415 - after PROMETHEUS_MULTIPROC_DIR is set

    if path == "/metrics":
        encoder, content_type = choose_encoder(accept or "")
        return 200, content_type, encoder(exposition.registry)
    if path in ("/healthz", "/readyz"):
        ready = path == "/readyz"
        health = exposition.health()
        ok = health.ready if ready else health.live
        body = json.dumps(health.body(ready), indent=2).encode() + b"\n"
        return (200 if ok else 503), "application/json", body
    return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n"


@contextmanager
def serving(settings: Settings, *, processes: int) -> Iterator[Path | None]:
    """Serve metrics and probes while the body runs; yields the run directory (None when port is 0).

    Sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before anything in
    this process imports prometheus_client, so the worker processes forked in
    the body write their metrics there; the directory is removed afterwards.
    """
    if settings.metrics_port == 0:
        yield None
        return
    run_dir = Path(tempfile.mkdtemp(prefix="hookline-metrics-", dir=settings.metrics_dir))
    try:
        (run_dir / heartbeat.SUBDIRECTORY).mkdir()
        os.environ[heartbeat.MULTIPROC_ENV] = str(run_dir)
        with _serve(settings, run_dir, processes):
            yield run_dir
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def _serve(settings: Settings, run_dir: Path, processes: int) -> Iterator[None]:
    from workers.ops import exporter  # noqa: PLC0415 - imports prometheus_client: only after the variable is set

    host, port = settings.metrics_host, settings.metrics_port
    with serve(host, port, lambda: exporter.build(settings, run_dir, processes), directory=str(run_dir)):
        yield


@contextmanager
def serve(host: str, port: int, build: Callable[[], Exposition], **logged: str) -> Iterator[int]:
    """Serve what ``build`` makes on ``host``:``port`` while the body runs; yields the port bound.

    The port is taken before ``build`` runs, so a port in use is one MetricsServerError and nothing else.
    """
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        raise MetricsServerError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        server.exposition = exposition = build()
    except BaseException:
        server.server_close()
        raise
    GUARD.child_cleanups.append(server.socket.close)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    log.info("metrics_serving", address=f"{host}:{server.server_port}", **logged)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        exposition.close()
