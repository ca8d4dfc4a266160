"""Fixtures for the amqp plugin tests: a running RabbitMQ, unique names, an independent client.

The tests talk to the real broker on 127.0.0.1:5672 (guest/guest). If it is not running,
the `rabbitmq` fixture starts it; an unreachable broker fails the tests, it never skips them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from amqp_testkit import URL, Broker, start_broker


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    start_broker()
    return URL


@pytest.fixture
def names() -> str:
    """A prefix unique to the test, for its exchanges and queues."""
    return f"fsp-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def broker(rabbitmq: str) -> Iterator[Broker]:
    admin = Broker()
    yield admin
    admin.cleanup()
