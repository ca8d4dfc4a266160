"""Reason flags to events, path resolution from file reference numbers, and path scope."""

from __future__ import annotations

from pathlib import Path

from pipeline.event import Event, EventKind
from pipeline.windows import usn_reasons as r
from pipeline.windows.usn_events import USN_KINDS, JournalInterpreter
from pipeline.windows.usn_paths import PathResolver, PathScope, format_reference, unknown_folder
from pipeline.windows.usn_records import UsnRecord
from pipeline.windows.usn_scan import scan_buffer

PLASO = Path(__file__).resolve().parents[3] / "shared" / "data" / "usn" / "plaso_UsnJrnl.raw"
PLASO_HISTORY = [
    ("created", "C:\\Nieuw - Tekstdocument.txt", None),
    ("closed_write", "C:\\Nieuw - Tekstdocument.txt", None),
    ("moved", "C:\\first.txt", "C:\\Nieuw - Tekstdocument.txt"),
    ("attrib", "C:\\first.txt", None),
    ("attrib", "C:\\", None),
    ("modified", "C:\\first.txt", None),
    ("closed_write", "C:\\first.txt", None),
    ("created", "C:\\Kopie van first.txt", None),
    ("modified", "C:\\Kopie van first.txt", None),
    ("attrib", "C:\\Kopie van first.txt", None),
    ("closed_write", "C:\\Kopie van first.txt", None),
    ("moved", "C:\\second.txt", "C:\\Kopie van first.txt"),
]
"""What the plaso sample journal records, as (kind, path, src_path), the history that
dissect.ntfs reports for it."""
ROOT = 5 | 5 << 48  # MFT entry 5 (the root folder), sequence 5
DIR = 0x10
FILE = 0x20


class Journal:
    """Hands records to an interpreter and keeps what it emitted."""

    def __init__(
        self,
        root: str = "C:",
        paths: list[str] | None = None,
        lookup: dict[int, str] | None = None,
        wanted: frozenset[EventKind] = USN_KINDS,
    ) -> None:
        answers = lookup or {}
        self.resolver = PathResolver(root, lookup=answers.get if lookup is not None else None)
        scope = PathScope(paths or [], self.resolver.sep, self.resolver.root)
        self.interpreter = JournalInterpreter(self.resolver, scope, source="t/usn", wanted=wanted)
        self.events: list[Event] = []
        self.usn = 0

    def record(
        self, name: str | None, reason: int, *, frn: int, parent: int = ROOT, attrs: int = FILE
    ) -> list[Event]:
        self.usn += 8
        record = UsnRecord(
            offset=self.usn,
            length=8,
            major_version=2 if name is not None else 4,
            minor_version=0,
            file_reference=frn,
            parent_reference=parent,
            usn=self.usn,
            reason=reason,
            source_info=0,
            timestamp=130933917272031250 if name is not None else None,
            attributes=attrs if name is not None else None,
            name=name,
            extents=((0, 4096),) if name is None else (),
        )
        new = self.interpreter.feed(record)
        self.events += new
        return new

    def seen(self) -> list[tuple[str, str, str | None]]:
        return [(e.kind.value, e.path, e.src_path) for e in self.events]


def history(events: list[Event]) -> list[tuple[str, str, str | None]]:
    return [(e.kind.value, e.path, e.src_path) for e in events]


# -- the mapping ----------------------------------------------------------------------------


def test_plaso_journal_gives_one_event_per_thing_that_happened() -> None:
    journal = Journal()
    for record in scan_buffer(PLASO.read_bytes()):
        assert isinstance(record, UsnRecord)
        journal.events += journal.interpreter.feed(record)
    assert journal.seen() == PLASO_HISTORY
    close = journal.events[10]
    assert close.meta["usn"] == 1296
    assert close.meta["reasons"] == [
        "DATA_OVERWRITE",
        "DATA_EXTEND",
        "FILE_CREATE",
        "BASIC_INFO_CHANGE",
        "CLOSE",
    ]
    assert close.meta["file_reference"] == "0x000100000000001f"
    assert close.meta["parent_reference"] == "0x0005000000000005"
    assert close.meta["attributes"] == ["ARCHIVE"]
    assert close.meta["timestamp"] == "2015-11-30T21:15:47.984375Z"
    assert close.time.isoformat() == "2015-11-30T21:15:47.984375+00:00"
    assert journal.events[4].is_dir


