"""Reads a live NTFS change journal through Win32 (ctypes; kernel32 loaded on first use).

The volume (`\\\\.\\C:`) is opened with CreateFileW, the journal queried with
FSCTL_QUERY_USN_JOURNAL and read with FSCTL_READ_USN_JOURNAL; a parent folder the
journal has not described is found with OpenFileById + GetFinalPathNameByHandleW.
Reads never block (BytesToWaitFor 0): the caller polls, so a read in a worker thread
always returns promptly and a shutdown never waits on the kernel.

Structures are packed with explicit little-endian `struct` formats, and those pure
helpers are tested on every OS. This module keeps its own few bindings (no pywin32).
"""

from __future__ import annotations

import ctypes
import functools
import ntpath
import struct
from typing import Any

from pipeline.windows.usn_state import JOURNAL_DATA, JournalInfo

GENERIC_READ = 0x80000000
FILE_READ_ATTRIBUTES = 0x00000080
SHARE_ALL = 0x1 | 0x2 | 0x4  # FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
OPEN_EXISTING = 3
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
FSCTL_QUERY_USN_JOURNAL = 0x000900F4
FSCTL_READ_USN_JOURNAL = 0x000900BB
FILE_ID_TYPE = 0
EXTENDED_FILE_ID_TYPE = 2

ERROR_HANDLE_EOF = 38
ERROR_ACCESS_DENIED = 5
ERROR_JOURNAL_DELETE_IN_PROGRESS = 1178
ERROR_JOURNAL_NOT_ACTIVE = 1179
ERROR_JOURNAL_ENTRY_DELETED = 1181

READ_REQUEST = struct.Struct("<qIIQQQHH4x")
"""READ_USN_JOURNAL_DATA_V1: StartUsn, ReasonMask, ReturnOnlyOnClose, Timeout,
BytesToWaitFor, UsnJournalID, MinMajorVersion, MaxMajorVersion (48 bytes with padding)."""
FILE_ID_DESCRIPTOR = struct.Struct("<II16s")
"""dwSize, Type, then the FileId (8 bytes) or ExtendedFileId (16) union."""
ALL_REASONS = 0xFFFFFFFF
QUERY_SIZE = 80  # USN_JOURNAL_DATA_V2, the largest form


class WindowsApiError(OSError):
    """A Win32 call failed; `code` is its GetLastError() value."""

    def __init__(self, code: int, what: str) -> None:
        format_error = getattr(ctypes, "FormatError", None)
        text = format_error(code).strip() if format_error is not None else "failed"
        super().__init__(f"{what}: {text} (Windows error {code})")
        self.code = code


def read_request(
    start_usn: int, journal_id: int, *, only_on_close: bool, max_version: int = 3
) -> bytes:
    """The input of FSCTL_READ_USN_JOURNAL: every reason, no waiting, V2 to `max_version`."""
    return READ_REQUEST.pack(
        start_usn, ALL_REASONS, int(only_on_close), 0, 0, journal_id, 2, max_version
    )


def split_read_output(data: bytes) -> tuple[int, bytes]:
    """FSCTL_READ_USN_JOURNAL's output: the USN to read from next, and the records."""
    if len(data) < 8:
        raise ValueError(f"a journal read returned {len(data)} bytes; it always starts with 8")
    return struct.unpack_from("<q", data)[0], data[8:]


def file_id_descriptor(ref: int) -> bytes:
    """FILE_ID_DESCRIPTOR for OpenFileById: a 64-bit FileId, or a 128-bit ExtendedFileId."""
    kind = FILE_ID_TYPE if ref < 1 << 64 else EXTENDED_FILE_ID_TYPE
    return FILE_ID_DESCRIPTOR.pack(FILE_ID_DESCRIPTOR.size, kind, ref.to_bytes(16, "little"))


def dos_path(final: str) -> str:
    """A path from GetFinalPathNameByHandleW without its `\\\\?\\` (or `\\\\?\\UNC`) prefix."""
    if final.startswith("\\\\?\\UNC\\"):
        return "\\\\" + final[len("\\\\?\\UNC\\") :]
    return final.removeprefix("\\\\?\\")


def volume_of(path: str) -> str:
    """The drive of a Windows path, upper-case: `C:`."""
    return ntpath.splitdrive(path)[0].upper()


