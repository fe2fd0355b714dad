"""``/healthz`` and ``/readyz``: the only paths that answer without an API key.

Live while the process serves requests. Ready when the database answers with
the current schema and RabbitMQ answers; both are read at most once every
:data:`CHECK_SECONDS`, so probes cost nothing however often they come.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from workers.api.services import Services
from workers.errors import HooklineError
from workers.subscriptions.migrating import ensure_migrated

CHECK_SECONDS = 5.0

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    problems: list[str]


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok", problems=[])


@router.get(
    "/readyz",
    summary="Readiness: the database and RabbitMQ answer",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or RabbitMQ does not answer."}},
)
async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    checks: Checks = request.app.state.readiness
    problems = await run_in_threadpool(checks.problems, services)
    health = Health(status="unavailable" if problems else "ok", problems=problems)
    return JSONResponse(health.model_dump(), status_code=503 if problems else 200)


class Checks:
    """The last readiness checks, reused for :data:`CHECK_SECONDS`; checks take turns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._problems: list[str] = []

    def problems(self, services: Services) -> list[str]:
        with self._lock:
            if time.monotonic() - self._at >= CHECK_SECONDS:
                self._problems = [problem for problem in (_database(services), _broker(services)) if problem]
                self._at = time.monotonic()
            return self._problems


def _database(services: Services) -> str | None:
    try:
        ensure_migrated(services.engine)
    except HooklineError as exc:  # the message names the database without a password
        return str(exc)
    return None


def _broker(services: Services) -> str | None:
    try:
        services.queues.read()
    except HooklineError as exc:
        return str(exc)
    return None
