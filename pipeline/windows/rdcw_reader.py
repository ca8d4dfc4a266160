"""Reads one watched folder's change buffers with overlapped ReadDirectoryChanges(Ex)W.

One daemon thread per folder handle waits on two events: the read's completion and a
stop signal, so the event loop is never blocked and `stop()` ends the wait at once
(CancelIoEx, then the cancelled read is reaped before its buffer is freed). Each
completed read is copied, the next read is started right away (so the kernel keeps
recording into its own buffer meanwhile), and only then is the copy handed to the loop
through a bounded queue: a slow pipeline makes the thread wait, and the kernel then
reports an overflow, which the source recovers from by rescanning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import enum
import threading
from typing import TYPE_CHECKING

from pipeline.windows import win32

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

HANDOFF_POLL = 0.25
"""Seconds between looks at the stop flag while the loop's queue is full."""
STOP_WAIT = 5.0
EXTENDED_UNSUPPORTED = frozenset(
    {win32.ERROR_INVALID_PARAMETER, win32.ERROR_INVALID_FUNCTION, win32.ERROR_NOT_SUPPORTED}
)
"""Errors of ReadDirectoryChangesExW where a file system (FAT, SMB) lacks extended info."""


class Outcome(enum.Enum):
    DATA = "data"
    OVERFLOW = "overflow"
    ABORTED = "aborted"
    FAILED = "failed"


def classify(ok: bool, code: int, count: int, status: int) -> Outcome:
    """What a completed read means. An overflow comes in three forms, all meaning
    "changes were lost, rescan": the raw status STATUS_NOTIFY_ENUM_DIR (as completion
    ports show it), success with 0 bytes, and failure with ERROR_NOTIFY_ENUM_DIR."""
    if status == win32.STATUS_NOTIFY_ENUM_DIR:
        return Outcome.OVERFLOW
    if ok:
        return Outcome.DATA if count > 0 else Outcome.OVERFLOW
    if code == win32.ERROR_NOTIFY_ENUM_DIR:
        return Outcome.OVERFLOW
    if code == win32.ERROR_OPERATION_ABORTED:
        return Outcome.ABORTED
    return Outcome.FAILED


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """What one read of `root` produced."""

    root: str
    outcome: Outcome
    data: bytes = b""
    extended: bool = False
    """Whether `data` holds FILE_NOTIFY_EXTENDED_INFORMATION records."""
    error: str | None = None


class ChunkQueue:
    """The bounded queue from the reader threads to the event loop."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Chunk] = asyncio.Queue(size)
        self.loop = asyncio.get_running_loop()

    def put_from_thread(self, chunk: Chunk, stopping: threading.Event) -> bool:
        """Hand `chunk` to the loop, waiting for room; False once `stopping` is set."""
        try:
            future = asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(HANDOFF_POLL)
                return True
            except concurrent.futures.TimeoutError:
                if stopping.is_set():
                    future.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False


class DirectoryReader:
    """Watches one folder: a handle, a thread, and the reads it keeps going."""

    def __init__(
        self,
        root: str,
        api_path: str,
        *,
        recursive: bool,
        buffer_size: int,
        extended: bool,
        queue: ChunkQueue,
        log: FilteringBoundLogger,
    ) -> None:
        self.root = root
        self.api_path = api_path
        self.recursive = recursive
        self.buffer_size = buffer_size
        self.extended = extended
        self.queue = queue
        self.log = log
        self._stopping = threading.Event()
        self._handle = 0
        self._io_event = 0
        self._stop_event = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the folder and start reading; raises OSError if it cannot be opened."""
        self.extended = self.extended and win32.has_extended_read()
        self._handle = win32.open_directory(self.api_path)
        try:
            self._io_event = win32.create_event()
            self._stop_event = win32.create_event()
        except OSError:
            self._close_handles()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"fspipeline-rdcw {self.root}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Cancel the read in progress and end the thread (blocking: call it in a thread)."""
        self._stopping.set()
        if self._stop_event:
            win32.set_event(self._stop_event)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(STOP_WAIT)
            if thread.is_alive():  # stuck in the kernel: its buffer may still be written
                self.log.warning("reader thread did not stop; leaving it", path=self.root)
                return
        self._close_handles()

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        except Exception as exc:  # a failing call: the source reopens and rescans
            self._hand_over(Chunk(self.root, Outcome.FAILED, error=str(exc)))

    def _read_until_stopped(self) -> None:
        buffer = ctypes.create_string_buffer(self.buffer_size)
        overlapped = win32.OVERLAPPED()
        overlapped.hEvent = self._io_event
        extended = self._start_read(buffer, overlapped)
        try:
            while extended is not None:
                if win32.wait_any([self._io_event, self._stop_event]) != 0:
                    return
                ok, code, count = win32.overlapped_result(self._handle, overlapped, wait=False)
                outcome = classify(ok, code, count, int(overlapped.Internal))
                if outcome is Outcome.ABORTED:
                    extended = None
                    return
                if outcome is Outcome.FAILED:
                    extended = None
                    error = str(win32.error(code, f"reading changes of {self.root}"))
                    self._hand_over(Chunk(self.root, outcome, error=error))
                    return
                data = bytes(buffer.raw[:count]) if outcome is Outcome.DATA else b""
                chunk = Chunk(self.root, outcome, data, extended)
                extended = self._start_read(buffer, overlapped)
                if not self._hand_over(chunk):
                    return
        finally:
            if extended is not None:  # a read is in flight: cancel it and wait until it
                win32.cancel_io(self._handle, overlapped)  # no longer uses the buffer
                win32.overlapped_result(self._handle, overlapped, wait=True)

    def _start_read(
        self, buffer: ctypes.Array[ctypes.c_char], overlapped: win32.OVERLAPPED
    ) -> bool | None:
        """Start the next read; whether it returns extended records, or None if it failed
        (the failure has been handed over)."""
        while True:
            win32.reset_event(self._io_event)
            code = win32.read_changes(
                self._handle,
                buffer,
                recursive=self.recursive,
                overlapped=overlapped,
                extended=self.extended,
            )
            if code == 0:
                return self.extended
            if self.extended and code in EXTENDED_UNSUPPORTED:
                self.extended = False
                self.log.info("no extended change information here; using the basic records",
                              path=self.root, error=code)  # fmt: skip
                continue
            if code == win32.ERROR_NOTIFY_ENUM_DIR:
                if not self._hand_over(Chunk(self.root, Outcome.OVERFLOW)):
                    return None
                continue
            error = str(win32.error(code, f"watching {self.root}"))
            self._hand_over(Chunk(self.root, Outcome.FAILED, error=error))
            return None

    def _hand_over(self, chunk: Chunk) -> bool:
        if self._stopping.is_set():
            return False
        return self.queue.put_from_thread(chunk, self._stopping)

    def _close_handles(self) -> None:
        for name in ("_handle", "_io_event", "_stop_event"):
            handle = getattr(self, name)
            if handle:
                with contextlib.suppress(OSError):
                    win32.close_handle(handle)
                setattr(self, name, 0)
