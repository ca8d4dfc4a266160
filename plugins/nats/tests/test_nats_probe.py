"""Wrong credentials, an unreachable host, a missing stream: said clearly, never fatal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.conftest import Running, make_component
from tests.e2e.cli import PIPELINE, Background

from fspipeline_nats import NatsSink, NatsSource
from fspipeline_nats.errors import NatsStreamMissing, NatsUnavailable
from nats_servers import PrivateServer, add_stream, free_port, unique

pytestmark = pytest.mark.integration


def probe(component: Any) -> None:
    asyncio.run(asyncio.wait_for(component.probe(), 30))


def test_probe_names_rejected_credentials_without_the_password(
    tmp_path: Path, secured_nats: PrivateServer
) -> None:
    wrong = f"nats://alice:not-the-pw@127.0.0.1:{secured_nats.port}"
    for component in (
        make_component(NatsSink, tmp_path, url=wrong),
        make_component(NatsSource, tmp_path, url=wrong, stream="S", durable="d"),
        make_component(NatsSink, tmp_path, url=secured_nats.url, user="alice", password="nope"),
        make_component(NatsSink, tmp_path, url=secured_nats.url, token="bad-token"),
    ):
        with pytest.raises(NatsUnavailable) as caught:
            probe(component)
        message = str(caught.value)
        assert "refused the credentials (Authorization Violation)" in message
        assert "not-the-pw" not in message and "nope" not in message


def test_probe_names_an_unreachable_server_and_a_missing_stream(
    tmp_path: Path, nats_url: str
) -> None:
    down = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(NatsUnavailable, match=r"connection refused.*is nats-server running"):
        probe(make_component(NatsSink, tmp_path, url=down, connect_timeout="1s"))
    with pytest.raises(NatsUnavailable, match="cannot resolve the host"):
        probe(make_component(NatsSink, tmp_path, url="nats://no-such-host.invalid:4222"))
    missing = unique("Missing")
    with pytest.raises(NatsStreamMissing, match=f"stream {missing!r} does not exist"):
        probe(make_component(NatsSource, tmp_path, url=nats_url, stream=missing, durable="d"))
    with pytest.raises(NatsStreamMissing, match=r"no JetStream stream .* stores the subject"):
        probe(make_component(NatsSink, tmp_path, url=nats_url, subject="nothing.here.{kind}"))
    with pytest.raises(NatsStreamMissing, match=f"stream {missing!r} does not exist"):
        probe(make_component(NatsSink, tmp_path, url=nats_url, stream=missing))
    # With create_stream, a missing stream is fine: the sink makes it.
    probe(make_component(NatsSink, tmp_path, url=nats_url, create_stream={"name": missing}))


CONFIG = """\
pipelines:
  publish:
    sources: [{{type: poll, paths: [inbox], interval: 100ms}}]
    sinks:
      - type: nats
        url: ${{NATS_URL}}
        create_stream: {{name: {stream}}}
        reconnect_wait: 100ms
        reconnect_max_wait: 300ms
  work:
    sources:
      - type: nats
        url: ${{NATS_URL}}
        stream: {stream}
        durable: w
        reconnect_wait: 100ms
        reconnect_max_wait: 300ms
    sinks: [{{type: console}}]
"""


CHECKED = """\
pipelines:
  publish:
    sources: [{{type: poll, paths: [inbox], wait_missing: true}}]
    sinks:
      - {{type: nats, url: "${{NATS_URL}}", create_stream: {{name: Jobs}}}}
      - {{type: nats, url: "nats://127.0.0.1:{down}", connect_timeout: 1s}}
  work:
    sources: [{{type: nats, url: "{shared}", stream: {missing}, durable: w}}]
    sinks: [{{type: console}}]
"""


def test_check_connect_says_what_is_wrong_with_each_component(
    tmp_path: Path, secured_nats: PrivateServer, nats_url: str
) -> None:
    missing = unique("Missing")
    config = CHECKED.format(down=free_port(), shared=nats_url, missing=missing)
    (tmp_path / "config.yaml").write_text(config)
    wrong = f"nats://alice:wrong-pw@127.0.0.1:{secured_nats.port}"
    result = _check(tmp_path, wrong)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(
        "publish.sinks[0] (nats): NatsUnavailable: NATS at nats://alice:***@" in line
        and "refused the credentials (Authorization Violation)" in line
        for line in lines
    ), lines
    assert any("publish.sinks[1] (nats)" in x and "connection refused" in x for x in lines)
    assert any(
        f"work.sources[0] (nats): NatsStreamMissing: the JetStream stream {missing!r} does "
        "not exist" in line
        for line in lines
    ), lines
    assert "wrong-pw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _check(folder: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPELINE, "check", "--connect", "config.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NATS_URL": url},
        check=False,
    )


def test_run_keeps_retrying_with_wrong_credentials(
    tmp_path: Path, secured_nats: PrivateServer
) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "config.yaml").write_text(CONFIG.format(stream="Jobs"))
    wrong = f"nats://alice:wrong-pw@127.0.0.1:{secured_nats.port}"
    running = Background("run", "config.yaml", cwd=tmp_path, env={"NATS_URL": wrong})
    try:
        running.wait_ready()
        running.wait_for(
            lambda: running.stderr.count("cannot connect to NATS; retrying") >= 4,
            20,
            "4 connection retries",
        )
        (tmp_path / "inbox" / "a.csv").write_text("x")  # queued while NATS refuses us
        time.sleep(0.5)
        assert running.proc.poll() is None  # still running, retrying
    finally:
        code = running.interrupt()
    assert code == 0
    logs = [json.loads(line) for line in running.stderr_lines if line.startswith(b"{")]
    assert any("Authorization Violation" in entry.get("error", "") for entry in logs)
    assert "wrong-pw" not in running.stderr
    assert "Traceback" not in running.stderr


def test_a_consumer_that_must_exist_is_named_when_missing(
    tmp_path: Path, nats_url: str, stream_name: str
) -> None:
    asyncio.run(add_stream(nats_url, stream_name, [f"{stream_name}.>"]))
    source = make_component(
        NatsSource, tmp_path, url=nats_url, stream=stream_name, durable="nobody",
        create_consumer=False, reconnect_wait="50ms",
    )  # fmt: skip
    with pytest.raises(NatsStreamMissing, match="durable consumer 'nobody' does not exist"):
        probe(source)

    async def consume() -> list[MutableMapping[str, Any]]:
        with capture_logs() as logs:
            async with Running(source):
                while not any("cannot consume" in entry["event"] for entry in logs):
                    await asyncio.sleep(0.05)
        return logs

    logs = asyncio.run(asyncio.wait_for(consume(), 30))
    (first, *_) = [entry for entry in logs if "cannot consume" in entry["event"]]
    assert "durable consumer 'nobody' does not exist" in first["error"]
