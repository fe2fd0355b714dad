"""``/v1/openapi.json``: the API's own OpenAPI document, for clients that generate code from it.

Behind an API key like every other ``/v1`` path; the same document is
committed as docs/openapi.json (``python -m workers.api.openapi`` writes it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from workers.api.auth import api_key

router = APIRouter(prefix="/v1", dependencies=[Depends(api_key)])


@router.get("/openapi.json", include_in_schema=False)
async def openapi_document(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.openapi()
    return document
