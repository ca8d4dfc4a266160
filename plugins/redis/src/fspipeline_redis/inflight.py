"""The stream entries a source has emitted and the pipeline has not settled yet."""

from __future__ import annotations

import dataclasses
from collections import deque

from fspipeline_redis.entries import Fields


@dataclasses.dataclass(slots=True)
class Entry:
    """One stream entry being worked on: its id, its fields (to dead-letter it as it
    was) and when this consumer last claimed it (monotonic seconds)."""

    entry_id: bytes
    fields: Fields
    claimed_at: float


class InFlight:
    """Entries by event id (to settle them) and by entry id (to not emit one twice).

    Two entries may carry the same event (a producer's retry wrote it twice): each is
    settled once, in the order they were emitted. Entries are kept in the order they
    were last claimed, so the ones due a fresh claim are found at the front.
    """

    def __init__(self) -> None:
        self._by_entry: dict[bytes, Entry] = {}
        self._by_event: dict[str, deque[Entry]] = {}

    def __len__(self) -> int:
        return len(self._by_entry)

    def __contains__(self, entry_id: bytes) -> bool:
        return entry_id in self._by_entry

    def add(self, event_id: str, entry: Entry) -> None:
        self._by_entry[entry.entry_id] = entry
        self._by_event.setdefault(event_id, deque()).append(entry)

    def pop(self, event_id: str) -> Entry | None:
        """The oldest entry carrying `event_id`, no longer in flight; None if unknown."""
        entries = self._by_event.get(event_id)
        if not entries:
            return None
        entry = entries.popleft()
        if not entries:
            del self._by_event[event_id]
        self._by_entry.pop(entry.entry_id, None)
        return entry

    def claimed_before(self, moment: float) -> list[Entry]:
        """Entries last claimed before `moment`, oldest first."""
        due = []
        for entry in self._by_entry.values():
            if entry.claimed_at >= moment:
                break
            due.append(entry)
        return due

    def reclaimed(self, entries: list[Entry], moment: float) -> None:
        """Record that `entries` were claimed again at `moment` (they move to the back)."""
        for entry in entries:
            if self._by_entry.pop(entry.entry_id, None) is entry:
                entry.claimed_at = moment
                self._by_entry[entry.entry_id] = entry

    def clear(self) -> None:
        self._by_entry.clear()
        self._by_event.clear()
