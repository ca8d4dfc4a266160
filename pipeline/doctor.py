"""`pipeline doctor`: checks of this machine and a config, each with what to do about it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

INOTIFY = Path("/proc/sys/fs/inotify")
LOW_WATCH_LIMIT = 65_536
LOW_DISK_BYTES = 1 << 30


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclasses.dataclass(frozen=True)
class Finding:
    status: Status
    check: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.status.value:>4}] {self.check}: {self.detail}"
        return f"{text}\n         fix: {self.fix}" if self.fix else text


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def inotify_watches_in_use() -> int:
    """Watches held by every process this user can see (from /proc/*/fdinfo)."""
    total = 0
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            text = fdinfo.read_text()
        except OSError:
            continue
        total += text.count("inotify wd:")
    return total


def check_python() -> Finding:
    """What runs: Python and fspipeline versions (for bug reports)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("fspipeline")
    except PackageNotFoundError:
        ours = "(not installed)"
    return Finding(Status.OK, "python", f"{sys.version.split()[0]}, fspipeline {ours}")


def check_plugins() -> Finding:
    from pipeline.errors import PluginError
    from pipeline.registry import build_registry

    try:
        registry = build_registry()
    except PluginError as exc:
        return Finding(Status.FAIL, "plugins", str(exc), "fix or uninstall the plugin named")
    count = len(list(registry))
    return Finding(Status.OK, "plugins", f"{count} components load")


def check_inotify() -> Iterator[Finding]:
    if not sys.platform.startswith("linux"):
        return
    limit = _read_int(INOTIFY / "max_user_watches")
    queued = _read_int(INOTIFY / "max_queued_events")
    if limit is None:
        yield Finding(Status.WARN, "inotify", "limits unreadable (no /proc/sys/fs/inotify)")
        return
    used = inotify_watches_in_use()
    detail = f"max_user_watches {limit} ({used} in use), max_queued_events {queued}"
    if limit < LOW_WATCH_LIMIT or used > 0.8 * limit:
        yield Finding(
            Status.WARN,
            "inotify",
            detail + "; a large tree may run out of watches",
            "sysctl -w fs.inotify.max_user_watches=1048576 (and a file in /etc/sysctl.d/), "
            "or use the `fanotify` source (no per-folder watches) or `poll`",
        )
    else:
        yield Finding(Status.OK, "inotify", detail)


def check_fanotify() -> Finding:
    if not sys.platform.startswith("linux"):
        return Finding(Status.OK, "fanotify", "not on Linux: not applicable")
    from pipeline.errors import SourceError
    from pipeline.sources.fanotify_marks import init_group

    try:
        os.close(init_group())
    except SourceError as exc:
        return Finding(Status.WARN, "fanotify", "unavailable", str(exc))
    return Finding(Status.OK, "fanotify", "available (CAP_SYS_ADMIN held, kernel reports names)")


def check_state_dir(state_dir: Path) -> Iterator[Finding]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        probe = state_dir / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        yield Finding(
            Status.FAIL,
            "state_dir",
            f"{state_dir} is not writable: {exc.strerror}",
            "make it writable by this user, or point state_dir elsewhere",
        )
        return
    free = shutil.disk_usage(state_dir).free
    if free < LOW_DISK_BYTES:
        yield Finding(
            Status.WARN,
            "state_dir",
            f"{state_dir}: only {free >> 20} MiB free; spools and snapshots live here",
            "free space or move state_dir to a larger file system",
        )
    else:
        yield Finding(Status.OK, "state_dir", f"{state_dir} writable, {free >> 30} GiB free")
