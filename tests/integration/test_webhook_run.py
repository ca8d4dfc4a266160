"""`pipeline run` end to end: inotify -> webhook, through outages, with secrets kept out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import inbox_config, pipeline, start_run
from tests.integration.test_webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.integration
PASSWORD = "pw-5c0ffee-secret"
API_KEY = "key-9d1e4b7a-secret"
FILES = 150


def test_every_file_is_delivered_once_and_no_secret_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Receiver() as server:
        config = inbox_config(
            f"""\
            type: webhook
            url: "http://ingest:${{HOOK_PASS}}@127.0.0.1:{server.port}/hook/{{kind}}?key=${{HOOK_KEY}}"
            headers: {{X-Api-Key: "${{HOOK_KEY}}"}}
            concurrency: 4
            retry_backoff: 50ms
            """,
            state_dir=True,
        )
        (tmp_path / "config.yaml").write_text(config)
        # The webhook sink is built in: installed plugins (being built alongside) stay out.
        env = {
            "HOOK_PASS": PASSWORD,
            "HOOK_KEY": API_KEY,
            "FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        checked = pipeline("check", "config.yaml", cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        server.answer(Answer(503, body=b"maintenance"), Answer(503, body=b"maintenance"))
        run = start_run(tmp_path, config, env=env)
        names = [f"f{n:03d} (copy).csv" for n in range(FILES)]
        for name in names:
            (inbox / name).write_text("id,amount\n1,9.99\n")
        run.wait_for(
            lambda: sum(r.status == 200 for r in server.received) >= FILES,
            30,
            lambda: f"{FILES} files delivered ({len(server.received)} requests)",
        )
        assert run.interrupt() == 0
        delivered = [r for r in server.received if r.status == 200]
        refused = [r for r in server.received if r.status == 503]

    paths = sorted(r.json()["data"]["path"] for r in delivered)
    assert paths == sorted(str(inbox / name) for name in names)  # each file exactly once
    assert len(refused) == 2
    assert {r.path.split("?")[0] for r in delivered} == {"/hook/closed_write"}
    assert all(r.headers["x-api-key"] == API_KEY for r in delivered)
    assert "delivery failed; will retry" in run.stderr
    assert f"http://ingest:***@127.0.0.1:{server.port}/hook/closed_write?key=***" in run.stderr
    assert PASSWORD not in run.stderr
    assert API_KEY not in run.stderr
