"""Stat snapshots of folder trees, and the diff of two snapshots into ordered changes.

This is the pure part of the `poll` source: `scan` reads a tree through an injectable
`scandir`/`stat` (the real ones by default), `diff` compares two snapshots without I/O.

A scan that is given the previous scan can reuse what it knows (`reuse_listings`): a
folder whose identity and times are what they were when it was last listed is not
listed again (its entries are still stat-ed, by name through the folder's descriptor:
a file's change does not touch its folder); a hash per entry, kept in one array per
folder, tells an unchanged folder at once, whose entries and path strings are then
taken from the previous scan; and the scan notes which entries it found changed
(`Snapshot.touched`), so that `diff` looks at those only. That saves about a third of
a scan of an unchanged tree; what is left is mostly the stat of each entry.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import stat as statmod
from array import array
from collections.abc import Collection, Iterator, Mapping
from typing import NamedTuple, cast

from pipeline.event import EventKind

Entry = tuple[int, int, int, int, int, int, int, int]
"""What a snapshot keeps per path: (mode, dev, ino, size, mtime_ns, ctime_ns, uid, gid).

A plain tuple, so that 100,000 entries stay cheap to build, hold and compare. Folders
keep 0 for size and ctime_ns: both change whenever an entry is added or removed, which
is not a change of the folder itself.
"""
MODE, DEV, INO, SIZE, MTIME_NS, CTIME_NS, UID, GID = range(8)
_FILE_ENTRY = operator.attrgetter(
    "st_mode", "st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns", "st_uid", "st_gid"
)  # builds a file's entry in one C call


def is_dir(entry: Entry) -> bool:
    return statmod.S_ISDIR(entry[MODE])


def entry_of(st: os.stat_result) -> Entry:
    """The snapshot entry for one `stat` result."""
    if statmod.S_ISDIR(st.st_mode):
        return (st.st_mode, st.st_dev, st.st_ino, 0, st.st_mtime_ns, 0, st.st_uid, st.st_gid)
    return cast(Entry, _FILE_ENTRY(st))


class Listing(NamedTuple):
    """A folder as it was listed: its identity and times then, and what it held."""

    dev: int
    ino: int
    mtime_ns: int
    ctime_ns: int
    paths: tuple[str, ...]
    names: tuple[str, ...]
    """The last component of each of `paths` (entries are stat-ed by name)."""
    hashes: array[int]
    """For each entry, the hash of its raw stat fields (`_FILE_ENTRY`) at the last scan
    (UNSEEN if it could not be stat-ed): comparing 8 bytes per entry, in one array,
    tells an unchanged folder without touching the entries of the previous scan."""
    folders: tuple[int, ...]
    """The positions of the entries that were folders."""


@dataclasses.dataclass(slots=True)
class Snapshot:
    """The state of every watched tree at one scan."""

    entries: dict[str, Entry] = dataclasses.field(default_factory=dict)
    """Every path seen (roots included), as str (`os.fsdecode`), to its entry."""
    problems: dict[str, str] = dataclasses.field(default_factory=dict)
    """Folders not (fully) read this time, to why; what was last seen in them is kept."""
    missing: list[str] = dataclasses.field(default_factory=list)
    """Roots that do not exist (any more)."""
    listings: dict[str, Listing] = dataclasses.field(default_factory=dict)
    """With `reuse_listings`: the folders whose listing the next scan may reuse."""
    touched: set[str] | None = None
    """With `reuse_listings` and a previous scan: the paths whose entry is not the one
    that scan held (new or changed). `diff` from that scan needs to look at these only."""


def below(folder: str) -> str:
    """The prefix every path inside `folder` starts with."""
    return folder if folder.endswith(os.sep) else folder + os.sep


def _ancestors(path: str) -> Iterator[str]:
    """The folders above `path`, nearest first, up to the file-system root."""
    parent = os.path.dirname(path)
    while parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


# -- diff ------------------------------------------------------------------------------


class Change(NamedTuple):
    """One difference between two snapshots."""

    kind: EventKind
    path: str
    is_dir: bool
    src_path: str | None = None
    entry: Entry | None = None
    """The path's entry in the newer snapshot; None for `deleted`."""


