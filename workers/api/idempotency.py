"""``Idempotency-Key``: a create or a publish sent again under the same key is answered again, not done twice.

The first request with a key claims it (a row keyed by the API key and the
``Idempotency-Key``, holding a hash of the method, path and body); once it has
succeeded, its answer is stored there, and every later request with the same
key and the same request gets that answer again, marked ``Idempotent-Replayed:
true``. The same key with another request is refused (422); while the first
request still runs, a second one is refused (409) and may be retried. A request
that failed releases its key, so a retry is attempted afresh.

Answers are kept for ``HOOKLINE_API_IDEMPOTENCY_RETENTION``. A created
subscription's answer holds its signing secret, so stored answers are encrypted
with ``HOOKLINE_SECRETS_KEY`` as the secrets themselves are. A claim whose
request died without an answer (its process killed) is taken over after
:data:`LEASE`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from workers.api.keys import ApiKey
from workers.api.tables import idempotency_table, transaction
from workers.errors import HooklineError, IdempotencyKeyInUse, IdempotencyKeyReused
from workers.observability.logs import get_logger
from workers.subscriptions.secretbox import SecretBox

log = get_logger(component="api_idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as an event id
LEASE = timedelta(seconds=60)  # longer than any request runs: a publish waits 35 s at most
_SEALED, _PLAIN = "fernet:", "plain:"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a request answered, as it can be stored and given again."""

    status: int
    body: Any
    location: str | None = None

    def response(self, *, replayed: bool = False) -> JSONResponse:
        headers = {} if self.location is None else {"Location": self.location}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IdempotencyStore:
    """Claimed keys and stored answers in the database; failures surface as StoreError."""

    def __init__(
        self,
        engine: Engine,
        box: SecretBox,
        *,
        retention: timedelta,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._engine = engine
        self._box = box
        self._retention = retention
        self._clock = clock

    def claim(self, api_key_id: str, key: str, fingerprint: str) -> Answer | None:
        """None if this request may go ahead; the stored answer if it was answered already."""
        for _ in range(3):  # a row that expires or is purged between two statements: look again
            if self._insert(api_key_id, key, fingerprint):
                return None
            row = self._read(api_key_id, key)
            if row is None:
                continue
            now = self._now()
            if row["created_at"] < now - self._retention:
                self._delete(api_key_id, key, row["created_at"])
                continue
            if row["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused(f"{HEADER} {key!r} was sent before with another request")
            if row["status_code"] is not None:
                return self._answer(row)
            if row["created_at"] < now - LEASE and self._delete(api_key_id, key, row["created_at"]):
                continue  # its request died unanswered: claim it afresh
            raise IdempotencyKeyInUse(f"the first request with {HEADER} {key!r} is still running")
        raise IdempotencyKeyInUse(f"{HEADER} {key!r} is changing hands: retry")

    def finish(self, api_key_id: str, key: str, answer: Answer) -> None:
        body = json.dumps(answer.body, separators=(",", ":"))
        stored = _SEALED + self._box.seal(body) if self._box.encrypts else _PLAIN + body
        statement = (
            sa.update(idempotency_table)
            .where(*_row(api_key_id, key))
            .values(status_code=answer.status, body=stored, location=answer.location)
        )
        with transaction(self._engine) as connection:
            connection.execute(statement)

    def release(self, api_key_id: str, key: str) -> None:
        """Forget an unanswered claim, so that a retry is attempted afresh."""
        statement = sa.delete(idempotency_table).where(
            *_row(api_key_id, key), idempotency_table.c.status_code.is_(None)
        )
        with transaction(self._engine) as connection:
            connection.execute(statement)

    def purge(self) -> int:
        """Delete what is past its retention; how many rows."""
        cutoff = self._now() - self._retention
        statement = sa.delete(idempotency_table).where(idempotency_table.c.created_at < cutoff)
        with transaction(self._engine) as connection:
            return int(connection.execute(statement).rowcount)

    def _insert(self, api_key_id: str, key: str, fingerprint: str) -> bool:
        values = {
            "api_key_id": api_key_id,
            "idempotency_key": key,
            "fingerprint": fingerprint,
            "created_at": self._now(),
        }
        try:
            with transaction(self._engine) as connection:
                connection.execute(sa.insert(idempotency_table).values(**values))
        except sa.exc.IntegrityError:
            return False
        return True

    def _read(self, api_key_id: str, key: str) -> sa.RowMapping | None:
        with transaction(self._engine) as connection:
            query = sa.select(idempotency_table).where(*_row(api_key_id, key))
            return connection.execute(query).mappings().first()

    def _delete(self, api_key_id: str, key: str, created_at: datetime) -> bool:
        table = idempotency_table
        statement = sa.delete(table).where(*_row(api_key_id, key), table.c.created_at == created_at)
        with transaction(self._engine) as connection:
            return bool(connection.execute(statement).rowcount)

    def _answer(self, row: sa.RowMapping) -> Answer:
        stored: str = row["body"]
        if stored.startswith(_SEALED):
            owner = f"the answer stored under {HEADER} {row['idempotency_key']!r}"
            body = self._box.open(stored.removeprefix(_SEALED), owner=owner)
        else:
            body = stored.removeprefix(_PLAIN)
        return Answer(status=row["status_code"], body=json.loads(body), location=row["location"])

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)


def _row(api_key_id: str, key: str) -> tuple[sa.ColumnElement[bool], ...]:
    table = idempotency_table
    return (table.c.api_key_id == api_key_id, table.c.idempotency_key == key)


async def answer_once(
    request: Request, api_key: ApiKey, store: IdempotencyStore, run: Callable[[], Awaitable[Answer]]
) -> JSONResponse:
    """``run``'s answer; under an ``Idempotency-Key``, one run per key, its answer given again later."""
    key = request.headers.get(HEADER)
    if key is None:
        return (await run()).response()
    if not KEY_PATTERN.fullmatch(key):
        message = "must be 1 to 255 visible ASCII characters, without spaces"
        raise RequestValidationError([{"loc": ("header", HEADER), "msg": message, "type": "value_error"}])
    fingerprint = await _fingerprint(request)
    stored = await run_in_threadpool(store.claim, api_key.id, key, fingerprint)
    if stored is not None:
        return stored.response(replayed=True)
    try:
        answer = await run()
    except BaseException:
        await run_in_threadpool(store.release, api_key.id, key)
        raise
    try:
        await run_in_threadpool(store.finish, api_key.id, key, answer)
    except HooklineError as exc:
        # Done, but not remembered: the client gets its answer, and a retry after LEASE does it again.
        log.warning("idempotent_answer_not_stored", key_id=api_key.id, error=str(exc))
    return answer.response()


async def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), request.url.query.encode()):
        digest.update(part + b"\0")
    digest.update(await request.body())
    return digest.hexdigest()
