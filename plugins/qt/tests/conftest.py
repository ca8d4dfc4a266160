"""Fixtures for the qt plugin's tests: a watched folder beside a spare one, no Qt left running."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fspipeline_qt.runtime import THREAD_NAME, QtRuntime


def qt_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


@pytest.fixture(autouse=True)
def no_qt_left_running() -> Iterator[None]:
    """Fail a test that leaves the Qt thread running: every source must release it."""
    yield
    assert not QtRuntime.running(), "a qt source was not closed"
    assert not qt_threads(), "the Qt thread outlived the last qt source"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """The watched folder (tmp_path/inbox); tmp_path/spare, beside it, is not watched."""
    (tmp_path / "spare").mkdir()
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder
