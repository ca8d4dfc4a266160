"""NATS servers and an independent nats-py client for the tests of fspipeline-nats.

The shared server (127.0.0.1:4222, JetStream on) is started with the project's start
command when it is down; a test never skips for want of it. Tests that kill or restart
a server, or need one with a password, run a `nats-server` of their own on a free port
with its own JetStream store (`PrivateServer`), so they disturb nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

SHARED_PORT = 4222
SHARED_URL = f"nats://127.0.0.1:{SHARED_PORT}"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
START_SHARED = [
    "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", NATS_SERVER, "--",
    "-a", "127.0.0.1", "-p", str(SHARED_PORT), "-js", "-sd", "/var/lib/nats-server",
    "-l", "/var/log/nats-server.log",
]  # fmt: skip


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        assert time.monotonic() < deadline, f"nats-server did not listen on {port}"
        time.sleep(0.05)


def ensure_shared_server() -> str:
    """The shared server's URL, after starting it if it is down."""
    if not listening(SHARED_PORT):
        subprocess.run(START_SHARED, check=True, timeout=30)
        wait_listening(SHARED_PORT)
    return SHARED_URL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateServer:
    """A nats-server of one test's own: its port, its JetStream store, its process to kill."""

    def __init__(self, store: Path, *args: str) -> None:
        self.store = store
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
             "-l", str(self.store / "server.log"), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_listening(self.port)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, nothing flushed."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    client = await nats.connect(url)
    try:
        yield client
    finally:
        await client.close()


async def add_stream(url: str, name: str, subjects: list[str], **config: Any) -> None:
    async with connected(url) as client:
        await client.jetstream().add_stream(name=name, subjects=subjects, **config)


async def delete_stream(url: str, name: str) -> None:
    async with connected(url) as client:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(name)


async def read_stream(url: str, name: str) -> list[Msg]:
    """Every message of a stream, read by an independent ephemeral consumer (no acks)."""
    async with connected(url) as client:
        js = client.jetstream()
        total = (await js.stream_info(name)).state.messages
        subscription = await js.pull_subscribe(
            ">", stream=name, config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)
        )
        messages: list[Msg] = []
        while len(messages) < total:
            messages += await subscription.fetch(min(1000, total - len(messages)), timeout=5)
        await subscription.unsubscribe()
        return messages


async def stream_count(url: str, name: str) -> int:
    async with connected(url) as client:
        count: int = (await client.jetstream().stream_info(name)).state.messages
        return count


async def consumer_info(url: str, stream: str, durable: str) -> api.ConsumerInfo:
    async with connected(url) as client:
        info: api.ConsumerInfo = await client.jetstream().consumer_info(stream, durable)
        return info
