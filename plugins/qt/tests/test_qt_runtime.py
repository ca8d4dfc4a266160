"""The shared Qt thread: one QCoreApplication, work run there in order, clean stops."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from pathlib import Path

import pytest
from PySide6 import QtCore
from structlog.testing import capture_logs

from conftest import qt_threads
from fspipeline_qt.runtime import THREAD_NAME, QtRuntime
from fspipeline_qt.watcher import QtWatcher

pytestmark = pytest.mark.integration


def test_work_runs_in_the_qt_thread_in_order_and_errors_come_back() -> None:
    runtime = QtRuntime.acquire()
    try:
        seen: list[tuple[int, str]] = []

        def note(i: int) -> None:
            seen.append((i, threading.current_thread().name))

        futures = [runtime.submit(functools.partial(note, i)) for i in range(100)]
        for future in futures:
            future.result(5)
        assert seen == [(i, THREAD_NAME) for i in range(100)]
        app = runtime.submit(QtCore.QCoreApplication.instance).result(5)
        assert app is not None
        failing = runtime.submit(lambda: 1 // 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(5)
    finally:
        runtime.release()


def test_sources_share_one_thread_and_the_last_release_stops_it() -> None:
    first = QtRuntime.acquire()
    second = QtRuntime.acquire()
    assert first is second
    assert len(qt_threads()) == 1
    first.release()
    assert len(qt_threads()) == 1  # still in use
    second.release()
    assert not qt_threads()
    again = QtRuntime.acquire()  # a fresh thread, a fresh application
    assert again is not first
    assert again.submit(lambda: threading.current_thread().name).result(5) == THREAD_NAME
    again.release()


def test_qt_needs_no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    runtime = QtRuntime.acquire()
    runtime.release()
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"


def test_much_work_leaves_the_interpreter_sound(tmp_path: Path) -> None:
    # PySide6 6.12's SignalInstance.emit/.disconnect drop a reference to True on every
    # call; the runtime and the watcher must not use them, or a long run crashes.
    before = sys.getrefcount(True)

    async def scenario() -> None:
        runtime = QtRuntime.acquire()
        try:
            seen: list[str] = []
            watcher = await QtWatcher.create(runtime, lambda path, folder: seen.append(path))
            assert await watcher.watch([str(tmp_path)]) == []
            for i in range(300):
                (tmp_path / f"f{i}").write_text("x")
                await watcher.watch([str(tmp_path / f"f{i}")], again=True)
            await watcher.close()
            assert seen
        finally:
            await asyncio.to_thread(runtime.release)

    asyncio.run(scenario())
    assert sys.getrefcount(True) > before - 100


def test_qt_messages_go_to_the_log_not_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    runtime = QtRuntime.acquire()
    try:
        with capture_logs() as logs:
            watcher = runtime.submit(QtCore.QFileSystemWatcher).result(5)
            runtime.submit(lambda: watcher.addPaths([])).result(5)  # Qt warns: empty list
            runtime.submit(watcher.deleteLater).result(5)
    finally:
        runtime.release()
    said = [e for e in logs if e["event"] == "qt says"]
    assert [(e["log_level"], e["message"]) for e in said] == [
        ("debug", "QFileSystemWatcher::addPaths: list is empty")
    ]
    assert "list is empty" not in capfd.readouterr().err
