"""The `qt` source's options."""

from __future__ import annotations

from pipeline import Duration, EventKind
from pipeline.sources.common import WatchOptions
from pydantic import field_validator

QT_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.CREATED, EventKind.MODIFIED, EventKind.ATTRIB, EventKind.DELETED, EventKind.MOVED}
)
"""What comparing a folder's listing before and after a change can tell."""
MIN_INTERVAL = 0.01


class QtOptions(WatchOptions):
    watch_files: bool = True
    """Watch every file too, not only folders: Qt's folder watch does not see a file's
    content change, only entries added, removed, renamed or with new attributes. Costs
    one inotify watch per file (`fs.inotify.max_user_watches`), and Qt adds watches in
    a time that grows with the square of their number (10,000 files: about 0.7 s at
    start; 40,000: about 7 s). With `false`, a changed file is found by the next
    `rescan_interval` rescan only."""
    coalesce: Duration = 0.02
    """How long to gather Qt's signals before reading the folders they name: a rename
    from one folder to another is then seen whole (one `moved`, not `deleted` and
    `created`), and a burst of writes is read once."""
    poll_interval: Duration = 2.0
    """How often the paths Qt could not watch (no inotify watch left, a name that is not
    UTF-8) and watched paths that are gone are read again instead."""
    rescan_interval: Duration | None = 60.0
    """How often every folder is read again, as a safety net: Qt does not report that
    the kernel's event queue overflowed (changes it dropped are found then), and with
    `watch_files: false` this is when changed files are found. null: never."""

    @field_validator("coalesce")
    @classmethod
    def _short_coalesce(cls, value: float) -> float:
        if value > 10:
            raise ValueError("coalesce must be at most 10s (it delays every event)")
        return value

    @field_validator("poll_interval", "rescan_interval")
    @classmethod
    def _sensible_interval(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_INTERVAL:
            raise ValueError("the interval must be at least 10ms")
        return value

    @field_validator("events")
    @classmethod
    def _visible_kinds(cls, kinds: list[EventKind] | None) -> list[EventKind] | None:
        unseen = sorted(set(kinds or ()) - QT_KINDS)
        if unseen:
            raise ValueError(
                f"the qt source cannot see {', '.join(unseen)}; it reports "
                f"{', '.join(sorted(QT_KINDS))} (the inotify source sees every kind)"
            )
        return kinds
