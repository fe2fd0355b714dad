"""The overview: queue depths, dead letters, the log's backlog, subscriptions by state (``/v1/status``)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.responses import Response

from workers.api.routes.status import status
from workers.console.handling import Call, page

router = APIRouter()


@page(router, "/")
def overview(call: Call) -> Response:
    return call.render("overview.html", current=status(call.request), now=datetime.now(UTC))
