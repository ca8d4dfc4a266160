"""Fixtures: the shared NATS server, private ones to kill, fresh stream names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nats_servers import PrivateServer, delete_stream, ensure_shared_server, unique


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The shared JetStream server (127.0.0.1:4222), started if it is down."""
    return ensure_shared_server()


def serving(server: PrivateServer) -> Iterator[PrivateServer]:
    """`server` running for the test, stopped after it."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateServer]:
    """A JetStream server of this test's own, to kill and restart."""
    yield from serving(PrivateServer(tmp_path / "nats-store"))


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[PrivateServer]:
    """A JetStream server that wants user `alice` with password `s3cret-pw`."""
    yield from serving(
        PrivateServer(tmp_path / "nats-secured", "--user", "alice", "--pass", "s3cret-pw")
    )


@pytest.fixture
def stream_name(nats_url: str) -> Iterator[str]:
    """A fresh stream name on the shared server; the stream is deleted afterwards."""
    name = unique("T")
    yield name
    asyncio.run(delete_stream(nats_url, name))
