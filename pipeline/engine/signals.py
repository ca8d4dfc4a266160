"""Signal handlers on the event loop, on POSIX and on Windows alike."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable


def on_signal(signum: int, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the running loop when `signum` arrives; returns the undo.

    POSIX: the loop's own handler. Windows has no `add_signal_handler`: a plain
    `signal.signal` handler hands the call to the loop thread-safely.
    """
    loop = asyncio.get_running_loop()
    if sys.platform == "win32":
        previous = signal.signal(signum, lambda *_: loop.call_soon_threadsafe(callback))

        def restore() -> None:
            signal.signal(signum, previous)

        return restore
    loop.add_signal_handler(signum, callback)

    def remove() -> None:
        loop.remove_signal_handler(signum)

    return remove
