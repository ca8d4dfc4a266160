"""Fixtures for the redis plugin's tests: real Redis servers, started when they are down."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_testing import RedisServer, wait_until_up

SHARED_PORT = 6379
SHARED_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    str(SHARED_PORT),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
"""The machine's Redis, started as the project's rules say when a test finds it down."""


@pytest.fixture(scope="session")
def shared_redis() -> str:
    """The URL of the machine's Redis (127.0.0.1:6379), started if it is down."""
    try:
        wait_until_up(SHARED_PORT, timeout=0.5)
    except redis.ConnectionError:
        assert shutil.which("redis-server"), "redis-server is not installed"
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(SHARED_START, check=True, timeout=10)
        wait_until_up(SHARED_PORT)
    return f"redis://127.0.0.1:{SHARED_PORT}/0"


@pytest.fixture
def rdb(shared_redis: str) -> Iterator[redis.Redis]:
    """An independent client of the shared Redis (redis-py, synchronous)."""
    client = redis.Redis.from_url(shared_redis)
    yield client
    client.close()


@pytest.fixture
def stream(rdb: redis.Redis) -> Iterator[str]:
    """A stream name no other test uses; it and its companions are deleted afterwards."""
    name = f"test:{uuid.uuid4().hex[:12]}"
    yield name
    for key in rdb.scan_iter(match=f"{name}*"):
        rdb.delete(key)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, running; shut down at the end."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.shutdown()


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that requires the password `s3cret-pa55`."""
    server = RedisServer(tmp_path / "locked-redis", password="s3cret-pa55")
    server.start()
    yield server
    server.shutdown()
