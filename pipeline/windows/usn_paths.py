"""Full paths for USN records, which only name a file and its parent folder's reference number.

A record carries the file's own name and the *file reference number* (FRN) of its
parent folder. The resolver remembers, for every folder the journal has mentioned, its
parent FRN and name, and walks those links up to the volume's root (MFT entry 5 on
NTFS), which stands for `root`. Live, a folder the journal has not mentioned yet is
asked of the OS through `lookup` (OpenFileById + GetFinalPathNameByHandleW).

A folder that cannot be resolved is written `<unknown:ENTRY-SEQ>` (its MFT entry and
sequence number; `<unknown:0x…>` for a 128-bit ReFS id) directly under the root, so
`C:\\<unknown:14038-1>\\report.txt` is `report.txt` in the folder with MFT entry 14038.
Offline, that happens for folders that no record of the journal describes.

`PathScope` keeps only the paths under the configured ones, compared as NTFS does,
without regard to case.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence

from pipeline.windows.usn_reasons import FILE_DELETE, RENAME_NEW_NAME
from pipeline.windows.usn_records import UsnRecord

ROOT_ENTRY = 5
"""MFT entry number of an NTFS volume's root folder."""
ENTRY_MASK = (1 << 48) - 1
MAX_DEPTH = 256
"""Folder links followed before a path is given up as a loop (a damaged journal)."""
CAPACITY = 200_000
"""Folders and files remembered, least recently used forgotten first."""

Lookup = Callable[[int], str | None]
"""Asks the OS for the current full path of a file reference number (live mode)."""

_DRIVE = re.compile(r"^[A-Za-z]:$")


def format_reference(ref: int) -> str:
    """An FRN as fixed-width hex: 16 digits for 64-bit NTFS ones, 32 for 128-bit ids."""
    return f"{ref:#018x}" if ref < 1 << 64 else f"{ref:#034x}"


def unknown_folder(ref: int) -> str:
    """The name that stands for a folder whose path is not known."""
    if ref < 1 << 64:
        return f"<unknown:{ref & ENTRY_MASK}-{ref >> 48}>"
    return f"<unknown:{ref:#034x}>"


def is_ntfs_root(ref: int) -> bool:
    return ref < 1 << 64 and ref & ENTRY_MASK == ROOT_ENTRY


def separator_for(root: str) -> str:
    """`\\` for a Windows root (`C:`, `C:\\`, `\\\\server\\share`), else `/`."""
    return "\\" if _DRIVE.match(root) or "\\" in root else "/"


def normalize_root(root: str) -> str:
    """The root folder's own path: `C:` becomes `C:\\`; others are kept as they are."""
    return root + "\\" if _DRIVE.match(root) else root


def join(folder: str, name: str, sep: str) -> str:
    return folder + name if folder.endswith(sep) else folder + sep + name


class _Lru(OrderedDict[int, str | tuple[int, str]]):
    """A dict that forgets its least recently used entry once it holds `capacity`."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: int, value: str | tuple[int, str]) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.capacity:
            self.popitem(last=False)


class PathResolver:
    """Remembers what the journal says about folders and turns records into full paths."""

    def __init__(
        self,
        root: str,
        *,
        lookup: Lookup | None = None,
        is_root: Callable[[int], bool] = is_ntfs_root,
        capacity: int = CAPACITY,
    ) -> None:
        self.root = normalize_root(root)
        self.sep = separator_for(root)
        self.lookup = lookup
        self.is_root = is_root
        self._links = _Lru(capacity)  # folder FRN -> (parent FRN, name)
        self._paths = _Lru(capacity)  # FRN -> last full path seen
        self._asked: dict[int, str] = {}  # folder FRN -> path the OS gave

    def folder(self, ref: int) -> str:
        """The full path of folder `ref`, or one starting with `<unknown:…>`."""
        names: list[str] = []
        for _ in range(MAX_DEPTH):
            if self.is_root(ref):
                return self._under(self.root, names)
            link = self._links.get(ref)
            if isinstance(link, tuple):
                ref, name = link
                names.append(name)
                continue
            found = self._ask(ref)
            if found is not None:
                return self._under(found, names)
            names.append(unknown_folder(ref))
            return self._under(self.root, names)
        return self._under(self.root, [unknown_folder(ref)])

    def _under(self, folder: str, names: list[str]) -> str:
        path = folder
        for name in reversed(names):
            path = join(path, name, self.sep)
        return path

    def _ask(self, ref: int) -> str | None:
        if self.lookup is None:
            return None
        if ref not in self._asked:
            found = self.lookup(ref)
            if found is None:
                return None
            self._asked[ref] = found
        return self._asked[ref]

    def path_of(self, record: UsnRecord) -> str:
        """The full path `record` is about (V4 records, which have no name, by their FRN)."""
        if self.is_root(record.file_reference):
            return self.root
        if record.name is None:
            return self.known(record.file_reference) or self._nameless(record.file_reference)
        return join(self.folder(record.parent_reference), record.name, self.sep)

    def _nameless(self, ref: int) -> str:
        found = self._ask(ref)
        return found if found is not None else join(self.root, unknown_folder(ref), self.sep)

    def known(self, ref: int) -> str | None:
        """The last path seen for `ref` (file or folder), if any."""
        path = self._paths.get(ref)
        return path if isinstance(path, str) else None

    def learn(self, record: UsnRecord, path: str) -> None:
        """Remember what `record` (just resolved to `path`) says about its file."""
        ref = record.file_reference
        if record.reason & FILE_DELETE:
            self._links.pop(ref, None)
            self._paths.pop(ref, None)
            self._asked.pop(ref, None)
            return
        if record.name is None:
            return
        self._paths.put(ref, path)
        if record.is_dir and not self.is_root(ref):
            self._links.put(ref, (record.parent_reference, record.name))
            if record.reason & RENAME_NEW_NAME and self._asked:
                self._asked.clear()  # paths the OS gave below it may be stale now


class PathScope:
    """Which configured path (if any) a path is in; every path when none is configured."""

    def __init__(self, roots: Sequence[str], sep: str, default: str) -> None:
        self.sep = sep
        self.default = default
        self._roots = [(root, root.rstrip(sep).casefold()) for root in roots]
        self._roots.sort(key=lambda item: len(item[1]), reverse=True)  # innermost first

    def root_of(self, path: str) -> str | None:
        if not self._roots:
            return self.default
        folded = path.casefold()
        for root, key in self._roots:
            if folded == key or folded.startswith(key + self.sep):
                return root
        return None
