"""The fanotify source's index: events leave marks (no stat), checkpoints stat them, and a
comparison with a fresh scan tells what changed after each mark."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.event import EventKind
from pipeline.sources.catchup import changes_since
from pipeline.sources.fanotify_index import TreeIndex
from pipeline.sources.snapscan import scan
from pipeline.sources.snapshot import entry_of
from pipeline.sources.treeindex import MARK_SLACK_NS, is_pseudo


def tree(root: Path) -> TreeIndex:
    return TreeIndex.from_entries(scan([str(root)]).entries)


def changes(index: TreeIndex, root: Path) -> list[tuple[EventKind, str]]:
    now = scan([str(root)]).entries
    found = changes_since(index.entries(), now, [str(root)])
    return [(c.kind, os.path.relpath(c.path, root)) for c in found]


def test_a_reported_change_is_a_mark_until_a_checkpoint_stats_it(tmp_path: Path) -> None:
    index = tree(tmp_path)
    path = tmp_path / "a.csv"
    path.write_text("x")
    index.touch(str(path), time.time_ns() + MARK_SLACK_NS, folder=False)
    assert is_pseudo(index.entries()[str(path)])
    assert changes(index, tmp_path) == []  # written before the mark: it was reported
    (tmp_path / "gone.csv").write_text("x")
    index.touch(str(tmp_path / "gone.csv"), time.time_ns(), folder=False)
    (tmp_path / "gone.csv").unlink()
    assert index.settle() == [str(path)]
    assert index.entries()[str(path)] == entry_of(os.lstat(path))
    assert is_pseudo(index.entries()[str(tmp_path / "gone.csv")])  # its deletion is on its way
    assert index.dirty == set()


def test_a_change_after_the_mark_is_found(tmp_path: Path) -> None:
    index = tree(tmp_path)
    path = tmp_path / "a.csv"
    path.write_text("x")
    index.touch(str(path), time.time_ns() - 10 * MARK_SLACK_NS, folder=False)
    assert changes(index, tmp_path) == [(EventKind.MODIFIED, "a.csv")]


def test_an_unknown_path_counts_as_changed(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x")
    index = tree(tmp_path)
    assert changes(index, tmp_path) == []
    index.unknown(str(tmp_path / "a.csv"))
    index.unknown(str(tmp_path / "never-seen.csv"))  # not known: nothing to note
    assert changes(index, tmp_path) == [(EventKind.MODIFIED, "a.csv")]


def test_a_renamed_folder_takes_its_entries_and_their_marks_along(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.csv").write_text("x")
    index = tree(tmp_path)
    (tmp_path / "d" / "e" / "g.csv").write_text("x")
    mark = time.time_ns() + MARK_SLACK_NS
    index.touch(str(tmp_path / "d" / "e" / "g.csv"), mark, folder=False)
    os.rename(tmp_path / "d", tmp_path / "r")
    index.move(str(tmp_path / "d"), str(tmp_path / "r"), mark, folder=True)
    assert sorted(os.path.relpath(p, tmp_path) for p in index.entries()) == [
        ".", "r", "r/e", "r/e/f.csv", "r/e/g.csv",
    ]  # fmt: skip
    assert str(tmp_path / "r" / "e") in index.dirty
    assert changes(index, tmp_path) == []
    index.settle()
    assert changes(index, tmp_path) == []
    index.discard_tree(str(tmp_path / "r"))
    assert sorted(index.entries()) == [str(tmp_path)]
