"""One child process of the command sink: own session, output into the log, group kill.

The child is started in a new session (`start_new_session`), so it leads a process group
that holds everything it spawns. Stopping it (timeout, `on_busy: restart`, shutdown)
sends SIGTERM to the whole group, then SIGKILL to whatever is left after a grace period:
no grandchild outlives a run that was stopped. Its stdout and stderr are read line by line
into the structured log (never to the terminal), bounded per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from pipeline.clock import Clock
    from pipeline.sinks.invocation import Invocation

CHUNK = 65536
MAX_LINE = 4096
"""Longer output lines are cut to this many bytes (the rest of the line is skipped)."""
MAX_REASON = 300
"""The last stderr line is cut to this many characters in a failure message."""
DRAIN_TIMEOUT = 1.0
"""After the child exits, how long its pipes may stay open (held by a background child)."""
GROUP_POLL = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class Exit:
    """How a run ended."""

    returncode: int
    last_stderr: str
    timed_out: bool

    @property
    def status(self) -> str:
        if self.returncode < 0:
            try:
                return f"killed by signal {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit code {self.returncode}"


class _Output:
    """Turns a child's output into log records: line by line, at most `limit` per run."""

    def __init__(self, log: FilteringBoundLogger, limit: int) -> None:
        self.log = log
        self.limit = limit
        self.logged = 0
        self.dropped = 0
        self.last_stderr = ""

    def line(self, stream: str, raw: bytes, *, cut: bool = False) -> None:
        text = raw.rstrip(b"\r").decode("utf-8", "backslashreplace")
        if stream == "stderr" and text.strip():
            self.last_stderr = text.strip()[:MAX_REASON]
        if self.logged >= self.limit:
            self.dropped += 1
            return
        self.logged += 1
        if cut:
            self.log.info("command output", stream=stream, line=text, cut_at=MAX_LINE)
        else:
            self.log.info("command output", stream=stream, line=text)

    async def pump(self, stream: asyncio.StreamReader, name: str) -> None:
        pending = bytearray()
        skipping = False  # inside a line that was already cut
        while chunk := await stream.read(CHUNK):
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                if not skipping:
                    self.line(name, bytes(pending[:end]))
                skipping = False
                del pending[: end + 1]
            if len(pending) > MAX_LINE:
                if not skipping:
                    self.line(name, bytes(pending[:MAX_LINE]), cut=True)
                skipping = True
                pending.clear()
        if pending and not skipping:
            self.line(name, bytes(pending))


class ChildProcess:
    """A started command: wait for it, signal its process group, or stop it."""

    def __init__(
        self,
        invocation: Invocation,
        *,
        cwd: Path,
        log: FilteringBoundLogger,
        clock: Clock,
        grace: float,
        output_lines: int,
    ) -> None:
        self.invocation = invocation
        self.cwd = cwd
        self.log = log
        self.clock = clock
        self.grace = grace
        self.output = _Output(log, output_lines)
        self.timed_out = False
        self._proc: asyncio.subprocess.Process | None = None
        self._io: list[asyncio.Task[None]] = []
        self._stopper: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the child in its own session; OSError if it cannot be executed."""
        argv, data = self.invocation.argv, self.invocation.stdin
        self._proc = proc = await asyncio.create_subprocess_exec(
            argv[0],
            *argv[1:],
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env=self.invocation.env,
            start_new_session=True,
        )
        self.log = self.log.bind(pid=proc.pid)
        self.output.log = self.log
        assert proc.stdout is not None and proc.stderr is not None
        self._io = [
            asyncio.create_task(self.output.pump(proc.stdout, "stdout")),
            asyncio.create_task(self.output.pump(proc.stderr, "stderr")),
        ]
        if data is not None:
            self._io.append(asyncio.create_task(self._feed(data)))

    async def _feed(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        # A child that exits without reading all of its input is not an error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
            stdin.close()
            await stdin.wait_closed()

    async def wait(self, timeout: float | None = None) -> Exit:
        """Wait for the child to end (stopping it after `timeout` seconds) and its output.

        If the wait is cancelled, the child's process group is stopped in the background
        (`stopped()` waits for that) and CancelledError propagates.
        """
        assert self._proc is not None, "start() first"
        timer = asyncio.create_task(self._expire(timeout)) if timeout is not None else None
        try:
            returncode = await self._proc.wait()
        except asyncio.CancelledError:
            self.stop()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        await self._drain()
        if self._stopper is not None:
            await asyncio.shield(self._stopper)  # a cancelled caller must not abort a kill
        return Exit(returncode, self.output.last_stderr, self.timed_out)

    async def _expire(self, timeout: float) -> None:
        await self.clock.sleep(timeout)
        self.timed_out = True
        self.log.warning("command timed out; stopping its process group", timeout=timeout)
        self.stop()

    async def _drain(self) -> None:
        io, self._io = self._io, []
        if not io:
            return
        _, late = await asyncio.wait(io, timeout=DRAIN_TIMEOUT)
        for task in late:
            task.cancel()
        if late:
            self.log.warning(
                "command exited but a process it started still holds its output open; "
                "that output is not logged"
            )
        if self.output.dropped:
            self.log.warning(
                "command output truncated",
                logged_lines=self.output.logged,
                dropped_lines=self.output.dropped,
            )

    def send_signal(self, signum: int) -> bool:
        """Send `signum` to the child's process group; False if the child has ended."""
        if not self.running:
            return False
        return self._signal_group(signum)

    def stop(self) -> None:
        """Start stopping the process group (SIGTERM, then SIGKILL after the grace period)."""
        if self._stopper is None and self._proc is not None:
            self._stopper = asyncio.create_task(self._stop_group())

    async def stopped(self) -> None:
        """Stop the child if it still runs and return once its group and pipes are gone."""
        if self.running:
            self.stop()
        if self._stopper is not None:
            await asyncio.shield(self._stopper)
        if self._proc is not None:
            await self._proc.wait()
        await self._drain()

    async def _stop_group(self) -> None:
        assert self._proc is not None
        if not self._signal_group(signal.SIGTERM):
            return
        deadline = self.clock.monotonic() + self.grace
        while self.clock.monotonic() < deadline:
            if self._proc.returncode is not None and not self._group_alive():
                return  # never signal the id again: it may be reused once the group is empty
            await self.clock.sleep(GROUP_POLL)
        if self._signal_group(signal.SIGKILL):
            self.log.warning("group still there after SIGTERM; sent SIGKILL", grace=self.grace)
        await self._proc.wait()

    def _signal_group(self, signum: int) -> bool:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _group_alive(self) -> bool:
        return self._signal_group(0)
