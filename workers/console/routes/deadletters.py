"""Dead letters: list (a page at a time), inspect, replay, purge, through the ``/v1/dead-letters`` routes.

A page is ``GET /v1/dead-letters?offset=``: the queue read whole (taking its
messages and putting them back), sorted by when each was dead-lettered, the
pages before it skipped (:mod:`workers.console.paging`).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from starlette.responses import Response

from workers.api.routes.parked import (
    delete_dead_letter,
    get_dead_letter,
    list_dead_letters,
)
from workers.api.routes.parked import (
    replay_dead_letter as replay_route,
)
from workers.console.handling import Call, page
from workers.console.paging import ASK, Pager, offset_of

router = APIRouter()
DONE = {"replayed": "Replayed: the broker stored the copy.", "purged": "Purged for good."}


@page(router, "/dead-letters")
def dead_letters(call: Call) -> Response:
    subscription_id, offset = call.query("subscription_id"), offset_of(call)
    listed = list_dead_letters(call.request, subscription_id, ASK, offset)
    pager = Pager.of(
        offset, len(listed["dead_letters"]), listed["total"], {"subscription_id": subscription_id or ""}
    )
    return call.render(
        "dead_letters.html",
        listed={**listed, "dead_letters": listed["dead_letters"][: pager.shown]},
        subscription_id=subscription_id or "",
        pager=pager,
        done=DONE.get(call.query("done") or ""),
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
