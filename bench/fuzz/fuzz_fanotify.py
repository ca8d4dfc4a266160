"""atheris harness: the fanotify event decoder (pipeline/linux/fanotify.py) on any bytes.

Seeds are the real kernel buffers the unit tests hold (tmpfs, ext4, an overflow). Checks:
never raises; every handle key and name is a slice of its own event (event_len bytes
inside the buffer), so nothing is read past it; a handle key is never longer than
MAX_HANDLE_SZ plus its headers.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from pipeline.linux import fanotify as api

from _harness import run

from tests.unit.test_fanotify_decode import EXT4_CAPTURE, OVERFLOW_CAPTURE, TMPFS_CAPTURE

LONGEST_KEY = api.FSID_SIZE + api.HANDLE_HEADER_SIZE + api.MAX_HANDLE_SZ


def test_one_input(data: bytes) -> None:
    events = list(api.decode(data))
    # Each event takes at least a metadata header: a decoder that loops cannot get here.
    assert len(events) * api.METADATA_SIZE <= len(data)
    for event in events:
        for key in (event.dir, event.obj, event.dir2):
            if key is not None:
                assert len(key) <= LONGEST_KEY and key in data
        for name in (event.name, event.name2):
            assert b"\0" not in name and name in data


if __name__ == "__main__":
    run("fanotify", test_one_input, [TMPFS_CAPTURE, EXT4_CAPTURE, OVERFLOW_CAPTURE])
