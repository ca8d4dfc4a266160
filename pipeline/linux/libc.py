"""The C library through ctypes, loaded once, and the errno check every binding shares."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.cache
def libc() -> ctypes.CDLL:
    """The process's C library, with `errno` captured after each call."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def check(result: int, what: str, error: type[OSError], path: bytes | None = None) -> int:
    """`result`, or `error(errno, "what: strerror", path)` when the call returned < 0."""
    if result < 0:
        code = ctypes.get_errno()
        raise error(code, f"{what}: {os.strerror(code)}", os.fsdecode(path) if path else None)
    return result
