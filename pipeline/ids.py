"""Event ids: UUIDv7 strings, unique and sortable by creation time."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_seq = 0
# Not a secret, just unique: a fast generator seeded from the OS (SystemRandom costs a
# system call per id).
_rand = random.Random(int.from_bytes(os.urandom(16), "big"))
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=lambda: _rand.seed(int.from_bytes(os.urandom(16), "big")))


def new_event_id() -> str:
    """Return a new UUIDv7 (RFC 9562) as a 36-character string.

    Within one millisecond a 12-bit counter keeps ids strictly increasing, so sorting
    ids sorts events by the order this process created them.
    """
    global _last_ms, _seq  # noqa: PLW0603 - process-wide monotonic state is the point
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _seq = _rand.getrandbits(11)  # leave headroom for the counter to grow
        else:
            _seq += 1
            if _seq > 0xFFF:  # counter exhausted within this millisecond: borrow the next one
                _last_ms += 1
                _seq = 0
        ms, seq = _last_ms, _seq
    tail = _rand.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | tail
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
