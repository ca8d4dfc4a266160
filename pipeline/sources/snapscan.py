"""Scans of folder trees into snapshots: the I/O half of the `poll` source.

`scan` reads a tree through an injectable `scandir`/`stat` (the real ones by default);
with the previous scan and `reuse_listings` it skips listing folders whose identity and
times did not change (see `pipeline.sources.snapshot` for what a snapshot holds).
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import time
from array import array
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, cast

from pipeline.sources.snapshot import (
    _FILE_ENTRY,
    Entry,
    Listing,
    Snapshot,
    _ancestors,
    below,
    entry_of,
    is_dir,
)

_GONE = (errno.ENOENT, errno.ENOTDIR)
_S_IFMT = 0o170000  # the file-type bits of st_mode, as stat.S_IFMT masks them
RACY_NS = 3_000_000_000
"""A folder whose times are this close to the moment it was listed may change again
without its times changing (they have the kernel's coarse clock, and FAT keeps them to
2 s): its listing is not reused. Also covers a network server's clock a little behind."""
UNSEEN = -1  # never the hash of anything: Python maps a hash of -1 to -2
CHUNK = 256
"""Entries stat-ed between two moves of `ScanProgress.steps` on the quick path."""
_OPEN_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


class DirEntryLike(Protocol):
    """The part of `os.DirEntry` a scan uses."""

    @property
    def path(self) -> str: ...

    def stat(self, *, follow_symlinks: bool = ...) -> os.stat_result: ...


ScanDir = Callable[[str], AbstractContextManager[Iterator[DirEntryLike]]]
"""`os.scandir`, or a stand-in for tests."""
Stat = Callable[[str], os.stat_result]
"""`os.stat`, or a stand-in for tests; used for the roots only (they may be symlinks)."""


class ScanCancelled(Exception):
    """Raised inside `scan` when its `progress.cancelled` was set."""


class ScanProgress:
    """Where a running scan is; read by another thread to tell a hung folder from a big one.

    `steps` grows by one per entry read, so a folder whose `steps` stop moving is one whose
    current system call has not returned.
    """

    __slots__ = ("cancelled", "folder", "steps")

    def __init__(self) -> None:
        self.folder = ""
        self.steps = 0
        self.cancelled = False


def scan(
    roots: Sequence[str],
    *,
    recursive: bool = True,
    previous: Snapshot | None = None,
    skip: Collection[str] = (),
    progress: ScanProgress | None = None,
    scandir: ScanDir = os.scandir,
    stat: Stat = os.stat,
    follow_symlinks: bool = False,
    reuse_listings: bool = False,
) -> Snapshot:
    """Stat every path under `roots`; symlinks below a root are not followed, unless
    `follow_symlinks` (then a link has its target's entry, a folder reached twice, as a
    loop would, is read once, and a dangling link keeps its own entry).

    A folder that cannot be read (denied, I/O error) keeps what `previous` held below it
    and is listed in `problems`; so does one in `skip`, without being listed. A folder
    that vanished while being read counts as empty. Raises ScanCancelled once
    `progress.cancelled` is set (checked between folders).

    `reuse_listings` (POSIX; entries are then stat-ed with `os.lstat`, not through
    `scandir`): a folder whose device, inode, mtime and ctime are those `previous` listed
    it with is not listed again, and the snapshot records `listings` and `touched`. Only
    for file systems that update a folder's times when entries are added, removed or
    renamed, as POSIX requires (some FUSE file systems do not).
    """
    walk = _Walk(previous, recursive, skip, progress or ScanProgress(), scandir)
    walk.follow = follow_symlinks
    if reuse_listings:
        walk.reuse(previous)
    for root in roots:
        if root in skip:
            walk.keep(root, tree=True)
            continue
        walk.progress.folder = root
        try:
            st = stat(root)
        except OSError as exc:
            if exc.errno in _GONE:
                walk.snap.missing.append(root)
            else:
                walk.snap.problems[root] = exc.strerror or str(exc)
                walk.keep(root, tree=True)
            continue
        walk.entry(root, entry_of(st))
        if statmod.S_ISDIR(st.st_mode):
            walk.visited.add((st.st_dev, st.st_ino))
            walk.tree(root)
    return walk.finish()


