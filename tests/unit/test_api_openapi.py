"""The committed docs/openapi.json is the document the app serves, and it documents errors as problems."""

from __future__ import annotations

import json
from pathlib import Path

from workers.api import openapi
from workers.api.app import create_app
from workers.api.routes.events import field_errors
from workers.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = ".venv/bin/python -m workers.api.openapi > docs/openapi.json"


def test_the_committed_openapi_document_is_what_the_app_serves() -> None:
    served = openapi.render(create_app(Settings()))

    assert COMMITTED.read_text() == served, f"docs/openapi.json is out of date: run `{REGENERATE}`"


def test_every_operation_but_the_probes_needs_the_bearer_key_and_answers_errors_as_problems() -> None:
    document = json.loads(COMMITTED.read_text())
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path in ("/healthz", "/readyz"):
                assert "security" not in operation, path
                continue
            assert operation["security"] == [{"apiKey": []}], f"{method} {path}"
            assert "401" in operation["responses"], f"{method} {path}"
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        f"{method} {path} {status}"
                    )


def test_publishing_takes_the_wire_contract_s_own_schema() -> None:
    document = json.loads(COMMITTED.read_text())
    contract = json.loads((COMMITTED.parents[1] / "producer" / "event.schema.json").read_text())

    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body == {key: value for key, value in contract.items() if key not in ("$schema", "$id")}


def test_each_field_an_event_breaks_is_named_alone() -> None:
    body = b'{"id": "a b", "type": "ok.type", "timestamp": "yesterday", "data": []}'

    assert [(error.pointer, error.detail.split(" ")[0]) for error in field_errors(body)] == [
        ("#/id", "'id'"),
        ("#/timestamp", "'timestamp'"),
        ("#/data", "'data'"),
    ]


def test_a_body_that_is_no_json_object_names_no_field() -> None:
    assert field_errors(b"[1, 2]") == []
    assert field_errors(b"{not json") == []
