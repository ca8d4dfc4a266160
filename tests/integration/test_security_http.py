"""The --http endpoint against hostile requests on a real socket: the token check holds for
any bytes a client sends, and no query or header can make a handler fail."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest
from structlog.testing import capture_logs

from pipeline.observe.address import HttpAddress
from pipeline.observe.server import HttpEndpoint

pytestmark = pytest.mark.integration
T = TypeVar("T")
TOKEN = "tok-9f8e7d6c5b4a3928"


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(token: str | None) -> AsyncIterator[int]:
    endpoint = HttpEndpoint(HttpAddress("127.0.0.1", 0), token=token)
    url = await endpoint.start()
    try:
        yield int(url.rsplit(":", 1)[1])
    finally:
        await endpoint.stop()


def exchange(port: int, head: bytes, host: bool = True) -> bytes:
    """Send one raw request (a client that may send any bytes); the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            head + (b"Host: localhost\r\n" if host else b"") + b"Connection: close\r\n\r\n"
        )
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def statuses(token: str | None, heads: list[bytes]) -> list[bytes]:
    async def scenario() -> list[bytes]:
        async with serving(token) as port:
            return [await asyncio.to_thread(exchange, port, head) for head in heads]

    return run(scenario())


def test_the_token_is_checked_whatever_bytes_a_client_sends() -> None:
    wrong = [
        b"GET /api/stats HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n",
        b"GET /api/stats HTTP/1.1\r\nAuthorization: Bearer tok-9f8e7d6c5b4a392\xc3\xa9\r\n",
        b"GET /api/stats?token=%ff%fe HTTP/1.1\r\n",
        b"GET /api/stats?token=%ed%b3%bf HTTP/1.1\r\n",  # an encoded lone surrogate
        b"GET /api/stats?token=" + TOKEN[:-1].encode() + b" HTTP/1.1\r\n",
        b"GET /api/stats?token=" + TOKEN.encode() + b"x HTTP/1.1\r\n",
        b"GET /api/stats HTTP/1.1\r\nAuthorization: Basic " + TOKEN.encode() + b"\r\n",
        b"GET /api/stats HTTP/1.1\r\nAuthorization: Bearer\r\n",
    ]
    right = [
        b"GET /api/stats HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n",
        b"GET /api/stats HTTP/1.1\r\nAuthorization: bearer  " + TOKEN.encode() + b" \r\n",
        b"GET /api/stats?token=" + TOKEN.encode() + b" HTTP/1.1\r\n",
    ]
    with capture_logs() as logs:
        found = statuses(TOKEN, wrong + right)
    assert found == [b"HTTP/1.1 401 Unauthorized"] * len(wrong) + [b"HTTP/1.1 200 OK"] * 3
    assert not [entry for entry in logs if entry["log_level"] == "error"]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /events?history=%C2%B2 HTTP/1.1\r\n",  # a digit to str.isdigit, not to int()
        b"GET /events?history=" + b"9" * 5000 + b" HTTP/1.1\r\n",
        b"GET /events HTTP/1.1\r\nLast-Event-ID: \xc2\xb2\r\n",
        b"GET /events HTTP/1.1\r\nLast-Event-ID: " + b"7" * 5000 + b"\r\n",
    ],
)
def test_a_live_tail_cursor_no_number_can_break(head: bytes) -> None:
    async def scenario() -> bytes:
        async with serving(None) as port:
            return await asyncio.to_thread(tail_start, port, head)

    assert run(scenario()).startswith(b"HTTP/1.1 200 OK\r\n")


def tail_start(port: int, head: bytes) -> bytes:
    """The first bytes of a live tail: the headers and the `retry:` line, once it streams."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + b"Host: localhost\r\n\r\n")
        answer = b""
        while b"retry: 2000" not in answer:
            chunk = conn.recv(4096)
            assert chunk, f"the tail ended before streaming: {answer!r}"
            answer += chunk
    return answer


def test_on_loopback_only_requests_to_a_loopback_name_are_answered() -> None:
    """A web page can rebind its own host name to 127.0.0.1 (DNS rebinding) and read the
    answers; its requests still carry its own name in Host."""
    heads = [
        b"GET /api/stats HTTP/1.1\r\nHost: attacker.example\r\n",
        b"GET /events HTTP/1.1\r\nHost: attacker.example:8080\r\n",
        b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /api/stats HTTP/1.1\r\nHost: localhost:9100\r\n",
        b"GET /api/stats HTTP/1.1\r\nHost: [::1]:9100\r\n",
    ]

    async def scenario() -> list[bytes]:
        async with serving(None) as port:
            return [await asyncio.to_thread(exchange, port, head, False) for head in heads]

    assert run(scenario()) == [b"HTTP/1.1 421 Misdirected Request"] * 2 + [b"HTTP/1.1 200 OK"] * 3