def test_one_write_is_one_modified_and_one_closed_write() -> None:
    journal = Journal()
    journal.record("a.bin", r.DATA_OVERWRITE, frn=30)
    journal.record("a.bin", r.DATA_OVERWRITE | r.DATA_EXTEND, frn=30)
    journal.record("a.bin", r.DATA_OVERWRITE | r.DATA_EXTEND | r.DATA_TRUNCATION, frn=30)
    journal.record("a.bin", r.DATA_OVERWRITE | r.DATA_EXTEND | r.DATA_TRUNCATION | r.CLOSE, frn=30)
    assert [k for k, _, _ in journal.seen()] == ["modified", "closed_write"]
    journal.record("a.bin", r.DATA_EXTEND, frn=30)  # a new open: reasons start afresh
    journal.record("a.bin", r.DATA_EXTEND | r.CLOSE, frn=30)
    assert [k for k, _, _ in journal.seen()] == ["modified", "closed_write"] * 2


def test_a_close_without_a_write_is_not_closed_write() -> None:
    journal = Journal()
    journal.record("a.txt", r.BASIC_INFO_CHANGE, frn=30)
    journal.record("a.txt", r.BASIC_INFO_CHANGE | r.SECURITY_CHANGE | r.CLOSE, frn=30)
    assert journal.seen() == [("attrib", "C:\\a.txt", None)]


def test_only_on_close_records_report_everything_at_the_close() -> None:
    journal = Journal()
    events = journal.record("new.csv", r.FILE_CREATE | r.DATA_EXTEND | r.CLOSE, frn=31)
    assert history(events) == [
        ("created", "C:\\new.csv", None),
        ("modified", "C:\\new.csv", None),
        ("closed_write", "C:\\new.csv", None),
    ]
    # Renamed, seen only at its close: the old path is what was seen of the file before.
    moved = journal.record("renamed.csv", r.RENAME_OLD_NAME | r.RENAME_NEW_NAME | r.CLOSE, frn=31)
    assert history(moved) == [("moved", "C:\\renamed.csv", "C:\\new.csv")]
    unknown = journal.record("x.csv", r.RENAME_OLD_NAME | r.RENAME_NEW_NAME | r.CLOSE, frn=99)
    assert history(unknown) == [("moved", "C:\\x.csv", None)]


def test_delete_is_deleted_and_never_closed_write() -> None:
    journal = Journal()
    journal.record("t.tmp", r.FILE_CREATE, frn=32)
    journal.record("t.tmp", r.FILE_CREATE | r.DATA_EXTEND, frn=32)
    journal.record("t.tmp", r.FILE_CREATE | r.DATA_EXTEND | r.FILE_DELETE | r.CLOSE, frn=32)
    assert [k for k, _, _ in journal.seen()] == ["created", "modified", "deleted"]


def test_folders_get_no_closed_write() -> None:
    journal = Journal()
    journal.record("d", r.FILE_CREATE, frn=40, attrs=DIR)
    journal.record("d", r.FILE_CREATE | r.CLOSE, frn=40, attrs=DIR)
    assert journal.seen() == [("created", "C:\\d", None)]
    assert journal.events[0].is_dir


def test_a_rename_half_left_alone_at_the_end_is_deleted() -> None:
    journal = Journal()
    journal.record("gone.txt", r.RENAME_OLD_NAME, frn=33)
    assert journal.interpreter.pending_usn() == 8
    assert history(journal.interpreter.flush()) == [("deleted", "C:\\gone.txt", None)]
    assert journal.interpreter.pending_usn() is None


def test_events_are_limited_to_the_wanted_kinds() -> None:
    journal = Journal(wanted=frozenset({EventKind.CLOSED_WRITE}))
    journal.record("a", r.FILE_CREATE | r.DATA_EXTEND | r.CLOSE, frn=34)
    assert journal.seen() == [("closed_write", "C:\\a", None)]


def test_a_v4_range_record_is_modified_with_its_extents() -> None:
    journal = Journal()
    journal.record("big.vhd", r.BASIC_INFO_CHANGE | r.CLOSE, frn=35)
    events = journal.record(None, r.DATA_OVERWRITE, frn=35)
    assert history(events) == [("modified", "C:\\big.vhd", None)]
    assert events[0].meta["extents"] == [[0, 4096]]
    assert "timestamp" not in events[0].meta


# -- paths ----------------------------------------------------------------------------------