class _Walk:
    """The state of one `scan`."""

    def __init__(
        self,
        previous: Snapshot | None,
        recursive: bool,
        skip: Collection[str],
        progress: ScanProgress,
        scandir: ScanDir,
    ) -> None:
        self.snap = Snapshot()
        self.old = previous.entries if previous is not None else {}
        self.recursive = recursive
        self.skip = skip
        self.progress = progress
        self.scandir = scandir
        self.kept_paths: set[str] = set()  # paths whose previous entry is kept
        self.kept_trees: set[str] = set()  # folders whose previous contents are kept
        self.follow = False
        self.visited: set[tuple[int, int]] = set()  # (st_dev, st_ino) of folders read
        self.reusing = False
        self.listed: Mapping[str, Listing] = {}

    def entry(self, path: str, entry: Entry) -> None:
        """Record `path`'s entry (the previous one, if equal: it is then not touched)."""
        before = self.old.get(path)
        if before == entry:
            self.snap.entries[path] = before
            return
        self.snap.entries[path] = entry
        if self.snap.touched is not None:
            self.snap.touched.add(path)

    def reuse(self, previous: Snapshot | None) -> None:
        self.reusing = True
        self.listed = previous.listings if previous is not None else {}
        self.snap.touched = set() if previous is not None else None

    def keep(self, path: str, *, tree: bool) -> None:
        self.kept_paths.add(path)
        if tree:
            self.kept_trees.add(path)

    def tree(self, root: str) -> None:
        stack = [root]
        while stack:
            folder = stack.pop()
            if self.progress.cancelled:
                raise ScanCancelled(folder)
            if folder in self.skip:
                self.kept_trees.add(folder)
                continue
            self.progress.folder = folder
            try:
                self.folder(folder, stack)
            except OSError as exc:
                if exc.errno not in _GONE:
                    self.snap.problems[folder] = exc.strerror or str(exc)
                    self.kept_trees.add(folder)

    def folder(self, folder: str, stack: list[str]) -> None:
        """Read one folder into the snapshot; push its subfolders onto `stack`."""
        if self.reusing:
            self.reread(folder, stack)
            return
        entries, progress, recursive = self.snap.entries, self.progress, self.recursive
        isdir = statmod.S_ISDIR
        with self.scandir(folder) as listing:
            for item in listing:
                progress.steps += 1
                try:
                    st = item.stat(follow_symlinks=False)
                    if self.follow and statmod.S_ISLNK(st.st_mode):
                        st = self.target(item.path, st)
                except OSError as exc:
                    self.unstatable(folder, item.path, exc)
                    continue
                entries[item.path] = entry_of(st)
                if recursive and isdir(st.st_mode):
                    if self.follow:
                        identity = (st.st_dev, st.st_ino)
                        if identity in self.visited:
                            continue  # a loop, or a folder already read by another path
                        self.visited.add(identity)
                    stack.append(item.path)

    def reread(self, folder: str, stack: list[str]) -> None:
        """`folder` in a scan that reuses listings: list it only if its times changed."""
        now = time.time_ns()
        handle = os.open(folder, _OPEN_FOLDER)  # an open, unlike a stat, revalidates NFS
        try:
            st = os.fstat(handle)
            times = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            before = self.listed.get(folder)
            if before is not None and before[:4] == times:
                paths, names = before.paths, before.names
                hashes, folders = self.recheck(folder, handle, before, stack)
            else:
                paths, names = self.entries_of(folder)
                hashes, folders = self.restat(folder, handle, paths, names, stack)
        finally:
            os.close(handle)
        if st.st_mtime_ns < now - RACY_NS and st.st_ctime_ns < now - RACY_NS:
            self.snap.listings[folder] = Listing(*times, paths, names, hashes, folders)

    def entries_of(self, folder: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The paths of the entries of `folder`, and their names."""
        found: list[str] = []
        progress = self.progress
        with self.scandir(folder) as listing:
            for item in listing:
                progress.steps += 1
                found.append(item.path)
        cut = len(below(folder))
        return tuple(found), tuple([path[cut:] for path in found])

    def recheck(
        self, folder: str, handle: int, before: Listing, stack: list[str]
    ) -> tuple[array[int], tuple[int, ...]]:
        """The entries of a folder listed as before: stat each, and if every hash is
        what it was, take the previous entries whole (the usual case, in C loops)."""
        if self.follow:  # a link's target may change while the link does not
            return self.restat(folder, handle, before.paths, before.names, stack)
        stat, raw, progress, names = os.stat, _FILE_ENTRY, self.progress, before.names
        fresh: array[int] = array("q")
        try:
            for start in range(0, len(names), CHUNK):
                chunk = names[start : start + CHUNK]
                fresh.extend(
                    [hash(raw(stat(n, dir_fd=handle, follow_symlinks=False))) for n in chunk]
                )
                progress.steps += len(chunk)
        except OSError:  # gone or unreadable: the slow way tells which, and why
            return self.restat(folder, handle, before.paths, before.names, stack)
        paths = before.paths
        if fresh == before.hashes:
            olds = list(map(self.old.get, paths))
            if None not in olds:
                self.snap.entries.update(zip(paths, cast(list[Entry], olds), strict=True))
                if self.recursive:
                    stack.extend([paths[i] for i in before.folders])
                return before.hashes, before.folders
        return self.restat(folder, handle, paths, names, stack, known=(fresh, before))

    def restat(  # noqa: PLR0912 - the hot loop of a poll, in one piece: a call per entry costs
        self,
        folder: str,
        handle: int,
        paths: tuple[str, ...],
        names: tuple[str, ...],
        stack: list[str],
        *,
        known: tuple[array[int], Listing] | None = None,
    ) -> tuple[array[int], tuple[int, ...]]:
        """Stat the entries of `folder` (open as `handle`: a stat by name through it
        walks one path component, not all) one by one, keeping the previous entry and
        path string where nothing changed. With `known` (fresh hashes, and the listing
        they match), entries whose hash did not change are not stat-ed again. Returns
        the entries' hashes and the positions of the folders among them."""
        entries, old, touched = self.snap.entries, self.old, self.snap.touched
        progress, recursive, follow = self.progress, self.recursive, self.follow
        stat, raw, get, folder_bits = os.stat, _FILE_ENTRY, old.get, statmod.S_IFDIR
        fresh, listed = known if known is not None else (None, None)
        was_folder = frozenset(listed.folders) if listed is not None else frozenset()
        hashes: array[int] = array("q")
        folders: list[int] = []
        for position, (path, name) in enumerate(zip(paths, names, strict=True)):
            progress.steps += 1
            if (
                fresh is not None
                and listed is not None
                and fresh[position] == listed.hashes[position]
            ):
                before = get(path)
                if before is not None:  # unchanged: as in the previous scan
                    entries[path] = before
                    hashes.append(fresh[position])
                    if position in was_folder:
                        folders.append(position)
                        if recursive:
                            stack.append(path)
                    continue
            try:
                st = stat(name, dir_fd=handle, follow_symlinks=False)
                fields = raw(st)
                if follow and statmod.S_ISLNK(st.st_mode):
                    st = self.target(path, st)
                    fields = raw(st)
            except OSError as exc:
                hashes.append(UNSEEN)
                self.unstatable(folder, path, exc)
                continue
            hashes.append(hash(fields))
            mode = st.st_mode
            if mode & _S_IFMT == folder_bits:
                entry = (mode, st.st_dev, st.st_ino, 0, st.st_mtime_ns, 0, st.st_uid, st.st_gid)
                folders.append(position)
                if recursive and self.descend(st):
                    stack.append(path)
            else:
                entry = fields
            before = get(path)
            if entry == before:
                entries[path] = before
            else:
                entries[path] = entry
                if touched is not None:
                    touched.add(path)
        return hashes, tuple(folders)

    def descend(self, st: os.stat_result) -> bool:
        """Whether to read a folder found: not one already read (a loop, with `follow`)."""
        if not self.follow:
            return True
        identity = (st.st_dev, st.st_ino)
        if identity in self.visited:
            return False
        self.visited.add(identity)
        return True

    @staticmethod
    def target(path: str, link: os.stat_result) -> os.stat_result:
        """What a symlink leads to; the link itself when it dangles."""
        try:
            return os.stat(path)
        except OSError:
            return link

    def unstatable(self, folder: str, path: str, exc: OSError) -> None:
        if exc.errno in _GONE:
            return  # deleted since the folder was listed
        self.snap.problems.setdefault(folder, exc.strerror or str(exc))
        before = self.old.get(path)
        self.keep(path, tree=before is not None and is_dir(before))

    def finish(self) -> Snapshot:
        if (self.kept_paths or self.kept_trees) and self.old:
            _keep_previous(self.old, self.snap.entries, self.kept_paths, self.kept_trees)
        return self.snap


def _keep_previous(
    old: Mapping[str, Entry], entries: dict[str, Entry], paths: set[str], trees: set[str]
) -> None:
    """Copy into `entries` the previous entries of `paths`, and those below `trees` whose
    child of that folder was not freshly seen (a child seen fresh was scanned itself)."""
    prefixes = tuple(below(folder) for folder in trees)
    kept: dict[str, Entry] = {}
    for path, entry in old.items():
        if path in paths:
            if path not in entries:
                kept[path] = entry
            continue
        if not path.startswith(prefixes):
            continue
        # The deepest kept folder above `path`, and its child that leads to `path`.
        child = path
        for ancestor in _ancestors(path):
            if ancestor in trees:
                break
            child = ancestor
        if child not in entries:
            kept[path] = entry
    entries.update(kept)