@functools.cache
def _kernel32() -> Any:
    from ctypes import POINTER, c_int, c_uint32, c_void_p, c_wchar_p

    windll = getattr(ctypes, "WinDLL")  # noqa: B009  (absent, and untyped, off Windows)
    k32 = windll("kernel32", use_last_error=True)
    k32.CreateFileW.argtypes = [
        c_wchar_p,
        c_uint32,
        c_uint32,
        c_void_p,
        c_uint32,
        c_uint32,
        c_void_p,
    ]
    k32.CreateFileW.restype = c_void_p
    k32.DeviceIoControl.argtypes = [
        c_void_p,
        c_uint32,
        c_void_p,
        c_uint32,
        c_void_p,
        c_uint32,
        POINTER(c_uint32),
        c_void_p,
    ]
    k32.DeviceIoControl.restype = c_int
    k32.OpenFileById.argtypes = [c_void_p, c_void_p, c_uint32, c_uint32, c_void_p, c_uint32]
    k32.OpenFileById.restype = c_void_p
    k32.GetFinalPathNameByHandleW.argtypes = [c_void_p, c_wchar_p, c_uint32, c_uint32]
    k32.GetFinalPathNameByHandleW.restype = c_uint32
    k32.CloseHandle.argtypes = [c_void_p]
    k32.CloseHandle.restype = c_int
    return k32


_INVALID_HANDLE = ctypes.c_void_p(-1).value


def _last_error() -> int:
    get_last_error = getattr(ctypes, "get_last_error")  # noqa: B009  (Windows only)
    return int(get_last_error())


class VolumeJournal:
    """The change journal of one NTFS volume; every method blocks briefly (use a thread)."""

    def __init__(self, volume: str) -> None:
        self.volume = volume.upper()
        self._handle: int | None = None

    def open(self) -> None:
        k32 = _kernel32()
        handle = k32.CreateFileW(
            f"\\\\.\\{self.volume}", GENERIC_READ, SHARE_ALL, None, OPEN_EXISTING, 0, None
        )
        if handle in (None, _INVALID_HANDLE):
            raise WindowsApiError(_last_error(), f"cannot open the volume {self.volume}")
        self._handle = handle

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            _kernel32().CloseHandle(handle)

    def _control(self, code: int, request: bytes | None, size: int, what: str) -> bytes:
        if self._handle is None:
            raise ValueError(f"the volume {self.volume} is not open")
        out = ctypes.create_string_buffer(size)
        returned = ctypes.c_uint32(0)
        source = ctypes.create_string_buffer(request, len(request)) if request else None
        ok = _kernel32().DeviceIoControl(
            self._handle,
            code,
            source,
            len(request) if request else 0,
            out,
            size,
            ctypes.byref(returned),
            None,
        )
        if not ok:
            raise WindowsApiError(_last_error(), what)
        return out.raw[: returned.value]

    def query(self) -> JournalInfo:
        """FSCTL_QUERY_USN_JOURNAL: the journal's id and range of USNs."""
        data = self._control(
            FSCTL_QUERY_USN_JOURNAL, None, QUERY_SIZE, f"cannot query the journal of {self.volume}"
        )
        return JournalInfo.decode(data[: JOURNAL_DATA.size])

    def read(
        self, start_usn: int, journal_id: int, *, only_on_close: bool, buffer_size: int
    ) -> tuple[int, bytes]:
        """FSCTL_READ_USN_JOURNAL from `start_usn`: (next USN to read from, record bytes)."""
        request = read_request(start_usn, journal_id, only_on_close=only_on_close)
        try:
            data = self._control(
                FSCTL_READ_USN_JOURNAL,
                request,
                buffer_size,
                f"cannot read the journal of {self.volume}",
            )
        except WindowsApiError as exc:
            if exc.code == ERROR_HANDLE_EOF:  # nothing past `start_usn` yet
                return start_usn, b""
            raise
        return split_read_output(data)

    def path_of(self, ref: int) -> str | None:
        """The current full path of the file or folder `ref` (None if it is gone)."""
        if self._handle is None:
            return None
        k32 = _kernel32()
        descriptor = ctypes.create_string_buffer(file_id_descriptor(ref), FILE_ID_DESCRIPTOR.size)
        handle = k32.OpenFileById(
            self._handle, descriptor, FILE_READ_ATTRIBUTES, SHARE_ALL, None,
            FILE_FLAG_BACKUP_SEMANTICS,
        )  # fmt: skip
        if handle in (None, _INVALID_HANDLE):
            return None
        try:
            size = 512
            while True:
                buffer = ctypes.create_unicode_buffer(size)
                length = int(k32.GetFinalPathNameByHandleW(handle, buffer, size, 0))
                if length == 0:
                    return None
                if length < size:
                    return dos_path(buffer.value)
                size = length + 1
        finally:
            k32.CloseHandle(handle)
