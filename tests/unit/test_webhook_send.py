"""One delivery attempt against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from support.receiver import silent_server
from werkzeug import Request, Response

from producer.event import Event
from workers.errors import (
    ConnectFailure,
    DeliveryTimeout,
    DnsFailure,
    EndpointGone,
    PermanentDeliveryFailure,
    RedirectNotFollowed,
    RetryableDeliveryFailure,
    RetryableHttpStatus,
)
from workers.outbound import http
from workers.outbound.http import DeliveryClient
from workers.outbound.signing import generate_secret, secret_key
from workers.outbound.webhook import send
from workers.pipeline.delivery import Delivery, webhook_payload
from workers.settings import Settings

SECRET = generate_secret()


@pytest.fixture
def client() -> Iterator[DeliveryClient]:
    # The receivers are on loopback, which the SSRF guard refuses unless told otherwise.
    settings = Settings(http_timeout=1.0, http_connect_timeout=0.5, allow_private_networks=True)
    with http.build_client(settings) as client:
        yield client


@pytest.fixture
def delivery() -> Delivery:
    event = Event.create("order.created", {"order": 42, "note": "café"})
    return Delivery.for_event(event, "sub_test", webhook_payload(event))


def _attempt(client: DeliveryClient, url: str, delivery: Delivery, timeout: float = 1.0) -> http.Response:
    return send(client, url, [secret_key(SECRET)], delivery.event_id, delivery.payload, timeout=timeout)


def test_a_delivery_is_a_signed_post_of_type_timestamp_and_data(
    httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery
) -> None:
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    response = _attempt(client, httpserver.url_for("/hook"), delivery)
    request, _ = httpserver.log[0]
    headers = dict(request.headers)
    assert response.status == 200
    assert Webhook(SECRET).verify(request.get_data(), headers) == json.loads(request.get_data())
    assert json.loads(request.get_data()) == {
        "type": "order.created",
        "timestamp": delivery.event_timestamp,
        "data": {"order": 42, "note": "café"},
    }
    assert request.headers["webhook-id"] == delivery.event_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("hookline/")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5


def test_any_2xx_is_success(httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery) -> None:
    httpserver.expect_oneshot_request("/hook").respond_with_data("", status=204)
    assert _attempt(client, httpserver.url_for("/hook"), delivery).status == 204


@pytest.mark.parametrize("status", [500, 503, 429, 408, 404, 400])
def test_errors_other_than_410_are_retryable(
    httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery, status: int
) -> None:
    httpserver.expect_oneshot_request("/hook").respond_with_data("nope", status=status)
    with pytest.raises(RetryableHttpStatus) as caught:
        _attempt(client, httpserver.url_for("/hook"), delivery)
    assert (caught.value.status, caught.value.reason) == (status, "http_status")


def test_410_gone_is_permanent(httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery) -> None:
    httpserver.expect_oneshot_request("/hook").respond_with_data("", status=410)
    with pytest.raises(EndpointGone) as caught:
        _attempt(client, httpserver.url_for("/hook"), delivery)
    assert isinstance(caught.value, PermanentDeliveryFailure)


def test_a_redirect_is_a_failure_and_is_not_followed(
    httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery
) -> None:
    target = httpserver.url_for("/elsewhere")
    httpserver.expect_oneshot_request("/hook").respond_with_data("", status=301, headers={"location": target})
    with pytest.raises(RedirectNotFollowed) as caught:
        _attempt(client, httpserver.url_for("/hook"), delivery)
    assert (caught.value.reason, caught.value.location) == ("redirect", target)
    assert [request.path for request, _ in httpserver.log] == ["/hook"]


def test_only_the_first_bytes_of_a_huge_response_are_read(
    httpserver: HTTPServer, client: DeliveryClient, delivery: Delivery
) -> None:
    def endless(_: Request) -> Response:
        return Response((b"x" * 65536 for _ in range(10_000)), status=200)

    httpserver.expect_oneshot_request("/hook").respond_with_handler(endless)
    response = _attempt(client, httpserver.url_for("/hook"), delivery, timeout=5)
    assert len(response.body) == client.max_response_bytes == 4096


def test_a_receiver_that_never_answers_times_out(client: DeliveryClient, delivery: Delivery) -> None:
    with silent_server("/hook") as url:
        started = time.monotonic()
        with pytest.raises(DeliveryTimeout) as caught:
            _attempt(client, url, delivery, timeout=0.5)
    assert time.monotonic() - started < 3
    assert isinstance(caught.value, RetryableDeliveryFailure)


def test_a_refused_connection_is_a_connect_failure(client: DeliveryClient, delivery: Delivery) -> None:
    with pytest.raises(ConnectFailure) as caught:
        _attempt(client, f"http://127.0.0.1:{_closed_port()}/hook", delivery)
    assert caught.value.reason == "connect"


def test_a_name_that_does_not_resolve_is_a_dns_failure(delivery: Delivery) -> None:
    # At the transport boundary: no resolver is asked, no socket is opened.
    def refuse(_host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with http.build_client(Settings(), resolver=refuse) as client, pytest.raises(DnsFailure) as caught:
        _attempt(client, "https://hooks.example.invalid/x", delivery)
    assert caught.value.reason == "dns"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
