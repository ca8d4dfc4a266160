"""Scenario: the Redis server a spooled sink publishes to is restarted (and frozen) while
files keep coming; a private redis-server on a free port, never the shared one."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from tests.chaos.harness import Outcome, Run, Writer, running, wait_until

HELPERS = Path(__file__).resolve().parents[2] / "plugins/redis/tests/redis_testing.py"
STREAM = "chaos"
CONFIG = """\
state_dir: state
pipelines:
  chaos:
    sources:
      - type: inotify
        paths: [inbox]
        events: [closed_write]
    sinks:
      - type: redis
        url: {url}
        stream: {stream}
        timeout: 1s
        spool: true
        max_attempts: 0
        retry_backoff: 100ms
        retry_max_backoff: 1s
"""


def redis_testing() -> ModuleType:
    """The redis plugin's test helpers (a private redis-server), imported by file path:
    that folder is not a package."""
    loaded = sys.modules.get("redis_testing")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("redis_testing", HELPERS)
    assert spec is not None and spec.loader is not None, f"cannot load {HELPERS}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["redis_testing"] = module
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class BrokerPlan:
    """How many outages, of which kinds, how long."""

    outages: tuple[str, ...] = ("restart",)
    """`restart`: SHUTDOWN SAVE then start again (what it held survives); `freeze`:
    SIGSTOP then SIGCONT (connections hang instead of failing)."""
    seed: int = 8
    outage: tuple[float, float] = (1.0, 1.5)
    between: tuple[float, float] = (0.5, 1.0)
    settle_timeout: float = 45.0


def broker_restart(workdir: Path, plan: BrokerPlan) -> Outcome:
    rng = random.Random(plan.seed)
    outcome = Outcome("broker restart")
    server: Any = redis_testing().RedisServer(workdir / "redis")
    server.start()
    inbox = workdir / "inbox"
    inbox.mkdir()
    (workdir / "config.yaml").write_text(CONFIG.format(url=server.url, stream=STREAM))
    writer = Writer(inbox, random.Random(plan.seed + 1), burst=(1, 10))
    runs: list[Run] = []
    recoveries: list[float] = []
    try:
        with running(runs):
            run = Run(workdir, "run").start()
            runs.append(run)
            if not outcome.check(run.wait_ready() is not None, "the pipeline never got ready"):
                outcome.evidence += run.evidence()
                return outcome
            writer.start()
            for kind in plan.outages:
                time.sleep(rng.uniform(*plan.between))
                _outage(server, kind, rng.uniform(*plan.outage))
                # Recovered: what was written before the outage ended is in Redis.
                before = set(writer.created)
                recovery = wait_until(functools.partial(_holds, server, before), 30)
                recoveries.append(recovery if recovery is not None else float("inf"))
            created = writer.stop()
            settled = wait_until(
                lambda: set(created) <= set(_published(server)), plan.settle_timeout
            )
            code, _ = run.interrupt()
            published = _published(server)
    finally:
        server.shutdown()
    missing = sorted(set(created) - set(published))
    outcome.check(not missing, f"{len(missing)} of {len(created)} files never published")
    outcome.check(settled is not None, f"not all published within {plan.settle_timeout}s")
    outcome.check(code == 0, f"exit code {code} on Ctrl-C, not 0")
    retried = run.logged("delivery failed; will retry")
    outcome.check(
        any("Redis" in str(r.get("error")) for r in retried),
        "no log line said the delivery to Redis failed and would be retried",
    )
    outcome.figures.update(
        outages=list(plan.outages),
        files=len(created),
        entries=len(published),
        duplicates=len(published) - len(set(published)),
        retry_warnings=len(retried),
        recovery_after_broker_back_s=[round(r, 2) for r in recoveries],
    )
    if not outcome.ok:
        outcome.evidence += run.evidence()
    return outcome


def _outage(server: Any, kind: str, seconds: float) -> None:
    if kind == "restart":
        # SAVE: the entries already published survive, as with a broker that persists.
        client = server.client()
        client.shutdown(save=True)
        client.close()
        wait_until(lambda: not _listening(server.port), 10)
        time.sleep(seconds)
        server.start()
    elif kind == "freeze":
        pid = int((server.workdir / "redis.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
    else:
        raise ValueError(f"unknown outage {kind!r}")


def _published(server: Any) -> list[str]:
    """The path of every entry of the stream, read by an independent client."""
    client = server.client()
    try:
        entries = client.xrange(STREAM)
    except redis.RedisError:
        return []
    finally:
        client.close()
    return [json.loads(fields[b"body"])["data"]["path"] for _, fields in entries]


def _holds(server: Any, paths: set[str]) -> bool:
    return paths <= set(_published(server))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
