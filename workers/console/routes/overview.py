"""The overview: queue depths, dead letters, the log's backlog and the recorders' last write,
subscriptions by state (``/v1/status``), and from the delivery log what became of the deliveries
of the last hour's events and which subscriptions an open circuit breaker is refusing."""

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
# A breaker refuses every attempt while open (30 s by default) and lets one through after: a
# refusal this recent means it was open lately, and most likely still is if the endpoint still fails.
BREAKER_WINDOW = timedelta(minutes=15)
# Nothing written for this long while records wait: the recorders are stuck or gone.
STUCK_AFTER = timedelta(minutes=1)


@page(router, "/")
def overview(call: Call) -> Response:
    now = datetime.now(UTC)
    current = status(call.request)
    return call.render(
        "overview.html",
        current=current,
        recorders_stuck=stuck(current["log"], now),
        hour=last_hour(call.request.app.state.services, now),
        breakers=open_breakers(call.request.app.state.services, now),
        now=now,
        window=WINDOW,
        breaker_window=BREAKER_WINDOW,
    )


def stuck(log: dict[str, Any], now: datetime) -> bool:
    """Records wait in the log queue, and no recorder wrote a batch for a while."""
    written = log.get("last_write_at")
    if not log.get("messages") or written is None:
        return False
    return now - datetime.fromisoformat(written) > STUCK_AFTER


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


def open_breakers(services: Services, now: datetime) -> dict[str, Any]:
    """Subscriptions whose deliveries an open breaker refused lately, with the URL each points at."""
    try:
        refused = services.migrated_log().refused_by_open_breakers(now - BREAKER_WINDOW)
    except HooklineError as exc:
        return {"error": str(exc), "subscriptions": []}
    rows = [{"refused": each, "url": _url(services, each.subscription_id)} for each in refused]
    return {"error": None, "subscriptions": rows}


def _url(services: Services, subscription_id: str) -> str | None:
    try:
        return services.subscriptions.get(subscription_id).url
    except HooklineError:  # removed since, or the store is down: the id is still worth showing
        return None
