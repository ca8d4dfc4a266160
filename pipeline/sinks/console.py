"""The `console` sink: one line per event on standard output."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Literal

from pipeline.cloudevents import to_json
from pipeline.components import Sink
from pipeline.display import event_line
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions


class ConsoleOptions(ComponentOptions):
    format: Literal["text", "json"] = "text"
    """`text`: time, kind and path for people; `json`: one CloudEvents JSON object a line."""
    colour: Literal["auto", "always", "never"] = "auto"
    """Colour the kind in text lines: `auto` when standard output is a terminal."""


class ConsoleSink(Sink[ConsoleOptions]):
    """Prints each event on standard output, one line each, flushed at once.

    Paths are printed on one line whatever they contain: control characters and bytes
    that are not UTF-8 appear as escapes (`\\n`, `\\xff`). Use `format: json` for a
    lossless, machine-readable stream.
    """

    type_name = "console"
    Options = ConsoleOptions

    async def open(self) -> None:
        self._stream = sys.stdout
        wanted = self.options.colour
        self._colour = wanted == "always" or (wanted == "auto" and self._stream.isatty())

    def _line(self, event: Event) -> str:
        if self.options.format == "json":
            return to_json(event) + "\n"
        return event_line(event, colour=self._colour) + "\n"

    async def send(self, event: Event) -> None:
        self._stream.write(self._line(event))
        self._stream.flush()

    async def send_batch(self, events: Sequence[Event]) -> None:
        """Events that arrived together are written together, with one flush."""
        self._stream.write("".join(map(self._line, events)))
        self._stream.flush()


@hookimpl
def pipeline_components() -> list[type[ConsoleSink]]:
    return [ConsoleSink]
