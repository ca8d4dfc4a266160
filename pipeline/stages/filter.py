"""The `filter` stage: keep events by globs, ignore files, kind, regex, size, age, expression."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from typing import Literal

import pathspec
from pydantic import Field, ValidationInfo, field_validator

from pipeline.cloudevents import subject_of
from pipeline.components import ComponentContext, Emit, Stage
from pipeline.event import Event, EventKind
from pipeline.expr import ExpressionText, compile_expression
from pipeline.expr.functions import MAX_PATTERN
from pipeline.hookspecs import hookimpl
from pipeline.options import ByteSize, ComponentOptions, Duration
from pipeline.stages.fileinfo import Offload, StatFn, meta_number, try_stat
from pipeline.stages.ignorefiles import IgnoreTree


def _compile(patterns: list[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


class FilterOptions(ComponentOptions):
    include: list[str] = Field(default_factory=list, examples=[["**/*.csv", "reports/"]])
    """Globs a path must match (any of them) to pass; empty means every path."""
    exclude: list[str] = Field(default_factory=list, examples=[["**/.*", "**/*.tmp"]])
    """Globs that drop a path even if it is included (`!pattern` re-includes)."""
    kinds: list[EventKind] | None = None
    """Event kinds to keep; unset keeps every kind."""
    directories: Literal["keep", "drop", "only"] = "keep"
    """Events about directories: keep them, drop them, or keep only them."""
    ignore_files: list[str] = Field(
        default_factory=list, examples=[[".gitignore", ".fspipelineignore"]]
    )
    """Names of .gitignore-style files to obey wherever they are in the watched tree: each one
    drops the paths below its folder that it ignores."""
    ignore_recheck: Duration = 2.0
    """How often, at most, a cached ignore file is checked for changes (an event about the
    ignore file itself re-reads it at once)."""
    regex: str | None = Field(default=None, examples=[r"/20\d\d-\d\d-\d\d/"])
    """Python regular expression searched in the absolute path; only matching paths pass
    (at most 1000 characters; there is no timeout, so avoid nested repeats like (a+)+)."""
    expression: ExpressionText | None = Field(
        default=None, examples=['ext in [".csv", ".tsv"] and not startswith(name, "draft")']
    )
    """An expression that must be true for the event to pass. Names: kind path src_path
    name stem ext dir is_dir size mtime meta subject id source (meta.X reads meta; missing
    is null). Operators: and or not == != < <= > >= in + - * / %. Literals: "text", 3,
    10MB, 2GiB, 5m, true, false, null, [lists]. Functions: glob([text,] pattern),
    fnmatch, matches(text, regex), startswith, endswith, lower, upper, basename,
    dirname, len, age()."""
    min_size: ByteSize | None = Field(default=None, examples=["1KB"])
    """Smallest file size that passes, e.g. 1 or 10KB (KB = 1000 bytes, KiB = 1024)."""
    max_size: ByteSize | None = Field(default=None, examples=["2GiB"])
    """Largest file size that passes."""
    min_age: Duration | None = None
    """Pass only files last modified at least this long ago (by their mtime)."""
    max_age: Duration | None = None
    """Pass only files modified within this long (older files are dropped)."""

    @field_validator("include", "exclude")
    @classmethod
    def _valid_globs(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                _compile([pattern])
            except ValueError as exc:  # pathspec's pattern errors subclass ValueError
                raise ValueError(f"invalid glob {pattern!r}: {exc}") from exc
        return patterns

    @field_validator("ignore_files")
    @classmethod
    def _plain_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"{name!r}: give a file name like .gitignore, not a path")
        return names

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            if len(pattern) > MAX_PATTERN:
                raise ValueError(f"a regex may have at most {MAX_PATTERN} characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return pattern

    @field_validator("max_size", "max_age")
    @classmethod
    def _ranges(cls, value: float | None, info: ValidationInfo) -> float | None:
        low_name, clash = _RANGES[info.field_name or ""]
        low = info.data.get(low_name)
        if value is not None and isinstance(low, int | float) and low > value:
            raise ValueError(f"{clash}: no file could pass")
        return value


_RANGES = {
    "max_size": ("min_size", "min_size is larger than max_size"),
    "max_age": ("min_age", "min_age is longer than max_age"),
}


class FilterStage(Stage[FilterOptions]):
    """Passes on only the events whose path, kind, type, size, age and expression match.

    Globs follow .gitignore rules and are matched against the path relative to the
    watched folder: `*.csv` matches at any depth, `/top.csv` only at the top, `**/x/*`
    anywhere below an `x` folder, `logs/` a folder and everything in it. `overflow`
    events are never dropped by globs, only by `kinds`.

    `ignore_files` obeys files like .gitignore found in the tree (as watchexec does): one
    in a folder applies to everything below it, a deeper one overrides, and nothing below
    an ignored folder passes. They are read in a worker thread, cached, and re-read when
    an event about them arrives or, at most every `ignore_recheck`, when their mtime
    changed.

    Checks run cheapest first: kinds, folders, globs, regex, ignore files, expression,
    then size and age. Size and age come from `meta.size` / `meta.mtime` when the source
    set them (the poll source does), else from a stat of the file in a worker thread, so
    a slow network file system never stalls the loop. They apply to files only: folders
    and `deleted` events pass them, and a file that no longer exists fails them. An
    expression that fails on an event (a type error) dead-letters that event.
    """

    type_name = "filter"
    Options = FilterOptions

    def __init__(self, options: FilterOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self._include = _compile(options.include) if options.include else None
        self._exclude = _compile(options.exclude) if options.exclude else None
        self._kinds = frozenset(options.kinds) if options.kinds is not None else None
        self._regex = re.compile(options.regex) if options.regex is not None else None
        self._expression = (
            compile_expression(options.expression) if options.expression is not None else None
        )
        self._needs_now = options.expression is not None and "age" in options.expression
        self._ignores = (
            IgnoreTree(options.ignore_files, options.ignore_recheck, context.clock)
            if options.ignore_files
            else None
        )
        o = options
        self._stat_checks = (o.min_size, o.max_size, o.min_age, o.max_age) != (None,) * 4
        self.stat: StatFn = try_stat
        """How a file is stat-ed when meta lacks size/mtime; tests may swap it."""
        self.offload: Offload = asyncio.to_thread
        """Where file-system work runs: a worker thread (tests may run it inline)."""
        self.now: Callable[[], float] = time.time
        """Wall-clock time for ages and `age()`; tests may swap it."""

    def accepts(self, event: Event) -> bool:
        """The checks that need no file-system access: kinds, folders, globs, regex, expression."""
        if self._kinds is not None and event.kind not in self._kinds:
            return False
        if event.kind is EventKind.OVERFLOW:
            return True
        directories = self.options.directories
        if (directories == "drop" and event.is_dir) or (directories == "only" and not event.is_dir):
            return False
        if not self._path_passes(event):
            return False
        if self._expression is None:
            return True
        return self._expression.matches(event, self.now() if self._needs_now else None)

    def _path_passes(self, event: Event) -> bool:
        """The globs and the regex, which look at the path only."""
        if self._include is not None or self._exclude is not None:
            relative = subject_of(event)
            if relative.startswith("/"):
                relative = relative.lstrip("/")
            if event.is_dir:
                relative += "/"
            if self._include is not None and not self._include.match_file(relative):
                return False
            if self._exclude is not None and self._exclude.match_file(relative):
                return False
        return self._regex is None or bool(self._regex.search(event.path))

    def _arrival(self, event: Event) -> Event:
        """A move from a path the rules exclude (`x.csv.tmp` -> `x.csv`) is, for what
        follows, an arrival: `src_path` null, the old name kept in `meta.src_filtered`.
        Otherwise a debounce would merge it with a later deletion into a deletion of the
        excluded name."""
        if event.kind is not EventKind.MOVED or event.src_path is None:
            return event
        if self._path_passes(dataclasses.replace(event, path=event.src_path)):
            return event
        return dataclasses.replace(event, src_path=None).with_meta(src_filtered=event.src_path)

    async def process(self, event: Event, emit: Emit) -> None:
        if self._ignores is not None:
            self._ignores.forget(event.path)
        if not self.accepts(event):
            return
        if event.kind is EventKind.OVERFLOW:
            await emit(event)
            return
        if self._ignores is not None:
            root = event.meta.get("root")
            root = root if isinstance(root, str) else None
            await self._ignores.refresh(self._ignores.folders(event.path, root))
            if self._ignores.is_ignored(event.path, root, event.is_dir):
                return
        if self._stat_checks and not await self._size_and_age_pass(event):
            return
        await emit(self._arrival(event))

    async def _size_and_age_pass(self, event: Event) -> bool:
        if event.is_dir or event.kind is EventKind.DELETED:
            return True
        size, mtime = meta_number(event.meta, "size"), meta_number(event.meta, "mtime")
        o = self.options
        needs_mtime = o.min_age is not None or o.max_age is not None
        if size is None or (needs_mtime and mtime is None):
            st = await self.offload(self.stat, event.path)
            if st is None:
                return False  # gone already: nothing to size up
            size, mtime = st.st_size, st.st_mtime_ns / 1e9
        if (o.min_size is not None and size < o.min_size) or (
            o.max_size is not None and size > o.max_size
        ):
            return False
        if needs_mtime and mtime is not None:
            age = self.now() - mtime
            if (o.min_age is not None and age < o.min_age) or (
                o.max_age is not None and age > o.max_age
            ):
                return False
        return True


@hookimpl
def pipeline_components() -> list[type[FilterStage]]:
    return [FilterStage]
