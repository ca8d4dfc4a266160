"""A distributed chain: pipeline A (inotify -> nats) feeds two instances of pipeline B
(nats source, one durable -> command sink). Every file is handled once; a failed command
leaves its message unacknowledged; a killed worker's messages go to the other."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.cli import Background
from tests.jsonl import complete_records

from nats_servers import consumer_info

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

FILES = 1000

PUBLISHER = """\
pipelines:
  landing:
    sources: [{{type: inotify, paths: [inbox], events: [closed_write]}}]
    sinks:
      - {{type: nats, url: {url}, subject: "{stream}.files", create_stream: {{name: {stream}}},
         batch_size: 64}}
"""

WORKER = """\
state_dir: state
pipelines:
  work:
    sources:
      - type: nats
        url: {url}
        stream: {stream}
        durable: workers
        ack_wait: {ack_wait}
        max_deliver: {max_deliver}
        nak_delay: 100ms
        fetch_batch: 20
        fetch_wait: 500ms
    sinks:
      - type: command
        argv: [sh, {script}, handled.txt, "{{path}}", "{{meta.nats.delivered}}"]
        max_attempts: 1
"""

RECORD = """\
case "$2" in *bad*) exit 3;; esac
printf '%s %s\\n' "$2" "$3" >> "$1"
"""


class Chain:
    """Folders, configs and processes of one A + two B chain."""

    def __init__(self, root: Path, url: str, stream: str, **worker: object) -> None:
        self.root = root
        self.url = url
        self.stream = stream
        self.inbox = root / "a" / "inbox"
        self.inbox.mkdir(parents=True)
        (root / "a" / "config.yaml").write_text(PUBLISHER.format(url=url, stream=stream))
        script = root / "record.sh"
        script.write_text(RECORD)
        self.workers = [root / "b1", root / "b2"]
        settings = {"ack_wait": "30s", "max_deliver": 3, **worker}
        for folder in self.workers:
            folder.mkdir()
            (folder / "config.yaml").write_text(
                WORKER.format(url=url, stream=stream, script=script, **settings)
            )
        self.processes: list[Background] = []

    def start(self) -> None:
        self.processes = [
            Background("run", "config.yaml", cwd=folder)
            for folder in [self.root / "a", *self.workers]
        ]
        for process in self.processes:
            process.wait_ready()

    def handled(self, worker: int) -> list[tuple[str, int]]:
        record = self.workers[worker] / "handled.txt"
        lines = record.read_text().splitlines() if record.exists() else []
        return [(path, int(count)) for path, count in (line.rsplit(" ", 1) for line in lines)]

    def all_handled(self) -> list[tuple[str, int]]:
        return self.handled(0) + self.handled(1)

    def wait(self, done: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline:
                logs = "\n".join(p.stderr[-2000:] for p in self.processes)
                raise AssertionError(f"{what} within {timeout}s\n{logs}")
            time.sleep(0.1)

    def dead_letters(self) -> list[dict[str, Any]]:
        """The `data` of each event the workers dead-lettered."""
        files = [folder / "state" / "dead-letter.jsonl" for folder in self.workers]
        return [record["event"]["data"] for f in files for record in complete_records(f)]

    def stop(self) -> list[int | None]:
        return [p.interrupt() if p.proc.poll() is None else None for p in self.processes]


@pytest.fixture
def chain(
    tmp_path: Path, nats_url: str, stream_name: str, request: pytest.FixtureRequest
) -> Iterator[Chain]:
    made = Chain(tmp_path, nats_url, stream_name, **getattr(request, "param", {}))
    yield made
    for process in made.processes:
        if process.proc.poll() is None:
            process.proc.kill()


def write_files(inbox: Path, names: list[str]) -> None:
    for name in names:
        (inbox / name).write_text("payload")


def test_two_workers_handle_every_file_exactly_once_and_never_ack_a_failure(
    chain: Chain,
) -> None:
    chain.start()
    names = [f"f{n:04d}.csv" for n in range(FILES)]
    write_files(chain.inbox, [*names[:500], "bad.csv", *names[500:]])
    chain.wait(lambda: len(chain.all_handled()) >= FILES, 60, f"{FILES} files handled")
    failed = chain.dead_letters
    chain.wait(lambda: len(failed()) >= 3, 30, "3 failed deliveries of bad.csv")
    time.sleep(1.0)  # anything handled twice, or a fourth delivery, would show up now
    assert chain.stop() == [0, 0, 0]
    handled = [path for path, _ in chain.all_handled()]
    assert sorted(handled) == sorted(str(chain.inbox / n) for n in names)  # exactly once
    for worker, process in enumerate(chain.processes[1:]):  # both took part (max_in_flight)
        assert chain.handled(worker), f"worker {worker + 1} handled nothing:\n{process.stderr}"
    # bad.csv: the command failed, so its message was nak'ed, never acked, and delivered
    # again until max_deliver (3); each failure went to that worker's dead letters.
    assert {Path(data["path"]).name for data in failed()} == {"bad.csv"}
    assert sorted(data["nats"]["delivered"] for data in failed()) == [1, 2, 3]
    info = asyncio.run(consumer_info(chain.url, chain.stream, "workers"))
    assert info.num_pending == 0  # nothing left undelivered in the stream


@pytest.mark.parametrize("chain", [{"ack_wait": "2s"}], indirect=True)
def test_a_killed_worker_loses_nothing(chain: Chain) -> None:
    chain.start()
    names = [f"f{n:04d}.csv" for n in range(FILES)]
    write_files(chain.inbox, names)
    chain.wait(lambda: len(chain.handled(0)) >= 100, 60, "worker 1 started handling")
    victim = chain.processes[1]
    os.kill(victim.proc.pid, signal.SIGKILL)  # no shutdown: its unacked messages hang
    victim.proc.wait(10)
    expected = {str(chain.inbox / n) for n in names}
    chain.wait(
        lambda: {path for path, _ in chain.all_handled()} >= expected, 60, "every file handled"
    )
    assert [chain.processes[0].interrupt(), chain.processes[2].interrupt()] == [0, 0]
    counts = collections.Counter(path for path, _ in chain.all_handled())
    assert set(counts) == expected  # at least once each
    redelivered = [path for path, delivered in chain.handled(1) if delivered > 1]
    assert redelivered  # worker 2 got what worker 1 held when it died, after ack_wait
    info = asyncio.run(consumer_info(chain.url, chain.stream, "workers"))
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