def _same_file(before: Entry, after: Entry) -> bool:
    """Whether `after` (at another path) is `before` renamed: same inode, type and content.

    Requiring an unchanged mtime (and size, for files) keeps a freshly created file that
    reuses a just-freed inode number from passing for a rename.
    """
    return (
        before[INO] == after[INO]
        and before[DEV] == after[DEV]
        and statmod.S_IFMT(before[MODE]) == statmod.S_IFMT(after[MODE])
        and before[MTIME_NS] == after[MTIME_NS]
        and before[SIZE] == after[SIZE]
    )


def diff(
    old: Mapping[str, Entry], new: Mapping[str, Entry], *, touched: Collection[str] | None = None
) -> list[Change]:
    """The changes that turn `old` into `new`, in an order a mirror can replay.

    Order: folders that something is moved into are created first; then the moves (the
    move out of a path before the move into it, moves out of a moved folder before it, a
    moved folder before moves into it); then deletions, entries before their folder; then
    creations, folders before their entries; then `modified` and `attrib` by path.
    Entries that moved along with their folder are not reported: only the folder's move
    is. A path now held by another file of the same type is reported as `created` (or as
    the `moved` that brought it there); one whose file type changed as `deleted`, then
    `created`.

    `touched`, if given, holds every path of `new` whose entry may differ from `old`'s
    (`Snapshot.touched` of a scan that reused `old`'s): only those are compared.
    """
    appeared, gone, changed = _compare(old, new, touched)
    if not (appeared or gone or changed):
        return []
    moves = _pair_moves(old, new, gone, appeared)  # new path -> old path
    replay = _Replay(old, new, set(moves.values()))
    explicit = _explicit_moves(moves, new)
    created = {path for path in appeared if path not in moves}
    early: set[str] = set()  # created folders that something moves into
    for dst in explicit:
        for ancestor in _ancestors(dst):
            if ancestor not in created or ancestor in early:
                break
            early.add(ancestor)
    for path in sorted(early):
        replay.report(EventKind.CREATED, path)
    for dst in _move_order(explicit):
        replay.report(EventKind.MOVED, dst, explicit[dst])
    replay.delete(gone)
    for path in sorted(created - early):
        replay.report(EventKind.CREATED, path)
    updates = [(path, old[path], False) for path in changed]
    updates += [(dst, old[src], True) for dst, src in moves.items()]
    for path, before, moved in sorted(updates):
        kind = _update_kind(before, new[path], moved=moved)
        if kind is not None:
            replay.report(kind, path)
    return replay.out


def _compare(
    old: Mapping[str, Entry], new: Mapping[str, Entry], touched: Collection[str] | None
) -> tuple[list[str], list[str], list[str]]:
    """Paths that appeared, that are gone, and that changed but hold the same file.

    A path that now holds another file (other inode or file type) is in both of the first.
    """
    get = old.get
    appeared: list[str] = []
    gone: list[str] = []
    changed: list[str] = []
    matched = 0
    pairs: Iterator[tuple[str, Entry]] = iter(new.items())
    if touched is not None:  # every other path of `new` holds `old`'s entry: matched
        compared = [path for path in sorted(touched) if path in new]
        matched = len(new) - len(compared)
        pairs = ((path, new[path]) for path in compared)
    for path, entry in pairs:
        before = get(path)
        if before is None:
            appeared.append(path)
            continue
        matched += 1
        if before == entry:
            continue
        if (
            before[INO] == entry[INO]
            and before[DEV] == entry[DEV]
            and statmod.S_IFMT(before[MODE]) == statmod.S_IFMT(entry[MODE])
        ):
            changed.append(path)
        else:
            gone.append(path)
            appeared.append(path)
    if matched != len(old):
        gone.extend(path for path in old if path not in new)
    return appeared, gone, changed


class _Replay:
    """Collects the changes of one diff, reporting each path's old file at most once."""

    def __init__(
        self, old: Mapping[str, Entry], new: Mapping[str, Entry], sources: set[str]
    ) -> None:
        self.old = old
        self.new = new
        self.sources = sources  # old paths whose file moved elsewhere
        self.out: list[Change] = []
        self.deleted: set[str] = set()

    def retyped(self, path: str) -> bool:
        """Whether `path` holds a file of another type (file, folder, symlink) than before."""
        before, after = self.old.get(path), self.new.get(path)
        return (
            before is not None
            and after is not None
            and statmod.S_IFMT(before[MODE]) != statmod.S_IFMT(after[MODE])
        )

    def report(self, kind: EventKind, path: str, src_path: str | None = None) -> None:
        if kind in (EventKind.CREATED, EventKind.MOVED) and self.retyped(path):
            self.delete([path])  # the old file of another type goes first
        entry = self.new[path]
        self.out.append(Change(kind, path, is_dir(entry), src_path, entry))

    def delete(self, gone: list[str]) -> None:
        """Report as deleted those of `gone` that neither moved nor were replaced."""
        deleted = [
            path
            for path in gone
            if path not in self.sources
            and path not in self.deleted
            and (path not in self.new or self.retyped(path))
        ]
        for path in sorted(deleted, reverse=True):
            self.deleted.add(path)
            self.out.append(Change(EventKind.DELETED, path, is_dir(self.old[path])))


