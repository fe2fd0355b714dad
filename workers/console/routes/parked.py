"""Invalid events and crashed messages: list (a page at a time), inspect, replay, purge.

Both kinds are parked raw (:mod:`workers.ops.parked`) and have the same four
``/v1`` routes, made per kind by :func:`workers.api.routes.parked.parked_router`;
so do their pages here, one :class:`Shelf` each, calling those route functions.
A page is the ``/v1`` list's ``offset``: the queues read whole, sorted by when
each message was parked, the pages before it skipped (:mod:`workers.console.paging`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.responses import Response

from workers.api.routes.parked import crashed_messages, invalid_events
from workers.console.handling import Call, page
from workers.console.paging import ASK, Pager, offset_of
from workers.console.routes.deadletters import DONE  # the same words after a replay or a purge

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Shelf:
    """One kind of parked message as the console names and links it."""

    path: str  # under /console, as under /v1
    title: str  # "Invalid events"
    one: str  # "Invalid event"
    api: APIRouter  # its /v1 routes
    crashed: bool = False  # whether the queue it came from is worth a column

    def route(self, name: str) -> Callable[..., Any]:
        """The ``/v1`` route function called ``name`` (made per kind, so not importable by name)."""
        for each in self.api.routes:
            if isinstance(each, APIRoute) and each.endpoint.__name__ == name:
                return each.endpoint
        raise LookupError(name)


SHELVES = (
    Shelf("/invalid-events", "Invalid events", "Invalid event", invalid_events),
    Shelf("/crashed-messages", "Crashed messages", "Crashed message", crashed_messages, crashed=True),
)


def _pages(shelf: Shelf) -> None:
    """Register the list, inspect, replay and purge pages of ``shelf``."""

    @page(router, shelf.path)
    def listing(call: Call) -> Response:
        offset = offset_of(call)
        listed = shelf.route("list_")(call.request, ASK, offset)
        pager = Pager.of(offset, len(listed["messages"]), sum(listed["queues"].values()))
        messages = listed["messages"][: pager.shown]
        done = DONE.get(call.query("done") or "")
        return call.render(
            "parked_messages.html", shelf=shelf, listed=listed, messages=messages, pager=pager, done=done
        )

    @page(router, shelf.path + "/{message_id:path}/replay", changes=True)
    def replay(call: Call) -> Response:
        shelf.route("replay")(call.path("message_id"), call.request)
        return call.redirect(f"{shelf.path}?done=replayed")

    @page(router, shelf.path + "/{message_id:path}/purge", changes=True)
    def purge(call: Call) -> Response:
        shelf.route("delete")(call.path("message_id"), call.request)
        return call.redirect(f"{shelf.path}?done=purged")

    @page(router, shelf.path + "/{message_id:path}")
    def message(call: Call) -> Response:
        found = shelf.route("get")(call.path("message_id"), call.request)
        return call.render(
            "parked_message.html", shelf=shelf, message=found, quoted=quote(found["id"], safe="")
        )


for _shelf in SHELVES:
    _pages(_shelf)
