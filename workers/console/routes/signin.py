"""Sign in with an API key (it becomes the session cookie) and sign out.

The sign-in form is protected like every other: its page sets a random
token in a SameSite=Strict cookie and in the form, and a sign-in whose two
differ is refused, so another site cannot sign a browser in with its key.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from workers.api.auth import Authenticator
from workers.console.handling import read_form
from workers.console.render import page
from workers.console.session import LOOPBACK, csrf_ok, end, start, viewer_of
from workers.observability.logs import get_logger

router = APIRouter()
log = get_logger(component="console")
FORM_COOKIE = "hookline_console_sign_in"


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _form(request, 200)


def _form(request: Request, status: int, *, refused: bool = False, stale: bool = False) -> Response:
    """The sign-in page with a fresh form token, in the form and in its cookie."""
    token = secrets.token_urlsafe(32)
    answer = page(request, "signin.html", status, viewer=None, refused=refused, stale=stale, form_token=token)
    answer.set_cookie(
        FORM_COOKIE,
        token,
        max_age=3600,
        path="/console/sign-in",
        httponly=True,
        samesite="strict",
        secure=request.url.hostname not in LOOPBACK,
    )
    return answer


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("key", "").strip()
    sent, expected = form.get("form_token", ""), request.cookies.get(FORM_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("console_sign_in_refused", reason="form_token")
        return _form(request, 403, stale=True)
    authenticator: Authenticator = request.app.state.services.authenticator
    key = await authenticator.authenticate(token) if token else None
    if key is None:
        client = request.client.host if request.client else None
        log.warning("console_sign_in_refused", reason="unknown_or_revoked", client=client)
        return _form(request, 401, refused=True)
    response = RedirectResponse("/console/", status_code=303)
    start(request, response, token)
    log.info("console_signed_in", key_id=key.id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    viewer = await viewer_of(request)
    form = await read_form(request)
    if viewer is not None and not csrf_ok(viewer, form.get("csrf")):
        return page(request, "error.html", 403, viewer=viewer, title="Refused", detail="Stale form: reload.")
    response = RedirectResponse("/console/sign-in", status_code=303)
    end(response)
    return response
