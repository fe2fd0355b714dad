"""Sign in with an API key (it becomes the session cookie) and sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from workers.api.auth import Authenticator
from workers.console.handling import read_form
from workers.console.render import page
from workers.console.session import csrf_ok, end, start, viewer_of
from workers.observability.logs import get_logger

router = APIRouter()
log = get_logger(component="console")


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return page(request, "signin.html", viewer=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    token = (await read_form(request)).get("key", "").strip()
    authenticator: Authenticator = request.app.state.services.authenticator
    key = await authenticator.authenticate(token) if token else None
    if key is None:
        client = request.client.host if request.client else None
        log.warning("console_sign_in_refused", client=client)
        return page(request, "signin.html", 401, viewer=None, refused=True)
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
