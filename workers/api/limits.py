"""What a request body must be: at most ``HOOKLINE_API_MAX_BODY_BYTES``, and JSON where the route takes one.

A ``Content-Length`` over the limit is answered 413 at once, and the body is
never read; a chunked body is counted as it arrives, and reading stops with
:class:`~workers.errors.RequestTooLarge` (413) at the first byte past the limit.
A route that takes a JSON body depends on :func:`json_body`: any other media
type is refused (415) instead of being parsed as something it is not.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.api import problems
from workers.errors import RequestTooLarge, UnsupportedMediaType

JSON = "application/json"


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = problems.respond(problems.TOO_LARGE, self._too_large(declared))
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self._too_large(received))
            return message

        return receive_counted

    def _too_large(self, size: int) -> str:
        return f"the body is {size} bytes or more; this API reads at most {self.max_bytes}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


async def json_body(request: Request) -> None:
    """Refuse a body of any media type but JSON (a request without a body passes)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == JSON or media_type.endswith("+json"):
        return
    if not media_type and not await request.body():
        return
    raise UnsupportedMediaType(f"send the body as {JSON}, not {media_type or 'without a Content-Type'}")
