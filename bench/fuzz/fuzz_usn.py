"""atheris harness: the USN record decoder and scanner (pipeline/windows/usn_records.py,
usn_scan.py) on any bytes.

Seeds are the real $UsnJrnl:$J samples under /work/shared/data/usn. Checks: the scanner
yields only records and UsnDecodeErrors, each record inside the buffer; the same bytes
fed in two chunks give the same records; converting a record's time never raises.
"""

from __future__ import annotations

from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pipeline.windows.usn_records import UsnDecodeError, UsnRecord
    from pipeline.windows.usn_scan import RecordScanner, scan_buffer

from _harness import run

DATA = Path("/work/shared/data/usn")


def test_one_input(data: bytes) -> None:
    whole = []
    for item in scan_buffer(data):
        assert isinstance(item, UsnRecord | UsnDecodeError)
        if isinstance(item, UsnRecord):
            assert item.offset >= 0 and item.offset + item.length <= len(data)
            item.time  # noqa: B018 - any timestamp converts (or is None)
            item.reasons  # noqa: B018
            whole.append(item)
    cut = data[0] % (len(data) + 1) if data else 0
    scanner = RecordScanner()
    split = [i for i in scanner.feed(data[:cut], final=False) if isinstance(i, UsnRecord)]
    split += [i for i in scanner.feed(data[cut:], final=True) if isinstance(i, UsnRecord)]
    assert split == whole, "chunking changed the records"


if __name__ == "__main__":
    seeds = [p.read_bytes() for p in sorted(DATA.glob("*")) if p.suffix in (".bin", ".raw")]
    run("usn", test_one_input, seeds)
