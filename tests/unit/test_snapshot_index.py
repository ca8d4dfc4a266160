"""The index of watched trees (pipeline/sources/treeindex.py) and how its marks are resolved."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import MappingProxyType

from pipeline.event import EventKind
from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import Entry, diff, entry_of
from pipeline.sources.treeindex import (
    MARK_SLACK_NS,
    Folder,
    TreeIndex,
    is_pseudo,
    pseudo_entry,
    reconcile,
    subtree,
)

FILE = stat.S_IFREG | 0o644
NOW = 1_800_000_000_000_000_000


def tree() -> tuple[TreeIndex, Folder]:
    index = TreeIndex()
    root = Folder("/in", "", None, MappingProxyType({"root": "/in"}), 1)
    index.roots["/in"] = root
    a = index.add_folder(root, "a", 1)
    b = index.add_folder(a, "b", 1)
    index.add_folder(b, "c", 1)
    b.files["f.csv"] = 5
    root.files["top.csv"] = (FILE, 1, 42, 3, NOW, NOW, 0, 0)
    return index, root


def test_flatten_gives_every_path_and_stand_ins_for_marks() -> None:
    index, _ = tree()
    flat = index.flatten(index.roots.values())
    assert sorted(flat) == ["/in", "/in/a", "/in/a/b", "/in/a/b/c", "/in/a/b/f.csv", "/in/top.csv"]
    assert flat["/in/top.csv"][2] == 42
    assert is_pseudo(flat["/in/a/b/f.csv"]) and flat["/in/a/b/f.csv"][4] == 5
    assert stat.S_ISDIR(flat["/in/a/b"][0])


def test_moving_a_folder_repaths_only_its_subtree() -> None:
    index, root = tree()
    other = index.add_folder(root, "other", 1)
    a = root.folders["a"]
    replaced = index.add_folder(other, "z", 1)
    gone = index.move(a, other, "z")
    assert gone == [replaced]
    assert [f.path for f in subtree(a)] == ["/in/other/z", "/in/other/z/b", "/in/other/z/b/c"]
    assert "a" not in root.folders
    assert root.folders["other"].folders["z"] is a
    assert index.flatten([root])["/in/other/z/b/f.csv"][4] == 5


def test_detach_returns_the_whole_subtree_and_forgets_it_is_dirty() -> None:
    index, root = tree()
    b = root.folders["a"].folders["b"]
    index.dirty.add(b)
    gone = index.detach(root.folders["a"])
    assert [f.path for f in gone] == ["/in/a", "/in/a/b", "/in/a/b/c"]
    assert "a" not in root.folders
    assert not index.dirty


def test_settle_turns_marks_into_stat_entries(tmp_path: Path) -> None:
    index = TreeIndex()
    root = Folder(str(tmp_path), "", None, MappingProxyType({}), 1)
    (tmp_path / "a.csv").write_text("xy")
    root.files = {"a.csv": 7, "gone.csv": 8}
    index.dirty.add(root)
    index.settle(os.lstat)
    assert root.files["a.csv"] == entry_of(os.lstat(tmp_path / "a.csv"))
    assert root.files["gone.csv"] == 8  # its deletion event is on its way
    assert isinstance(root.known, tuple)
    assert not index.dirty


def entry(mtime: int, ctime: int | None = None, ino: int = 9, size: int = 1) -> Entry:
    return (FILE, 1, ino, size, mtime, mtime if ctime is None else ctime, 0, 0)


def test_a_mark_resolves_to_unchanged_modified_or_attrib() -> None:
    mark = NOW
    old = {
        "/in/old.csv": pseudo_entry(mark, folder=False),
        "/in/written.csv": pseudo_entry(mark, folder=False),
        "/in/chmod.csv": pseudo_entry(mark, folder=False),
        "/in/unreported.csv": pseudo_entry(0, folder=False),
        "/in/deleted.csv": pseudo_entry(mark, folder=False),
    }
    new = {
        "/in/old.csv": entry(mark - 2 * MARK_SLACK_NS),
        "/in/written.csv": entry(mark + 1),
        "/in/chmod.csv": entry(mark - 2 * MARK_SLACK_NS, ctime=mark + 1),
        "/in/unreported.csv": entry(mark - 2 * MARK_SLACK_NS),
    }
    changes = diff(reconcile(dict(old), new), new)
    assert sorted((c.kind, c.path) for c in changes) == [
        (EventKind.ATTRIB, "/in/chmod.csv"),
        (EventKind.DELETED, "/in/deleted.csv"),
        (EventKind.MODIFIED, "/in/unreported.csv"),
        (EventKind.MODIFIED, "/in/written.csv"),
    ]


def test_a_write_within_the_clock_slack_of_a_mark_counts_as_changed() -> None:
    new = {"/in/a.csv": entry(NOW - MARK_SLACK_NS // 2)}
    changes = diff(reconcile({"/in/a.csv": pseudo_entry(NOW, folder=False)}, new), new)
    assert [c.kind for c in changes] == [EventKind.MODIFIED]


def test_files_of_a_folder_never_listed_are_news_only_when_newer_than_its_watch() -> None:
    old = {"/in/leaf": pseudo_entry(NOW, folder=True)}
    new = {
        "/in/leaf": (stat.S_IFDIR | 0o755, 1, 3, 0, NOW, 0, 0, 0),
        "/in/leaf/before.csv": entry(NOW - 2 * MARK_SLACK_NS),
        "/in/leaf/after.csv": entry(NOW + 5),
    }
    changes = diff(reconcile(dict(old), new, {"/in/leaf": NOW}), new)
    assert [(c.kind, c.path) for c in changes] == [(EventKind.CREATED, "/in/leaf/after.csv")]


def test_a_flattened_index_diffs_like_a_scan(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x")
    before = scan([str(tmp_path)]).entries
    index = TreeIndex()
    root = Folder(str(tmp_path), "", None, MappingProxyType({}), before[str(tmp_path)])
    d = index.add_folder(root, "d", before[str(tmp_path / "d")])
    d.files["a.csv"] = before[str(tmp_path / "d" / "a.csv")]
    assert diff(index.flatten([root]), before) == []
