"""The overview: queue depths, dead letters, the log's backlog, subscriptions by state (``/v1/status``),
and what became of the deliveries of the last hour's events, from the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from workers.api.routes.status import status
from workers.api.services import Services
from workers.console.handling import Call, page
from workers.errors import HooklineError

router = APIRouter()
WINDOW = timedelta(hours=1)


@page(router, "/")
def overview(call: Call) -> Response:
    now = datetime.now(UTC)
    return call.render(
        "overview.html",
        current=status(call.request),
        hour=last_hour(call.request.app.state.services, now),
        now=now,
        window=WINDOW,
    )


def last_hour(services: Services, now: datetime) -> dict[str, Any]:
    """Deliveries of the events received in the last hour by state, their rate, and the share delivered."""
    try:
        by_state = services.migrated_log().states_since(now - WINDOW)
    except HooklineError as exc:
        return {"error": str(exc)}
    total = sum(by_state.values())
    delivered = by_state.get("delivered", 0)
    return {
        "error": None,
        "by_state": by_state,
        "total": total,
        "per_minute": total / (WINDOW.total_seconds() / 60),
        "delivered_share": delivered / total if total else None,
    }
