"""API keys: `hookline api-keys` makes and revokes them; no route of `hookline api` answers without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support.api import Api, isolated_env, running_api
from support.processes import run_hookline, run_json, wait_until

from workers.api.auth import CACHE_SECONDS
from workers.subscriptions import db

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PROBES = {"/healthz", "/readyz"}
UNKNOWN_KEY = "hk_" + "A" * 43


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, "sqlite") as env, running_api(env, directory / "api.log") as server:
        yield server


def operations() -> list[tuple[str, str]]:
    """Every (method, path) of the committed OpenAPI document, with a made-up id in the path."""
    paths = json.loads(OPENAPI.read_text())["paths"]
    return [
        (method.upper(), path.replace("{subscription_id}", "sub_aaaaaaaaaaaaaaaaaaaa"))
        for path, methods in paths.items()
        for method in methods
    ]


def test_the_document_lists_routes_other_than_the_probes() -> None:
    assert {path for _, path in operations()} - PROBES


@pytest.mark.parametrize("key", [None, UNKNOWN_KEY, "not-even-shaped-like-a-key"])
def test_no_route_but_the_probes_answers_without_a_valid_key(api: Api, key: str | None) -> None:
    for method, path in operations():
        response = api.call(method, path, key=key, json={})
        if path in PROBES:
            assert response.status_code in (200, 503), path
            continue
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "urn:hookline:problem:unauthorized"


def test_the_openapi_document_is_served_with_a_key_only(api: Api) -> None:
    assert api.call("GET", "/v1/openapi.json", key=None).status_code == 401
    assert api.call("GET", "/v1/openapi.json").json() == json.loads(OPENAPI.read_text())


def test_a_read_only_key_reads_but_changes_nothing(api: Api) -> None:
    assert api.call("GET", "/v1/subscriptions", key=api.read_only_key).status_code == 200
    for method, path in operations():
        if method in ("GET", "HEAD") or path in PROBES:
            continue
        response = api.call(method, path, key=api.read_only_key, json={})
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert response.json()["type"] == "urn:hookline:problem:read-only-key"


def test_refused_requests_are_logged_with_why_and_never_with_the_key(api: Api) -> None:
    api.call("GET", "/v1/status", key=UNKNOWN_KEY)
    api.call("POST", "/v1/subscriptions", key=api.read_only_key, json={})

    wait_until(lambda: "read_only" in api.log.read_text(), timeout=10, what="the refusal logged")
    log = api.log.read_text()
    refusals = [json.loads(line) for line in log.splitlines() if '"api_request_refused"' in line]
    assert {"unknown_or_revoked", "read_only"} <= {refusal["reason"] for refusal in refusals}
    for secret in (UNKNOWN_KEY, api.read_only_key, api.key, UNKNOWN_KEY[3:20], api.read_only_key[3:20]):
        assert secret not in log


def test_a_revoked_key_is_refused_within_seconds(api: Api) -> None:
    created = run_json(api.env, "api-keys", "create", "--name", "soon revoked")
    assert api.call("GET", "/v1/status", key=created["key"]).status_code == 200

    run_hookline(api.env, "api-keys", "revoke", created["id"])

    wait_until(
        lambda: api.call("GET", "/v1/status", key=created["key"]).status_code == 401,
        timeout=CACHE_SECONDS + 5,
        what="the revoked key refused",
    )


def test_keys_are_listed_without_the_keys_themselves_and_show_when_they_were_used(api: Api) -> None:
    created = run_json(api.env, "api-keys", "create", "--name", "listed", "--read-only")
    api.call("GET", "/v1/status", key=created["key"])

    def listed() -> dict[str, Any]:
        keys = run_json(api.env, "api-keys", "list")
        return next(key for key in keys if key["id"] == created["id"])

    wait_until(lambda: listed()["last_used_at"] is not None, timeout=10, what="last_used_at written")
    shown = listed()
    assert (shown["name"], shown["read_only"], shown["prefix"]) == ("listed", True, created["key"][:11])
    assert "key" not in shown
    assert created["key"] not in run_hookline(api.env, "api-keys", "list").stdout


def test_the_database_holds_a_hash_of_each_key_never_the_key(api: Api) -> None:
    created = run_json(api.env, "api-keys", "create", "--name", "hashed")
    engine = db.create_engine(api.env["HOOKLINE_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM api_keys")).mappings().all()
    finally:
        engine.dispose()

    stored = " ".join(str(value) for row in rows for value in row.values())
    assert created["key"] not in stored
    assert created["key"][11:] not in stored


def test_revoking_an_unknown_key_says_so_and_fails(api: Api) -> None:
    result = run_hookline(api.env, "api-keys", "revoke", "key_unknown", check=False)

    assert result.returncode == 1
    assert "no API key with id 'key_unknown'" in result.stderr


def test_a_key_created_for_nothing_is_refused_at_once(api: Api) -> None:
    result = run_hookline(api.env, "api-keys", "create", "--name", " ", check=False)

    assert result.returncode == 1
    assert "name must be 1 to 100 printable characters" in result.stderr
