"""Completions of ReadDirectoryChangesW reads, and the hand-off from reader threads to the
loop (pipeline/windows/rdcw_reader.py)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from pipeline.windows import win32
from pipeline.windows.rdcw_reader import Chunk, ChunkQueue, Outcome, classify


def test_the_three_forms_of_overflow_all_mean_rescan() -> None:
    # 1. GetOverlappedResult fails with ERROR_NOTIFY_ENUM_DIR (1022), 0 bytes.
    assert classify(False, win32.ERROR_NOTIFY_ENUM_DIR, 0, 0) is Outcome.OVERFLOW
    # 2. It succeeds with 0 bytes (seen on Windows 11).
    assert classify(True, 0, 0, 0) is Outcome.OVERFLOW
    # 3. The raw NTSTATUS 0x10C in OVERLAPPED.Internal, whatever else is said.
    assert classify(True, 0, 0, win32.STATUS_NOTIFY_ENUM_DIR) is Outcome.OVERFLOW
    assert classify(False, 0, 0, 0x10C) is Outcome.OVERFLOW


def test_data_cancellation_and_failures() -> None:
    assert classify(True, 0, 4096, 0) is Outcome.DATA
    assert classify(False, win32.ERROR_OPERATION_ABORTED, 0, 0xC0000120) is Outcome.ABORTED
    assert classify(False, win32.ERROR_ACCESS_DENIED, 0, 0xC0000056) is Outcome.FAILED
    assert classify(False, 64, 0, 0) is Outcome.FAILED  # ERROR_NETNAME_DELETED: share gone


def test_kernel32_is_loaded_only_on_windows() -> None:
    if sys.platform == "win32":
        assert win32.kernel32() is win32.kernel32()  # loaded once, prototypes declared
        assert "opening" in str(win32.error(5, "opening"))
        return
    with pytest.raises(win32.NotWindows, match="only on Windows"):
        win32.kernel32()
    assert win32.last_error() == 0
    assert "Windows error 5" in str(win32.error(5, "opening"))


def test_a_full_queue_holds_the_reader_thread_back_until_there_is_room() -> None:
    asyncio.run(_full_queue())


async def _full_queue() -> None:
    chunks = ChunkQueue(2)
    stopping = threading.Event()
    handed: list[bool] = []

    def reader() -> None:
        for index in range(4):
            handed.append(chunks.put_from_thread(Chunk(f"r{index}", Outcome.OVERFLOW), stopping))

    thread = threading.Thread(target=reader)
    thread.start()
    await asyncio.sleep(0.3)
    assert len(handed) == 2 and chunks.queue.qsize() == 2  # the third waits for room
    got = [(await chunks.queue.get()).root for _ in range(4)]
    await asyncio.to_thread(thread.join, 5)
    assert got == ["r0", "r1", "r2", "r3"] and handed == [True] * 4


def test_stopping_releases_a_reader_thread_waiting_for_room() -> None:
    asyncio.run(_stop_while_full())


async def _stop_while_full() -> None:
    chunks = ChunkQueue(1)
    stopping = threading.Event()
    chunks.queue.put_nowait(Chunk("full", Outcome.OVERFLOW))
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(chunks.put_from_thread(Chunk("r", Outcome.DATA), stopping))
    )
    thread.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()
    stopping.set()
    await asyncio.to_thread(thread.join, 5)
    assert result == [False] and time.monotonic() - started < 2
    assert chunks.queue.qsize() == 1  # the refused chunk was not added
