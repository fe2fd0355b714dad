"""Who is signed in: the API key, kept in an encrypted session cookie, and the CSRF token of the session.

The cookie holds the key itself, encrypted and authenticated with Fernet under
a key derived from ``HOOKLINE_SECRETS_KEY`` (or, without one, a key made at
start-up, so sessions end with the process). Every request checks the key
again through the API's :class:`~workers.api.auth.Authenticator`, so a revoked
key ends its sessions within the API's cache time. The cookie is HttpOnly,
SameSite=Strict, and Secure unless the console is reached on loopback; a
session lasts :data:`SESSION_SECONDS`. Every change is a POST carrying the
session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request, Response

from workers.api.auth import Authenticator
from workers.api.keys import ApiKey
from workers.settings import Settings

COOKIE = "hookline_console"
SESSION_SECONDS = 8 * 3600
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_CONTEXT = b"hookline console session cookie"


@dataclass(frozen=True)
class Viewer:
    """The signed-in key (never the token) and the session's CSRF token."""

    key: ApiKey
    csrf: str

    @property
    def may_change(self) -> bool:
        return not self.key.read_only


class Sessions:
    """Seals an API key and a CSRF token into a cookie value, and opens it again."""

    def __init__(self, settings: Settings) -> None:
        self._fernet = Fernet(_cookie_key(settings))

    def seal(self, token: str) -> str:
        payload = {"token": token, "csrf": secrets.token_urlsafe(32)}
        return self._fernet.encrypt(json.dumps(payload).encode()).decode()

    def open(self, value: str) -> tuple[str, str] | None:
        """The token and CSRF token, or None for a cookie forged, damaged or older than a session."""
        try:
            payload = json.loads(self._fernet.decrypt(value.encode(), ttl=SESSION_SECONDS))
        except (InvalidToken, ValueError):
            return None
        return str(payload["token"]), str(payload["csrf"])


def _cookie_key(settings: Settings) -> bytes:
    """A Fernet key of its own for cookies, so a leaked cookie key reveals no signing secret."""
    if settings.secrets_key:
        root = settings.secrets_key[0].get_secret_value().encode()
    else:
        root = secrets.token_bytes(32)
    return base64.urlsafe_b64encode(hmac.new(root, _CONTEXT, hashlib.sha256).digest())


def sessions_of(request: Request) -> Sessions:
    """The app's :class:`Sessions`, made on first use from the services' settings."""
    state = request.app.state
    if getattr(state, "console_sessions", None) is None:
        state.console_sessions = Sessions(state.services.settings)
    found: Sessions = state.console_sessions
    return found


async def viewer_of(request: Request) -> Viewer | None:
    """Who the request's cookie says is signed in, if the key is still active."""
    value = request.cookies.get(COOKIE)
    opened = sessions_of(request).open(value) if value else None
    if opened is None:
        return None
    authenticator: Authenticator = request.app.state.services.authenticator
    key = await authenticator.authenticate(opened[0])
    return None if key is None else Viewer(key, opened[1])


def csrf_ok(viewer: Viewer, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(viewer.csrf.encode(), sent.encode())


def start(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        sessions_of(request).seal(token),
        max_age=SESSION_SECONDS,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.hostname not in LOOPBACK,
    )


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