def _pair_moves(
    old: Mapping[str, Entry], new: Mapping[str, Entry], gone: list[str], appeared: list[str]
) -> dict[str, str]:
    """Which appeared paths hold a file that vanished from another path: new -> old path.

    A folder whose mtime changed (entries added or removed) still counts as moved when at
    least one entry moved along with it.
    """
    vanished = {(old[path][DEV], old[path][INO]): path for path in gone}
    moves: dict[str, str] = {}
    if not vanished:
        return moves
    folders: dict[str, str] = {}  # old -> new path of a folder that may have moved
    for path in appeared:
        entry = new[path]
        identity = (entry[DEV], entry[INO])
        src = vanished.get(identity)
        if src is None:
            continue
        if _same_file(old[src], entry):
            moves[path] = src
            del vanished[identity]
        elif is_dir(entry) and is_dir(old[src]):
            folders[src] = path
    if folders:
        for dst, src in list(moves.items()):
            for ancestor in _ancestors(src):
                target = folders.get(ancestor)
                if target is not None and dst == target + src[len(ancestor) :]:
                    moves[target] = ancestor
                    del folders[ancestor]
    return moves


def _update_kind(before: Entry, after: Entry, *, moved: bool) -> EventKind | None:
    """`modified`, `attrib` or nothing, for one file seen in both snapshots."""
    if moved or is_dir(after):
        # A rename changes ctime by itself, and a folder's mtime follows its entries:
        # only mode and owner count.
        owner_changed = (before[MODE], before[UID], before[GID]) != (
            after[MODE], after[UID], after[GID],
        )  # fmt: skip
        return EventKind.ATTRIB if owner_changed else None
    if before[SIZE] != after[SIZE] or before[MTIME_NS] != after[MTIME_NS]:
        return EventKind.MODIFIED
    return EventKind.ATTRIB


def _explicit_moves(moves: Mapping[str, str], new: Mapping[str, Entry]) -> dict[str, str]:
    """The moves to report: not those of entries that simply moved with their folder."""
    folder_moves = {src: dst for dst, src in moves.items() if is_dir(new[dst])}
    if not folder_moves:
        return dict(moves)
    explicit: dict[str, str] = {}
    for dst, src in moves.items():
        for ancestor in _ancestors(src):
            moved_to = folder_moves.get(ancestor)
            if moved_to is not None:
                if dst != moved_to + src[len(ancestor) :]:
                    explicit[dst] = src
                break
        else:
            explicit[dst] = src
    return explicit


def _move_order(moves: Mapping[str, str]) -> list[str]:
    """The destinations of `moves` (new -> old path) in an order a mirror can replay.

    A move comes after: the move out of its destination (`mv b c; mv a b`), the moves
    out of its source folder, and the move of a folder above its destination. Cycles
    (swaps, which need a third name) are cut.
    """
    by_src = {src: dst for dst, src in moves.items()}
    leaving: dict[str, list[str]] = {}  # a folder move -> the moves out of its source
    for dst, src in moves.items():
        for ancestor in _ancestors(src):
            if ancestor in by_src:
                leaving.setdefault(by_src[ancestor], []).append(dst)
                break

    def first(dst: str) -> Iterator[str]:
        if dst in by_src:
            yield by_src[dst]
        yield from leaving.get(dst, ())
        for ancestor in _ancestors(dst):
            if ancestor in moves:
                yield ancestor
                break

    order: list[str] = []
    entered: set[str] = set()
    for start in sorted(moves):
        if start in entered:
            continue
        entered.add(start)
        stack = [(start, first(start))]
        while stack:
            dst, pending = stack[-1]
            nxt = next((d for d in pending if d not in entered), None)
            if nxt is None:
                stack.pop()
                order.append(dst)
            else:
                entered.add(nxt)
                stack.append((nxt, first(nxt)))
    return order
