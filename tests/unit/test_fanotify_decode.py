"""The fanotify event decoder (pipeline/linux/fanotify.py): real kernel buffers and hostile ones."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.linux import fanotify as api
from pipeline.linux.fanotify import FanEvent, decode

# Captured on Linux 6.18 (x86-64) from a group with FAN_REPORT_DFID_NAME_TARGET and a
# FAN_MARK_FILESYSTEM mark, keeping the events of the capturing process, after:
#   write a.csv; rename a.csv -> caf\xe9.csv; mkdir d; rmdir d; mkdir sub; chmod sub;
#   unlink caf\xe9.csv
# On tmpfs (/dev/shm; 12-byte handles, records padded to 4 bytes):
TMPFS_CAPTURE = bytes.fromhex(
    "60000000030018002a01000000000000ffffffff99550000020028006152f1b30c94f79a0c00000001000000"
    "55d5ae21e227090000000000612e637376000000010020006152f1b30c94f79a0c00000001000000354e2016"
    "e3270900000000008c000000030018000000001000000000ffffffff995500000a0028006152f1b30c94f79a"
    "0c0000000100000055d5ae21e227090000000000612e6373760000000c002c006152f1b30c94f79a0c000000"
    "0100000055d5ae21e227090000000000636166e92e63737600000000010020006152f1b30c94f79a0c000000"
    "01000000354e2016e3270900000000005c000000030018000003004000000000ffffffff9955000002002400"
    "6152f1b30c94f79a0c0000000100000055d5ae21e22709000000000064000000010020006152f1b30c94f79a"
    "0c00000001000000fb14434ee4270900000000005c000000030018000001004000000000ffffffff99550000"
    "020024006152f1b30c94f79a0c0000000100000055d5ae21e22709000000000073756200010020006152f1b3"
    "0c94f79a0c00000001000000995064cae5270900000000003c000000030018000400004000000000ffffffff"
    "99550000020024006152f1b30c94f79a0c00000001000000995064cae5270900000000002e00000038000000"
    "030018000400000000000000ffffffff99550000010020006152f1b30c94f79a0c00000001000000354e2016"
    "e32709000000000064000000030018000002000000000000ffffffff9955000002002c006152f1b30c94f79a"
    "0c0000000100000055d5ae21e227090000000000636166e92e63737600000000010020006152f1b30c94f79a"
    "0c00000001000000354e2016e327090000000000"
)
# The same on ext4 (8-byte handles):
EXT4_CAPTURE = bytes.fromhex(
    "58000000030018002a01000000000000ffffffff4965000002002400c5d83910b16df6b90800000001000000"
    "3cc320004746df3d612e63737600000001001c00c5d83910b16df6b9080000000100000052c3200084b1da2b"
    "80000000030018000000001000000000ffffffff496500000a002400c5d83910b16df6b90800000001000000"
    "3cc320004746df3d612e6373760000000c002800c5d83910b16df6b908000000010000003cc320004746df3d"
    "636166e92e6373760000000001001c00c5d83910b16df6b9080000000100000052c3200084b1da2b54000000"
    "030018000003004000000000ffffffff4965000002002000c5d83910b16df6b908000000010000003cc32000"
    "4746df3d6400000001001c00c5d83910b16df6b9080000000100000062c320001da43f935400000003001800"
    "0001004000000000ffffffff4965000002002000c5d83910b16df6b908000000010000003cc320004746df3d"
    "7375620001001c00c5d83910b16df6b9080000000100000062c32000efad87d0380000000300180004000040"
    "00000000ffffffff4965000002002000c5d83910b16df6b9080000000100000062c32000efad87d02e000000"
    "34000000030018000400000000000000ffffffff4965000001001c00c5d83910b16df6b90800000001000000"
    "52c3200084b1da2b5c000000030018000002000000000000ffffffff4965000002002800c5d83910b16df6b9"
    "08000000010000003cc320004746df3d636166e92e6373760000000001001c00c5d83910b16df6b908000000"
    "0100000052c3200084b1da2b"
)
# The bare event that ends a queue of 16,384 (tmpfs, 17,000 mkdirs while not reading):
OVERFLOW_CAPTURE = bytes.fromhex("18000000030018000040000000000000ffffffff00000000")
# `os.statvfs("/dev/shm").f_fsid` of the file system the tmpfs capture comes from.
TMPFS_STATVFS_FSID = 0x9AF7940CB3F15261

ACTIONS = [
    (api.FAN_CREATE | api.FAN_OPEN | api.FAN_MODIFY | api.FAN_CLOSE_WRITE, b"a.csv"),
    (api.FAN_RENAME, b"a.csv"),
    (api.FAN_CREATE | api.FAN_DELETE | api.FAN_ONDIR, b"d"),  # merged: mkdir + rmdir
    (api.FAN_CREATE | api.FAN_ONDIR, b"sub"),
    (api.FAN_ATTRIB | api.FAN_ONDIR, b"."),  # an event on a folder itself: its own handle
    (api.FAN_ATTRIB, b""),  # the unlink's link-count change: only the file's own handle
    (api.FAN_DELETE, b"caf\xe9.csv"),
]


def check_capture(buffer: bytes, handle_size: int) -> None:
    events = list(decode(buffer))
    assert [(e.mask, e.name) for e in events] == ACTIONS
    assert {e.fd for e in events} == {api.FAN_NOFD}
    assert len({e.pid for e in events}) == 1
    written, renamed, made_and_gone, made, chmod, nlink, unlinked = events
    folder = written.dir
    assert folder is not None
    assert len(folder) == api.FSID_SIZE + api.HANDLE_HEADER_SIZE + handle_size
    assert struct.unpack_from("=Ii", folder, api.FSID_SIZE) == (handle_size, 1)
    # Every event is in the same folder and on one file system.
    for event in (renamed, made_and_gone, made, unlinked):
        assert event.dir == folder
    assert {api.fsid_of_key(k) for e in events for k in (e.dir, e.obj) if k} == {folder[:8]}
    # The file keeps its handle through the rename, down to its deletion.
    assert written.obj is not None
    assert renamed.obj == nlink.obj == unlinked.obj == written.obj
    assert (renamed.dir2, renamed.name2) == (folder, b"caf\xe9.csv")
    # A folder's own event names it by its handle (the one its mkdir reported) and ".".
    assert chmod.dir == made.obj
    assert chmod.obj is None
    assert made_and_gone.obj not in (None, made.obj)
    assert nlink.dir is None


def test_a_real_tmpfs_buffer_decodes_to_what_was_done() -> None:
    check_capture(TMPFS_CAPTURE, 12)


def test_a_real_ext4_buffer_decodes_to_what_was_done() -> None:
    check_capture(EXT4_CAPTURE, 8)


def test_the_real_overflow_event_is_bare() -> None:
    assert list(decode(OVERFLOW_CAPTURE)) == [FanEvent(api.FAN_Q_OVERFLOW, api.FAN_NOFD, 0)]


def test_the_event_fsid_is_the_statvfs_fsid() -> None:
    first = next(decode(TMPFS_CAPTURE))
    assert first.dir is not None
    assert api.fsid_bytes(TMPFS_STATVFS_FSID) == api.fsid_of_key(first.dir)
    assert api.handle_of(first.dir) == first.dir[api.FSID_SIZE :]


# -- buffers built from the documented layout (include/uapi/linux/fanotify.h) --------------


def fid_record(info_type: int, handle: bytes, name: bytes | None = None, fsid: int = 7) -> bytes:
    body = struct.pack("=ii", fsid, -fsid) + struct.pack("=Ii", len(handle), 1) + handle
    if name is not None:
        body += name + b"\0"
    body += b"\0" * (-(len(body) + 4) % 4)
    return struct.pack("=BBH", info_type, 0, len(body) + 4) + body


def event(mask: int, *records: bytes, pid: int = 42, version: int = 3) -> bytes:
    info = b"".join(records)
    return struct.pack("=IBBHQii", 24 + len(info), version, 0, 24, mask, -1, pid) + info


def key(handle: bytes, fsid: int = 7) -> bytes:
    return struct.pack("=ii", fsid, -fsid) + struct.pack("=Ii", len(handle), 1) + handle


def test_built_events_decode_field_by_field() -> None:
    created = event(
        api.FAN_CREATE,
        fid_record(api.INFO_DFID_NAME, b"DIR1", b"new.csv"),
        fid_record(api.INFO_FID, b"FILE"),
    )
    renamed = event(
        api.FAN_RENAME | api.FAN_ONDIR,
        fid_record(api.INFO_OLD_DFID_NAME, b"DIR1", b"a"),
        fid_record(api.INFO_NEW_DFID_NAME, b"DIR2", b"b"),
        fid_record(api.INFO_FID, b"SUBDIR"),
    )
    dir_only = event(api.FAN_MODIFY, fid_record(api.INFO_DFID, b"DIR3"))
    assert list(decode(created + renamed + dir_only)) == [
        FanEvent(api.FAN_CREATE, -1, 42, key(b"DIR1"), b"new.csv", key(b"FILE")),
        FanEvent(
            api.FAN_RENAME | api.FAN_ONDIR,
            -1,
            42,
            key(b"DIR1"),
            b"a",
            key(b"SUBDIR"),
            key(b"DIR2"),
            b"b",
        ),
        FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR3")),
    ]


def test_an_empty_buffer_decodes_to_nothing() -> None:
    assert list(decode(b"")) == []


def test_every_truncation_of_a_real_buffer_gives_the_whole_events_before_it() -> None:
    for capture in (TMPFS_CAPTURE, EXT4_CAPTURE):
        ends = [0]
        while ends[-1] < len(capture):
            ends.append(ends[-1] + struct.unpack_from("=I", capture, ends[-1])[0])
        full = list(decode(capture))
        for cut in range(len(capture) + 1):
            whole = sum(1 for end in ends[1:] if end <= cut)
            assert list(decode(capture[:cut])) == full[:whole], cut


def test_an_event_longer_than_the_buffer_ends_decoding() -> None:
    good = event(api.FAN_MODIFY, fid_record(api.INFO_DFID_NAME, b"D", b"x"))
    liar = bytearray(good)
    struct.pack_into("=I", liar, 0, len(good) + 1)
    assert list(decode(good + bytes(liar))) == list(decode(good))


def test_an_event_length_below_the_header_ends_decoding_instead_of_looping() -> None:
    for bad_length in (0, 1, 23):
        broken = bytearray(event(api.FAN_MODIFY))
        struct.pack_into("=I", broken, 0, bad_length)
        assert list(decode(bytes(broken) + event(api.FAN_MODIFY))) == []


def test_another_metadata_version_or_length_skips_only_that_event() -> None:
    other_version = event(api.FAN_MODIFY, version=4)
    bad_meta = bytearray(event(api.FAN_MODIFY))
    struct.pack_into("=H", bad_meta, 6, 200)  # metadata_len past event_len
    short_meta = bytearray(event(api.FAN_MODIFY))
    struct.pack_into("=H", short_meta, 6, 8)  # metadata_len below the header
    last = event(api.FAN_DELETE)
    decoded = list(decode(other_version + bytes(bad_meta) + bytes(short_meta) + last))
    assert decoded == [FanEvent(api.FAN_DELETE, -1, 42)]


def test_bad_info_records_are_ignored_without_reading_past_the_event() -> None:
    good = fid_record(api.INFO_DFID_NAME, b"DIR", b"name")
    zero_length = struct.pack("=BBH", api.INFO_FID, 0, 0) + b"\0" * 16
    too_long = struct.pack("=BBH", api.INFO_FID, 0, 400) + b"\0" * 16
    short = struct.pack("=BBH", api.INFO_FID, 0, 8) + b"\0" * 4  # no room for a handle
    huge_handle = bytearray(fid_record(api.INFO_FID, b"OBJ"))
    struct.pack_into("=I", huge_handle, 12, 1000)  # handle_bytes past the record
    unknown = struct.pack("=BBH", 99, 0, 8) + b"\0" * 4
    pidfd = struct.pack("=BBHi", 4, 0, 8, 5)
    cases = [
        (good + zero_length, FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR"), b"name")),
        (zero_length + good, FanEvent(api.FAN_MODIFY, -1, 42)),
        (too_long + good, FanEvent(api.FAN_MODIFY, -1, 42)),
        (short + good, FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR"), b"name")),
        (bytes(huge_handle) + good, FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR"), b"name")),
        (unknown + pidfd + good, FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR"), b"name")),
        (good + b"\x02\x00", FanEvent(api.FAN_MODIFY, -1, 42, key(b"DIR"), b"name")),
    ]
    for records, expected in cases:
        assert list(decode(event(api.FAN_MODIFY, records) + event(api.FAN_DELETE))) == [
            expected,
            FanEvent(api.FAN_DELETE, -1, 42),
        ]


def test_a_name_without_its_nul_ends_at_the_record() -> None:
    body = struct.pack("=ii", 7, -7) + struct.pack("=Ii", 3, 1) + b"DIR" + b"abc\xff"
    record = struct.pack("=BBH", api.INFO_DFID_NAME, 0, len(body) + 4) + body
    (decoded,) = decode(event(api.FAN_MODIFY, record))
    assert (decoded.dir, decoded.name) == (key(b"DIR"), b"abc\xff")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    for decoded in decode(data):
        for part in (decoded.dir, decoded.obj, decoded.dir2):
            assert part is None or len(part) <= api.FSID_SIZE + api.HANDLE_HEADER_SIZE + 128


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_real_buffers_never_crash(data: st.DataObject) -> None:
    buffer = bytearray(data.draw(st.sampled_from([TMPFS_CAPTURE, EXT4_CAPTURE])))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(buffer) - 1))
        buffer[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buffer)))
    for decoded in decode(bytes(buffer[:cut])):
        assert isinstance(decoded.mask, int)
        assert len(decoded.name) <= cut
