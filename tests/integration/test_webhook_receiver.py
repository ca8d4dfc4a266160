"""The local HTTP(S) endpoint the webhook tests post to (a helper; it holds no tests).

A real server on 127.0.0.1 in a thread: it records every request and answers from a
script (status, headers, body, delay), 200 once the script is used up. TLS certificates
come from the `openssl` command line.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as it arrived: header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0
    """The status it was answered with."""

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.receiver.record(
            Received(self.command, self.path, headers, body, time.monotonic())
        )
        if answer.delay:
            time.sleep(answer.delay)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_POST = do_PUT = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (timeouts, refused TLS) is part of the tests


class Receiver:
    """An HTTP endpoint on 127.0.0.1 (HTTPS with `tls`), used as a context manager."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self.received: list[Received] = []
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; then 200 again."""
        with self._lock:
            self._script.extend(answers)

    def record(self, request: Received) -> Answer:
        with self._lock:
            answer = self._script.pop(0) if self._script else Answer()
            self.received.append(dataclasses.replace(request, status=answer.status))
            return answer

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first `count` requests, once they have arrived (fails with what came)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.received)}")
            time.sleep(0.01)
        return self.received[:count]


def make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost and its key (PEM, no password)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The server side: its certificate, and with `client_ca` a required client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context
