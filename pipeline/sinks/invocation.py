"""What one run of the command sink is: its argv, environment and stdin, built from events.

Every value reaches the child as bytes: `os.fsencode` of the surrogate-escaped text gives
back the exact bytes of a file name that is not UTF-8. Nothing is interpolated into shell
text: without a shell each argv element is one argument; with a shell the script is taken
literally and the values come as positional parameters (`"$1"`, `"$@"`) and `FSP_*`
environment variables. A value that cannot reach the child intact (a NUL byte, which
would cut an argument or a variable short; a path holding the stdin separator, which
would read as two paths) fails the run instead of passing something else.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pipeline.cloudevents import to_json
from pipeline.display import printable
from pipeline.event import Event
from pipeline.templates import PLACEHOLDERS, Template, compile_template

SHELL = b"/bin/sh"
SHELL_NAME = b"fspipeline"
"""`$0` of a shell script run by the sink."""
ENV_PREFIX = "FSP_"
PATHS = "paths"
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r"|meta\.[^{}:]+)(?::-[^{}]*)?\}")
StdinMode = Literal["none", "event", "paths"]
Separator = Literal["nul", "newline"]
_SEPARATORS: dict[str, bytes] = {"nul": b"\0", "newline": b"\n"}
_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")
WITHHELD_ENV = (b"FSPIPELINE_HTTP_TOKEN",)
"""fspipeline's own secrets, never inherited by the commands it runs."""


class UnsafeValue(ValueError):
    """An event value no program can receive intact: retrying cannot help."""


@dataclasses.dataclass(frozen=True, slots=True)
class Invocation:
    """The exact bytes a child process is started with."""

    argv: list[bytes]
    env: dict[bytes, bytes]
    stdin: bytes | None
    """None: the child's stdin is /dev/null."""


def parse_argv(argv: Sequence[str], *, shell: bool | None) -> list[Template]:
    """Validate the `argv` option and parse its templates; ValueError names the element.

    With `shell`, argv[0] is the script: it is never parsed (so `awk '{print}'` is fine),
    only checked for placeholders, which would not be expanded there. With `shell=None`
    (not known yet) argv[0] is not checked and its template is empty.
    """
    if not argv:
        raise ValueError("argv needs at least the program to run")
    templates: list[Template] = []
    for index, element in enumerate(argv):
        if index == 0 and shell is not False:
            if shell and _PLACEHOLDER.search(element):
                raise ValueError(
                    "argv[0] is the shell script and is never expanded, so event data cannot "
                    'inject shell code: read the values from the environment ("$FSP_PATH") '
                    'or pass them as arguments: argv: [\'cp -- "$1" /dst/\', "{path}"]'
                )
            templates.append(Template(""))
            continue
        try:
            template = compile_template(element)
        except ValueError as exc:
            raise ValueError(f"argv[{index}]: {exc}") from None
        if PATHS in template.fields and not template.is_single_field:
            raise ValueError(
                f"argv[{index}]: {{paths}} expands to one argument per path, so it must be a "
                f"whole element on its own, not part of {element!r}"
            )
        templates.append(template)
    return templates


def paths_of(event: Event) -> list[str]:
    """The paths an event is about: `meta.paths` of a batch, else its own path."""
    listed = event.meta.get(PATHS)
    if isinstance(listed, list | tuple) and all(isinstance(p, str) for p in listed):
        return list(listed)
    return [event.path]


def environment_of(event: Event, paths: Sequence[str]) -> dict[bytes, bytes]:
    """The `FSP_*` variables of a run: one per placeholder, `FSP_META_KEY` per scalar meta."""
    env: dict[bytes, bytes] = {}
    for name in PLACEHOLDERS:
        if name != PATHS:  # too long for the environment: {paths}, "$@" or stdin carry them
            _put(env, ENV_PREFIX + name.upper(), compile_template("{" + name + "}").render(event))
    _put(env, ENV_PREFIX + "COUNT", str(len(paths)))
    for key, value in event.meta.items():
        if isinstance(value, str | int | float | bool):
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            _put(env, ENV_PREFIX + "META_" + _ENV_NAME.sub("_", key).upper(), text)
    return env


