"""The `filter` stage: keep events by path globs (gitignore semantics), kind and type."""

from __future__ import annotations

from typing import Literal

import pathspec
from pydantic import Field, field_validator

from pipeline.cloudevents import subject_of
from pipeline.components import ComponentContext, Emit, Stage
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions


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

    @field_validator("include", "exclude")
    @classmethod
    def _valid_globs(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                _compile([pattern])
            except ValueError as exc:  # pathspec's pattern errors subclass ValueError
                raise ValueError(f"invalid glob {pattern!r}: {exc}") from exc
        return patterns


class FilterStage(Stage[FilterOptions]):
    """Passes on only the events whose path, kind and type match.

    Globs follow .gitignore rules and are matched against the path relative to the
    watched folder: `*.csv` matches at any depth, `/top.csv` only at the top, `**/x/*`
    anywhere below an `x` folder, `logs/` a folder and everything in it. `overflow`
    events are never dropped by globs, only by `kinds`.
    """

    type_name = "filter"
    Options = FilterOptions

    def __init__(self, options: FilterOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self._include = _compile(options.include) if options.include else None
        self._exclude = _compile(options.exclude) if options.exclude else None
        self._kinds = frozenset(options.kinds) if options.kinds is not None else None

    def accepts(self, event: Event) -> bool:
        if self._kinds is not None and event.kind not in self._kinds:
            return False
        if event.kind is EventKind.OVERFLOW:
            return True
        directories = self.options.directories
        if (directories == "drop" and event.is_dir) or (directories == "only" and not event.is_dir):
            return False
        if self._include is None and self._exclude is None:
            return True
        relative = subject_of(event)
        if relative.startswith("/"):
            relative = relative.lstrip("/")
        if event.is_dir:
            relative += "/"
        if self._include is not None and not self._include.match_file(relative):
            return False
        return self._exclude is None or not self._exclude.match_file(relative)

    async def process(self, event: Event, emit: Emit) -> None:
        if self.accepts(event):
            await emit(event)


@hookimpl
def pipeline_components() -> list[type[FilterStage]]:
    return [FilterStage]
