"""Subscriptions: list and search, create (the secret shown once), edit, pause, resume, rotate, test, delete.

Each change calls the ``/v1/subscriptions`` route function that makes it (or,
for creation, the store and the announcement the route uses), so the workers
hear of it as they hear of the API's changes. A create or edit form that fails
its checks is shown again, as typed, with the reasons by the fields
(:mod:`workers.console.subscriptionform`), answered 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any, cast

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from workers.api.routes.subscriptions import (
    MAX_PAGE,
    SecretRotation,
    StateFilter,
    SubscriptionChanges,
    list_,
    rotate_secret,
    update,
)
from workers.api.routes.subscriptions import delete as delete_route
from workers.api.routes.subscriptions import get as get_route
from workers.api.routes.subscriptions import (
    pause as pause_route,
)
from workers.api.routes.subscriptions import (
    resume as resume_route,
)
from workers.api.routes.subscriptions import test as test_route
from workers.console.handling import Call, page
from workers.console.subscriptionform import NOT_SAVED, SubscriptionForm

router = APIRouter()
PAGE = 50
STATES = ("healthy", "failing", "disabled_failing", "disabled_gone", "disabled_manual")
DONE = {
    "paused": "Paused: no deliveries until it is resumed.",
    "resumed": "Resumed: deliveries go out again.",
    "edited": "Saved. The workers were told.",
}
NO_STORE = {"Cache-Control": "no-store"}


@page(router, "/subscriptions")
def subscriptions(call: Call) -> Response:
    return _listing(call)


def _listing(call: Call, form: SubscriptionForm | None = None) -> Response:
    """The list page; with a refused new subscription's ``form``, that form filled in again (422)."""
    state, event_type, text = call.query("state"), call.query("event_type"), call.query("q")
    after = call.query("after")
    found = _matching(call, state if state in STATES else None, event_type, text)
    if after is not None:  # the list is the store's, oldest first: skip up to the last one shown
        for each in found:
            if each["id"] == after:
                break
    shown = list(islice(found, PAGE + 1))  # one more than shown: whether there is a next page
    nxt = shown[PAGE - 1]["id"] if len(shown) > PAGE else None
    search = {"state": state or "", "event_type": event_type or "", "q": text or ""}
    return call.render(
        "subscriptions.html",
        status=200 if form is None else 422,
        subscriptions=shown[:PAGE],
        after=nxt,
        search=search,
        states=STATES,
        form=form,
        not_saved=NOT_SAVED,
    )


def _matching(
    call: Call, state: str | None, event_type: str | None, text: str | None
) -> Iterator[dict[str, Any]]:
    """Every subscription the route lists with these filters, page by page, that holds ``text``."""
    cursor = None
    needle = (text or "").lower()
    while True:
        listed = list_(
            call.request,
            state=cast(StateFilter | None, state),  # one of STATES or None, checked by the page
            event_type=event_type,
            limit=MAX_PAGE,
            cursor=cursor,
        )
        for each in listed["data"]:
            haystack = " ".join([each["id"], each["url"], each["description"], *each["event_patterns"]])
            if needle in haystack.lower():
                yield each
        cursor = listed["next_cursor"]
        if cursor is None:
            return


@page(router, "/subscriptions/new", changes=True)
def create(call: Call) -> Response:
    form = SubscriptionForm.read(call.form)
    if not form.ok:
        return _listing(call, form)
    services = call.request.app.state.services
    added = services.subscriptions.add(
        form.values["url"], form.patterns, description=form.values["description"]
    )
    services.announce_change()
    shown = get_route(added.id, call.request)
    return call.render("secret.html", headers=NO_STORE, subscription=shown, secret=added.secret, created=True)


@page(router, "/subscriptions/{subscription_id}")
def subscription(call: Call) -> Response:
    shown = get_route(call.path("subscription_id"), call.request)
    return call.render("subscription.html", subscription=shown, done=DONE.get(call.query("done") or ""))


@page(router, "/subscriptions/{subscription_id}/edit", changes=True)
def edit(call: Call) -> Response:
    subscription_id = call.path("subscription_id")
    form = SubscriptionForm.read(call.form)
    if form.ok:
        changes = SubscriptionChanges(
            url=form.values["url"], event_patterns=form.patterns, description=form.values["description"]
        )
        try:
            update(subscription_id, changes, call.request)
        except RequestValidationError as exc:  # the route's own checks, should they ever differ
            form = form.refused(exc)
        else:
            return call.redirect(f"/subscriptions/{subscription_id}?done=edited")
    shown = get_route(subscription_id, call.request)
    return call.render(
        "subscription.html", 422, subscription=shown, form=form, not_saved=NOT_SAVED, done=None
    )


@page(router, "/subscriptions/{subscription_id}/pause", changes=True)
def pause(call: Call) -> Response:
    pause_route(call.path("subscription_id"), call.request)
    return call.redirect(f"/subscriptions/{call.path('subscription_id')}?done=paused")


@page(router, "/subscriptions/{subscription_id}/resume", changes=True)
def resume(call: Call) -> Response:
    resume_route(call.path("subscription_id"), call.request)
    return call.redirect(f"/subscriptions/{call.path('subscription_id')}?done=resumed")


@page(router, "/subscriptions/{subscription_id}/rotate-secret", changes=True)
def rotate(call: Call) -> Response:
    rotated = rotate_secret(call.path("subscription_id"), call.request, SecretRotation())
    secret = rotated.pop("secret")
    return call.render("secret.html", headers=NO_STORE, subscription=rotated, secret=secret, created=False)


@page(router, "/subscriptions/{subscription_id}/test", changes=True)
def send_test(call: Call) -> Response:
    subscription_id = call.path("subscription_id")
    result = test_route(subscription_id, call.request)
    shown = get_route(subscription_id, call.request)
    return call.render("subscription.html", subscription=shown, test=result, done=None)


@page(router, "/subscriptions/{subscription_id}/delete", changes=True)
def delete(call: Call) -> Response:
    delete_route(call.path("subscription_id"), call.request)
    return call.redirect("/subscriptions")
