"""Deliveries: search the delivery log, an event with its attempts, replay one delivery or a time range.

Read through the ``/v1`` route functions (``history``), replayed through
``replays``: a range replay first shows how many deliveries it would send,
then runs as the API's replay job, whose page follows its progress.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from workers.api.replayjobs import ReplayRequest
from workers.api.routes.history import StateName, get_delivery, get_event, list_deliveries
from workers.api.routes.replays import check_enabled
from workers.api.routes.replays import replay_delivery as replay_route
from workers.console.handling import Call, page
from workers.ops import replay as operations

router = APIRouter()
PAGE = 50
STATES = ("pending", "delivered", "retrying", "dead_lettered", "skipped")
SELECTIONS = ("failed", "dead", "skipped", "all")
FILTERS = ("subscription_id", "event_type", "state", "since", "until")


@page(router, "/deliveries")
def deliveries(call: Call) -> Response:
    event_id = call.query("event_id")
    if event_id is not None:
        return call.redirect(f"/events/{quote(event_id.strip(), safe='')}")
    search = {name: call.query(name) or "" for name in FILTERS}
    state = cast(StateName, search["state"]) if search["state"] in STATES else None
    listed = list_deliveries(
        call.request,
        subscription_id=search["subscription_id"] or None,
        event_type=search["event_type"] or None,
        state=state,
        since=_moment(search["since"], "since"),
        until=_moment(search["until"], "until"),
        limit=PAGE,
        cursor=call.query("cursor"),
    )
    if not isinstance(listed, dict):
        raise RequestValidationError([{"loc": ("query", "cursor"), "msg": "not a cursor this console gave"}])
    more = None
    if listed["next_cursor"]:
        more = urlencode({**{k: v for k, v in search.items() if v}, "cursor": listed["next_cursor"]})
    return call.render(
        "deliveries.html", deliveries=listed["deliveries"], search=search, states=STATES, more=more
    )


@page(router, "/events/{event_id:path}")
def event(call: Call) -> Response:
    found = get_event(call.path("event_id"), call.request)
    replayed = call.query("replayed")
    return call.render("event.html", event=found["event"], deliveries=found["deliveries"], replayed=replayed)


@page(router, "/deliveries/{delivery_id}/replay", changes=True)
def replay_delivery(call: Call) -> Response:
    delivery = get_delivery(call.path("delivery_id"), call.request)
    replay_route(call.path("delivery_id"), call.request)
    return call.redirect(f"/events/{quote(delivery['event_id'], safe='')}?replayed={delivery['id']}")


@page(router, "/replays/new")
def confirm_range(call: Call) -> Response:
    asked = _range(call.query)
    services = call.request.app.state.services
    plan = operations.plan(
        services.subscriptions,
        services.migrated_log(),
        asked.subscription_id,
        since=asked.since,
        until=asked.until,
        selection=asked.selection,
    )
    return call.render("replay_confirm.html", asked=asked, count=len(plan.sendable), plan=plan)


@page(router, "/replays", changes=True)
def start_range(call: Call) -> Response:
    asked = _range(call.form.get)
    services = call.request.app.state.services
    services.migrated_log()
    check_enabled(services, asked.subscription_id)  # the route's own check, not a copy
    job = services.replays.start(asked)
    return call.redirect(f"/replays/{job['id']}")


@page(router, "/replays/{job_id}")
def job(call: Call) -> Response:
    found: dict[str, Any] = call.request.app.state.services.replays.get(call.path("job_id"))
    return call.render("replay_job.html", job=found)


def _range(read: Any) -> ReplayRequest:
    """The replay a form or query asks for; 422 for what is missing or not valid."""
    subscription_id = (read("subscription_id") or "").strip()
    since = _moment(read("since") or "", "since")
    until = _moment(read("until") or "", "until")
    selection = read("state") or "failed"
    if not subscription_id or since is None or selection not in SELECTIONS:
        message = "a subscription, a start time and a state (failed, dead, skipped or all) are needed"
        raise RequestValidationError([{"loc": ("query", "since"), "msg": message}])
    return ReplayRequest(subscription_id, since, until, selection, dry_run=False)


def _moment(text: str, name: str) -> datetime | None:
    """A time typed in a form (``2026-01-02T03:04``, ISO 8601), taken as UTC unless it says otherwise."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        message = f"{name}: not a time (YYYY-MM-DDTHH:MM, UTC)"
        raise RequestValidationError([{"loc": ("query", name), "msg": message}]) from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
