"""The processes under test: start a watcher, read what it prints, probe it, stop it.

Also `Cleanup`, which undoes everything a run did (processes, folders, sysctls) on exit,
Ctrl-C or error.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSCTL_MARKER = HERE / ".build" / "sysctl-restore.json"
"""Original sysctl values while one is changed, so a killed run is repaired by the next."""
PIPE_SIZE = 1 << 20  # a bigger stdout pipe: the harness must never be what slows a watcher
F_SETPIPE_SZ = 1031
READ_SIZE = 1 << 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""The environment of the processes under test: with bytecode caching on, as an installed
package has it (without it every start of an editable install recompiles its sources)."""


@dataclasses.dataclass(frozen=True)
class Probed:
    ready_ns: int
    """When the watcher was watching every probed folder (a probe made then was seen)."""
    report_ns: int
    """When the last folder's first probe report arrived."""


WATCHER_CPU = 1
"""The CPU watchers are pinned to; the writer and the harness run on CPU 0."""


def pinning_possible() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and {0, WATCHER_CPU} <= os.sched_getaffinity(0)


@contextlib.contextmanager
def on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """Run the block (and what it starts) on `cpus`; None leaves the affinity alone.

    A child inherits the affinity of the thread that starts it, threads included, so
    pinning the calling thread around Popen pins the whole child.
    """
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class BenchError(RuntimeError):
    """A run could not be measured (the watcher died, did not start, timed out)."""


