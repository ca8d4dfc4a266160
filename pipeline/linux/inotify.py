"""inotify(7) through ctypes: the three system calls, the flags, and the event decoder."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterator
from typing import Final

from pipeline.linux.libc import check, libc

IN_ACCESS: Final = 0x00000001
IN_MODIFY: Final = 0x00000002
IN_ATTRIB: Final = 0x00000004
IN_CLOSE_WRITE: Final = 0x00000008
IN_CLOSE_NOWRITE: Final = 0x00000010
IN_OPEN: Final = 0x00000020
IN_MOVED_FROM: Final = 0x00000040
IN_MOVED_TO: Final = 0x00000080
IN_CREATE: Final = 0x00000100
IN_DELETE: Final = 0x00000200
IN_DELETE_SELF: Final = 0x00000400
IN_MOVE_SELF: Final = 0x00000800
IN_UNMOUNT: Final = 0x00002000
IN_Q_OVERFLOW: Final = 0x00004000
IN_IGNORED: Final = 0x00008000
IN_ONLYDIR: Final = 0x01000000
IN_DONT_FOLLOW: Final = 0x02000000
IN_EXCL_UNLINK: Final = 0x04000000
IN_MASK_ADD: Final = 0x20000000
IN_ISDIR: Final = 0x40000000

IN_CLOEXEC: Final = 0o2000000
IN_NONBLOCK: Final = 0o4000

HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
HEADER_SIZE: Final = HEADER.size
NAME_MAX: Final = 255
READ_SIZE: Final = 1 << 18  # 256 KiB: thousands of events per read() call


class InotifyError(OSError):
    """An inotify call failed; `errno` says why."""


def _get_lib() -> ctypes.CDLL:
    # No argtypes: ctypes passes int and bytes natively, and a call costs half as much
    # (it matters: start-up adds one watch per folder). Every argument here is an int or
    # bytes, and every result an int.
    return libc()


def _check(result: int, what: str, path: bytes | None = None) -> int:
    return check(result, what, InotifyError, path)


def init() -> int:
    """Return a new non-blocking, close-on-exec inotify file descriptor."""
    return _check(_get_lib().inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")


def add_watch(fd: int, path: bytes, mask: int) -> int:
    """Watch `path`; return its watch descriptor (the same one again for the same inode)."""
    return _check(_get_lib().inotify_add_watch(fd, path, mask), "inotify_add_watch", path)


def watcher(fd: int) -> Callable[[bytes, int], int]:
    """A fast `add_watch` bound to `fd` for walks: returns the watch descriptor, or
    `-errno` on failure, instead of raising."""
    call = _get_lib().inotify_add_watch
    get_errno = ctypes.get_errno

    def add(path: bytes, mask: int) -> int:
        wd: int = call(fd, path, mask)
        return wd if wd >= 0 else -get_errno()

    return add


def rm_watch(fd: int, wd: int) -> None:
    """Stop watching `wd`; an already gone watch is not an error."""
    if _get_lib().inotify_rm_watch(fd, wd) < 0 and ctypes.get_errno() != errno.EINVAL:
        code = ctypes.get_errno()
        raise InotifyError(code, f"inotify_rm_watch: {os.strerror(code)}")


Record = tuple[int, int, int, bytes]
"""One `struct inotify_event`: (wd, mask, cookie, name); name is b"" for the watch itself."""


def decode(buffer: bytes) -> Iterator[Record]:
    """Yield (wd, mask, cookie, name) for each `struct inotify_event` in `buffer`.

    A truncated trailing record is ignored rather than read past the buffer.
    """
    unpack = HEADER.unpack_from
    end = len(buffer)
    offset = 0
    while offset + HEADER_SIZE <= end:
        wd, mask, cookie, length = unpack(buffer, offset)
        start = offset + HEADER_SIZE
        offset = start + length
        if offset > end:
            return
        name = buffer[start:offset]
        if length:
            name = name.split(b"\0", 1)[0]
        yield wd, mask, cookie, name


def decode_all(buffer: bytes) -> list[Record]:
    """`decode` into a list in one go (no generator: it is the hot path)."""
    unpack = HEADER.unpack_from
    end = len(buffer)
    offset = 0
    records: list[Record] = []
    append = records.append
    while offset + HEADER_SIZE <= end:
        wd, mask, cookie, length = unpack(buffer, offset)
        start = offset + HEADER_SIZE
        offset = start + length
        if offset > end:
            break
        append((wd, mask, cookie, buffer[start:offset].split(b"\0", 1)[0] if length else b""))
    return records


def read_events(fd: int) -> bytes:
    """One read of pending events, or b"" if none are pending."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return b""
