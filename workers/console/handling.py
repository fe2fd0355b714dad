"""How a console page is served: signed in or sent to sign in, changes checked, errors shown as pages.

A page is a plain function of a :class:`Call`, registered with :func:`page`;
it runs on the thread pool, as the ``/v1`` routes it calls expect. A page that
changes something is a POST: it is refused (403 page) without the session's
CSRF token or for a read-only key, before the function runs. An error the API
would answer as a problem is shown as an error page with the same status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from workers.api import problems
from workers.console.render import page as render
from workers.console.session import Viewer, csrf_ok, viewer_of
from workers.errors import HooklineError
from workers.observability.logs import get_logger

log = get_logger(component="console")
MAX_FORM_BYTES = 64 * 1024


@dataclass
class Call:
    """A request to a page: who asks, the query and the form, and how to answer with a template."""

    request: Request
    viewer: Viewer
    form: dict[str, str] = field(default_factory=dict)

    def query(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        return value if value else None

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def render(
        self, template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        response = render(self.request, template, status, viewer=self.viewer, **context)
        response.headers.update(headers or {})
        return response

    def redirect(self, to: str) -> Response:
        return RedirectResponse(f"/console{to}", status_code=303)


Page = Callable[[Call], Response]


def page(router: APIRouter, path: str, *, changes: bool = False) -> Callable[[Page], Page]:
    """Register ``function`` as the GET (or, if it ``changes`` something, the POST) of ``path``."""

    def register(function: Page) -> Page:
        async def endpoint(request: Request) -> Response:
            try:
                viewer = await viewer_of(request)
            except HooklineError as exc:  # the key store's database is down: say so, as a page
                return _failed(request, None, exc)
            if viewer is None:
                return RedirectResponse("/console/sign-in", status_code=303)
            form = await read_form(request) if changes else {}
            refused = _refusal(viewer, form) if changes else None
            if refused is not None:
                log.warning(
                    "console_change_refused", reason=refused, path=request.url.path, key_id=viewer.key.id
                )
                return render(request, "error.html", 403, viewer=viewer, title="Refused", detail=refused)
            return await run_in_threadpool(_answer, function, Call(request, viewer, form))

        endpoint.__name__ = function.__name__
        router.add_api_route(path, endpoint, methods=["POST" if changes else "GET"])
        return function

    return register


def _refusal(viewer: Viewer, form: dict[str, str]) -> str | None:
    if not csrf_ok(viewer, form.get("csrf")):
        return "This form is stale or did not come from the console: reload the page and try again."
    if not viewer.may_change:
        return f"API key {viewer.key.name} is read-only: it may look, not change anything."
    return None


def _answer(function: Page, call: Call) -> Response:
    try:
        return function(call)
    except RequestValidationError as exc:
        detail = "; ".join(str(error.get("msg", "invalid")) for error in exc.errors())
        return call.render("error.html", 422, title="Not valid", detail=detail)
    except HooklineError as exc:
        return _failed(call.request, call.viewer, exc)


def _failed(request: Request, viewer: Viewer | None, exc: HooklineError) -> Response:
    """The error page for what the API would answer as a problem, with its status and title."""
    kind = problems.kind_of(exc)
    if kind is None:
        raise exc
    return render(request, "error.html", kind.status, viewer=viewer, title=kind.title, detail=str(exc))


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form (the only kind the console sends), its last value for each name."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