def _put(env: dict[bytes, bytes], name: str, value: str) -> None:
    # Dropping the variable instead would leave a script working on "" ("$FSP_DIR/tmp").
    if "\0" in value:
        raise UnsafeValue(f"{name} would hold a NUL byte, which no environment can carry")
    env[os.fsencode(name)] = os.fsencode(value)


class CommandLine:
    """The validated `argv`, `shell`, `stdin` and `env` options, ready to build runs."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        shell: bool,
        prefix_dash: bool,
        stdin: StdinMode,
        separator: Separator,
        env: Mapping[str, str],
    ) -> None:
        self.templates = parse_argv(argv, shell=shell)
        self.script = os.fsencode(argv[0]) if shell else b""
        self.shell = shell
        self.prefix_dash = prefix_dash
        self.stdin = stdin
        self.separator = _SEPARATORS[separator]
        inherited = {
            k: v
            for k, v in os.environb.items()
            if not k.startswith(b"FSP_") and k not in WITHHELD_ENV
        }
        self.base_env = inherited | {os.fsencode(k): os.fsencode(v) for k, v in env.items()}

    @property
    def takes_many(self) -> bool:
        """Whether one run can carry several events (`{paths}` or paths/events on stdin)."""
        return self.stdin != "none" or any(PATHS in t.fields for t in self.templates)

    @property
    def program(self) -> str | None:
        """The program to look up before the first run, or None when it comes from an event."""
        first = self.templates[0]
        if first.fields or self.shell:
            return None
        return "".join(part for part in first.parts if isinstance(part, str))

    def build(self, events: Sequence[Event]) -> Invocation:
        """The invocation for one run about `events` (one event, or a batch handed over at once).

        Single-value placeholders come from the last event; `{paths}`, `FSP_COUNT` and stdin
        carry every path of every event. A `{meta.KEY}` the event lacks (and that has no
        `{meta.KEY:-default}`) raises TemplateError: a failed delivery, not an empty argument.
        """
        event = events[-1]
        paths = [path for e in events for path in paths_of(e)]
        args: list[bytes] = []
        for index, template in enumerate(self.templates):
            if self.shell and index == 0:
                args += [SHELL, b"-c", self.script, SHELL_NAME]
            elif template.is_single_field and template.fields == {PATHS}:
                args += [self._argument(path, True) for path in paths]
            else:
                args.append(self._argument(template.render(event), template.starts_with_field))
        env = self.base_env | environment_of(event, paths)
        return Invocation(args, env, self._stdin(events, paths))

    def _argument(self, text: str, from_event: bool) -> bytes:
        # An element that starts with event data must not start with "-": a file named
        # `-rf` would be read as options. `./-rf` names the same file (relative paths).
        if self.prefix_dash and from_event and text.startswith("-"):
            text = "./" + text
        if "\0" in text:
            raise UnsafeValue(
                f"argument '{printable(text)}' holds a NUL byte, which would cut it short"
            )
        return os.fsencode(text)

    def _stdin(self, events: Sequence[Event], paths: Sequence[str]) -> bytes | None:
        if self.stdin == "event":
            return b"".join(to_json(e).encode("utf-8") + b"\n" for e in events)
        if self.stdin == "paths":
            raw = [os.fsencode(path) for path in paths]
            for path in raw:
                if self.separator in path:
                    shown = "NUL" if self.separator == b"\0" else "newline"
                    raise UnsafeValue(
                        f"path '{printable(os.fsdecode(path))}' holds a {shown}, which "
                        f"also ends each path on stdin: it would read as two paths"
                        + ("; use stdin_separator: nul" if shown == "newline" else "")
                    )
            return b"".join(path + self.separator for path in raw)
        return None
