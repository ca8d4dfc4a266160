"""Folder handles to watched paths for the `fanotify` source, cached per handle.

A file-system mark reports every folder of the file system by handle. This module says,
for one folder handle, whether anything in that folder is watched and under which path,
at the cost of one dict lookup once the folder has been seen: a handle is resolved once
(`open_by_handle_at`, then `readlink` of /proc/self/fd/N), and the verdict is cached.

Verdicts stay right as folders move: a folder renamed inside (or into, or out of) the
watched trees rewrites the cached paths below it; a move from outside also invalidates
the cached "outside" verdicts. A deleted folder's handle no longer opens (ESTALE), so
paths of folders are remembered when they are created or resolved, and an unknown stale
handle is looked up in the events read with it (its own `rmdir` or rename names its
parent and its name).
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from pipeline.linux import fanotify as api

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

OUTSIDE_LIMIT = 1 << 16
"""Cached "outside" verdicts kept before the cache is emptied (each costs ~100 bytes)."""
GRAVEYARD = 4096
"""Deleted folders remembered, for events about their entries read after their `rmdir`."""
MAX_DEPTH = 256


def below(path: str) -> str:
    """The prefix every path inside folder `path` starts with."""
    return path if path.endswith("/") else path + "/"


def join(folder: str, name: str) -> str:
    return folder + name if folder.endswith("/") else folder + "/" + name


class Root:
    """One configured path: as configured (`path`), and with symlinks resolved (`real`)."""

    __slots__ = ("is_dir", "meta", "path", "real", "real_below", "scan_meta")

    def __init__(self, path: str, real: str, is_dir: bool) -> None:
        self.path = path
        self.real = real
        self.real_below = below(real)
        self.is_dir = is_dir
        self.meta: Mapping[str, Any] = MappingProxyType({"root": path})
        self.scan_meta: Mapping[str, Any] = MappingProxyType({"root": path, "scan": True})

    def contains(self, real: str) -> bool:
        return real == self.real or (self.is_dir and real.startswith(self.real_below))

    def outward(self, real: str) -> str:
        """`real` (inside this root) as the path events report: under the configured path."""
        return self.path + real[len(self.real) :]


class Excluded:
    """A folder inside the watched trees whose events are dropped (the state_dir there)."""

    __slots__ = ("path", "prefix")

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.prefix = below(path) if path is not None else ""

    def __bool__(self) -> bool:
        return self.path is not None

    def __contains__(self, path: str) -> bool:
        return self.path is not None and (path == self.path or path.startswith(self.prefix))


class Target(NamedTuple):
    """A watched path an event is about, and the configured path it belongs to."""

    path: str
    root: Root


class Folder:
    """What is watched in one folder: itself, all its entries, or a few by name."""

    __slots__ = ("children", "named", "path", "real", "self_root")

    def __init__(
        self,
        real: str,
        path: str,
        self_root: Root | None,
        children: Root | None,
        named: dict[bytes, Target] | None,
    ) -> None:
        self.real = real
        self.path = path
        self.self_root = self_root
        """The root the folder itself is watched under (events named `.`), if any."""
        self.children = children
        """The root every entry of the folder is watched under, if any."""
        self.named = named
        """Entries that are configured paths themselves, by name (a file, or a folder
        whose deletion or rename is reported)."""

    def target(self, name: bytes) -> Target | None:
        if name == b".":
            return Target(self.path, self.self_root) if self.self_root is not None else None
        if self.named is not None:
            found = self.named.get(name)
            if found is not None:
                return found
        if self.children is not None and name:
            return Target(join(self.path, os.fsdecode(name)), self.children)
        return None


Lookahead = Callable[[bytes], tuple[bytes, bytes] | None]
"""Given a gone folder's handle key, the (parent key, name) that an event of the same
read gives it (its rmdir or rename), or None."""


class FolderMap:
    """Handle key of a folder → Folder (something in it is watched) or None (nothing is)."""

    def __init__(
        self,
        roots: list[Root],
        recursive: bool,
        mounts: Mapping[bytes, int],
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self.roots = sorted(roots, key=lambda r: len(r.real), reverse=True)  # deepest first
        self.recursive = recursive
        self.mounts = mounts
        """fsid bytes → a descriptor on a mount of that file system, to open handles with."""
        self.known: dict[bytes, Folder] = {}
        self.outside: dict[bytes, int] = {}
        """Handle key → the `generation` in which the folder was found to hold nothing watched."""
        self.generation = 0
        self.lookahead: Lookahead = lambda key: None
        self._graveyard: deque[bytes] = deque()
        self._denied = False
        self.log = log or structlog.get_logger("pipeline.sources.fanotify")

    # -- lookups -----------------------------------------------------------------------

    def folder(self, key: bytes) -> Folder | None:
        """The Folder for a handle key; resolves (a few system calls) on a cache miss."""
        found = self.known.get(key)
        if found is not None:
            return found
        if self.outside.get(key) == self.generation:
            return None
        real = self._real_of(key, 0)
        if real is None:
            self._mark_outside(key)
            return None
        return self.learn(real, key)

    def target(self, key: bytes, name: bytes) -> Target | None:
        """The watched path of entry `name` in the folder with handle key `key`, if any."""
        folder = self.known.get(key)
        if folder is None:
            folder = self.folder(key)
        return folder.target(name) if folder is not None else None

    def learn(self, real: str, key: bytes) -> Folder | None:
        """Cache the verdict for the folder at `real` whose handle key is `key`."""
        folder = self.classify(real)
        if folder is None:
            self.known.pop(key, None)
            self._mark_outside(key)
            return None
        self.known[key] = folder
        return folder

    def classify(self, real: str) -> Folder | None:
        """What is watched in the folder at `real`, or None if nothing is."""
        recursive = self.recursive
        self_root: Root | None = None
        children: Root | None = None
        for root in self.roots:
            if not root.contains(real):
                continue
            if real == root.real or recursive or os.path.dirname(real) == root.real:
                self_root = self_root or root
            if root.is_dir and (real == root.real or recursive):
                children = children or root
        named: dict[bytes, Target] | None = None
        above = False  # a configured path lies deeper below: moving this folder moves it
        inside = below(real)
        for root in self.roots:
            if root.real == real or not root.real.startswith(inside):
                continue
            rest = root.real[len(inside) :]
            if "/" in rest:
                above = True
            else:
                named = {} if named is None else named
                named.setdefault(os.fsencode(rest), Target(root.path, root))
        if self_root is None and children is None and named is None and not above:
            return None
        owner = self_root or children
        path = owner.outward(real) if owner is not None else real
        return Folder(real, path, self_root, children, named)

    def _mark_outside(self, key: bytes) -> None:
        if len(self.outside) >= OUTSIDE_LIMIT:
            self.outside.clear()
        self.outside[key] = self.generation

    def _real_of(self, key: bytes, depth: int) -> str | None:
        """The real path of the folder with handle `key` now (or when it was deleted)."""
        known = self.known.get(key)
        if known is not None:
            return known.real
        mount_fd = self.mounts.get(api.fsid_of_key(key))
        if mount_fd is None or depth > MAX_DEPTH:
            return None
        try:
            fd = api.open_by_handle(mount_fd, api.handle_of(key))
        except OSError as exc:
            if exc.errno in (errno.ESTALE, errno.ENOENT):
                return self._real_of_gone(key, depth)
            if exc.errno in (errno.EPERM, errno.EACCES) and not self._denied:
                self._denied = True
                self.log.warning("cannot open file handles (CAP_DAC_READ_SEARCH is missing)")
            return None
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
            if real.endswith(" (deleted)") and os.fstat(fd).st_nlink == 0:
                real = real[: -len(" (deleted)")]
        except OSError:
            return None
        finally:
            os.close(fd)
        return real if real.startswith("/") else None

    def _real_of_gone(self, key: bytes, depth: int) -> str | None:
        place = self.lookahead(key)
        if place is None:
            return None
        parent = self._real_of(place[0], depth + 1)
        return join(parent, os.fsdecode(place[1])) if parent is not None else None

    # -- changes of folders ------------------------------------------------------------

    def created(self, parent: Folder, name: bytes, key: bytes) -> None:
        """A folder was made in `parent`: remember its handle, it may be gone when read."""
        self.learn(join(parent.real, os.fsdecode(name)), key)

    def deleted(self, key: bytes) -> None:
        """A folder was removed: keep its path a while for events read after its rmdir."""
        if key in self.known:
            self._graveyard.append(key)
            if len(self._graveyard) > GRAVEYARD:
                self.known.pop(self._graveyard.popleft(), None)

    def moved(
        self, old: Folder | None, old_name: bytes, new: Folder | None, new_name: bytes, key: bytes
    ) -> None:
        """A folder was renamed from `old`/`old_name` to `new`/`new_name` (None: a folder
        with nothing watched)."""
        new_real = join(new.real, os.fsdecode(new_name)) if new is not None else None
        old_real = join(old.real, os.fsdecode(old_name)) if old is not None else None
        if old_real is not None and self.classify(old_real) is not None:
            # Only below a place that mattered can folders be cached: rewrite their paths.
            prefix = below(old_real)
            for other, folder in list(self.known.items()):
                if folder.real == old_real or folder.real.startswith(prefix):
                    del self.known[other]
                    root = folder.self_root
                    if root is not None and folder.real == root.real:
                        self.log.warning("a watched path was moved away", path=root.path)
                    if new_real is not None:
                        self.learn(new_real + folder.real[len(old_real) :], other)
        if new_real is not None and self.learn(new_real, key) is not None:
            # Folders below it may have been found outside before: judge them again.
            self.generation += 1

    def forget(self) -> None:
        """Drop every cached verdict (after an overflow: renames may have been lost)."""
        self.known.clear()
        self.outside.clear()
        self._graveyard.clear()
        self.generation += 1
