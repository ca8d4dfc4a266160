"""The inotify watches of one source: one per folder, each added before its folder is read.

Watching a folder before listing it is what makes a walk lossless: whatever is created
in it from then on produces an event, and whatever was there before is in the listing.
The kernel gives one watch descriptor per inode, so a folder reached a second time (a
bind mount, a followed symlink leading back up: a loop) gets the descriptor it already
has, and is not walked again.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal

from pipeline.errors import SourceError
from pipeline.linux import inotify as api
from pipeline.sources.snapshot import entry_of
from pipeline.sources.treeindex import Folder, Known, TreeIndex

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

WATCH_LIMIT_FILE = "/proc/sys/fs/inotify/max_user_watches"
ENCODING = sys.getfilesystemencoding()
ERRORS = sys.getfilesystemencodeerrors()

EAGER_FOLDERS = 1000
PROGRESS_EVERY = 1024
"""Folders walked between two progress reports."""
"""Folders a walk without stat reads at once before it leaves leaf folders for later."""

Found = tuple[str, bool, Known]
"""A path a walk found: (path, is_dir, what is known of it)."""


def watch_limit() -> str:
    """The current fs.inotify.max_user_watches, as text ("?" if unreadable)."""
    try:
        with open(WATCH_LIMIT_FILE) as limit_file:
            return limit_file.read().strip()
    except OSError:
        return "?"


def watch_limit_message(path: str) -> str:
    return (
        f"inotify watch limit reached while watching {path}: fs.inotify.max_user_watches is "
        f"{watch_limit()}, one watch per folder. Raise it "
        f"(sysctl -w fs.inotify.max_user_watches=1048576, and in /etc/sysctl.d/ to keep it), "
        f"set `on_watch_limit: poll` to poll the folders left over, or use the `fanotify` or "
        f"`poll` source."
    )


def _same_folder(one: str, other: str) -> bool:
    try:
        a, b = os.stat(one), os.stat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Watches:
    """Watch descriptors to index folders, and the walks that add them."""

    def __init__(
        self,
        fd: int,
        mask: int,
        index: TreeIndex,
        log: FilteringBoundLogger,
        *,
        follow_symlinks: bool,
        on_limit: Literal["fail", "poll"],
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        self.fd = fd
        self.exclude = exclude
        """Folders never watched (the source's own state_dir)."""
        self.mask = mask | api.IN_ONLYDIR
        self.index = index
        self.log = log
        self.follow = follow_symlinks
        self.on_limit = on_limit
        self.by_wd: dict[int, Folder] = {}
        self.unlisted: deque[Folder] = deque()
        """Folders watched but not read yet (leaves, read after start-up, when idle)."""
        self.limited: list[Folder] = []
        """Folders left unwatched for lack of watches, for the caller to poll."""
        self._add = api.watcher(fd)
        self._retired: set[int] = set()
        """Descriptors removed here whose end (IN_IGNORED) has not been read yet: the
        kernel may have given the same number to a new watch meanwhile."""
        self._denied: set[str] = set()
        self._limit_logged = False
        self.walked = 0
        """Folders read by `walk` so far (for progress reports)."""
        self.on_progress: Callable[[int], None] | None = None
        """Called with `walked` every PROGRESS_EVERY folders."""

    # -- single watches ---------------------------------------------------------------

    def watch(self, folder: Folder, *, root: bool = False) -> bool:
        """Watch `folder`; False if it cannot be (gone, denied, no watch left: logged)."""
        mask = self.mask
        if folder.single:
            mask &= ~api.IN_ONLYDIR
        elif not root and not self.follow:
            mask |= api.IN_DONT_FOLLOW  # a root given as a symlink is followed, others not
        wd = self._add(folder.path.encode(ENCODING, ERRORS), mask)
        if wd < 0:
            return self._failed(folder, -wd)
        other = self.by_wd.get(wd)
        if other is not None and other is not folder and other.wd == wd:
            if other.path != folder.path and _same_folder(other.path, folder.path):
                self.log.info(
                    "folder already watched under another path; not walked twice",
                    folder=folder.path,
                    watched_as=other.path,
                )
                return False
            other.wd = -1  # a stale node for the same folder: this one replaces it
        folder.wd = wd
        self.by_wd[wd] = folder
        return True

    def _failed(self, folder: Folder, code: int) -> bool:
        if code == errno.ENOSPC:
            if self.on_limit == "fail":
                raise SourceError(watch_limit_message(folder.path))
            self.limited.append(folder)
            if not self._limit_logged:
                self._limit_logged = True
                self.log.warning(
                    "inotify watch limit reached; polling the folders left over",
                    folder=folder.path,
                    max_user_watches=watch_limit(),
                    raise_with="sysctl -w fs.inotify.max_user_watches=1048576",
                )
        elif code in (errno.EACCES, errno.EPERM):
            self.denied(folder.path, "permission denied; folder not watched")
        elif code not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            self.log.warning("cannot watch folder", folder=folder.path, error=os.strerror(code))
        return False

    def denied(self, path: str, message: str) -> None:
        if path not in self._denied:
            self._denied.add(path)
            self.log.warning(message, folder=path)

    def forget(self, folders: list[Folder]) -> None:
        """Remove the watches of `folders` (already out of the index)."""
        by_wd, fd = self.by_wd, self.fd
        for folder in folders:
            wd = folder.wd
            if wd < 0:
                continue
            folder.wd = -1
            if by_wd.get(wd) is folder:
                del by_wd[wd]
                self._retired.add(wd)
                try:
                    api.rm_watch(fd, wd)
                except OSError as exc:
                    self.log.debug("rm_watch failed", folder=folder.path, error=exc.strerror)

    def ended(self, wd: int) -> Folder | None:
        """The kernel removed watch `wd` (IN_IGNORED); return the folder that had it."""
        if wd in self._retired:
            self._retired.discard(wd)  # one removed here: a new watch may have its number
            return None
        folder = self.by_wd.pop(wd, None)
        if folder is not None and folder.wd == wd:
            folder.wd = -1
        return folder

    # -- walks --------------------------------------------------------------------------

    def _count_walked(self) -> None:
        self.walked += 1
        if self.on_progress is not None and not self.walked % PROGRESS_EVERY:
            self.on_progress(self.walked)

    def walk(
        self,
        top: Folder,
        *,
        mark: int,
        stat: bool,
        found: list[Found] | None = None,
        recursive: bool = True,
    ) -> None:
        """Read `top` (already watched) and every folder below it into the index, watching
        each folder before reading it (not `recursive`: `top` only, its folders unwatched).

        Without `stat`, entries are known by `mark`; past EAGER_FOLDERS folders, those
        without subfolders (a link count of 2, read after their watch exists) are left in
        `unlisted` for later: a big start-up then costs one lstat instead of one listing
        per leaf folder (until they are read, the deletion of a file in one of them while
        events are lost cannot be reported). With `stat`, every entry is stat()ed and
        listed now, and appended to `found`.
        """
        stack = [top]
        watch, index, identify, exclude = self.watch, self.index, self._identify, self.exclude
        eager = EAGER_FOLDERS
        counted = self._count_walked
        while stack:
            folder = stack.pop()
            eager -= 1
            counted()
            listing = self._listing(folder)
            if listing is None:
                continue
            files, prefix = folder.files, folder.prefix
            with listing as items:
                for item in items:
                    try:
                        is_dir, known = identify(item, stat, mark)
                    except OSError:
                        continue  # gone since it was listed
                    name = item.name
                    if not is_dir:
                        files[name] = known
                        if found is not None:
                            found.append((prefix + name, False, known))
                        continue
                    if exclude and prefix + name in exclude:
                        continue
                    child = index.add_folder(folder, name, known)
                    if found is not None:
                        found.append((child.path, True, known))
                    if not recursive:
                        continue
                    if not watch(child):
                        child.listed = False
                    elif eager < 0 and not stat and _is_leaf(item):
                        child.listed = False
                        self.unlisted.append(child)
                    else:
                        stack.append(child)

    def _listing(self, folder: Folder) -> AbstractContextManager[Iterator[os.DirEntry[str]]] | None:
        try:
            listing = os.scandir(folder.path)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                self.denied(folder.path, "permission denied; folder not read")
            return None
        folder.listed = True
        return listing

    def _identify(self, item: os.DirEntry[str], stat: bool, mark: int) -> tuple[bool, Known]:
        """Whether a listed entry is a folder to walk, and what is known of it (its stat
        entry, or `mark`); OSError if it is gone."""
        if item.is_dir(follow_symlinks=False):
            return True, entry_of(item.stat(follow_symlinks=False)) if stat else mark
        if self.follow and item.is_symlink():
            try:
                target = os.stat(item.path)
            except OSError:  # dangling: the link itself
                return False, entry_of(item.stat(follow_symlinks=False)) if stat else mark
            return statmod.S_ISDIR(target.st_mode), entry_of(target) if stat else mark
        return False, entry_of(item.stat(follow_symlinks=False)) if stat else mark

    def list_unlisted(self, budget: int) -> None:
        """Read up to `budget` of the folders left unlisted by a walk (their files only:
        any subfolder created since their watch was added has an event coming)."""
        unlisted, by_wd = self.unlisted, self.by_wd
        while unlisted and budget > 0:
            folder = unlisted.popleft()
            if folder.listed or folder.wd < 0 or by_wd.get(folder.wd) is not folder:
                continue
            budget -= 1
            mark = folder.known if isinstance(folder.known, int) else 0
            files, folders = folder.files, folder.folders
            try:
                with os.scandir(folder.path) as listing:
                    for item in listing:
                        name = item.name
                        if name not in files and name not in folders:
                            try:
                                if item.is_dir(follow_symlinks=False):
                                    continue
                            except OSError:
                                continue
                            files[name] = mark
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    self.denied(folder.path, "permission denied; folder not read")
            folder.listed = True


def _is_leaf(item: os.DirEntry[str]) -> bool:
    """Whether a folder has no subfolder, by its link count (2: itself and `.`).

    Called after the folder's watch exists, so a subfolder made later has an event.
    File systems that do not count links this way (btrfs: always 1) are always read.
    """
    try:
        return item.stat(follow_symlinks=False).st_nlink == 2
    except OSError:
        return False
