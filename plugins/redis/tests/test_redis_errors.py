"""Wrong password, unreachable port: a clear error from `check --connect`, retries at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.e2e.cli import Background, pipeline

from redis_testing import RedisServer, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "wr0ng-pa55word"  # never to be seen in an output


def write_config(folder: Path, url_var: str) -> Path:
    """A pipeline with a redis source and a redis sink, both at ${REDIS_URL}."""
    (folder / "inbox").mkdir(exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(
        f"""\
pipelines:
  produce:
    sources: [{{type: inotify, paths: [inbox]}}]
    sinks: [{{type: redis, url: "${{{url_var}}}", timeout: 1s, retry_backoff: 200ms}}]
  consume:
    sources: [{{type: redis, url: "${{{url_var}}}", stream: "fspipeline:produce", timeout: 1s}}]
    sinks: [{{type: console}}]
"""
    )
    return config


def test_check_connect_names_wrong_credentials_without_the_password(
    tmp_path: Path, locked_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "REDIS_URL")
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0")
    result = pipeline("check", "--connect", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "(redis)" in line]
    assert len(lines) == 2, result.stdout  # the source and the sink
    for line in lines:
        assert "refused the credentials" in line
        assert f"redis://:***@127.0.0.1:{locked_redis.port}/0" in line
    assert PASSWORD not in result.stdout + result.stderr

    monkeypatch.setenv("REDIS_URL", locked_redis.url)
    result = pipeline("check", "--connect", "config.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_connect_names_an_unreachable_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "REDIS_URL")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    result = pipeline("check", "--connect", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:" in result.stdout
    assert "check that redis-server runs there" in result.stdout


def test_a_running_pipeline_keeps_retrying_and_never_logs_the_password(
    tmp_path: Path, locked_redis: RedisServer
) -> None:
    write_config(tmp_path, "REDIS_URL")
    url = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    running = Background("run", "config.yaml", cwd=tmp_path, env={"REDIS_URL": url})
    try:
        running.wait_ready()
        (tmp_path / "inbox" / "a.csv").write_text("x")
        running.wait_for(
            lambda: (
                running.stderr.count("cannot read from Redis; retrying") >= 3
                and "delivery failed; will retry" in running.stderr
            ),
            20,
            "3 retries of the source and one of the sink",
        )
        assert running.proc.poll() is None  # still running, still trying
    finally:
        code = running.interrupt()
    assert code == 0
    assert "refused the credentials" in running.stderr
    assert PASSWORD not in running.stderr
    assert "Traceback" not in running.stderr