def stop_process(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Stop `proc` and its process group: continue it, SIGTERM, then SIGKILL after `grace`."""
    if proc.poll() is not None:
        return
    for signum in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _is_bench_run(pid: int) -> bool:
    """Whether `pid` is a live benchmark run (a zombie or another program is not)."""
    try:
        return b"bench/run.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Cleanup:
    """What a run must undo: processes it started, folders it made, sysctls it changed."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paths: list[Path] = []
        self.sysctls: dict[str, str] = {}
        self._repair_stale_sysctls()

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        self.procs[proc.pid] = proc

    def untrack(self, proc: subprocess.Popen[bytes]) -> None:
        self.procs.pop(proc.pid, None)

    def temp_dir(self, parent: Path, name: str) -> Path:
        path = parent / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        self.paths.append(path)
        return path

    def remove(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        if path in self.paths:
            self.paths.remove(path)

    def set_sysctl(self, path: str, value: str) -> None:
        """Write `value` to the /proc/sys file `path`; the original comes back on restore."""
        if path not in self.sysctls:
            self.sysctls[path] = Path(path).read_text().strip()
            SYSCTL_MARKER.parent.mkdir(exist_ok=True)
            SYSCTL_MARKER.write_text(json.dumps(self.sysctls))
        Path(path).write_text(value)

    def restore_sysctls(self) -> None:
        for path, value in list(self.sysctls.items()):
            Path(path).write_text(value)
            del self.sysctls[path]
        SYSCTL_MARKER.unlink(missing_ok=True)

    def _repair_stale_sysctls(self) -> None:
        if not SYSCTL_MARKER.exists():
            return
        for path, value in json.loads(SYSCTL_MARKER.read_text()).items():
            Path(path).write_text(value)
            print(f"bench: restored {path} to {value} (left changed by a killed run)")
        SYSCTL_MARKER.unlink()

    def repair_stale(self, parent: Path, prefix: str) -> None:
        """Remove `<prefix><pid>` scratch folders of runs that were killed (their pid is
        gone), after stopping the watchers those runs left behind on them."""
        for folder in parent.glob(f"{prefix}*"):
            pid = folder.name.removeprefix(prefix)
            if not pid.isdigit() or _is_bench_run(int(pid)):
                continue
            needle = str(folder).encode() + b"/"
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):
                    if needle in cmdline.read_bytes():
                        os.kill(int(cmdline.parent.name), signal.SIGKILL)
                        print(f"bench: stopped {cmdline.parent.name}, left by a killed run")
            shutil.rmtree(folder, ignore_errors=True)
            print(f"bench: removed {folder}, left by a killed run")

    def close(self) -> None:
        """Undo everything; a second Ctrl-C cannot interrupt it."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in list(self.procs.values()):
                stop_process(proc, grace=1.0)
            self.procs.clear()
            self.restore_sysctls()
            for path in list(self.paths):
                self.remove(path)
        finally:
            signal.signal(signal.SIGINT, previous)


class Watcher:
    """One watcher subprocess. Its stdout is read in a thread as raw chunks stamped with
    their arrival time (CLOCK_MONOTONIC); `reports()` turns them into (time, path)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        parse: Callable[[bytes], str | None],
        cleanup: Cleanup,
        ready_marker: bytes | None = None,
        *,
        cpus: set[int] | None = None,
        read_pause: float = 0.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.parse = parse
        self.cleanup = cleanup
        self.ready_marker = ready_marker
        self.cpus = cpus
        self.read_pause = read_pause
        """Sleep between reads of stdout: fewer wake-ups (a burst), coarser arrival times."""
        self.chunks: list[tuple[int, bytes]] = []
        self.last_output_ns = 0
        self.signal_ns: int | None = None
        self.stderr_tail: collections.deque[bytes] = collections.deque(maxlen=40)
        self.events: list[tuple[int, str]] = []
        self._parsed = 0
        self._partial = b""
        self._threads: list[threading.Thread] = []
        self.start_ns = 0
        self._stderr_overflow = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise BenchError(f"{self.name} was not started")
        return self._proc

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        self.start_ns = time.monotonic_ns()
        with on_cpus(self.cpus):
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=CHILD_ENV,
                start_new_session=True,  # Ctrl-C reaches the harness, which stops it
            )
        self.cleanup.track(self._proc)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._proc.stdout.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        for target in (self._read_stdout, self._read_stderr):
            thread = threading.Thread(target=target, name=f"{self.name}-{target.__name__}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        if self._proc is None:
            return
        stop_process(self._proc)
        self.cleanup.untrack(self._proc)
        for thread in self._threads:
            thread.join(5)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            tail = b"".join(self.stderr_tail).decode(errors="replace").strip()[-1500:]
            raise BenchError(f"{self.name} exited with code {code}: {tail}")

    # -- reading ---------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        pause = self.read_pause
        while data := os.read(fd, READ_SIZE):
            now = time.monotonic_ns()
            self.chunks.append((now, data))
            self.last_output_ns = now
            if pause:
                time.sleep(pause)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self.stderr_tail.append(line)
            if b"overflow" in line.lower():
                self._stderr_overflow = True
            if self.signal_ns is None and self.ready_marker and self.ready_marker in line:
                self.signal_ns = time.monotonic_ns()

    def reports(self) -> list[tuple[int, str]]:
        """Parse what arrived since the last call; return the new (arrival_ns, path)s."""
        new: list[tuple[int, str]] = []
        parse = self.parse
        while self._parsed < len(self.chunks):
            arrived, data = self.chunks[self._parsed]
            self._parsed += 1
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                path = parse(line)
                if path is not None:
                    new.append((arrived, path))
        self.events.extend(new)
        return new

    def first_arrivals(self) -> dict[str, int]:
        """Each reported path with the time its first report arrived."""
        self.reports()
        first: dict[str, int] = {}
        for arrived, path in self.events:
            first.setdefault(path, arrived)
        return first

    def overflow_noticed(self) -> bool:
        """Whether the watcher said (on stdout or stderr) that the kernel queue overflowed."""
        return self._stderr_overflow or any(b"overflow" in c.lower() for _, c in self.chunks)

    # -- waiting -------------------------------------------------------------------

    def wait_signal(self, timeout: float) -> int:
        """Wait for the watcher's own ready line on stderr; return when it came (ns)."""
        deadline = time.monotonic() + timeout
        while self.signal_ns is None:
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not say it was ready within {timeout:.0f}s")
            time.sleep(0.002)
        return self.signal_ns

    def probe(self, folders: list[Path], timeout: float, interval: float = 0.005) -> Probed:
        """Create a probe file in each of `folders` every `interval` until each folder has
        had one reported.

        A folder is watched from the creation of its earliest reported probe (the one
        before it was never seen), so `ready_ns` (the latest of those, over the folders)
        is free of the watcher's event latency and batching; `report_ns`, when the last
        folder's first report arrived, includes them.
        """
        created: list[int] = []
        reported: dict[Path, int] = {}
        deadline = time.monotonic() + timeout
        while len(reported) < len(folders):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} reported no probe within {timeout:.0f}s")
            number = len(created)
            created.append(time.monotonic_ns())
            for folder in folders:
                if folder not in reported:
                    fd = os.open(folder / f"probe-{number:05d}", os.O_WRONLY | os.O_CREAT, 0o644)
                    os.write(fd, b"p")
                    os.close(fd)
            time.sleep(interval)
            for arrived, path in self.reports():
                folder = Path(path).parent
                if Path(path).name.startswith("probe-") and folder in folders:
                    reported.setdefault(folder, arrived)
        time.sleep(0.1)  # a batching watcher may report earlier probes in the same batch
        self.reports()
        earliest: dict[Path, int] = {}
        for _, path in self.events:
            name = Path(path).name
            if name.startswith("probe-"):
                number = int(name.removeprefix("probe-"))
                folder = Path(path).parent
                earliest[folder] = min(earliest.get(folder, number), number)
        return Probed(max(created[n] for n in earliest.values()), max(reported.values()))

    def wait_quiet(self, since_ns: int, quiet: float, timeout: float) -> bool:
        """Wait until nothing was printed for `quiet` s after `since_ns`; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            idle = (time.monotonic_ns() - max(self.last_output_ns, since_ns)) / 1e9
            if idle >= quiet:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(min(0.05, quiet - idle + 0.001))

    # -- resources -------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads), in seconds."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"no VmRSS for {self.name}")
