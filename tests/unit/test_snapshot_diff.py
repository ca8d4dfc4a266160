"""Snapshots of real tmp trees, and their diff into ordered changes."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.event import EventKind
from pipeline.sources.snapscan import DirEntryLike, ScanCancelled, ScanDir, ScanProgress, scan
from pipeline.sources.snapshot import INO, SIZE, Change, Entry, Snapshot, diff

CREATED, MODIFIED, ATTRIB = EventKind.CREATED, EventKind.MODIFIED, EventKind.ATTRIB
DELETED, MOVED = EventKind.DELETED, EventKind.MOVED


class Tree:
    """A tmp tree that is snapshotted before and after some changes.

    With `reuse`, each scan is given the one before, as the poll source does: it keeps
    what did not change and tells `diff` which entries to compare.
    """

    def __init__(self, root: Path, *, reuse: bool = False) -> None:
        self.root = root
        self.reuse = reuse
        self.before = scan([str(root)], reuse_listings=reuse)

    def changes(self) -> list[tuple[EventKind, str, bool, str | None]]:
        """What changed since the last call, as (kind, relative path, is_dir, relative src)."""
        if self.reuse:
            after = scan([str(self.root)], previous=self.before, reuse_listings=True)
            assert after.touched is not None
            found = diff(self.before.entries, after.entries, touched=after.touched)
            assert found == diff(self.before.entries, after.entries)  # the same, cheaper
        else:
            after = scan([str(self.root)])
            found = diff(self.before.entries, after.entries)
        self.before = after
        return [
            (
                c.kind,
                self.rel(c.path),
                c.is_dir,
                None if c.src_path is None else self.rel(c.src_path),
            )
            for c in found
        ]

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def write(self, rel: str, text: str = "x", mode: str = "w") -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as handle:
            handle.write(text)


@pytest.fixture(params=[False, True], ids=["full", "reuse"])
def tree(tmp_path: Path, request: pytest.FixtureRequest) -> Tree:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.csv").write_text("old")
    return Tree(tmp_path, reuse=request.param)


def test_nothing_changed_gives_nothing(tree: Tree) -> None:
    assert tree.changes() == []


def test_created_folders_come_before_their_entries(tree: Tree) -> None:
    tree.write("b/c/deep.csv")
    tree.write("a.csv")
    assert tree.changes() == [
        (CREATED, "a.csv", False, None),
        (CREATED, "b", True, None),
        (CREATED, "b/c", True, None),
        (CREATED, "b/c/deep.csv", False, None),
    ]


def test_a_write_is_modified_and_the_folder_is_not(tree: Tree) -> None:
    tree.write("keep/old.csv", "more", mode="a")
    tree.write("keep/new.csv")  # changes the folder's mtime, which is not reported
    assert tree.changes() == [
        (CREATED, "keep/new.csv", False, None),
        (MODIFIED, "keep/old.csv", False, None),
    ]


def test_a_touch_is_modified(tree: Tree) -> None:
    os.utime(tree.root / "keep" / "old.csv", ns=(1, 1_000_000_000))
    assert tree.changes() == [(MODIFIED, "keep/old.csv", False, None)]


def test_chmod_and_chown_are_attrib(tree: Tree) -> None:
    os.chmod(tree.root / "keep" / "old.csv", 0o600)
    os.chmod(tree.root / "keep", 0o700)
    assert tree.changes() == [
        (ATTRIB, "keep", True, None),
        (ATTRIB, "keep/old.csv", False, None),
    ]
    os.chown(tree.root / "keep" / "old.csv", 1234, 5678)
    assert tree.changes() == [(ATTRIB, "keep/old.csv", False, None)]


def test_a_new_hard_link_is_attrib_of_the_file_and_created_for_the_link(tree: Tree) -> None:
    os.link(tree.root / "keep" / "old.csv", tree.root / "link.csv")
    assert tree.changes() == [
        (CREATED, "link.csv", False, None),
        (ATTRIB, "keep/old.csv", False, None),  # its link count and ctime changed
    ]


def test_deleted_folder_reports_its_entries_first(tree: Tree) -> None:
    tree.write("keep/sub/x.csv")
    tree.changes()
    shutil.rmtree(tree.root / "keep")
    assert tree.changes() == [
        (DELETED, "keep/sub/x.csv", False, None),
        (DELETED, "keep/sub", True, None),
        (DELETED, "keep/old.csv", False, None),
        (DELETED, "keep", True, None),
    ]


def test_rename_is_moved_with_the_old_path(tree: Tree) -> None:
    os.rename(tree.root / "keep" / "old.csv", tree.root / "renamed.csv")
    assert tree.changes() == [(MOVED, "renamed.csv", False, "keep/old.csv")]


def test_a_renamed_folder_is_one_moved_event(tree: Tree) -> None:
    tree.write("keep/sub/x.csv")
    tree.changes()
    os.rename(tree.root / "keep", tree.root / "kept")
    assert tree.changes() == [(MOVED, "kept", True, "keep")]


def test_an_entry_moved_out_of_a_moved_folder_is_reported_first(tree: Tree) -> None:
    tree.write("keep/stays.csv")
    tree.changes()
    os.rename(tree.root / "keep", tree.root / "kept")
    os.rename(tree.root / "kept" / "old.csv", tree.root / "out.csv")
    assert tree.changes() == [
        (MOVED, "out.csv", False, "keep/old.csv"),
        (MOVED, "kept", True, "keep"),
    ]


def test_a_moved_folder_that_lost_all_its_entries_is_deleted_and_created(tree: Tree) -> None:
    # Nothing left in it shows it is the same folder: its inode alone is not trusted.
    os.rename(tree.root / "keep", tree.root / "kept")
    os.rename(tree.root / "kept" / "old.csv", tree.root / "out.csv")
    assert tree.changes() == [
        (MOVED, "out.csv", False, "keep/old.csv"),
        (DELETED, "keep", True, None),
        (CREATED, "kept", True, None),
    ]


def test_a_renamed_folder_that_got_a_new_entry_is_still_moved(tree: Tree) -> None:
    os.rename(tree.root / "keep", tree.root / "kept")
    tree.write("kept/new.csv")
    assert tree.changes() == [
        (MOVED, "kept", True, "keep"),
        (CREATED, "kept/new.csv", False, None),
    ]


def test_moves_into_a_new_folder_come_after_its_creation(tree: Tree) -> None:
    (tree.root / "zdone").mkdir()
    os.rename(tree.root / "keep" / "old.csv", tree.root / "zdone" / "old.csv")
    os.rmdir(tree.root / "keep")
    assert tree.changes() == [
        (CREATED, "zdone", True, None),
        (MOVED, "zdone/old.csv", False, "keep/old.csv"),
        (DELETED, "keep", True, None),
    ]


def test_log_rotation_moves_replay_in_order(tree: Tree) -> None:
    tree.write("app.log", "one")
    tree.write("app.log.1", "two")
    tree.changes()
    os.rename(tree.root / "app.log.1", tree.root / "app.log.2")
    os.rename(tree.root / "app.log", tree.root / "app.log.1")
    tree.write("app.log", "")
    assert tree.changes() == [
        (MOVED, "app.log.2", False, "app.log.1"),
        (MOVED, "app.log.1", False, "app.log"),
        (CREATED, "app.log", False, None),
    ]


def test_a_rename_over_a_file_is_one_moved_event(tree: Tree) -> None:
    tree.write(".old.csv.tmp", "new content")
    tree.changes()
    os.replace(tree.root / ".old.csv.tmp", tree.root / "keep" / "old.csv")
    assert tree.changes() == [(MOVED, "keep/old.csv", False, ".old.csv.tmp")]


def test_a_file_replaced_by_another_is_created(tree: Tree) -> None:
    target = tree.root / "keep" / "old.csv"
    holder = tree.root / "holder"  # keeps the old inode alive so it cannot be reused
    os.link(target, holder)
    tree.changes()
    target.unlink()
    target.write_text("other")
    assert tree.changes() == [
        (CREATED, "keep/old.csv", False, None),
        (ATTRIB, "holder", False, None),  # one link less
    ]


def test_a_file_replaced_by_a_folder_is_deleted_then_created(tree: Tree) -> None:
    (tree.root / "keep" / "old.csv").unlink()
    tree.write("keep/old.csv/inner.csv")
    assert tree.changes() == [
        (DELETED, "keep/old.csv", False, None),
        (CREATED, "keep/old.csv", True, None),
        (CREATED, "keep/old.csv/inner.csv", False, None),
    ]


def test_symlinks_are_entries_and_never_followed(tree: Tree) -> None:
    os.symlink(tree.root / "keep", tree.root / "link")
    assert tree.changes() == [(CREATED, "link", False, None)]


def test_non_utf8_names_round_trip(tree: Tree) -> None:
    raw = os.fsencode(tree.root) + b"/caf\xe9.csv"
    fd = os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    after = scan([str(tree.root)])
    found = diff(tree.before.entries, after.entries)
    assert [c.kind for c in found] == [CREATED]
    assert os.fsencode(found[0].path) == raw
    os.rename(raw, raw + b".\xff")
    moved = diff(after.entries, scan([str(tree.root)]).entries)
    assert [(c.kind, os.fsencode(c.path), os.fsencode(c.src_path or "")) for c in moved] == [
        (MOVED, raw + b".\xff", raw)
    ]


def test_changes_carry_the_new_entry(tree: Tree) -> None:
    tree.write("a.csv", "12345")
    after = scan([str(tree.root)])
    (change,) = diff(tree.before.entries, after.entries)
    assert change.entry is not None
    assert change.entry[SIZE] == 5
    assert change.entry[INO] == os.stat(tree.root / "a.csv").st_ino


# -- pure diffs, for what a real file system will not do on request --------------------

FILE = stat.S_IFREG | 0o644


def entry(ino: int, size: int = 0, mtime: int = 0, mode: int = FILE) -> Entry:
    return (mode, 1, ino, size, mtime, mtime, 0, 0)


def test_a_reused_inode_with_other_content_is_not_a_move() -> None:
    old = {"/w": entry(1, mode=stat.S_IFDIR | 0o755), "/w/a": entry(7, size=3, mtime=10)}
    new = {"/w": old["/w"], "/w/b": entry(7, size=9, mtime=20)}
    assert [(c.kind, c.path) for c in diff(old, new)] == [(DELETED, "/w/a"), (CREATED, "/w/b")]


def test_a_swap_is_two_moves() -> None:
    old = {"/w/a": entry(1, 1, 1), "/w/b": entry(2, 2, 2)}
    new = {"/w/a": entry(2, 2, 2), "/w/b": entry(1, 1, 1)}
    found = diff(old, new)
    assert sorted((c.kind, c.path, c.src_path) for c in found) == [
        (MOVED, "/w/a", "/w/b"),
        (MOVED, "/w/b", "/w/a"),
    ]


def test_ordering_is_exact_for_a_mixed_scan() -> None:
    folder = stat.S_IFDIR | 0o755
    old = {"/w": entry(1, mode=folder), "/w/gone": entry(2, mode=folder), "/w/gone/x": entry(3)}
    new = {"/w": entry(1, mode=folder), "/w/new": entry(4, mode=folder), "/w/new/x": entry(3)}
    assert diff(old, new) == [
        Change(CREATED, "/w/new", True, None, new["/w/new"]),
        Change(MOVED, "/w/new/x", False, "/w/gone/x", new["/w/new/x"]),
        Change(DELETED, "/w/gone", True),
    ]


# -- scanning: errors, skipped folders, options -----------------------------------------


def scandir_failing_at(fail: dict[str, OSError]) -> ScanDir:
    """`os.scandir`, except that listing a folder in `fail` raises its error."""

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        if path in fail:
            raise fail[path]
        return os.scandir(path)

    return scandir


def test_an_unreadable_folder_keeps_what_was_seen_and_the_rest_is_scanned(tree: Tree) -> None:
    tree.write("keep/sub/x.csv")
    tree.write("other/y.csv")
    before = scan([str(tree.root)])
    (tree.root / "keep" / "old.csv").unlink()  # unseen: its folder cannot be read
    tree.write("other/z.csv")
    keep = str(tree.root / "keep")
    denied = PermissionError(13, "Permission denied", keep)
    after = scan([str(tree.root)], previous=before, scandir=scandir_failing_at({keep: denied}))
    assert after.problems == {keep: "Permission denied"}
    assert [(c.kind, tree.rel(c.path)) for c in diff(before.entries, after.entries)] == [
        (CREATED, "other/z.csv")
    ]
    assert f"{keep}/sub/x.csv" in after.entries


def test_a_folder_that_vanishes_while_scanned_counts_as_empty(tree: Tree) -> None:
    keep = str(tree.root / "keep")
    gone = FileNotFoundError(2, "No such file or directory", keep)
    after = scan([str(tree.root)], previous=tree.before, scandir=scandir_failing_at({keep: gone}))
    assert after.problems == {}
    assert [(c.kind, tree.rel(c.path)) for c in diff(tree.before.entries, after.entries)] == [
        (DELETED, "keep/old.csv")
    ]


def test_skipped_folders_keep_their_previous_contents(tree: Tree) -> None:
    tree.write("keep/sub/x.csv")
    before = scan([str(tree.root)])
    shutil.rmtree(tree.root / "keep" / "sub")
    keep = str(tree.root / "keep")
    after = scan([str(tree.root)], previous=before, skip={keep})
    assert after.problems == {}
    assert diff(before.entries, after.entries) == []
    root = str(tree.root)
    assert scan([root], previous=before, skip={root}).entries == before.entries


def test_a_cancelled_scan_raises() -> None:
    progress = ScanProgress()
    progress.cancelled = True
    with pytest.raises(ScanCancelled):
        scan(["/"], progress=progress)


def test_progress_counts_entries(tree: Tree) -> None:
    progress = ScanProgress()
    scan([str(tree.root)], progress=progress)
    assert progress.steps == 2  # keep, keep/old.csv
    assert progress.folder == str(tree.root / "keep")


def test_not_recursive_reads_the_top_level_only(tree: Tree) -> None:
    snap = scan([str(tree.root)], recursive=False)
    assert sorted(snap.entries) == [str(tree.root), str(tree.root / "keep")]


def test_a_missing_root_is_listed_and_its_contents_deleted(tree: Tree) -> None:
    root = str(tree.root / "keep")
    before = scan([root])
    shutil.rmtree(root)
    after = scan([root], previous=before)
    assert after.missing == [root]
    assert [(c.kind, c.path) for c in diff(before.entries, after.entries)] == [
        (DELETED, f"{root}/old.csv"),
        (DELETED, root),
    ]


def test_a_file_can_be_a_root(tree: Tree) -> None:
    path = str(tree.root / "keep" / "old.csv")
    before = scan([path])
    tree.write("keep/old.csv", "more", mode="a")
    assert [(c.kind, c.path) for c in diff(before.entries, scan([path]).entries)] == [
        (MODIFIED, path)
    ]


def test_an_empty_previous_snapshot_reports_everything_created(tree: Tree) -> None:
    found = diff(Snapshot().entries, tree.before.entries)
    assert [(c.kind, tree.rel(c.path)) for c in found] == [
        (CREATED, "."),
        (CREATED, "keep"),
        (CREATED, "keep/old.csv"),
    ]
