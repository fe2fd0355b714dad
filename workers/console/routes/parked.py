"""Dead letters and invalid events: list, inspect, replay, purge, through the ``/v1`` route functions.

A parking queue is read by taking its messages and putting them back, so a
list shows the oldest ones up to a limit the page can raise, with the
queue's total, as ``/v1/dead-letters`` does; there is no cursor to page on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.responses import Response

from workers.api.routes.parked import (
    MAX_LIST,
    delete_dead_letter,
    get_dead_letter,
    list_dead_letters,
)
from workers.api.routes.parked import (
    invalid_events as invalid_router,
)
from workers.api.routes.parked import (
    replay_dead_letter as replay_route,
)
from workers.console.handling import Call, page

router = APIRouter()
PAGE, MAX_PAGE = 50, MAX_LIST
DONE = {"replayed": "Replayed: the broker stored the copy.", "purged": "Purged for good."}


def _invalid(name: str) -> Callable[..., Any]:
    """The ``/v1/invalid-events`` route function called ``name`` (they are made per kind, not importable)."""
    for route in invalid_router.routes:
        if isinstance(route, APIRoute) and route.endpoint.__name__ == name:
            return route.endpoint
    raise LookupError(name)


@page(router, "/dead-letters")
def dead_letters(call: Call) -> Response:
    subscription_id, limit = call.query("subscription_id"), _limit(call)
    listed = list_dead_letters(call.request, subscription_id, limit)
    done = DONE.get(call.query("done") or "")
    return call.render(
        "dead_letters.html", listed=listed, subscription_id=subscription_id or "", limit=limit, done=done
    )


@page(router, "/dead-letters/{message_id:path}/replay", changes=True)
def replay_dead_letter(call: Call) -> Response:
    replay_route(call.path("message_id"), call.request)
    return call.redirect("/dead-letters?done=replayed")


@page(router, "/dead-letters/{message_id:path}/purge", changes=True)
def purge_dead_letter(call: Call) -> Response:
    delete_dead_letter(call.path("message_id"), call.request)
    return call.redirect("/dead-letters?done=purged")


@page(router, "/dead-letters/{message_id:path}")
def dead_letter(call: Call) -> Response:
    letter = get_dead_letter(call.path("message_id"), call.request)
    return call.render("dead_letter.html", letter=letter, quoted=quote(letter["id"], safe=""))


@page(router, "/invalid-events")
def invalid_events(call: Call) -> Response:
    limit = _limit(call)
    listed = _invalid("list_")(call.request, limit)
    done = DONE.get(call.query("done") or "")
    return call.render("invalid_events.html", listed=listed, limit=limit, done=done)


@page(router, "/invalid-events/{message_id:path}/replay", changes=True)
def replay_invalid(call: Call) -> Response:
    _invalid("replay")(call.path("message_id"), call.request)
    return call.redirect("/invalid-events?done=replayed")


@page(router, "/invalid-events/{message_id:path}/purge", changes=True)
def purge_invalid(call: Call) -> Response:
    _invalid("delete")(call.path("message_id"), call.request)
    return call.redirect("/invalid-events?done=purged")


@page(router, "/invalid-events/{message_id:path}")
def invalid_event(call: Call) -> Response:
    message = _invalid("get")(call.path("message_id"), call.request)
    return call.render("invalid_event.html", message=message, quoted=quote(message["id"], safe=""))


def _limit(call: Call) -> int:
    """How many to show: the page's, raised by "show more" up to the API's most."""
    try:
        return max(1, min(int(call.query("limit") or PAGE), MAX_PAGE))
    except ValueError:
        return PAGE
