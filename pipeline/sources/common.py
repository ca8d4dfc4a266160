"""Options and start-up checks shared by the sources that watch folders."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator

from pipeline.errors import SourceError
from pipeline.event import EventKind
from pipeline.options import ComponentOptions, ConfigPath, Duration


class WatchOptions(ComponentOptions):
    paths: list[ConfigPath] = Field(min_length=1, examples=[["inbox"]])
    """Folders (or single files) to watch; relative to the config file."""
    recursive: bool = True
    """Watch every folder below each path, including folders created later."""
    events: list[EventKind] | None = None
    """Event kinds to report; unset reports every kind this source can see."""
    create_missing: bool = False
    """Create a watched folder that does not exist yet, instead of failing at start."""
    wait_missing: bool = False
    """Wait for a watched path that does not exist yet (a warning says so once), instead
    of failing at start; once it appears, what it holds is reported. `create_missing`
    wins over this."""
    checkpoint_interval: Duration = 5.0
    """With a `state_dir`: how often the snapshot used to catch up after a restart is
    saved. A restart after a crash reports again the changes of up to about twice this
    long before the crash, so keep it above the time events spend in the pipeline."""

    @field_validator("events")
    @classmethod
    def _source_kinds(cls, kinds: list[EventKind] | None) -> list[EventKind] | None:
        if kinds is not None and EventKind.BATCH in kinds:
            raise ValueError("`batch` events are made by the debounce stage, not by sources")
        return kinds

    @field_validator("checkpoint_interval")
    @classmethod
    def _positive_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("checkpoint_interval must be more than 0")
        return value


def prepare_roots(options: WatchOptions) -> list[str]:
    """Absolute root paths, created if asked; a clear SourceError for one that is missing
    (unless `wait_missing`: then it is returned, and the source waits for it)."""
    roots: list[str] = []
    for path in options.paths:
        if options.create_missing and not path.exists():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SourceError(f"cannot create {path}: {exc.strerror}") from exc
        if not path.exists():
            if options.wait_missing:
                roots.append(str(Path(path)))
                continue
            raise SourceError(
                f"{path} does not exist; create it, or set `create_missing: true` on the source "
                f"(or `wait_missing: true` to wait for it)"
            )
        if not os.access(path, os.R_OK):
            user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this account"
            raise SourceError(f"{path} is not readable by this user ({user})")
        roots.append(str(Path(path)))
    return list(dict.fromkeys(roots))
