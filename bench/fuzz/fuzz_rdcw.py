"""atheris harness: the FILE_NOTIFY_(EXTENDED_)INFORMATION decoder (pipeline/windows/
rdcw_decode.py) on any bytes, both layouts.

Checks: never raises; a buffer that stops early says why (`error`); every name fits in
the buffer (2 bytes a UTF-16 unit), so nothing is read past it.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from pipeline.windows.rdcw_decode import decode

from _harness import run

from tests.unit.test_rdcw_decode import basic_record, chain, extended_record


def test_one_input(data: bytes) -> None:
    if not data:
        return
    extended, buffer = bool(data[0] & 1), data[1:]
    decoded = decode(buffer, extended=extended)
    assert decoded.records or decoded.error, "nothing decoded and no reason given"
    for record in decoded.records:
        assert 1 <= record.action <= 5
        assert 0 < len(record.name.encode("utf-16-le", "surrogatepass")) <= len(buffer)


SEEDS = [
    b"\0" + chain(basic_record(1, "a.txt"), basic_record(4, "old"), basic_record(5, "new")),
    b"\1" + chain(extended_record(3, "caf\u00e9.csv", size=12), extended_record(2, "x")),
]

if __name__ == "__main__":
    run("rdcw", test_one_input, SEEDS)
