"""Change records -> events (pipeline/windows/rdcw_events.py): renames, moves, coalescing."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.event import Event, EventKind
from pipeline.sources.treeindex import is_pseudo
from pipeline.windows.rdcw_decode import (
    FILE_ACTION_ADDED,
    FILE_ACTION_MODIFIED,
    FILE_ACTION_REMOVED,
    FILE_ACTION_RENAMED_NEW_NAME,
    FILE_ACTION_RENAMED_OLD_NAME,
    ExtendedInfo,
    NotifyRecord,
    decode,
)
from pipeline.windows.rdcw_events import RecordTranslator
from pipeline.windows.rdcw_known import KnownTree
from pipeline.windows.rdcw_paths import LongNames
from tests.unit.test_rdcw_decode import basic_record, chain, extended_record

ROOT = "C:\\in"
ALL = frozenset(EventKind) - {EventKind.BATCH}
SEEN = datetime(2026, 1, 1, tzinfo=UTC)
ADDED, REMOVED, MODIFIED = FILE_ACTION_ADDED, FILE_ACTION_REMOVED, FILE_ACTION_MODIFIED
OLD, NEW = FILE_ACTION_RENAMED_OLD_NAME, FILE_ACTION_RENAMED_NEW_NAME


def make(
    folders: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    wanted: frozenset[EventKind] = ALL,
    exclude: tuple[str, ...] = (),
    expand: LongNames | None = None,
) -> RecordTranslator:
    """A translator whose stat sees `folders` (relative names) as folders, else files."""
    existing = {ROOT + "\\" + name for name in folders}
    return RecordTranslator(
        ROOT,
        source="t/windows",
        wanted=wanted,
        known=KnownTree(sep="\\"),
        meta={"root": ROOT},
        expand=expand.expand if expand is not None else (lambda path: path),
        probe_dir=lambda path: path in existing,
        move_wait=0.05,
        exclude=exclude,
        mark=lambda: 1_000,
    )


def records(*pairs: tuple[int, str]) -> list[NotifyRecord]:
    """Decoded from a real basic buffer, as the source gets them."""
    decoded = decode(chain(*(basic_record(a, n) for a, n in pairs)), extended=False)
    assert decoded.error is None
    return decoded.records


def summary(events: list[Event]) -> list[tuple[str, str, str | None, bool]]:
    short = len(ROOT) + 1
    return [
        (e.kind.value, e.path[short:], e.src_path[short:] if e.src_path else None, e.is_dir)
        for e in events
    ]


def test_create_write_delete_of_a_file() -> None:
    translator = make()
    events = translator.translate(
        records((ADDED, "a.csv"), (MODIFIED, "a.csv"), (REMOVED, "a.csv")), 0.0, SEEN
    )
    assert summary(events) == [
        ("created", "a.csv", None, False),
        ("modified", "a.csv", None, False),
        ("deleted", "a.csv", None, False),
    ]
    assert events[0].path == "C:\\in\\a.csv" and events[0].source == "t/windows"
    assert events[0].meta == {"root": ROOT} and events[0].time == SEEN


def test_the_modified_records_of_one_write_come_as_one_event() -> None:
    translator = make()
    events = translator.translate(
        records(
            (ADDED, "a"),
            (MODIFIED, "a"),
            (MODIFIED, "a"),
            (MODIFIED, "b"),
            (MODIFIED, "a"),
            (MODIFIED, "b"),
            (OLD, "a"),
            (NEW, "c"),
            (ADDED, "a"),
            (MODIFIED, "a"),
        ),
        0.0,
        SEEN,
    )
    # One `modified` per file per buffer, unless something else happened to it between.
    assert summary(events) == [
        ("created", "a", None, False),
        ("modified", "a", None, False),
        ("modified", "b", None, False),
        ("moved", "c", "a", False),
        ("created", "a", None, False),
        ("modified", "a", None, False),
    ]
    # The next buffer is another burst: its first `modified` is reported again.
    events = translator.translate(records((MODIFIED, "a"), (MODIFIED, "a")), 0.0, SEEN)
    assert summary(events) == [("modified", "a", None, False)]


def test_folders_are_told_apart_and_their_own_modified_records_dropped() -> None:
    translator = make({"sub"})
    events = translator.translate(
        records((ADDED, "sub"), (ADDED, "sub\\x.txt"), (MODIFIED, "sub"), (MODIFIED, "sub\\x.txt")),
        0.0,
        SEEN,
    )
    assert summary(events) == [
        ("created", "sub", None, True),
        ("created", "sub\\x.txt", None, False),
        ("modified", "sub\\x.txt", None, False),
    ]
    # Gone folders are known as folders from what was seen of them.
    events = translator.translate(records((REMOVED, "sub\\x.txt"), (REMOVED, "sub")), 0.0, SEEN)
    assert summary(events) == [
        ("deleted", "sub\\x.txt", None, False),
        ("deleted", "sub", None, True),
    ]


def test_a_rename_within_one_buffer_is_one_moved_event() -> None:
    translator = make()
    events = translator.translate(records((OLD, "a.tmp"), (NEW, "a.csv")), 0.0, SEEN)
    assert summary(events) == [("moved", "a.csv", "a.tmp", False)]
    assert translator.next_deadline() is None


def test_an_old_name_ending_a_buffer_pairs_with_the_next_buffers_new_name() -> None:
    translator = make({"renamed"})
    assert translator.translate(records((ADDED, "x"), (OLD, "dir")), 10.0, SEEN)[1:] == []
    assert translator.next_deadline() == 10.05
    assert translator.expired(10.04, SEEN) == []
    events = translator.translate(records((NEW, "renamed"), (ADDED, "y")), 10.04, SEEN)
    assert summary(events) == [("moved", "renamed", "dir", True), ("created", "y", None, False)]


def test_an_old_name_with_no_new_name_is_a_move_out_reported_deleted() -> None:
    translator = make()
    translator.translate(records((OLD, "gone.csv")), 10.0, SEEN)
    assert summary(translator.expired(10.05, SEEN)) == [("deleted", "gone.csv", None, False)]
    assert translator.next_deadline() is None
    # Or the next buffer starts with something else: deleted first, then the rest.
    translator.translate(records((OLD, "b.csv")), 20.0, SEEN)
    events = translator.translate(records((ADDED, "c.csv")), 20.01, SEEN)
    assert summary(events) == [("deleted", "b.csv", None, False), ("created", "c.csv", None, False)]
    # An old name followed by an unrelated record in the same buffer: deleted at once.
    events = translator.translate(records((OLD, "d.csv"), (ADDED, "e.csv")), 30.0, SEEN)
    assert summary(events) == [("deleted", "d.csv", None, False), ("created", "e.csv", None, False)]


def test_a_new_name_without_an_old_one_came_from_outside() -> None:
    events = make().translate(records((NEW, "arrived.csv")), 0.0, SEEN)
    assert summary(events) == [("moved", "arrived.csv", None, False)]


def extended(*items: tuple[int, str, int, bool]) -> list[NotifyRecord]:
    """Decoded from a real extended buffer: (action, name, file id, is folder)."""
    bodies = [
        extended_record(a, n, file_id=i, attributes=0x10 if d else 0x20, size=10 * i)
        for a, n, i, d in items
    ]
    decoded = decode(chain(*bodies, align=8), extended=True)
    assert decoded.error is None
    return decoded.records


def test_a_move_between_folders_pairs_removed_and_added_by_file_id() -> None:
    translator = make()
    batch = extended(
        (REMOVED, "a\\f.csv", 7, False),
        (MODIFIED, "a", 2, True),
        (ADDED, "b\\f.csv", 7, False),
        (REMOVED, "a\\x.csv", 9, False),
        (REMOVED, "a\\g.csv", 8, False),
    )
    events = translator.translate(batch, 10.0, SEEN)
    assert summary(events) == [
        ("moved", "b\\f.csv", "a\\f.csv", False),
        ("deleted", "a\\x.csv", None, False),  # no ADDED of file 9 follows
    ]
    # A removal that ends the buffer waits for the next one, like an old name.
    assert translator.next_deadline() == 10.05
    events = translator.translate(
        extended((MODIFIED, "c", 3, True), (ADDED, "c\\g.csv", 8, False)), 10.01, SEEN
    )
    assert summary(events) == [("moved", "c\\g.csv", "a\\g.csv", False)]
    # And becomes `deleted` when nothing of it comes in time.
    translator.translate(extended((REMOVED, "c\\g.csv", 8, False)), 20.0, SEEN)
    assert translator.expired(20.01, SEEN) == []
    assert summary(translator.expired(20.05, SEEN)) == [("deleted", "c\\g.csv", None, False)]


def test_extended_records_tell_folders_without_stat_and_fill_meta() -> None:
    translator = make()  # the stat stand-in sees no folder at all
    events = translator.translate(
        extended((ADDED, "d", 3, True), (ADDED, "d\\x.bin", 4, False), (MODIFIED, "d", 3, True)),
        0.0,
        SEEN,
    )
    assert summary(events) == [("created", "d", None, True), ("created", "d\\x.bin", None, False)]
    assert events[0].meta == {"root": ROOT, "inode": 3}
    meta = dict(events[1].meta)
    assert meta.pop("mtime") == 1_704_164_646.0 and meta.pop("created") == 1_704_164_645.0
    assert meta == {"root": ROOT, "inode": 4, "size": 40}


def test_unwanted_kinds_are_not_emitted_but_still_tracked() -> None:
    translator = make(wanted=frozenset({EventKind.DELETED}))
    assert translator.translate(records((ADDED, "a"), (MODIFIED, "a")), 0.0, SEEN) == []
    assert set(translator.known.entries) == {"C:\\in\\a"}
    events = translator.translate(records((REMOVED, "a")), 0.0, SEEN)
    assert summary(events) == [("deleted", "a", None, False)]
    assert translator.known.entries == {}


def test_the_known_tree_follows_renames_of_folders_with_their_contents() -> None:
    translator = make({"d", "e"})
    translator.translate(records((ADDED, "d"), (ADDED, "d\\x"), (ADDED, "d\\sub")), 0.0, SEEN)
    translator.known.entries["C:\\in\\d\\sub"] = translator.known.entries["C:\\in\\d"]  # a folder
    translator.translate(records((ADDED, "d\\sub\\y")), 0.0, SEEN)
    translator.translate(records((OLD, "d"), (NEW, "e")), 0.0, SEEN)
    assert sorted(translator.known.entries) == [
        "C:\\in\\e", "C:\\in\\e\\sub", "C:\\in\\e\\sub\\y", "C:\\in\\e\\x",
    ]  # fmt: skip
    assert all(is_pseudo(e) for e in translator.known.entries.values())
    translator.translate(records((REMOVED, "e")), 0.0, SEEN)
    assert translator.known.entries == {}


def test_paths_in_the_state_dir_are_never_reported() -> None:
    translator = make(exclude=("C:\\in\\.state",))
    events = translator.translate(
        records(
            (ADDED, ".state\\snapshot.bin"),
            (OLD, "a"),
            (NEW, ".state\\a"),
            (OLD, ".state\\b"),
            (NEW, "b"),
            (ADDED, ".statement"),
        ),
        0.0,
        SEEN,
    )
    assert summary(events) == [
        ("deleted", "a", None, False),  # moved into the state_dir: gone from view
        ("moved", "b", None, False),  # moved out of it: from outside
        ("created", ".statement", None, False),
    ]


def test_short_names_in_records_come_out_long() -> None:
    existing = {"C:\\in\\REPORT~1.CSV": "C:\\in\\Report 2024.csv"}
    names = LongNames(lambda p: existing.get(p.removeprefix("\\\\?\\")))
    translator = make(expand=names)
    events = translator.translate(records((ADDED, "REPORT~1.CSV")), 0.0, SEEN)
    assert [e.path for e in events] == ["C:\\in\\Report 2024.csv"]
    existing.clear()  # deleted: reported under the long name it was seen with
    events = translator.translate(records((REMOVED, "REPORT~1.CSV")), 0.0, SEEN)
    assert [e.path for e in events] == ["C:\\in\\Report 2024.csv"]


def test_extended_info_type_is_the_documented_one() -> None:
    record = extended((ADDED, "x", 5, False))[0]
    assert isinstance(record.info, ExtendedInfo) and not record.info.is_dir
