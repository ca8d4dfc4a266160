"""The `usn` source: the NTFS change journal, read live on Windows or replayed from a $J file."""

from __future__ import annotations

import ntpath
import sys
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator

from pipeline.components import ComponentContext, Emit, Source
from pipeline.errors import SourceError
from pipeline.event import EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ByteSize, ComponentOptions, ConfigPath, Duration
from pipeline.windows.usn_events import USN_KINDS

if TYPE_CHECKING:  # the readers are imported by a source that uses them: a lighter start
    from pipeline.windows.usn_replay import JournalReplay
    from pipeline.windows.usn_tail import JournalTail

Mode = Literal["live", "offline"]


class UsnOptions(ComponentOptions):
    mode: Mode = "live"
    """`live`: follow the change journal of the volume holding `paths` (Windows, run as
    administrator). `offline`: replay a copied `$UsnJrnl:$J` file (`journal`), on any OS."""
    paths: list[str] = Field(
        default_factory=list, validate_default=True, examples=[["C:\\data\\inbox"]]
    )
    """Live: the folders to report, absolute Windows paths on one NTFS volume (required).
    Offline: report only paths at or below these, written as the replay writes them
    (`root` + the path on the volume, e.g. `C:\\Users\\ann`); empty: everything."""
    journal: ConfigPath | None = Field(default=None, validate_default=True)
    """Offline: the `$UsnJrnl:$J` file to replay (required), relative to the config file."""
    root: str = "C:"
    """Offline: what the volume's root folder is called in reported paths: `C:` gives
    `C:\\Users\\ann\\a.txt`, `/mnt/image` gives `/mnt/image/Users/ann/a.txt`."""
    follow: bool = False
    """Offline: keep reading what is appended to `journal` (like `tail -f`)."""
    events: list[EventKind] | None = None
    """Event kinds to report; unset reports every kind the journal can tell: created,
    modified, attrib, closed_write, deleted, moved, overflow."""
    only_on_close: bool = False
    """Live: ask Windows only for the records written at a file's final close
    (ReturnOnlyOnClose): fewer records to read; a `moved` then takes its old path from
    what was seen of the file before (else `src_path` is null)."""
    poll_interval: Duration = 0.25
    """Live, and offline with `follow`: pause after a read that found nothing new."""
    buffer_size: ByteSize = Field(default=65536, ge=4096, le=16 * 1024 * 1024)
    """Live: bytes asked of the journal per read."""
    checkpoint_interval: Duration = 1.0
    """Live with a `state_dir`: how often the journal position is saved (and always at
    shutdown). After a crash, up to this much is reported again; nothing is skipped."""

    @field_validator("paths")
    @classmethod
    def _live_paths(cls, paths: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("mode") != "live":
            return paths
        if not paths:
            raise ValueError(
                "live mode needs `paths`: the folders to report, like [C:\\data\\inbox]"
            )
        volumes = set()
        for path in paths:
            drive = ntpath.splitdrive(path)[0]
            if len(drive) != 2 or not ntpath.isabs(path):
                raise ValueError(
                    f"{path!r} is not an absolute Windows path on a drive; live mode reads an "
                    "NTFS volume's journal, so write it like C:\\data\\inbox"
                )
            volumes.add(drive.upper())
        if len(volumes) > 1:
            raise ValueError(
                f"paths are on several volumes ({', '.join(sorted(volumes))}); each volume has "
                "its own journal: declare one usn source per volume"
            )
        return [ntpath.normpath(path) for path in paths]

    @field_validator("journal")
    @classmethod
    def _journal_for_offline(cls, journal: object, info: ValidationInfo) -> object:
        mode = info.data.get("mode")
        if mode == "offline" and journal is None:
            raise ValueError("offline mode needs `journal`: the $UsnJrnl:$J file to replay")
        if mode == "live" and journal is not None:
            raise ValueError("`journal` is for `mode: offline`; live mode reads the volume")
        return journal

    @field_validator("events")
    @classmethod
    def _visible_kinds(cls, kinds: list[EventKind] | None) -> list[EventKind] | None:
        unseen = sorted(set(kinds or ()) - USN_KINDS)
        if unseen:
            raise ValueError(
                f"the usn source cannot see {', '.join(unseen)}; it reports "
                f"{', '.join(sorted(USN_KINDS))}"
            )
        return kinds

    @field_validator("poll_interval", "checkpoint_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


class UsnSource(Source[UsnOptions]):
    """Reads the NTFS change journal: live on Windows, or a copied $J file on any OS.

    The journal records every change on an NTFS volume, with a reason per change; they
    are turned into events, one per thing that happened in each open of a file: created,
    modified, attrib, moved (rename halves paired), deleted, and `closed_write` at the
    final close of a file that was created or written, the only close signal Windows
    gives. Paths are rebuilt from the parent folder numbers the records carry; a folder
    that cannot be named is written `<unknown:ENTRY-SEQ>`. Each event's meta has `usn`,
    `reasons`, `file_reference`, `parent_reference`, `attributes` and `timestamp` (the
    journal's time, also the event's `time`).

    Live mode (Windows, as administrator) polls the journal of the volume holding
    `paths`, and with a `state_dir` resumes after a restart exactly where it stopped. If
    the journal was recreated or wrapped meanwhile, it warns, emits `overflow` and
    reports the files changed since (`meta.scan: true`). Elsewhere `pipeline check`
    accepts a live config and `pipeline run` says it needs Windows.

    Offline mode replays a `$UsnJrnl:$J` file copied from a volume or an image (its
    sparse zero-filled start skipped; damaged records logged and skipped), with `follow`
    to keep reading what is appended. Try it with `pipeline usn dump FILE`.
    """

    type_name = "usn"
    Options = UsnOptions

    def __init__(self, options: UsnOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        wanted = frozenset(options.events) if options.events is not None else USN_KINDS
        source = f"{context.pipeline}/{self.type_name}"
        self._runner: JournalReplay | JournalTail | None = None
        if options.mode == "offline":
            from pipeline.windows.usn_replay import JournalReplay

            assert options.journal is not None  # the options validator requires it
            self._runner = JournalReplay(
                options.journal,
                root=options.root,
                paths=options.paths,
                follow=options.follow,
                poll_interval=options.poll_interval,
                source=source,
                wanted=wanted,
                log=self.log,
                clock=context.clock,
            )
        elif sys.platform == "win32":
            from pipeline.windows.usn_tail import JournalTail

            self._runner = JournalTail(
                options.paths,
                only_on_close=options.only_on_close,
                poll_interval=options.poll_interval,
                buffer_size=options.buffer_size,
                checkpoint_interval=options.checkpoint_interval,
                state_dir=context.state_dir,
                source=source,
                wanted=wanted,
                log=self.log,
                clock=context.clock,
            )

    async def open(self) -> None:
        if self._runner is None:
            raise SourceError(
                f"{self.context.label}: the usn source in live mode needs Windows (it reads an "
                f"NTFS volume's change journal); on {sys.platform}, replay a copied "
                "$UsnJrnl:$J file with `mode: offline` and `journal: PATH`"
            )
        await self._runner.open()

    async def run(self, emit: Emit) -> None:
        assert self._runner is not None  # open() succeeded
        await self._runner.run(emit)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.close()


@hookimpl
def pipeline_components() -> list[type[UsnSource]]:
    return [UsnSource]
