"""The process's one Qt event loop: a QCoreApplication in a thread of its own, shared.

Qt objects belong to the thread that made them, and a QFileSystemWatcher only reports
while an event loop runs in that thread. So every Qt object the `qt` sources use lives
in one dedicated thread, which runs a QEventLoop; other threads hand it work with
`QtRuntime.submit` and get a `concurrent.futures.Future` back.

A process may have only one QCoreApplication. The first source to start creates it in
that thread (unless the host process already has one, which is then used and left
alone); the last source to stop quits the loop, deletes the application in its own
thread and joins the thread. A later source starts a fresh thread and application.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
import structlog
from pipeline import SourceError
from PySide6 import QtCore

T = TypeVar("T")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
THREAD_NAME = "fspipeline-qt"

log = structlog.get_logger("fspipeline_qt")


def _forward_qt_message(
    kind: QtCore.QtMsgType, _context: QtCore.QMessageLogContext, message: str
) -> None:
    # Qt writes its warnings (a path it could not watch, an application made outside the
    # main thread) to stderr by default; the source logs what matters in its own words.
    log.debug("qt says", qt_level=kind.name, message=message)


class QtRuntime:
    """A QCoreApplication and its event loop in a thread of their own, shared by every
    `qt` source of the process (`acquire`/`release` count them)."""

    _lock = threading.Lock()
    _current: QtRuntime | None = None
    _users = 0
    _exit_hook = False

    def __init__(self) -> None:
        self._loop: QtCore.QEventLoop | None = None
        self._home: QtCore.QObject | None = None
        """An object of the Qt thread: work queued to it runs there."""
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(cls) -> QtRuntime:
        """The running runtime, started if no source uses it yet. Blocks while it starts."""
        with cls._lock:
            if cls._current is None:
                runtime = cls()
                runtime._start()
                cls._current = runtime
                if not cls._exit_hook:
                    atexit.register(cls._stop_at_exit)
                    cls._exit_hook = True
            cls._users += 1
            return cls._current

    def release(self) -> None:
        """One source is done with it; the last one stops it. Blocks while it stops."""
        with QtRuntime._lock:
            QtRuntime._users -= 1
            if QtRuntime._users > 0:
                return
            QtRuntime._current = None
            self._stop()

    @classmethod
    def running(cls) -> bool:
        """Whether a Qt thread is running (for tests and diagnostics)."""
        return cls._current is not None

    @classmethod
    def _stop_at_exit(cls) -> None:
        # A source the engine never closed: stop Qt before the interpreter tears down the
        # objects it wraps, or the application is destroyed outside its thread (a crash).
        with cls._lock:
            runtime, cls._current, cls._users = cls._current, None, 0
            if runtime is not None:
                runtime._stop()

    def submit(self, work: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `work()` in the Qt thread, after the work submitted before it."""
        home = self._home
        assert home is not None, "the Qt runtime is not running"
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = work()
            except BaseException as exc:  # handed to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(result)

        # A zero-time single shot with a receiver is queued to the receiver's thread, in
        # order. (Not a Python-emitted signal: PySide6 6.12's SignalInstance.emit and
        # .disconnect release a reference to True they do not own, and enough of them
        # crash the interpreter.)
        QtCore.QTimer.singleShot(0, home, job)
        return future

    # -- the thread ------------------------------------------------------------------

    def _start(self) -> None:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(target=self._main, args=(ready,), name=THREAD_NAME, daemon=True)
        thread.start()
        try:
            ready.result(START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise SourceError(f"Qt did not start within {START_TIMEOUT:.0f}s") from None
        except Exception as exc:
            thread.join(STOP_TIMEOUT)
            raise SourceError(
                f"Qt cannot start: {exc}. Check that PySide6-Essentials is installed "
                "with its Qt libraries (pip install --force-reinstall PySide6-Essentials)"
            ) from exc
        self._thread = thread

    def _stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self.submit(loop.quit)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("the Qt thread did not stop in time", waited=STOP_TIMEOUT)
        self._thread = None

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display is ever needed
            QtCore.qInstallMessageHandler(_forward_qt_message)
            app = QtCore.QCoreApplication.instance()
            owned = app is None
            if app is None:
                app = QtCore.QCoreApplication([])
            loop = QtCore.QEventLoop()
            home = QtCore.QObject()
        except Exception as exc:
            ready.set_exception(exc)
            return
        self._loop, self._home = loop, home
        ready.set_result(None)
        try:
            loop.exec()
        finally:
            self._home = self._loop = None
            _delete(home, loop)
            if owned:
                _delete(app)  # in its own thread: the next runtime may make a new one
            QtCore.qInstallMessageHandler(None)


def _delete(*objects: Any) -> None:
    for qt_object in objects:
        if shiboken6.isValid(qt_object):
            shiboken6.delete(qt_object)
