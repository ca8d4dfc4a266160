"""Re-reading what Qt named: the old and the new state of those folders and files.

Qt says which folder or file changed, never how. `collect` reads them again (a folder
without its subfolders, a file with one `lstat`) and returns, for exactly the paths it
looked at, what the tree held before and what is there now; `snapshot.diff` of the two
is what happened, in an order a mirror can replay, with renames paired by inode.

A subfolder that vanished or was replaced takes its whole known subtree into the old
side, and one that appeared is scanned whole into the new side: a folder renamed from
one read folder to another is then one `moved`, and a new folder's contents (written
before anyone could watch it) are reported with it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Collection

from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Entry, Snapshot, entry_of, is_dir

from fspipeline_qt.tree import Tree, same_file

_GONE = (errno.ENOENT, errno.ENOTDIR)


@dataclasses.dataclass
class Batch:
    """What one look at some folders and files found."""

    old: dict[str, Entry] = dataclasses.field(default_factory=dict)
    """The tree's entries of every path looked at."""
    new: dict[str, Entry] = dataclasses.field(default_factory=dict)
    """What those paths (and any that appeared among them) hold now."""
    recheck: set[str] = dataclasses.field(default_factory=set)
    """Folders to read next: the parents of a folder or file found gone or retyped."""
    lost: list[str] = dataclasses.field(default_factory=list)
    """Watched paths (roots) that are gone."""
    found: list[str] = dataclasses.field(default_factory=list)
    """Watched paths that were gone and are back."""
    problems: dict[str, str] = dataclasses.field(default_factory=dict)
    """Folders that could not be read, to why (what was known in them is kept)."""


def collect(
    tree: Tree,
    folders: Collection[str],
    files: Collection[str],
    *,
    roots: Collection[str],
    lost: Collection[str] = (),
    recursive: bool = True,
) -> Batch:
    """Read `folders` (known folders of `tree`, or `lost` roots to look for) and stat
    `files` (known files); return their old and new state. No change is made to `tree`.
    Runs in a worker thread: `tree` must not change meanwhile."""
    batch = Batch()
    listed = sorted(path for path in folders if tree.is_folder(path))
    if listed:
        _read_folders(tree, listed, batch, roots=roots, recursive=recursive)
    returning = sorted(path for path in folders if path in lost and path not in tree)
    if returning:
        _look_for_roots(returning, batch, recursive=recursive)
    for path in sorted(files):
        if path in batch.old or path in batch.new or path not in tree or tree.is_folder(path):
            continue  # read with its folder, or not a known file any more
        _stat_file(tree, path, batch, roots=roots)
    return batch


def _read_folders(
    tree: Tree, folders: list[str], batch: Batch, *, roots: Collection[str], recursive: bool
) -> None:
    old, new = batch.old, batch.new
    known: dict[str, dict[str, Entry]] = {}  # folder -> its entry and its entries' entries
    for folder in folders:
        known[folder] = {path: tree.entries[path] for path in (folder, *tree.children(folder))}
    # `previous` keeps what was known inside a folder that cannot be read this time.
    previous = Snapshot({p: e for entries in known.values() for p, e in entries.items()})
    now = scan(folders, recursive=False, previous=previous)
    batch.problems.update(now.problems)
    for folder in now.missing:
        if folder in roots:
            old.update((path, tree.entries[path]) for path in tree.subtree(folder))
            batch.lost.append(folder)
        elif os.path.dirname(folder) not in known:
            batch.recheck.add(os.path.dirname(folder))  # its folder's listing says where it went
        del known[folder]
    for entries in known.values():
        old.update(entries)
    new.update(now.entries)
    # A subfolder gone or replaced: what was known below it is gone too (or moved).
    for path in [p for p in old if p not in known and tree.is_folder(p)]:
        after = new.get(path)
        if after is None or not same_file(old[path], after):
            old.update((below, tree.entries[below]) for below in tree.subtree(path))
    if recursive:  # a subfolder that appeared is read whole
        appeared = [
            path
            for path, entry in now.entries.items()
            if is_dir(entry)
            and path not in known
            and (path not in old or not same_file(old[path], entry))
        ]
        if appeared:
            new.update(scan(appeared, recursive=True).entries)


def _look_for_roots(roots: list[str], batch: Batch, *, recursive: bool) -> None:
    now = scan(roots, recursive=recursive)
    batch.new.update(now.entries)
    batch.problems.update(now.problems)
    batch.found.extend(root for root in roots if root in now.entries)


def _stat_file(tree: Tree, path: str, batch: Batch, *, roots: Collection[str]) -> None:
    try:
        entry = entry_of(os.lstat(path))
    except OSError as exc:
        if exc.errno not in _GONE:
            return  # unreadable now: keep what is known
        if path in roots:
            batch.old[path] = tree.entries[path]
            batch.lost.append(path)
        else:
            batch.recheck.add(os.path.dirname(path))
        return
    if is_dir(entry) and path not in roots:
        batch.recheck.add(os.path.dirname(path))  # a folder now: its folder's listing says so
        return
    batch.old[path] = tree.entries[path]
    batch.new[path] = entry
