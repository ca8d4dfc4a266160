"""The `transform` stage: add file facts to meta, relativise or rewrite paths, set/drop fields."""

from __future__ import annotations

import asyncio
import os.path
import re
from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field, field_validator

from pipeline.components import ComponentContext, Emit, Stage
from pipeline.event import Event, EventKind
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, ConfigPath
from pipeline.security import no_dot_segments
from pipeline.stages.fileinfo import Offload, file_facts
from pipeline.templates import TemplateText, compile_template

Fact = Literal["size", "mtime", "inode", "owner", "group", "mode", "mime", "sha256", "blake2b"]
_META_KEY = re.compile(r"^meta\.[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NO_FILE = (EventKind.DELETED, EventKind.OVERFLOW, EventKind.BATCH)
_RESERVED = frozenset({"kind", "path", "src_path", "is_dir"})  # the event's own fields in JSON


def _meta_key(key: str) -> str:
    if not _META_KEY.match(key):
        raise ValueError(f"{key!r}: name a meta entry, like meta.owner")
    name = key.removeprefix("meta.")
    if name in _RESERVED or name.endswith("_b64"):
        raise ValueError(f"{key!r} is reserved for the event's own fields")
    return name


class TransformOptions(ComponentOptions):
    add: list[Fact] = Field(default_factory=list, examples=[["size", "mtime", "sha256"]])
    """File facts to put in meta: size, mtime (also mtime_ns), inode, owner, group, mode
    (octal text like "0644"), mime, and content hashes sha256 / blake2b (faster)."""
    on_missing: Literal["fail", "pass"] = "fail"
    """When the file is gone before its facts are read (renamed or deleted right after):
    `fail` dead-letters the event; `pass` sends it on without the facts and with
    `meta.gone: true`, so a consumer still learns of the rename or write."""
    sniff: bool = False
    """With `mime`: when the extension says nothing, look at the first bytes (PDF, PNG,
    JPEG, GIF, ZIP, gzip, Parquet, SQLite, ..., UTF-8 text)."""
    relative_to: Literal["root"] | ConfigPath | None = Field(default=None, examples=["root"])
    """Put the path relative to this folder in meta.relpath: `root` (the watched folder the
    event came from) or a folder path. Paths outside it get no relpath."""
    set: dict[str, TemplateText] = Field(
        default_factory=dict, examples=[{"meta.key": "{stem}-{kind}"}]
    )
    """Meta entries to set from templates: {path} {kind} {src_path} {name} {stem} {ext}
    {dir} {relpath} {id} {time} {meta.X}, with {X:-default} for missing values."""
    path_template: TemplateText | None = Field(default=None, examples=["{dir}/{stem}.done{ext}"])
    """Rewrite the event's path from a template (a relative result is taken from the
    event's folder); the old path is kept in meta.original_path. A value with a `..`
    segment (a meta value from a broker message) fails that event: data cannot climb."""
    drop: list[str] = Field(default_factory=list, examples=[["meta.root"]])
    """Meta entries to remove, like meta.root."""

    @field_validator("set")
    @classmethod
    def _set_keys(cls, entries: dict[str, str]) -> dict[str, str]:
        for key in entries:
            _meta_key(key)
        return entries

    @field_validator("drop")
    @classmethod
    def _drop_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            _meta_key(key)
        return keys


class TransformStage(Stage[TransformOptions]):
    """Adds file facts (size, owner, MIME type, sha256, ...) to meta, and reshapes events.

    In order: file facts (`add`), `relative_to` (meta.relpath), `set`, `path_template`,
    `drop`; so `set` and `path_template` can use `{meta.sha256}` or `{relpath}`.

    File facts are read in a worker thread (stat, owner lookup, hashing), so a large file
    or a slow disk never stalls the event loop; events still leave in order, one at a
    time, so hashing a 10 GB file delays the events behind it. A file that is gone by
    then fails that one event (it is dead-lettered); `deleted` events get no facts, and
    folders no MIME type or hash. A template that needs a `{meta.X}` the event lacks
    (and gives no `{meta.X:-default}`) fails that event too.
    """

    type_name = "transform"
    Options = TransformOptions

    def __init__(self, options: TransformOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self._facts = frozenset(options.add)
        self._set = [(_meta_key(k), compile_template(v)) for k, v in options.set.items()]
        self._set_reads_meta = any(
            name.startswith("meta.") or name in ("relpath", "paths")
            for _, template in self._set
            for name in template.fields
        )
        self._path = compile_template(options.path_template) if options.path_template else None
        self._drop = frozenset(_meta_key(k) for k in options.drop)
        relative = options.relative_to
        self._relative_to = str(relative) if relative is not None else None
        self.offload: Offload = asyncio.to_thread
        """Where file facts are read: a worker thread (tests may run it inline)."""

    def _relpath(self, event: Event) -> str | None:
        base = event.meta.get("root") if self._relative_to == "root" else self._relative_to
        if not isinstance(base, str) or not base:
            return None
        base = base.rstrip("/") or "/"
        if event.path == base:
            return "."
        prefix = base if base.endswith("/") else base + "/"
        return event.path[len(prefix) :] if event.path.startswith(prefix) else None

    async def process(self, event: Event, emit: Emit) -> None:
        meta: dict[str, Any] = dict(event.meta)
        if self._facts and event.kind not in _NO_FILE:
            try:
                facts = await self.offload(file_facts, event.path, self._facts, self.options.sniff)
            except FileNotFoundError:
                if self.options.on_missing == "fail":
                    raise
                facts = {"gone": True}
            meta.update(facts)
        if self._relative_to is not None:
            relpath = self._relpath(event)
            if relpath is not None:
                meta["relpath"] = relpath
        if self._set:
            # Templates that read meta see what was added above; the others need no copy.
            view = _with(event, meta) if self._set_reads_meta else event
            meta.update({key: template.render(view) for key, template in self._set})
        path = event.path
        if self._path is not None:
            # Event data fills in names; it may not climb out of where the template points.
            rendered = self._path.render(_with(event, meta), escape=no_dot_segments)
            path = os.path.normpath(os.path.join(os.path.dirname(event.path), rendered))
            if path != event.path:
                meta["original_path"] = event.path
        for key in self._drop:
            meta.pop(key, None)
        await emit(_with(event, meta, path))


def _with(event: Event, meta: dict[str, Any], path: str | None = None) -> Event:
    """`event` with a new meta (and path): the constructor, for speed over `evolve`."""
    return Event(
        event.kind,
        event.path if path is None else path,
        event.source,
        event.is_dir,
        event.src_path,
        event.time,
        MappingProxyType(meta),
        event.id,
    )


@hookimpl
def pipeline_components() -> list[type[TransformStage]]:
    return [TransformStage]
