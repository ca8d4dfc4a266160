"""The webhook sink against a real local HTTP(S) server: bodies, headers, auth, errors, TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline import Event, EventKind, from_json, to_json
from pipeline.sinks.webhook import WebhookSink
from pipeline.sinks.webhook_http import WebhookError
from tests.conftest import make_component
from tests.integration.test_webhook_receiver import (
    Answer,
    Receiver,
    make_cert,
    server_tls,
)

pytestmark = pytest.mark.integration
TOKEN = "tok-3f9a7c1e-secret"


def event(name: str = "a.csv", kind: EventKind = EventKind.CLOSED_WRITE, **meta: Any) -> Event:
    return Event(kind, f"/data/in/{name}", "landing/inotify", meta={"root": "/data/in", **meta})


def sink(tmp_path: Path, url: str, **options: Any) -> WebhookSink:
    built: WebhookSink = make_component(WebhookSink, tmp_path, url=url, **options)
    return built


async def deliver(hook: WebhookSink, *events: Event) -> None:
    await hook.open()
    try:
        if len(events) == 1:
            await hook.send(events[0])
        else:
            await hook.send_batch(events)
    finally:
        await hook.close()


def failure(hook: WebhookSink, events: Sequence[Event]) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        asyncio.run(deliver(hook, *events))
    return caught.value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- bodies and headers -------------------------------------------------------------


def test_structured_mode_posts_the_cloudevent_to_the_templated_url(tmp_path: Path) -> None:
    sent = event("my report #1?.csv", size=12)
    with Receiver() as server:
        asyncio.run(deliver(sink(tmp_path, server.url + "/fs/{kind}/{name}"), sent))
        (request,) = server.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/fs/closed_write/my%20report%20%231%3F.csv"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["ce-id"] == sent.id
    assert request.headers["ce-type"] == "fs.closed_write"
    assert request.body == to_json(sent).encode()
    assert from_json(request.body) == sent


def test_binary_mode_puts_attributes_in_headers_and_data_in_the_body(tmp_path: Path) -> None:
    sent = event("été 2026.csv")
    with Receiver() as server:
        asyncio.run(
            deliver(sink(tmp_path, server.url + "/hook", mode="binary", method="PUT"), sent)
        )
        (request,) = server.wait_for(1)
    assert request.method == "PUT"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["ce-specversion"] == "1.0"
    assert request.headers["ce-id"] == sent.id
    assert request.headers["ce-type"] == "fs.closed_write"
    assert request.headers["ce-source"] == "fspipeline/landing/inotify"
    assert request.headers["ce-time"].endswith("Z")
    # The HTTP binding's percent-encoding: space and non-ASCII as UTF-8 %XX.
    assert request.headers["ce-subject"] == "%C3%A9t%C3%A9%202026.csv"
    assert "ce-datacontenttype" not in request.headers
    assert request.json() == {
        "kind": "closed_write",
        "path": "/data/in/été 2026.csv",
        "src_path": None,
        "is_dir": False,
        "root": "/data/in",
    }


def test_a_path_that_is_not_utf8_reaches_the_url_byte_for_byte(tmp_path: Path) -> None:
    sent = event(os.fsdecode(b"caf\xe9.csv"))
    with Receiver() as server:
        asyncio.run(deliver(sink(tmp_path, server.url + "/f/{name}"), sent))
        (request,) = server.wait_for(1)
    assert request.path == "/f/caf%E9.csv"
    assert from_json(request.body).path == sent.path


def test_a_batch_is_one_json_array_per_url(tmp_path: Path) -> None:
    batch = [event("a.csv"), event("b.csv"), event("c", EventKind.DELETED), event("d.csv")]
    with Receiver() as server:
        asyncio.run(deliver(sink(tmp_path, server.url + "/by/{kind}"), *batch))
        requests = server.wait_for(2)
    by_path = {r.path: r for r in requests}
    assert set(by_path) == {"/by/closed_write", "/by/deleted"}
    written = by_path["/by/closed_write"]
    assert written.headers["content-type"] == "application/cloudevents-batch+json"
    assert [from_json(json.dumps(item)) for item in written.json()] == [
        batch[0],
        batch[1],
        batch[3],
    ]
    assert [item["id"] for item in by_path["/by/deleted"].json()] == [batch[2].id]


def test_a_binary_batch_is_one_request_per_event(tmp_path: Path) -> None:
    batch = [event(f"{n}.csv") for n in range(5)]
    with Receiver() as server:
        asyncio.run(deliver(sink(tmp_path, server.url + "/b", mode="binary"), *batch))
        requests = server.wait_for(5)
    assert sorted(r.headers["ce-id"] for r in requests) == sorted(e.id for e in batch)


# -- authentication -------------------------------------------------------------------


def test_bearer_token_and_extra_headers_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    hook_options = {"bearer_token_env": "HOOK_TOKEN", "headers": {"X-Tenant": "ops"}}
    with Receiver() as server:
        asyncio.run(deliver(sink(tmp_path, server.url + "/t", **hook_options), event()))
        (request,) = server.wait_for(1)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-tenant"] == "ops"


def test_basic_auth_from_options_or_from_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_PASS", "pa:ss@word")
    expected = "Basic " + base64.b64encode(b"ingest:pa:ss@word").decode()
    with Receiver() as server:
        by_options = sink(tmp_path, server.url + "/a", username="ingest", password_env="HOOK_PASS")
        asyncio.run(deliver(by_options, event()))
        in_url = sink(tmp_path, f"http://ingest:pa%3Ass%40word@127.0.0.1:{server.port}/b")
        asyncio.run(deliver(in_url, event()))
        first, second = server.wait_for(2)
    assert first.headers["authorization"] == expected
    assert second.headers["authorization"] == expected


def test_a_refusal_names_the_status_and_body_but_never_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_PASS", TOKEN)
    echo = f'{{"error": "bad credentials", "you sent": "{TOKEN}"}}'.encode()
    with Receiver() as server:
        server.answer(Answer(401, body=echo))
        url = f"http://ingest:{TOKEN}@127.0.0.1:{server.port}/in?key={TOKEN}"
        error = failure(sink(tmp_path, url), [event()])
    message = str(error)
    assert TOKEN not in message
    assert "401 Unauthorized" in message
    assert "bad credentials" in message
    assert f"http://ingest:***@127.0.0.1:{server.port}/in?key=***" in message
    assert error.permanent


# -- answers and failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (404, True), (408, False), (500, False), (503, False)]
)
def test_4xx_is_permanent_while_408_and_5xx_are_retryable(
    tmp_path: Path, status: int, permanent: bool
) -> None:
    with Receiver() as server:
        server.answer(Answer(status, body=b"  the\nreason  " + b"x" * 500))
        error = failure(sink(tmp_path, server.url + "/p"), [event()])
    assert error.status == status
    assert error.permanent is permanent
    assert f"answered {status}" in str(error)
    assert "the reason xxx" in str(error)  # whitespace folded to one line
    assert str(error).endswith("...")  # the body is cut short


def test_retry_after_is_handed_to_the_engine_without_holding_the_lane(tmp_path: Path) -> None:
    with Receiver() as server:
        server.answer(Answer(429, headers={"Retry-After": "1"}))
        hook = sink(tmp_path, server.url + "/slow", retry_after_max="10s")
        started = time.monotonic()
        error = failure(hook, [event()])
        waited = time.monotonic() - started
    assert error.retry_after == 1.0  # the engine's next attempt waits at least this long
    assert not error.permanent
    assert waited < 0.9


def test_retry_after_beyond_the_cap_is_cut_to_it(tmp_path: Path) -> None:
    with Receiver() as server:
        server.answer(Answer(503, headers={"Retry-After": "3600"}))
        hook = sink(tmp_path, server.url + "/slow", retry_after_max="200ms")
        error = failure(hook, [event()])
    assert error.retry_after == 0.2


def test_an_unreachable_endpoint_and_a_slow_one_fail_clearly(tmp_path: Path) -> None:
    port = free_port()
    error = failure(sink(tmp_path, f"http://127.0.0.1:{port}/x"), [event()])
    assert f"cannot reach http://127.0.0.1:{port}/x" in str(error)
    assert not error.permanent
    with Receiver() as server:
        server.answer(Answer(delay=2.0))
        error = failure(sink(tmp_path, server.url + "/x", timeout="300ms"), [event()])
    assert "no complete answer within timeout 0.3s" in str(error)


def test_a_redirect_fails_unless_followed(tmp_path: Path) -> None:
    with Receiver() as server:
        moved = Answer(307, headers={"Location": server.url + "/new"})
        server.answer(moved)
        error = failure(sink(tmp_path, server.url + "/old"), [event()])
        assert f"to {server.url}/new" in str(error)
        server.answer(moved)
        asyncio.run(deliver(sink(tmp_path, server.url + "/old", follow_redirects=True), event()))
        assert [r.path for r in server.wait_for(3)] == ["/old", "/old", "/new"]


def test_a_failure_in_one_request_of_a_binary_batch_fails_the_batch(tmp_path: Path) -> None:
    with Receiver() as server:
        server.answer(Answer(503), Answer(503))
        error = failure(sink(tmp_path, server.url + "/b", mode="binary"), [event("1"), event("2")])
    assert "2 of 2 requests failed" in str(error)
    assert not error.permanent


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("certs")
    server_cert, server_key = make_cert(folder, "server")
    client_cert, client_key = make_cert(folder, "client")
    return {
        "server": server_cert,
        "server_key": server_key,
        "client": client_cert,
        "key": client_key,
    }


def test_https_with_a_private_ca_bundle(tmp_path: Path, certs: dict[str, Path]) -> None:
    with Receiver(server_tls(certs["server"], certs["server_key"])) as server:
        url = server.url + "/tls"
        error = failure(sink(tmp_path, url), [event()])
        assert "CERTIFICATE_VERIFY_FAILED" in str(error)
        assert "set ca_bundle" in str(error)
        asyncio.run(deliver(sink(tmp_path, url, ca_bundle=str(certs["server"])), event()))
        asyncio.run(deliver(sink(tmp_path, url, verify=False), event()))
        assert len(server.wait_for(2)) == 2


def test_mutual_tls_with_a_client_certificate(tmp_path: Path, certs: dict[str, Path]) -> None:
    tls = server_tls(certs["server"], certs["server_key"], client_ca=certs["client"])
    with Receiver(tls) as server:
        trusted = {"ca_bundle": str(certs["server"])}
        error = failure(sink(tmp_path, server.url + "/m", **trusted), [event()])
        assert "client certificate" in str(error)  # a TLS alert, or a connection closed
        with_cert = {
            **trusted,
            "client_cert": str(certs["client"]),
            "client_key": str(certs["key"]),
        }
        asyncio.run(deliver(sink(tmp_path, server.url + "/m", **with_cert), event()))
        (request,) = server.wait_for(1)
    assert request.path == "/m"


# -- pipeline check --connect ------------------------------------------------------------


async def probed(hook: WebhookSink) -> str | None:
    try:
        await hook.probe()
    except WebhookError as exc:
        return str(exc)
    return None


def test_probe_reports_what_stands_in_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certs: dict[str, Path]
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    port = free_port()
    assert "cannot reach" in str(asyncio.run(probed(sink(tmp_path, f"http://127.0.0.1:{port}/"))))
    with Receiver() as server:
        assert asyncio.run(probed(sink(tmp_path, server.url + "/hook"))) is None
        assert server.wait_for(1)[0].method == "HEAD"
        server.answer(Answer(401))
        refused = asyncio.run(probed(sink(tmp_path, server.url, bearer_token_env="HOOK_TOKEN")))
        assert refused is not None
        assert (
            "refused the credentials (401 Unauthorized); check the token in $HOOK_TOKEN" in refused
        )
        assert TOKEN not in refused
        server.answer(Answer(404))
        missing = asyncio.run(probed(sink(tmp_path, server.url + "/nope")))
        assert missing == f"{server.url}/nope answered 404 Not Found; check the path in `url`"
        server.answer(Answer(404))  # a templated URL is probed at its host's root
        assert asyncio.run(probed(sink(tmp_path, server.url + "/fs/{kind}"))) is None
        assert server.received[-1].path == "/"
        server.answer(Answer(503))
        assert "answered 503" in str(asyncio.run(probed(sink(tmp_path, server.url))))
    with Receiver(server_tls(certs["server"], certs["server_key"])) as server:
        assert "set ca_bundle" in str(asyncio.run(probed(sink(tmp_path, server.url))))
