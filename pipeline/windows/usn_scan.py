"""Walks a stream of USN records: a $J file read in chunks, or one FSCTL_READ_USN_JOURNAL buffer.

What lies between records is skipped without complaint: the sparse, zero-filled start
of $J, the zeroed tail of each 4 KiB page, and any run of zero bytes. A damaged record
is reported once, as a `UsnDecodeError`, and the walk resyncs on the next 8-byte
boundary that holds a valid record, so one bad record costs only itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.windows.usn_records import (
    ALIGNMENT,
    COMMON_HEADER,
    UsnDecodeError,
    UsnRecord,
    decode_record,
    next_nonzero,
)

Item = UsnRecord | UsnDecodeError


def _align_up(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


class RecordScanner:
    """Feeds on consecutive chunks of one stream and yields its records and decode errors.

    `position` is the stream offset up to which everything has been handled: bytes after
    it (a record cut by the end of a chunk) are kept and decoded with the next chunk.
    Record offsets are stream offsets (`start` plus the bytes fed before them).
    """

    def __init__(self, start: int = 0) -> None:
        self.position = start
        self._pending = b""
        self._resyncing = False

    @property
    def end(self) -> int:
        """The stream offset of the first byte not fed yet."""
        return self.position + len(self._pending)

    def feed(self, data: bytes, *, final: bool) -> Iterator[Item]:
        """Decode what `data` completes; with `final`, the stream ends after it.

        Consume the iterator to the end: the scanner's position moves when it is done.
        """
        buffer = self._pending + data if self._pending else data
        base = self.position  # where the pending bytes start
        self._pending = b""
        at = 0
        size = len(buffer)
        while at < size:
            if size - at < COMMON_HEADER.size:
                if not final:
                    break
                if next_nonzero(buffer, at) is not None and not self._resyncing:
                    yield UsnDecodeError(base + at, f"{size - at} stray bytes at the end")
                at = size
                break
            if buffer[at : at + COMMON_HEADER.size] == bytes(COMMON_HEADER.size):
                at = self._skip_zeros(buffer, base, at)
                continue
            try:
                record = decode_record(buffer, at, base=base)
            except UsnDecodeError as exc:
                if exc.truncated and not final:
                    break  # the rest of this record comes with the next chunk
                if not self._resyncing:
                    self._resyncing = True
                    yield UsnDecodeError(base + at, exc.problem)
                at += ALIGNMENT
                continue
            self._resyncing = False
            yield record
            at += _align_up(record.length)
        at = min(at, size)
        self._pending = buffer[at:]
        self.position = base + at

    @staticmethod
    def _skip_zeros(buffer: bytes, base: int, at: int) -> int:
        """The next 8-byte boundary (in stream offsets) that may hold a record."""
        found = next_nonzero(buffer, at)
        # Stay on 8-byte boundaries of the stream: a chunk may end anywhere.
        limit = len(buffer) if found is None else found
        aligned = (base + limit) // ALIGNMENT * ALIGNMENT - base
        return max(aligned, at + ALIGNMENT)


def scan_buffer(data: bytes, start: int = 0) -> Iterator[Item]:
    """Every record and decode error in one complete buffer (a journal read, a small file)."""
    return RecordScanner(start).feed(data, final=True)
