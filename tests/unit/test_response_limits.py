"""Response bodies: at most HOOKLINE_MAX_RESPONSE_BYTES are kept, and reading them keeps the deadline."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from support.settings import one_line_error
from werkzeug import Request, Response

from producer.settings import load
from workers.errors import DeliveryTimeout
from workers.outbound import http
from workers.outbound.http import DeliveryClient
from workers.settings import Settings


def _client(max_response_bytes: int) -> DeliveryClient:
    settings = Settings(allow_private_networks=True, max_response_bytes=max_response_bytes)
    return http.build_client(settings, resolver=lambda _host, _port: ["127.0.0.1"])


def _post(client: DeliveryClient, httpserver: HTTPServer, timeout: float = 5.0) -> http.Response:
    url = f"http://hooks.test:{httpserver.port}/in"
    return http.post(client, url, headers={}, body=b"{}", timeout=timeout)


def _endless(_: Request) -> Response:
    return Response(itertools.repeat(b"x" * 65536), status=200)


def _trickling(_: Request) -> Response:
    def drip() -> Iterator[bytes]:
        while True:
            time.sleep(0.05)
            yield b"."

    return Response(drip(), status=200)


def test_only_the_configured_number_of_bytes_of_an_endless_body_is_read(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_handler(_endless)
    started = time.monotonic()
    with _client(1000) as client:
        response = _post(client, httpserver)
    assert (response.status, response.body) == (200, b"x" * 1000)
    assert time.monotonic() - started < 3


def test_a_body_shorter_than_the_limit_is_kept_whole(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_data("accepted", status=202)
    with _client(4096) as client:
        assert _post(client, httpserver).body == b"accepted"


def test_a_limit_of_zero_keeps_no_body_and_still_reports_the_status(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_handler(_endless)
    with _client(0) as client:
        response = _post(client, httpserver)
    assert (response.status, response.body) == (200, b"")


def test_a_body_that_trickles_in_forever_is_cut_off_at_the_deadline(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_handler(_trickling)
    started = time.monotonic()
    with _client(1024 * 1024) as client, pytest.raises(DeliveryTimeout):
        _post(client, httpserver, timeout=0.5)
    assert time.monotonic() - started < 2


def test_the_limit_defaults_to_4096_bytes(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_handler(_endless)
    settings = load(Settings)
    with http.build_client(
        settings.model_copy(update={"allow_private_networks": True}), resolver=lambda _h, _p: ["127.0.0.1"]
    ) as client:
        assert len(_post(client, httpserver).body) == 4096
    assert settings.max_response_bytes == 4096


@pytest.mark.parametrize("value", ["-1", "1048577", "lots"])
def test_a_limit_outside_0_to_1_mib_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_MAX_RESPONSE_BYTES", value)
    assert message.startswith("invalid setting HOOKLINE_MAX_RESPONSE_BYTES:")
