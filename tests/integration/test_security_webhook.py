"""The webhook sink's templated URL against event data that tries to climb out of the path
the URL points into (`../` in a relpath or a meta value from a broker message)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline import DeliveryError, Event, EventKind
from pipeline.sinks.webhook import WebhookSink
from tests.conftest import make_component
from tests.integration.test_webhook_receiver import Receiver

pytestmark = pytest.mark.integration


async def deliver(hook: WebhookSink, event: Event) -> None:
    await hook.open()
    try:
        await hook.send(event)
    finally:
        await hook.close()


@pytest.mark.parametrize(
    "relpath", ["../../admin/delete", "..", "a/../../admin", "%2e%2e/admin", "a/..\0/b"]
)
def test_a_value_with_dot_dot_segments_never_leaves_the_templated_path(
    tmp_path: Path, relpath: str
) -> None:
    event = Event(EventKind.CLOSED_WRITE, "/in/x", "p/redis", meta={"relpath": relpath})
    with Receiver() as server:
        hook: WebhookSink = make_component(
            WebhookSink, tmp_path, url=server.url + "/files/{relpath}"
        )
        try:
            asyncio.run(deliver(hook, event))
        except DeliveryError as exc:
            assert exc.permanent, "the same event gives the same URL: retrying cannot help"
            assert "'..'" in str(exc) or "NUL" in str(exc)
        escaped = [r.path for r in server.received if not r.path.startswith("/files/")]
        assert escaped == []


def test_names_with_dots_that_do_not_climb_are_delivered(tmp_path: Path) -> None:
    names = ["..hidden", "a..b", "...", ".x"]
    with Receiver() as server:
        for name in names:
            hook: WebhookSink = make_component(
                WebhookSink, tmp_path, url=server.url + "/files/{name}"
            )
            asyncio.run(deliver(hook, Event(EventKind.CLOSED_WRITE, f"/in/{name}", "p/t")))
        paths = [r.path for r in server.wait_for(len(names))]
    assert paths == [f"/files/{name}" for name in names]
