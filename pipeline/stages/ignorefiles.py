"""`.gitignore`-style files found in the watched tree: read, cached, re-read when they change.

As in git (and watchexec): a file applies to the paths below its folder, relative to
that folder; a deeper file overrides a shallower one; within one folder, later files in
the configured list override earlier ones, and within a file the last matching line
wins; a path below an ignored folder is ignored (it cannot be re-included).
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence

import pathspec

from pipeline.clock import Clock
from pipeline.stages.fileinfo import Offload

MAX_FOLDERS = 10_000
"""Folders whose ignore rules are kept in memory; the least recently used are re-read."""

Stamp = tuple[tuple[int, int] | None, ...]


class _Rules:
    __slots__ = ("checked", "spec", "stamp")

    def __init__(self, spec: pathspec.GitIgnoreSpec | None, stamp: Stamp, checked: float) -> None:
        self.spec = spec
        self.stamp = stamp
        self.checked = checked


def _stamp(folder: str, names: Sequence[str]) -> Stamp:
    out: list[tuple[int, int] | None] = []
    for name in names:
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def _read(folder: str, names: Sequence[str], known: Stamp | None) -> tuple[Stamp, list[str] | None]:
    """The folder's stamp and, when it differs from `known`, the lines of its ignore files."""
    stamp = _stamp(folder, names)
    if stamp == known:
        return stamp, None
    lines: list[str] = []
    for name, mark in zip(names, stamp, strict=True):
        if mark is None:
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="surrogateescape") as f:
                lines.extend(f.read().splitlines())
        except OSError:
            continue  # vanished or unreadable between stat and open: as if absent
    return stamp, lines


class IgnoreTree:
    """Answers whether a path is ignored by the ignore files of the folders above it."""

    def __init__(self, names: Sequence[str], recheck: float, clock: Clock) -> None:
        self.offload: Offload = asyncio.to_thread
        """Where ignore files are read: a worker thread (tests may run it inline)."""
        self.names = tuple(names)
        self.recheck = recheck
        self.clock = clock
        self._rules: OrderedDict[str, _Rules] = OrderedDict()
        self._folder_verdicts: dict[str, bool] = {}

    def forget(self, path: str) -> None:
        """An event about `path`: if it is an ignore file, re-read its folder next time."""
        if os.path.basename(path) in self.names:
            self._rules.pop(os.path.dirname(path), None)
            self._folder_verdicts.clear()

    @staticmethod
    def folders(path: str, root: str | None) -> list[str]:
        """The folders whose ignore files apply to `path`: from `root` down to its parent."""
        parent = os.path.dirname(path)
        if not root or not (parent == root or parent.startswith(root.rstrip("/") + "/")):
            return [parent]
        out = [parent]
        while parent != root and len(parent) > len(root):
            parent = os.path.dirname(parent)
            out.append(parent)
        out.reverse()
        return out

    async def refresh(self, folders: Sequence[str]) -> None:
        """Read (in a thread) the ignore files of `folders` that are unknown or due a check."""
        now = self.clock.monotonic()
        due = [
            f
            for f in folders
            if (r := self._rules.get(f)) is None or now - r.checked >= self.recheck
        ]
        if not due:
            return
        known = [r.stamp if (r := self._rules.get(f)) else None for f in due]
        names = self.names
        found = await self.offload(
            lambda: [_read(f, names, k) for f, k in zip(due, known, strict=True)]
        )
        for folder, (stamp, lines) in zip(due, found, strict=True):
            rules = self._rules.get(folder)
            if rules is not None and lines is None:
                rules.checked = now
                continue
            spec = pathspec.GitIgnoreSpec.from_lines(lines) if lines else None
            self._rules[folder] = _Rules(spec, stamp, now)
            self._folder_verdicts.clear()
        while len(self._rules) > MAX_FOLDERS:
            self._rules.popitem(last=False)

    def _verdict(self, folders: Sequence[str], path: str, is_dir: bool) -> bool:
        """Deepest folder with a matching rule decides; last matching line within it wins."""
        for folder in reversed(folders):
            rules = self._rules.get(folder)
            if rules is None or rules.spec is None:
                continue
            relative = path[len(folder) :].lstrip("/") + ("/" if is_dir else "")
            result = rules.spec.check_file(relative)
            if result.include is not None:
                return result.include
        return False

    def is_ignored(self, path: str, root: str | None, is_dir: bool) -> bool:
        """Whether `path` is ignored; call `refresh` with its folders first."""
        folders = self.folders(path, root)
        for folder in folders:
            if folder in self._rules:
                self._rules.move_to_end(folder)
        for depth in range(1, len(folders)):  # folders below the first: ignored folder?
            folder = folders[depth]
            verdict = self._folder_verdicts.get(folder)
            if verdict is None:
                verdict = self._verdict(folders[:depth], folder, True)
                if len(self._folder_verdicts) >= MAX_FOLDERS:
                    self._folder_verdicts.clear()
                self._folder_verdicts[folder] = verdict
            if verdict:
                return True
        return self._verdict(folders, path, is_dir)
