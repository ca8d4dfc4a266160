"""Helpers for the redis plugin's tests: private Redis servers, running a coroutine."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import redis

T = TypeVar("T")
Entry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry as a bytes client of redis-py returns it."""


def entries(client: redis.Redis, stream: str | bytes) -> list[Entry]:
    """XRANGE - +: every entry of `stream`, oldest first (the independent consumer)."""
    found: Any = client.xrange(stream)
    return list(found)


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run `coro` on a new event loop, failing it after `timeout` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(port: int, password: str | None = None, timeout: float = 20) -> None:
    client = redis.Redis(port=port, password=password, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


class RedisServer:
    """A redis-server of our own on a free port, to stop and start without disturbing
    anything else (outages, passwords). Started with the shared server's options."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            "--pidfile",
            str(self.workdir / "redis.pid"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        subprocess.run(args, check=True, timeout=10)
        wait_until_up(self.port, self.password)

    def shutdown(self) -> None:
        """`redis-cli shutdown nosave`: the server is gone, and so is what it held."""
        command = ["redis-cli", "-p", str(self.port)]
        if self.password:
            command += ["--no-auth-warning", "-a", self.password]
        subprocess.run([*command, "shutdown", "nosave"], check=False, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis on port {self.port} did not stop")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)
