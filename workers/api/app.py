"""The FastAPI application: :func:`create_app` wires the routers, the problem details, the limits and metrics.

The lifespan opens :class:`~workers.api.services.Services` (unless a test hands
some in) and, while the app runs, deletes remembered ``Idempotency-Key``
answers past their retention every :data:`PURGE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from workers.api import openapi, problems
from workers.api.limits import BodyLimit
from workers.api.metrics import RequestMetrics
from workers.api.routes import ROUTERS
from workers.api.routes.events import Shortcut
from workers.api.routes.health import Checks
from workers.api.services import Services
from workers.errors import HooklineError
from workers.observability.logs import get_logger
from workers.settings import Settings

log = get_logger(component="api")

PURGE_SECONDS = 600.0


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The API; ``services`` are opened at start-up (and closed at shutdown) unless given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = services if services is not None else await run_in_threadpool(Services.open, settings)
        app.state.services = opened
        purging = asyncio.create_task(_purge_forever(opened))
        try:
            yield
        finally:
            purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purging
            if services is None:
                await run_in_threadpool(opened.close)

    app = FastAPI(
        title="hookline",
        version=version("hookline"),
        openapi_url=None,  # served behind a key by routes/meta.py
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.readiness = Checks()
    problems.install(app)
    app.add_middleware(Shortcut)  # innermost: POST /v1/events within the limit and the metrics
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics)  # outermost: counts what the limit refuses too
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign] # FastAPI's documented override
    return app


async def _purge_forever(services: Services) -> None:
    while True:
        await asyncio.sleep(PURGE_SECONDS)
        try:
            purged = await run_in_threadpool(services.idempotency.purge)
        except HooklineError as exc:
            log.warning("idempotency_purge_failed", error=str(exc))
        else:
            log.debug("idempotency_purged", rows=purged)
