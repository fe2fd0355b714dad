"""Who is asking: the API key every request but the probes carries, and whether it may change anything.

Each router depends on :func:`api_key`, so no route of ``/v1`` answers without
``Authorization: Bearer <key>``; a read-only key is refused (403) on any method
but GET and HEAD, so a route cannot forget to check. A refused request is
logged with why, the path and the client's address, never with the key or any
part of it.

A key that was accepted is remembered for :data:`CACHE_SECONDS`, so a busy
client costs one query every few seconds, not one per request; a revoked key is
therefore refused within that long by every API process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from workers.api.keys import TOUCH_INTERVAL, ApiKey, ApiKeyStore, hash_token
from workers.errors import HooklineError, NotAuthenticated, ReadOnlyKey
from workers.observability.logs import get_logger

log = get_logger(component="api_auth")

CACHE_SECONDS = 5.0
CACHE_MAX_KEYS = 10_000  # distinct keys remembered at once; past it the memo starts afresh
READ_METHODS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key made with `hookline api-keys create`, sent as `Authorization: Bearer hk_…`.",
)


class Authenticator:
    """Checks bearer tokens against the key store, remembering accepted ones for a few seconds."""

    def __init__(
        self,
        keys: ApiKeyStore,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._accepted: dict[str, tuple[ApiKey, float]] = {}  # token hash -> (key, until)
        self._touched: dict[str, float] = {}  # key id -> when its use was last written

    async def authenticate(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None."""
        digest, now = hash_token(token), self._clock()
        remembered = self._accepted.get(digest)
        if remembered is not None and remembered[1] > now:
            key = remembered[0]
        else:
            found = await run_in_threadpool(self._keys.verify, token)
            if found is None:
                self._accepted.pop(digest, None)
                return None
            if len(self._accepted) >= CACHE_MAX_KEYS:
                self._accepted.clear()
            key = found
            self._accepted[digest] = (key, now + self._cache_seconds)
        self._note_use(key, now)
        return key

    def _note_use(self, key: ApiKey, now: float) -> None:
        """Write ``last_used_at`` at most once a minute per key, off the request's path."""
        if now - self._touched.get(key.id, -float("inf")) < TOUCH_INTERVAL.total_seconds():
            return
        self._touched[key.id] = now
        asyncio.get_running_loop().run_in_executor(None, self._touch, key.id)

    def _touch(self, key_id: str) -> None:
        try:
            self._keys.touch(key_id)
        except HooklineError as exc:  # bookkeeping only: the request was answered anyway
            log.warning("api_key_use_not_recorded", key_id=key_id, error=str(exc))


async def api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    """The request's key; 401 without a valid one, 403 for a read-only key on a method that changes things."""
    authenticator: Authenticator = request.app.state.services.authenticator
    if credentials is None:
        _refuse(request, "no_key")
        raise NotAuthenticated("send an API key as `Authorization: Bearer hk_…`")
    key = await authenticator.authenticate(credentials.credentials)
    if key is None:
        _refuse(request, "unknown_or_revoked")
        raise NotAuthenticated("the API key is unknown or revoked")
    if key.read_only and request.method not in READ_METHODS:
        _refuse(request, "read_only", key_id=key.id)
        raise ReadOnlyKey(f"API key {key.id} is read-only: it cannot {request.method} here")
    return key


def _refuse(request: Request, reason: str, *, key_id: str | None = None) -> None:
    client = request.client.host if request.client else None
    log.warning(
        "api_request_refused",
        reason=reason,
        method=request.method,
        path=request.url.path,
        client=client,
        key_id=key_id,
    )
