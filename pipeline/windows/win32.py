"""ctypes bindings to the kernel32 calls the `windows` source makes; no pywin32 needed.

kernel32 is loaded on first use, and only on Windows: importing this module works
everywhere, `kernel32()` raises `NotWindows` elsewhere. Every call that can fail raises
`OSError` carrying the Windows error code (`winerror`).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

# Access, sharing and flags for CreateFileW on a folder.
FILE_LIST_DIRECTORY = 0x0001
FILE_SHARE_ALL = 0x0001 | 0x0002 | 0x0004  # read | write | delete: never block the user
OPEN_EXISTING = 3
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000  # needed to open a folder at all
FILE_FLAG_OVERLAPPED = 0x40000000

# ReadDirectoryChangesW's notify filter: names, sizes and write times; not attributes or
# security (they would come as `modified` records no one could tell apart).
FILE_NOTIFY_CHANGE_FILE_NAME = 0x001
FILE_NOTIFY_CHANGE_DIR_NAME = 0x002
FILE_NOTIFY_CHANGE_SIZE = 0x008
FILE_NOTIFY_CHANGE_LAST_WRITE = 0x010
FILE_NOTIFY_CHANGE_CREATION = 0x040
NOTIFY_FILTER = (
    FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_DIR_NAME | FILE_NOTIFY_CHANGE_SIZE
    | FILE_NOTIFY_CHANGE_LAST_WRITE | FILE_NOTIFY_CHANGE_CREATION
)  # fmt: skip

# READ_DIRECTORY_NOTIFY_INFORMATION_CLASS
READ_DIRECTORY_NOTIFY_INFORMATION = 1
READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION = 2

ERROR_INVALID_FUNCTION = 1
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_PARAMETER = 87
ERROR_NOT_SUPPORTED = 50
ERROR_OPERATION_ABORTED = 995
ERROR_IO_PENDING = 997
ERROR_NOTIFY_ENUM_DIR = 1022
STATUS_NOTIFY_ENUM_DIR = 0x0000010C
"""The raw NTSTATUS of an overflow, as left in OVERLAPPED.Internal (and completion ports)."""

WAIT_OBJECT_0 = 0
WAIT_FAILED = 0xFFFFFFFF
INFINITE = 0xFFFFFFFF
LONG_PATH_CHARS = 32_768

HANDLE = ctypes.c_void_p
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value
DWORD = ctypes.c_uint32
BOOL = ctypes.c_int32


class OVERLAPPED(ctypes.Structure):
    """OVERLAPPED (minwinbase.h); Offset/OffsetHigh stand for the union, unused here."""

    _fields_ = (
        ("Internal", ctypes.c_size_t),  # ULONG_PTR: the NTSTATUS once complete
        ("InternalHigh", ctypes.c_size_t),  # ULONG_PTR: bytes transferred
        ("Offset", DWORD),
        ("OffsetHigh", DWORD),
        ("hEvent", HANDLE),
    )


class NotWindows(OSError):
    """A Win32 call was made on another operating system."""


if sys.platform == "win32":

    def last_error() -> int:
        """The calling thread's last Win32 error code, as saved by ctypes."""
        return ctypes.get_last_error()

    def error(code: int, what: str) -> OSError:
        """An OSError for Win32 error `code`, with Windows' own text for it."""
        failure = ctypes.WinError(code)
        failure.strerror = f"{what}: {failure.strerror}"
        return failure

    def _load() -> Any:
        return ctypes.WinDLL("kernel32", use_last_error=True)

else:

    def last_error() -> int:
        """The calling thread's last Win32 error code (never one off Windows)."""
        return 0

    def error(code: int, what: str) -> OSError:
        """An OSError for Win32 error `code`."""
        return OSError(f"{what}: Windows error {code}")

    def _load() -> Any:
        raise NotWindows(f"kernel32 is only on Windows, not {sys.platform}")


@functools.cache
def kernel32() -> Any:
    """kernel32.dll with the prototypes used here (loaded once); NotWindows elsewhere."""
    dll = _load()
    _declare(dll)
    return dll


