"""The bench receiver's HTTP handling: keep-alive, pipelining, split reads, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from workers.bench.receiver import MAX_HEAD_BYTES, BadRequest, Connection, Recorder, parse_head


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def connection() -> tuple[Connection, Recorder, FakeTransport]:
    recorder, transport = Recorder(), FakeTransport()
    conn = Connection(recorder)
    conn.connection_made(transport)
    return conn, recorder, transport


def test_a_request_split_across_reads_is_recorded_once_and_answered_200() -> None:
    conn, recorder, transport = connection()
    raw = post("/h/0", b'{"timestamp": "2024-05-01T12:00:00.123Z"}', "webhook-id: evt_1")
    for start in range(0, len(raw), 7):
        conn.data_received(raw[start : start + 7])
    assert [(path, hook_id, body) for _, path, hook_id, body in recorder.records] == [
        (b"/h/0", b"evt_1", b'{"timestamp": "2024-05-01T12:00:00.123Z"}')
    ]
    assert transport.written == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    assert not transport.closed


def test_pipelined_requests_in_one_read_are_each_recorded_and_answered_in_order() -> None:
    conn, recorder, transport = connection()
    conn.data_received(post("/h/0", b"one") + post("/h/1", b"two") + post("/b", b"three"))
    assert [body for *_, body in recorder.records] == [b"one", b"two", b"three"]
    assert transport.written.count(b"HTTP/1.1 200 OK") == 3


def test_a_request_without_webhook_id_is_recorded_with_none() -> None:
    conn, recorder, _ = connection()
    conn.data_received(post("/b", b"{}", "Content-Type: application/json"))
    assert recorder.records[0][2] is None


def test_connection_close_is_answered_in_kind_and_the_connection_closed() -> None:
    conn, recorder, transport = connection()
    conn.data_received(post("/b", b"x", "Connection: close") + post("/b", b"ignored"))
    assert len(recorder.records) == 1
    assert b"connection: close" in transport.written
    assert transport.closed


def test_http_1_0_closes_unless_it_asks_for_keep_alive() -> None:
    conn, _, transport = connection()
    conn.data_received(b"POST /b HTTP/1.0\r\ncontent-length: 0\r\n\r\n")
    assert transport.closed
    conn, _, transport = connection()
    conn.data_received(b"POST /b HTTP/1.0\r\ncontent-length: 0\r\nConnection: keep-alive\r\n\r\n")
    assert not transport.closed


def test_a_chunked_body_is_refused_with_501_counted_and_closed() -> None:
    conn, recorder, transport = connection()
    conn.data_received(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 501 ")
    assert transport.closed
    assert (recorder.records, recorder.refused) == ([], 1)


def test_a_head_that_never_ends_is_refused_with_431() -> None:
    conn, recorder, transport = connection()
    conn.data_received(b"POST /b HTTP/1.1\r\nx-filler: " + b"a" * MAX_HEAD_BYTES)
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert recorder.refused == 1


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /b", 400),
        (b"POST /b HTTP/2.0", 505),
        (b"POST /b HTTP/1.1\r\nno colon here", 400),
        (b"POST /b HTTP/1.1\r\ncontent-length: -1", 400),
        (b"POST /b HTTP/1.1\r\ncontent-length: 999999999999", 413),
    ],
)
def test_malformed_heads_are_refused_with_a_fitting_status(head: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(head)
    assert caught.value.status == status


def test_header_names_are_matched_whatever_their_case() -> None:
    head = parse_head(b"POST /h/3 HTTP/1.1\r\nCONTENT-LENGTH: 12\r\nWebhook-Id:  evt_9 \r\nconnection: Close")
    assert (head.method, head.path, head.length, head.webhook_id, head.close) == (
        b"POST",
        b"/h/3",
        12,
        b"evt_9",
        True,
    )


def test_the_control_paths_count_and_hand_over_the_records_then_forget_them() -> None:
    conn, recorder, transport = connection()
    conn.data_received(post("/h/0", b'{"a": 1}', "webhook-id: evt_1") + post("/b", b"\xff"))
    recorder.refused = 2
    transport.written.clear()
    conn.data_received(b"GET /_bench/count HTTP/1.1\r\n\r\n")
    assert transport.written.endswith(b"\r\n\r\n2 2")
    rows = json.loads(recorder.take())
    assert [row[1:] for row in rows] == [["/h/0", "evt_1", '{"a": 1}'], ["/b", None, "\ufffd"]]
    assert isinstance(rows[0][0], float)
    assert recorder.records == []


@pytest.fixture
def live_receiver() -> Iterator[tuple[str, Recorder]]:
    """The receiver's Protocol on a real socket, its loop in a thread."""
    loop = asyncio.new_event_loop()
    recorder = Recorder()
    server = loop.run_until_complete(loop.create_server(lambda: Connection(recorder), "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", recorder
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.close()


def test_many_concurrent_keep_alive_clients_are_all_answered_and_recorded(
    live_receiver: tuple[str, Recorder],
) -> None:
    url, recorder = live_receiver

    def client(index: int) -> list[int]:
        with httpx.Client(base_url=url) as http:
            return [http.post(f"/h/{index}", content=b'{"n": %d}' % n).status_code for n in range(25)]

    with ThreadPoolExecutor(16) as pool:
        statuses = [status for batch in pool.map(client, range(16)) for status in batch]
    assert statuses == [200] * 400
    assert len(recorder.records) == 400
