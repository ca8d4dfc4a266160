"""The one immutable event value that flows through every pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pipeline.ids import new_event_id

EMPTY_META: Mapping[str, Any] = MappingProxyType({})


class EventKind(StrEnum):
    """What happened to the path. The values are the `kind` strings of the contract."""

    CREATED = "created"
    MODIFIED = "modified"
    ATTRIB = "attrib"
    OPENED = "opened"
    CLOSED_WRITE = "closed_write"
    CLOSED_NOWRITE = "closed_nowrite"
    DELETED = "deleted"
    MOVED = "moved"
    OVERFLOW = "overflow"
    BATCH = "batch"
    """Several settled paths at once (debounce's batch mode): `meta.paths` lists them."""


ALL_KINDS: frozenset[EventKind] = frozenset(EventKind) - {EventKind.BATCH}
"""Every kind a source can report (a batch is made by a stage, never seen by a source)."""


@dataclasses.dataclass(frozen=True, slots=True, eq=True)
class Event:
    """A file-system event.

    Paths are `str`; bytes that are not valid UTF-8 are kept as lone surrogates
    (`os.fsdecode`, the `surrogateescape` error handler), so `os.fsencode(event.path)`
    always gives back the original bytes.
    """

    kind: EventKind
    path: str
    source: str
    is_dir: bool = False
    src_path: str | None = None
    time: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    meta: Mapping[str, Any] = dataclasses.field(default_factory=lambda: EMPTY_META)
    id: str = dataclasses.field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        # A read-only view is taken as it is: sources share one per watched root, so the
        # hot path copies nothing. Whoever builds one must not change the dict behind it.
        if type(self.meta) is not MappingProxyType:
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __hash__(self) -> int:
        return hash((self.id, self.kind, self.path, self.src_path, self.time))

    def evolve(self, **changes: Any) -> Event:
        """Return a copy with `changes` applied; the id is kept unless given."""
        return dataclasses.replace(self, **changes)

    def with_meta(self, **entries: Any) -> Event:
        """Return a copy whose meta has `entries` added or replaced."""
        return dataclasses.replace(self, meta=MappingProxyType({**self.meta, **entries}))

    def without_meta(self, *keys: str) -> Event:
        """Return a copy whose meta lacks `keys`."""
        kept = {k: v for k, v in self.meta.items() if k not in keys}
        return dataclasses.replace(self, meta=MappingProxyType(kept))
