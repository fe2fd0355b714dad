"""The API's OpenAPI document, as the app serves it at ``/v1/openapi.json`` and docs/openapi.json commits it.

Errors are documented as ``application/problem+json`` (FastAPI would say
``application/json``): that is what :mod:`workers.api.problems` answers.

    .venv/bin/python -m workers.api.openapi > docs/openapi.json

rewrites the committed copy; ``tests/unit/test_api_openapi.py`` fails while it
differs from what the app serves.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from workers.api import problems

DESCRIPTION = (
    "hookline's REST API: subscriptions, publishing, the delivery log, replays, dead letters, "
    "invalid events and crashed messages, and status. Every path but `/healthz` and "
    "`/readyz` needs an API key (`hookline api-keys create`) as `Authorization: Bearer hk_…`; "
    "errors are RFC 9457 problem details. See docs/api.md."
)


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once and kept on the app."""
    if app.openapi_schema is None:
        built = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        _errors_as_problems(built)
        app.openapi_schema = built
    return app.openapi_schema


def _errors_as_problems(built: dict[str, Any]) -> None:
    for operations in built.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if _is_problem(content):
                    content[problems.MEDIA_TYPE] = content.pop("application/json")


def _is_problem(content: dict[str, Any]) -> bool:
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/Problem"))


def render(app: FastAPI) -> str:
    return json.dumps(document(app), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    from producer.settings import load  # noqa: PLC0415 - only the command reads the environment
    from workers.api.app import create_app  # noqa: PLC0415 - the app imports this module
    from workers.settings import Settings  # noqa: PLC0415 - as above

    sys.stdout.write(render(create_app(load(Settings))))


if __name__ == "__main__":
    main()
