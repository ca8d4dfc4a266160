"""Windows path forms for the `windows` source: `\\\\?\\` long paths, 8.3 short names,
network shares, and the names in change records joined to their watched folder.

Pure string logic (`ntpath`), so it behaves the same and is tested on any OS; the only
system calls (GetLongPathNameW, GetDriveTypeW) come in as arguments.
"""

from __future__ import annotations

import ntpath
import re
from collections import OrderedDict
from collections.abc import Callable

EXTENDED_PREFIX = "\\\\?\\"
EXTENDED_UNC_PREFIX = "\\\\?\\UNC\\"
DEVICE_PREFIX = "\\\\.\\"
DRIVE_REMOTE = 4
"""GetDriveTypeW's answer for a mapped network drive."""
NETWORK_BUFFER_LIMIT = 64 * 1024
"""ReadDirectoryChangesW over SMB fails with ERROR_INVALID_PARAMETER above 64 KiB."""
BUFFER_ALIGNMENT = 8
"""Buffer sizes are rounded up to this: DWORD-aligned records, 8-byte LARGE_INTEGERs."""

# An 8.3 alias made by Windows: up to 6 characters, `~`, a number, an extension of up to 3.
_SHORT_NAME = re.compile(r"^[^\\/~.]{0,6}~\d{1,6}(\.[^\\/.]{0,3})?$")
_CACHE_SIZE = 4096

LongNameResolver = Callable[[str], str | None]
"""GetLongPathNameW: the long form of an existing path, or None (gone, denied, ...)."""


def to_extended(path: str) -> str:
    """`path` in the `\\\\?\\` form that lifts MAX_PATH (260) from Win32 calls."""
    path = path.replace("/", "\\")
    if path.startswith((EXTENDED_PREFIX, DEVICE_PREFIX)):
        return path
    if path.startswith("\\\\"):
        return EXTENDED_UNC_PREFIX + path[2:]
    return EXTENDED_PREFIX + path


def from_extended(path: str) -> str:
    """`path` without a `\\\\?\\` prefix: the form users write and events carry."""
    if path.startswith(EXTENDED_UNC_PREFIX):
        return "\\\\" + path[len(EXTENDED_UNC_PREFIX) :]
    if path.startswith(EXTENDED_PREFIX):
        return path[len(EXTENDED_PREFIX) :]
    return path


def is_network_path(path: str, drive_type: Callable[[str], int] | None = None) -> bool:
    """Whether `path` is on a network share: a UNC path, or a drive letter that
    `drive_type` (GetDriveTypeW) says is remote."""
    plain = from_extended(path.replace("/", "\\"))
    if plain.startswith("\\\\") and not plain.startswith(DEVICE_PREFIX):
        return True
    drive, _ = ntpath.splitdrive(plain)
    if drive_type is None or len(drive) != 2 or drive[1] != ":":
        return False
    return drive_type(drive + "\\") == DRIVE_REMOTE


def buffer_size_for(requested: int, *, network: bool) -> int:
    """The buffer to read changes into: rounded up to `BUFFER_ALIGNMENT`, and no more than
    64 KiB on a network share."""
    size = -(-requested // BUFFER_ALIGNMENT) * BUFFER_ALIGNMENT
    return min(size, NETWORK_BUFFER_LIMIT) if network else size


def join_name(root: str, name: str, sep: str = "\\") -> str:
    """The absolute path of `name`, a record's name relative to the watched `root`
    (`\\`-separated, as Windows sends it), written with `sep`."""
    name = name.lstrip("\\")
    if sep != "\\":
        name = name.replace("\\", sep)
    if root.endswith(("\\", sep)):
        return root + name
    return root + sep + name


def has_short_component(path: str) -> bool:
    """Whether some part of `path` may be an 8.3 alias (`PROGRA~1`, `REPORT~2.CSV`)."""
    return any(_SHORT_NAME.match(part) for part in re.split(r"[\\/]", path) if part)


class LongNames:
    """Expands 8.3 short names in paths to their long names.

    A change record may carry either name of a file, which one is unspecified. A path
    that still exists is expanded by the resolver (GetLongPathNameW); one that is gone
    (a deletion, a rename's old name) by what was learned about it while it existed,
    and else by expanding its folder and keeping its own last name as it came.
    """

    def __init__(self, resolve: LongNameResolver) -> None:
        self.resolve = resolve
        self._learned: OrderedDict[str, str] = OrderedDict()  # short path (folded) -> long

    def expand(self, path: str) -> str:
        if not has_short_component(path):
            return path
        return self._expand(path)

    def _expand(self, path: str) -> str:
        resolved = self.resolve(to_extended(path))
        if resolved is not None:
            long = from_extended(resolved)
            self._learn(path, long)
            return long
        learned = self._learned.get(_fold(path))
        if learned is not None:
            self._learned.move_to_end(_fold(path))
            return learned
        parent, name = ntpath.split(path)
        if not name or parent == path:
            return path
        expanded = self._expand(parent) if has_short_component(parent) else parent
        return ntpath.join(expanded, name)

    def _learn(self, short: str, long: str) -> None:
        """Remember `short` -> `long`, and the same for each folder above that differs."""
        while short != long and _fold(short) != _fold(long):
            self._learned[_fold(short)] = long
            self._learned.move_to_end(_fold(short))
            short_parent, long_parent = ntpath.dirname(short), ntpath.dirname(long)
            if short_parent in (short, "") or long_parent in (long, ""):
                break
            short, long = short_parent, long_parent
        while len(self._learned) > _CACHE_SIZE:
            self._learned.popitem(last=False)


def _fold(path: str) -> str:
    return path.casefold()