def _declare(dll: Any) -> None:
    _prototype(dll, "CreateFileW", HANDLE,
               ctypes.c_wchar_p, DWORD, DWORD, ctypes.c_void_p, DWORD, DWORD, HANDLE)  # fmt: skip
    _prototype(dll, "CloseHandle", BOOL, HANDLE)
    _prototype(dll, "CreateEventW", HANDLE, ctypes.c_void_p, BOOL, BOOL, ctypes.c_wchar_p)
    _prototype(dll, "SetEvent", BOOL, HANDLE)
    _prototype(dll, "ResetEvent", BOOL, HANDLE)
    _prototype(dll, "WaitForMultipleObjects", DWORD,
               DWORD, ctypes.POINTER(HANDLE), BOOL, DWORD)  # fmt: skip
    _prototype(dll, "ReadDirectoryChangesW", BOOL,
               HANDLE, ctypes.c_void_p, DWORD, BOOL, DWORD, ctypes.POINTER(DWORD),
               ctypes.POINTER(OVERLAPPED), ctypes.c_void_p)  # fmt: skip
    if hasattr(dll, "ReadDirectoryChangesExW"):  # Windows 10 1709 and later
        _prototype(dll, "ReadDirectoryChangesExW", BOOL,
                   HANDLE, ctypes.c_void_p, DWORD, BOOL, DWORD, ctypes.POINTER(DWORD),
                   ctypes.POINTER(OVERLAPPED), ctypes.c_void_p, ctypes.c_int)  # fmt: skip
    _prototype(dll, "GetOverlappedResult", BOOL,
               HANDLE, ctypes.POINTER(OVERLAPPED), ctypes.POINTER(DWORD), BOOL)  # fmt: skip
    _prototype(dll, "CancelIoEx", BOOL, HANDLE, ctypes.POINTER(OVERLAPPED))
    _prototype(dll, "GetLongPathNameW", DWORD, ctypes.c_wchar_p, ctypes.c_wchar_p, DWORD)
    _prototype(dll, "GetDriveTypeW", ctypes.c_uint, ctypes.c_wchar_p)


def _prototype(dll: Any, name: str, restype: Any, *argtypes: Any) -> None:
    function = getattr(dll, name)
    function.restype = restype
    function.argtypes = argtypes


def has_extended_read() -> bool:
    """Whether ReadDirectoryChangesExW exists (Windows 10 1709, Server 2019 and later)."""
    return hasattr(kernel32(), "ReadDirectoryChangesExW")


def open_directory(path: str) -> int:
    """A handle for watching folder `path` (`\\\\?\\` form for long paths), for overlapped I/O."""
    handle = kernel32().CreateFileW(
        path,
        FILE_LIST_DIRECTORY,
        FILE_SHARE_ALL,
        None,
        OPEN_EXISTING,
        FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED,
        None,
    )
    if handle is None or handle == INVALID_HANDLE_VALUE:
        raise error(last_error(), f"cannot open {path}")
    return int(handle)


def close_handle(handle: int) -> None:
    kernel32().CloseHandle(handle)


def create_event() -> int:
    """A manual-reset event, not signalled."""
    handle = kernel32().CreateEventW(None, True, False, None)
    if not handle:
        raise error(last_error(), "CreateEventW")
    return int(handle)


def set_event(handle: int) -> None:
    kernel32().SetEvent(handle)


def reset_event(handle: int) -> None:
    kernel32().ResetEvent(handle)


def wait_any(handles: list[int], timeout_ms: int = INFINITE) -> int:
    """The index of the first of `handles` to be signalled (WaitForMultipleObjects)."""
    array = (HANDLE * len(handles))(*handles)
    result = kernel32().WaitForMultipleObjects(len(handles), array, False, timeout_ms)
    if result == WAIT_FAILED:
        raise error(last_error(), "WaitForMultipleObjects")
    return int(result) - WAIT_OBJECT_0


def read_changes(
    handle: int,
    buffer: ctypes.Array[ctypes.c_char],
    *,
    recursive: bool,
    overlapped: OVERLAPPED,
    extended: bool,
) -> int:
    """Start one overlapped ReadDirectoryChanges(Ex)W; 0 when started, else the error code."""
    dll = kernel32()
    if extended:
        ok = dll.ReadDirectoryChangesExW(
            handle, buffer, len(buffer), recursive, NOTIFY_FILTER, None,
            ctypes.byref(overlapped), None, READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION,
        )  # fmt: skip
    else:
        ok = dll.ReadDirectoryChangesW(
            handle, buffer, len(buffer), recursive, NOTIFY_FILTER, None,
            ctypes.byref(overlapped), None,
        )  # fmt: skip
    if ok:
        return 0
    code = last_error()
    return 0 if code == ERROR_IO_PENDING else code


def overlapped_result(handle: int, overlapped: OVERLAPPED, *, wait: bool) -> tuple[bool, int, int]:
    """(succeeded, error code, bytes transferred) of a finished overlapped call."""
    count = DWORD(0)
    call = kernel32().GetOverlappedResult
    ok = bool(call(handle, ctypes.byref(overlapped), ctypes.byref(count), wait))
    return ok, 0 if ok else last_error(), int(count.value)


def cancel_io(handle: int, overlapped: OVERLAPPED) -> None:
    kernel32().CancelIoEx(handle, ctypes.byref(overlapped))


def long_path_name(path: str) -> str | None:
    """GetLongPathNameW: `path` with every 8.3 alias expanded; None if that fails."""
    out = ctypes.create_unicode_buffer(LONG_PATH_CHARS)
    length = kernel32().GetLongPathNameW(path, out, LONG_PATH_CHARS)
    if length == 0 or length >= LONG_PATH_CHARS:
        return None
    return out.value


def drive_type(root: str) -> int:
    """GetDriveTypeW of a drive root like `D:\\` (4: a network drive)."""
    return int(kernel32().GetDriveTypeW(root))
