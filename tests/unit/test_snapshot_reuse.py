"""A scan given the previous one: folders whose times did not move are not listed again,
and every file is still stat-ed, so a change to a file's content is always seen."""

from __future__ import annotations

import contextlib
import os
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

from pipeline.event import EventKind
from pipeline.sources.snapscan import RACY_NS, UNSEEN, DirEntryLike, ScanDir, scan
from pipeline.sources.snapshot import Listing, Snapshot, diff


class Lister:
    """`os.scandir`, noting which folders it listed."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def __call__(self, path: str) -> contextlib.AbstractContextManager[Iterator[DirEntryLike]]:
        self.listed.append(path)
        return os.scandir(path)

    def take(self) -> list[str]:
        listed, self.listed = sorted(self.listed), []
        return listed


def rescan(root: Path, previous: Snapshot, lister: ScanDir) -> Snapshot:
    return scan([str(root)], previous=previous, scandir=lister, reuse_listings=True)


def changes(before: Snapshot, after: Snapshot, root: Path) -> list[tuple[EventKind, str]]:
    assert after.touched is not None
    found = diff(before.entries, after.entries, touched=after.touched)
    assert found == diff(before.entries, after.entries)
    return [(c.kind, os.path.relpath(c.path, root)) for c in found]


def test_only_folders_whose_times_moved_are_listed_again(tmp_path: Path) -> None:
    for name in ("a/1.csv", "a/2.csv", "b/1.csv", "c/sub/1.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    folders = [str(tmp_path)] + [str(tmp_path / name) for name in ("a", "b", "c", "c/sub")]
    time.sleep(RACY_NS / 1e9 + 0.2)  # until the folders' times are old enough to trust
    lister = Lister()

    first = scan([str(tmp_path)], scandir=lister, reuse_listings=True)
    assert lister.take() == sorted(folders)
    assert sorted(first.listings) == sorted(folders)
    second = rescan(tmp_path, first, lister)
    assert lister.take() == []  # nothing was added, removed or renamed anywhere
    assert second.entries == first.entries
    assert second.touched == set()

    with open(tmp_path / "a" / "1.csv", "a") as handle:
        handle.write("more")  # a's own times do not move
    (tmp_path / "b" / "new.csv").write_text("x")
    third = rescan(tmp_path, second, lister)
    assert lister.take() == [str(tmp_path / "b")]
    assert changes(second, third, tmp_path) == [
        (EventKind.CREATED, "b/new.csv"),
        (EventKind.MODIFIED, "a/1.csv"),
    ]
    # b's times are fresh now: it may change again within the same clock tick without
    # them moving, so it is listed again until they are old.
    fourth = rescan(tmp_path, third, lister)
    assert lister.take() == [str(tmp_path / "b")]
    assert changes(third, fourth, tmp_path) == []

    os.rename(tmp_path / "c" / "sub", tmp_path / "c" / "moved")
    (tmp_path / "a" / "2.csv").unlink()
    fifth = rescan(tmp_path, fourth, lister)
    assert lister.take() == [str(tmp_path / n) for n in ("a", "b", "c", "c/moved")]
    assert changes(fourth, fifth, tmp_path) == [
        (EventKind.MOVED, "c/moved"),
        (EventKind.DELETED, "a/2.csv"),
    ]


def test_a_folder_replaced_by_another_is_listed_even_with_the_same_times(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "old.csv").write_text("x")
    before = scan([str(tmp_path)], reuse_listings=True)
    st = os.stat(folder)  # as if it had been listed long after its last change:
    before.listings[str(folder)] = Listing(
        st.st_dev,
        st.st_ino,
        st.st_mtime_ns,
        st.st_ctime_ns,
        (str(folder / "old.csv"),),
        ("old.csv",),
        array("q", [UNSEEN]),
        (),
    )
    os.rename(folder, tmp_path / "gone")  # another folder takes its place, same mtime
    folder.mkdir()
    (folder / "new.csv").write_text("x")
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
    lister = Lister()
    after = rescan(tmp_path, before, lister)
    assert str(folder) in lister.take()
    assert (EventKind.CREATED, "a/new.csv") in changes(before, after, tmp_path)


def test_an_entry_gone_from_a_reused_listing_is_deleted_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "kept.csv").write_text("x")
    before = scan([str(tmp_path)], reuse_listings=True)
    st = os.stat(folder)
    ghost = str(folder / "ghost.csv")  # as if it had been there, and gone since
    before.entries[ghost] = before.entries[str(folder / "kept.csv")]
    before.listings[str(folder)] = Listing(
        st.st_dev,
        st.st_ino,
        st.st_mtime_ns,
        st.st_ctime_ns,
        (str(folder / "kept.csv"), ghost),
        ("kept.csv", "ghost.csv"),
        array("q", [UNSEEN, UNSEEN]),
        (),
    )
    lister = Lister()
    after = rescan(tmp_path, before, lister)
    assert str(folder) not in lister.take()  # its times said: no need to list it
    assert changes(before, after, tmp_path) == [(EventKind.DELETED, "a/ghost.csv")]
    assert after.problems == {}
