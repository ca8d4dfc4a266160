"""fanotify(7) through ctypes: the calls, the flags, and a pure decoder of event buffers.

Only what the `fanotify` source uses: a notification group that reports file handles
(`FAN_REPORT_DFID_NAME_TARGET`), marks on a whole file system or mount, and the two
handle calls (`name_to_handle_at`, `open_by_handle_at`) that turn a handle into a path.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
from collections.abc import Iterator
from typing import Final, NamedTuple

from pipeline.linux.libc import check, libc

# -- event bits (fanotify_mark mask, fanotify_event_metadata.mask) -----------------------
FAN_ACCESS: Final = 0x00000001
FAN_MODIFY: Final = 0x00000002
FAN_ATTRIB: Final = 0x00000004
FAN_CLOSE_WRITE: Final = 0x00000008
FAN_CLOSE_NOWRITE: Final = 0x00000010
FAN_OPEN: Final = 0x00000020
FAN_MOVED_FROM: Final = 0x00000040
FAN_MOVED_TO: Final = 0x00000080
FAN_CREATE: Final = 0x00000100
FAN_DELETE: Final = 0x00000200
FAN_DELETE_SELF: Final = 0x00000400
FAN_MOVE_SELF: Final = 0x00000800
FAN_Q_OVERFLOW: Final = 0x00004000
FAN_FS_ERROR: Final = 0x00008000
FAN_EVENT_ON_CHILD: Final = 0x08000000
FAN_RENAME: Final = 0x10000000
FAN_ONDIR: Final = 0x40000000

MOUNT_MARK_EVENTS: Final = FAN_ACCESS | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE | FAN_OPEN
"""Events a mount mark accepts; the others (create, delete, rename, attrib) need a
file-system mark (EINVAL otherwise)."""

# -- fanotify_init flags ----------------------------------------------------------------
FAN_CLOEXEC: Final = 0x00000001
FAN_NONBLOCK: Final = 0x00000002
FAN_CLASS_NOTIF: Final = 0x00000000
FAN_UNLIMITED_QUEUE: Final = 0x00000010
FAN_REPORT_FID: Final = 0x00000200
FAN_REPORT_DIR_FID: Final = 0x00000400
FAN_REPORT_NAME: Final = 0x00000800
FAN_REPORT_TARGET_FID: Final = 0x00001000
FAN_REPORT_DFID_NAME: Final = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
FAN_REPORT_DFID_NAME_TARGET: Final = FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID

# -- fanotify_mark flags ----------------------------------------------------------------
FAN_MARK_ADD: Final = 0x00000001
FAN_MARK_REMOVE: Final = 0x00000002
FAN_MARK_DONT_FOLLOW: Final = 0x00000004
FAN_MARK_ONLYDIR: Final = 0x00000008
FAN_MARK_MOUNT: Final = 0x00000010
FAN_MARK_IGNORED_SURV_MODIFY: Final = 0x00000040
FAN_MARK_FILESYSTEM: Final = 0x00000100
FAN_MARK_IGNORE: Final = 0x00000400
FAN_MARK_IGNORE_SURV: Final = FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY
"""An ignore mask that, unlike the legacy one, honours FAN_ONDIR: without FAN_ONDIR it
drops the events of files only, so a group can take some event types for folders alone."""

# -- event records ----------------------------------------------------------------------
FANOTIFY_METADATA_VERSION: Final = 3
FAN_NOFD: Final = -1
INFO_FID: Final = 1
INFO_DFID_NAME: Final = 2
INFO_DFID: Final = 3
INFO_OLD_DFID_NAME: Final = 10
INFO_NEW_DFID_NAME: Final = 12

METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
METADATA_SIZE: Final = METADATA.size  # 24
INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
INFO_HEADER_SIZE: Final = INFO_HEADER.size  # 4
FSID_SIZE: Final = 8  # __kernel_fsid_t: two 32-bit ints
HANDLE_HEADER = struct.Struct("=Ii")  # struct file_handle: handle_bytes, handle_type
HANDLE_HEADER_SIZE: Final = HANDLE_HEADER.size  # 8
FID_HEADER_SIZE: Final = INFO_HEADER_SIZE + FSID_SIZE + HANDLE_HEADER_SIZE  # 20
MAX_HANDLE_SZ: Final = 128
READ_SIZE: Final = 1 << 18  # 256 KiB: thousands of events per read() call
AT_FDCWD: Final = -100


class FanEvent(NamedTuple):
    """One decoded `fanotify_event_metadata` with its info records.

    A handle key is the bytes of one `fanotify_event_info_fid` after its header: the
    8-byte fsid, then the `struct file_handle` (handle_bytes, handle_type, f_handle). It
    is hashable, equal for equal objects, and `handle_of(key)` is what open_by_handle_at
    takes. For `FAN_RENAME`, `dir`/`name` are the old place and `dir2`/`name2` the new.
    """

    mask: int
    fd: int
    pid: int
    dir: bytes | None = None
    """Key of the folder the event happened in (for an event on a folder itself: that folder)."""
    name: bytes = b""
    """Entry name in `dir`; `.` for an event on the folder itself; empty when not reported."""
    obj: bytes | None = None
    """Key of the object itself (the created, deleted or renamed entry), when reported."""
    dir2: bytes | None = None
    name2: bytes = b""


class FanotifyError(OSError):
    """A fanotify or file-handle call failed; `errno` says why."""


def decode(buffer: bytes) -> Iterator[FanEvent]:
    """Yield each event of a buffer read from a fanotify descriptor, in order.

    Never reads past `buffer` and never raises on bad input: a truncated or impossible
    event length ends decoding; an event of another metadata version is skipped whole;
    an info record that is truncated, oversized or of an unknown type is ignored (with
    the rest of that event's records when its length cannot be trusted).
    """
    unpack_meta = METADATA.unpack_from
    unpack_info = INFO_HEADER.unpack_from
    unpack_handle = HANDLE_HEADER.unpack_from
    end = len(buffer)
    offset = 0
    while end - offset >= METADATA_SIZE:
        event_len, version, _, meta_len, mask, fd, pid = unpack_meta(buffer, offset)
        stop = offset + event_len
        if event_len < METADATA_SIZE or stop > end:
            return  # garbage or a partial event: nothing after it can be trusted
        if version != FANOTIFY_METADATA_VERSION or not METADATA_SIZE <= meta_len <= event_len:
            offset = stop
            continue
        folder: bytes | None = None
        name = b""
        obj: bytes | None = None
        folder2: bytes | None = None
        name2 = b""
        pos = offset + meta_len
        while stop - pos >= INFO_HEADER_SIZE:
            info_type, _, info_len = unpack_info(buffer, pos)
            info_end = pos + info_len
            if info_len < INFO_HEADER_SIZE or info_end > stop:
                break
            if info_len >= FID_HEADER_SIZE:
                handle_bytes = unpack_handle(buffer, pos + INFO_HEADER_SIZE + FSID_SIZE)[0]
                key_end = pos + FID_HEADER_SIZE + handle_bytes
                if handle_bytes <= MAX_HANDLE_SZ and key_end <= info_end:
                    key = buffer[pos + INFO_HEADER_SIZE : key_end]
                    if info_type == INFO_FID:
                        obj = key
                    elif info_type in (INFO_DFID_NAME, INFO_OLD_DFID_NAME):
                        folder, name = key, _name(buffer, key_end, info_end)
                    elif info_type == INFO_DFID:
                        folder = key
                    elif info_type == INFO_NEW_DFID_NAME:
                        folder2, name2 = key, _name(buffer, key_end, info_end)
            pos = info_end
        yield FanEvent(mask, fd, pid, folder, name, obj, folder2, name2)
        offset = stop


def _name(buffer: bytes, start: int, end: int) -> bytes:
    """The NUL-terminated name in buffer[start:end] (padding follows the NUL)."""
    nul = buffer.find(b"\0", start, end)
    return buffer[start : nul if nul >= 0 else end]


def fsid_of_key(key: bytes) -> bytes:
    """The 8 fsid bytes of a handle key, as `fsid_bytes` gives them for a path."""
    return key[:FSID_SIZE]


def handle_of(key: bytes) -> bytes:
    """The `struct file_handle` part of a handle key."""
    return key[FSID_SIZE:]


def fsid_bytes(fsid: int) -> bytes:
    """`os.statvfs(path).f_fsid` as the 8 bytes an event's fsid holds (val[0], val[1])."""
    return struct.pack("=II", fsid & 0xFFFFFFFF, (fsid >> 32) & 0xFFFFFFFF)


# -- system calls -----------------------------------------------------------------------


@functools.cache
def _get_lib() -> ctypes.CDLL:
    lib = libc()
    lib.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    lib.fanotify_init.restype = ctypes.c_int
    lib.fanotify_mark.argtypes = [
        ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p,
    ]  # fmt: skip
    lib.fanotify_mark.restype = ctypes.c_int
    lib.name_to_handle_at.argtypes = [
        ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
    ]  # fmt: skip
    lib.name_to_handle_at.restype = ctypes.c_int
    lib.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.open_by_handle_at.restype = ctypes.c_int
    return lib


def _check(result: int, what: str, path: bytes | None = None) -> int:
    return check(result, what, FanotifyError, path)


def init(flags: int, event_f_flags: int = os.O_RDONLY | os.O_CLOEXEC) -> int:
    """Return a new fanotify descriptor; FAN_CLOEXEC and FAN_NONBLOCK are always added."""
    fd = _get_lib().fanotify_init(flags | FAN_CLOEXEC | FAN_NONBLOCK, event_f_flags)
    return _check(fd, "fanotify_init")


def mark(fd: int, flags: int, mask: int, path: bytes) -> None:
    """Add, change or remove the mark on `path` (its inode, mount or file system)."""
    _check(_get_lib().fanotify_mark(fd, flags, mask, AT_FDCWD, path), "fanotify_mark", path)


def name_to_handle(path: bytes) -> bytes:
    """The `struct file_handle` of `path` (not following a final symlink), as a fanotify
    event reports it."""
    buffer = ctypes.create_string_buffer(HANDLE_HEADER_SIZE + MAX_HANDLE_SZ)
    HANDLE_HEADER.pack_into(buffer, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    result = _get_lib().name_to_handle_at(AT_FDCWD, path, buffer, ctypes.byref(mount_id), 0)
    _check(result, "name_to_handle_at", path)
    handle_bytes = HANDLE_HEADER.unpack_from(buffer, 0)[0]
    return buffer.raw[: HANDLE_HEADER_SIZE + handle_bytes]


def open_by_handle(mount_fd: int, handle: bytes, flags: int = os.O_PATH | os.O_CLOEXEC) -> int:
    """Open the object a `struct file_handle` names (ESTALE once it is deleted).

    Needs CAP_DAC_READ_SEARCH. `mount_fd` is any descriptor on the mount to resolve in.
    """
    return _check(_get_lib().open_by_handle_at(mount_fd, handle, flags), "open_by_handle_at")


def read_events(fd: int) -> bytes:
    """One read of pending events, or b"" if none are pending."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return b""
