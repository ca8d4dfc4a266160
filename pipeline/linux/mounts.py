"""Notice mounts and unmounts: /proc/self/mountinfo wakes a poller when the table changes.

A file system mounted over a watched folder hides what its inotify watch sees (the
watch stays on the folder underneath), and no inotify event says so. The kernel marks
`/proc/self/mountinfo` with POLLPRI on every change of the mount table; an epoll
descriptor watching it becomes readable then, so the event loop can wait on it for free.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    """Mount points in mountinfo write space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogateescape")
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def mount_points(text: str) -> set[str]:
    """The mount points a mountinfo text lists (field 5 of each line)."""
    points = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_unescape(fields[4]))
    return points


class MountWatch:
    """`fd` becomes readable when the mount table changed; `changes()` says where.

    A thread blocks in poll(2) on mountinfo's POLLPRI (an event loop's epoll would see the
    file as always readable) and writes a byte to a pipe the loop can wait on; idle, it
    costs nothing.
    """

    def __init__(self) -> None:
        self.points = mount_points(_read(MOUNTINFO))
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._watch, name="fspipeline-mounts", daemon=True)
        self._thread.start()

    @property
    def fd(self) -> int:
        return self._wake_r

    def _watch(self) -> None:
        with open(MOUNTINFO, "rb", buffering=0) as table:
            poller = select.poll()
            poller.register(table.fileno(), select.POLLPRI | select.POLLERR)
            poller.register(self._stop_r, select.POLLIN)
            table.read()  # what is read is the state the next POLLPRI is about
            while True:
                ready = dict(poller.poll())
                if self._stop_r in ready:
                    return
                table.seek(0)
                while table.read(65536):
                    pass
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"m")

    def changes(self) -> set[str]:
        """Mount points added or removed since the last call (empty if none)."""
        woken = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                woken = True
        if not woken:
            return set()
        now = mount_points(_read(MOUNTINFO))
        changed = now ^ self.points
        self.points = now
        return changed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        for fd in (self._wake_r, self._wake_w, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _read(path: str) -> str:
    with open(path, "rb") as table:
        return os.fsdecode(table.read())
