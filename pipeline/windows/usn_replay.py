"""Offline mode of the `usn` source: replays a copied `$UsnJrnl:$J` file as events.

Runs on any OS. The file is read in chunks in a worker thread; damaged records are
logged (one warning each, with their offset) and skipped. Without `follow` the replay
ends with the file and the source then stays idle; with it, what is appended is read
every `poll_interval`, and a file that is replaced or shrinks is read again from its
start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.components import Emit
from pipeline.errors import SourceError
from pipeline.event import EventKind
from pipeline.windows.usn_events import JournalInterpreter
from pipeline.windows.usn_offline import JournalReader
from pipeline.windows.usn_paths import PathResolver, PathScope
from pipeline.windows.usn_records import UsnDecodeError
from pipeline.windows.usn_scan import Item

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from pipeline.clock import Clock


def interpreter_for(
    root: str, paths: Sequence[str], source: str, wanted: frozenset[EventKind]
) -> JournalInterpreter:
    """The interpreter of an offline journal: paths below `root`, kept within `paths`."""
    resolver = PathResolver(root)
    scope = PathScope(paths, resolver.sep, resolver.root)
    return JournalInterpreter(resolver, scope, source=source, wanted=wanted)


class JournalReplay:
    """Replays one journal file into `emit`."""

    def __init__(
        self,
        journal: Path,
        *,
        root: str,
        paths: Sequence[str],
        follow: bool,
        poll_interval: float,
        source: str,
        wanted: frozenset[EventKind],
        log: FilteringBoundLogger,
        clock: Clock,
    ) -> None:
        self.journal = journal
        self.follow = follow
        self.poll_interval = poll_interval
        self.log = log
        self.clock = clock
        self._scope = (root, list(paths), source, wanted)
        self.interpreter = interpreter_for(*self._scope)
        self.reader = JournalReader(journal)
        self.records = 0
        self.damaged = 0
        self._opened = False

    async def open(self) -> None:
        if not self.journal.is_file():
            raise SourceError(
                f"journal file {self.journal} does not exist; give `journal:` the path of a "
                "copied $UsnJrnl:$J stream"
            )
        try:
            # Reopened by the engine after a failure: go on, do not replay it all again.
            await asyncio.to_thread(self.reader.open, keep_position=self._opened)
            self._opened = True
        except OSError as exc:
            raise SourceError(
                f"cannot read the journal file {self.journal}: {exc.strerror}"
            ) from exc

    async def close(self) -> None:
        self.reader.close()

    async def run(self, emit: Emit) -> None:
        while True:
            items, at_end = await asyncio.to_thread(self.reader.read_chunk, final=not self.follow)
            await self._emit_items(items, emit)
            if not at_end:
                continue
            if not self.follow:
                for event in self.interpreter.flush():
                    await emit(event)
                self.log.info(
                    "journal replayed",
                    journal=str(self.journal),
                    records=self.records,
                    damaged=self.damaged,
                )
                return
            await self.clock.sleep(self.poll_interval)
            if await asyncio.to_thread(self.reader.replaced):
                self.log.warning(
                    "journal file was replaced or shrank; reading it again from the start",
                    journal=str(self.journal),
                )
                await asyncio.to_thread(self.reader.open)
                self.interpreter = interpreter_for(*self._scope)

    async def _emit_items(self, items: list[Item], emit: Emit) -> None:
        for item in items:
            if isinstance(item, UsnDecodeError):
                self.damaged += 1
                self.log.warning(
                    "damaged journal record skipped", journal=str(self.journal), error=str(item)
                )
                continue
            self.records += 1
            for event in self.interpreter.feed(item):
                await emit(event)
