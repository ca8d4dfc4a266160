"""The `windows` source's state index (pipeline/windows/rdcw_known.py) against real scans."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.event import EventKind
from pipeline.sources.snapshot import diff
from pipeline.sources.treeindex import is_pseudo, reconcile
from pipeline.windows.rdcw_known import KnownTree
from pipeline.windows.rdcw_scan import scan_trees, stat_path


def changes_after(known: KnownTree, root: Path) -> list[tuple[str, str]]:
    """What a rescan of `root` reports against `known`, as (kind, relative path)."""
    fresh = scan_trees([str(root)], recursive=True).entries
    found = diff(reconcile(known.within(str(root)), fresh), fresh)
    known.replace_within(str(root), fresh)
    return [(c.kind.value, os.path.relpath(c.path, root).replace(os.sep, "/")) for c in found]


def test_marks_stand_for_what_records_told_until_a_rescan_resolves_them(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    known = KnownTree()
    known.entries = dict(scan_trees([str(tmp_path)], recursive=True).entries)
    # Records for a new file and a change are handled a little after the writes (more
    # than the 10 ms a file time may lag behind: within it, a rescan reports it again).
    (tmp_path / "new.txt").write_text("new")
    (tmp_path / "old.txt").write_text("changed")
    time.sleep(0.03)
    known.touch(str(tmp_path / "new.txt"), False, time.time_ns())
    known.touch(str(tmp_path / "old.txt"), False, time.time_ns())
    assert is_pseudo(known.entries[str(tmp_path / "new.txt")])
    # Nothing happened since: the rescan has nothing to say.
    assert changes_after(known, tmp_path) == []


def test_a_rescan_reports_what_the_records_missed(tmp_path: Path) -> None:
    for name in ("keep", "change", "gone", "renamed"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub").mkdir()
    known = KnownTree()
    known.entries = dict(scan_trees([str(tmp_path)], recursive=True).entries)
    (tmp_path / "change").write_text("a longer content")
    (tmp_path / "gone").unlink()
    (tmp_path / "renamed").rename(tmp_path / "sub" / "moved")
    (tmp_path / "sub" / "fresh").write_text("")
    assert sorted(changes_after(known, tmp_path)) == [
        (EventKind.CREATED.value, "sub/fresh"),
        (EventKind.DELETED.value, "gone"),
        (EventKind.MODIFIED.value, "change"),
        (EventKind.MOVED.value, "sub/moved"),
    ]


def test_folder_moves_and_removals_carry_everything_below() -> None:
    known = KnownTree(sep="\\")
    for path, folder in [("C:\\r\\d", True), ("C:\\r\\d\\a", False), ("C:\\r\\d\\s", True),
                         ("C:\\r\\d\\s\\b", False), ("C:\\r\\dx", False)]:  # fmt: skip
        known.touch(path, folder, 5)
    known.move("C:\\r\\d", "C:\\r\\e", True, 6)
    assert sorted(known.entries) == [
        "C:\\r\\dx", "C:\\r\\e", "C:\\r\\e\\a", "C:\\r\\e\\s", "C:\\r\\e\\s\\b",
    ]  # fmt: skip
    assert known.is_dir("C:\\r\\e\\s") is True and known.is_dir("C:\\r\\e\\a") is False
    assert known.is_dir("C:\\r\\nothing") is None
    known.remove("C:\\r\\e")
    assert sorted(known.entries) == ["C:\\r\\dx"]  # a sibling with the same prefix stays
    known.changed = False
    known.touch("C:\\r\\dx", False, 7)
    assert known.changed


def test_settle_turns_marks_into_stat_entries_and_keeps_marks_of_gone_paths(
    tmp_path: Path,
) -> None:
    (tmp_path / "here").write_text("1")
    known = KnownTree()
    known.touch(str(tmp_path / "here"), False, 1)
    known.touch(str(tmp_path / "gone"), False, 1)
    saved = known.take(stat_path)
    assert not is_pseudo(saved[str(tmp_path / "here")])
    assert is_pseudo(saved[str(tmp_path / "gone")])
    assert not known.changed
