"""`pipeline run --http`: the endpoint as a user or Prometheus meets it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cli import PIPELINE, Background

pytestmark = pytest.mark.e2e

NO_PLUGINS = {"FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only built-in components here

CONFIG = """\
pipelines:
  landing:
    sources: [{{type: inotify, paths: [{inbox}], events: [closed_write]}}]
    stages: [{{type: filter, exclude: ["*.tmp"]}}]
    sinks:
      - {{type: logfile, path: {log}}}
"""


def landing(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A config watching tmp_path/inbox into tmp_path/events.jsonl: (config, inbox, log)."""
    inbox, log = tmp_path / "inbox", tmp_path / "events.jsonl"
    inbox.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(inbox=inbox, log=log))
    return config, inbox, log


def pipeline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`pipeline ARGS…` to its end, built-in components only."""
    return subprocess.run(
        [PIPELINE, *args], cwd=cwd, env={**os.environ, **NO_PLUGINS},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def log_records(run: Background) -> list[dict[str, object]]:
    return [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]


def endpoint_url(run: Background) -> str:
    """The address the endpoint logged once listening (port 0 picks a free one)."""
    for record in log_records(run):
        if record.get("event") == "http endpoint listening":
            return str(record["url"])
    raise AssertionError(f"no 'http endpoint listening' line; stderr:\n{run.stderr}")


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def test_metrics_parse_and_agree_with_the_events_written_to_the_log(tmp_path: Path) -> None:
    config, inbox, log = landing(tmp_path)
    run = Background("run", "--http", "0", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    url = endpoint_url(run)
    assert fetch(f"{url}/readyz") == (
        200,
        "ready: every source is watching and every sink delivering\n",
    )
    for number in range(25):
        (inbox / f"{number:02d}.csv").write_text("x")
    (inbox / "skipped.tmp").write_text("x")
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 25, "25 lines")
    status, text = fetch(f"{url}/metrics")
    assert status == 200
    samples = {
        (sample.name, sample.labels.get("component")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    delivered = len(log.read_text().splitlines())
    assert samples[("fspipeline_delivered_total", "landing.sinks[0]")] == delivered == 25
    assert samples[("fspipeline_events_out_total", "landing.sources[0]")] == 26
    assert samples[("fspipeline_events_out_total", "landing.stages[0]")] == 25
    assert samples[("fspipeline_delivery_seconds_count", "landing.sinks[0]")] == 25
    assert samples[("fspipeline_queue_depth", "landing.sinks[0]")] == 0
    assert samples[("fspipeline_ready", None)] == 1
    assert run.interrupt() == 0


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as the kernel shows them) with a socket listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_a_bare_port_listens_on_loopback_only_and_without_a_warning(tmp_path: Path) -> None:
    config, _, _ = landing(tmp_path)
    run = Background("run", "--http", "0", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    url = endpoint_url(run)
    assert url.startswith("http://127.0.0.1:")
    assert listening_addresses(int(url.rsplit(":", 1)[1])) == ["0100007F"]  # 127.0.0.1
    assert not [r for r in log_records(run) if r.get("level") == "warning"]
    assert run.interrupt() == 0


def test_an_address_beyond_this_machine_is_served_with_a_warning(tmp_path: Path) -> None:
    config, _, _ = landing(tmp_path)
    run = Background("run", "--http", "0.0.0.0:0", str(config), cwd=tmp_path, env=NO_PLUGINS)
    run.wait_ready()
    port = int(endpoint_url(run).rsplit(":", 1)[1])
    assert fetch(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
    [warning] = [r for r in log_records(run) if r.get("level") == "warning"]
    assert "listens beyond this machine" in str(warning["event"])
    assert "FSPIPELINE_HTTP_TOKEN" in str(warning["event"])
    assert run.interrupt() == 0


def test_a_token_from_the_environment_is_required_and_never_logged(tmp_path: Path) -> None:
    config, _, _ = landing(tmp_path)
    token = "tok-9f8e7d6c5b4a"
    env = {**NO_PLUGINS, "FSPIPELINE_HTTP_TOKEN": token}
    run = Background("run", "--http", "0", str(config), cwd=tmp_path, env=env)
    run.wait_ready()
    url = endpoint_url(run)
    status, text = fetch(f"{url}/metrics")
    assert status == 401 and "Authorization: Bearer TOKEN" in text
    assert fetch(f"{url}/metrics", token="wrong")[0] == 401
    assert fetch(f"{url}/metrics", token=token)[0] == 200
    assert fetch(f"{url}/api/stats?token={token}")[0] == 200
    assert run.interrupt() == 0
    assert token not in run.stderr


def test_a_port_already_taken_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    config, _, _ = landing(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pipeline("run", "--http", str(port), str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}: " in result.stderr
    assert "choose another address or port with --http" in result.stderr
    assert "Traceback" not in result.stderr
    assert "running; press Ctrl-C" not in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--http", "localhost"], "'localhost': the port must be a number"),
        (["--http-token", "t"], "--http-token needs --http"),
        (["--status-interval", "often"], "'often' is not a duration"),
    ],
)
def test_bad_options_exit_2_saying_what_to_write(
    tmp_path: Path, args: list[str], says: str
) -> None:
    config, _, _ = landing(tmp_path)
    result = pipeline("run", *args, str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