def test_paths_follow_folders_the_journal_describes_and_their_renames() -> None:
    journal = Journal(root="/mnt/img")
    journal.record("data", r.FILE_CREATE | r.CLOSE, frn=50, attrs=DIR)
    journal.record("in", r.FILE_CREATE | r.CLOSE, frn=51, parent=50, attrs=DIR)
    journal.record("a.csv", r.FILE_CREATE | r.CLOSE, frn=52, parent=51)
    journal.record("in", r.RENAME_OLD_NAME, frn=51, parent=50, attrs=DIR)
    journal.record("inbox", r.RENAME_NEW_NAME, frn=51, parent=50, attrs=DIR)
    journal.record("b.csv", r.FILE_CREATE | r.CLOSE, frn=53, parent=51)
    assert journal.seen() == [
        ("created", "/mnt/img/data", None),
        ("created", "/mnt/img/data/in", None),
        ("created", "/mnt/img/data/in/a.csv", None),
        ("closed_write", "/mnt/img/data/in/a.csv", None),
        ("moved", "/mnt/img/data/inbox", "/mnt/img/data/in"),
        ("created", "/mnt/img/data/inbox/b.csv", None),
        ("closed_write", "/mnt/img/data/inbox/b.csv", None),
    ]


def test_an_unknown_parent_is_written_with_its_entry_and_sequence() -> None:
    journal = Journal()
    parent = 14038 | 1 << 48
    journal.record("x.cat", r.FILE_CREATE, frn=60, parent=parent)
    assert journal.seen() == [("created", "C:\\<unknown:14038-1>\\x.cat", None)]
    assert unknown_folder(parent) == "<unknown:14038-1>"
    assert unknown_folder(1 << 100).startswith("<unknown:0x")
    assert format_reference(parent) == "0x00010000000036d6"


def test_live_lookup_anchors_folders_the_journal_never_described() -> None:
    journal = Journal(lookup={70: "C:\\Users\\ann\\Documents"})
    journal.record("r.docx", r.FILE_CREATE, frn=71, parent=70)
    journal.record("s.docx", r.FILE_CREATE, frn=72, parent=999)  # the OS does not know it
    assert journal.seen() == [
        ("created", "C:\\Users\\ann\\Documents\\r.docx", None),
        ("created", "C:\\<unknown:999-0>\\s.docx", None),
    ]


def test_a_loop_of_folder_links_does_not_hang() -> None:
    resolver = PathResolver("C:")
    for frn, parent in ((80, 81), (81, 80)):
        record = UsnRecord(0, 8, 2, 0, frn, parent, 0, r.FILE_CREATE, 0, 0, 0, DIR, f"d{frn}")
        resolver.learn(record, "ignored")
    assert "<unknown:" in resolver.folder(80)


# -- scope ----------------------------------------------------------------------------------


def test_scope_keeps_the_configured_paths_without_regard_to_case() -> None:
    journal = Journal(paths=["C:\\Data\\Inbox"])
    journal.record("data", r.FILE_CREATE, frn=90, attrs=DIR)
    journal.record("INBOX", r.FILE_CREATE, frn=91, parent=90, attrs=DIR)
    journal.record("elsewhere.txt", r.FILE_CREATE, frn=92)
    journal.record("in.txt", r.FILE_CREATE, frn=93, parent=91)
    assert journal.seen() == [
        ("created", "C:\\data\\INBOX", None),
        ("created", "C:\\data\\INBOX\\in.txt", None),
    ]
    assert journal.events[-1].meta["root"] == "C:\\Data\\Inbox"


def test_moves_across_the_scope_boundary() -> None:
    journal = Journal(paths=["C:\\in"])
    journal.record("in", r.FILE_CREATE | r.CLOSE, frn=100, attrs=DIR)
    journal.events.clear()
    journal.record("a.txt", r.RENAME_OLD_NAME, frn=101)  # C:\a.txt, outside
    journal.record("a.txt", r.RENAME_NEW_NAME, frn=101, parent=100)  # into C:\in
    journal.record("a.txt", r.RENAME_OLD_NAME, frn=101, parent=100)
    journal.record("b.txt", r.RENAME_NEW_NAME, frn=101)  # out again
    journal.record("b.txt", r.RENAME_OLD_NAME, frn=101)
    journal.record("c.txt", r.RENAME_NEW_NAME, frn=101)  # outside to outside
    assert journal.seen() == [
        ("moved", "C:\\in\\a.txt", None),
        ("deleted", "C:\\in\\a.txt", None),
    ]
