"""The `command` sink: runs a program per event (or per batch), without a shell by default."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.components import ComponentContext, Sink
from pipeline.display import printable
from pipeline.errors import DeliveryError, PipelineError
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.options import ComponentOptions, ConfigPath, Duration
from pipeline.redact import redact
from pipeline.sinks.invocation import CommandLine, Separator, StdinMode, UnsafeValue, parse_argv
from pipeline.sinks.process import ChildProcess
from pipeline.templates import TemplateError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

OnBusy = Literal["queue", "restart", "ignore", "signal"]


class CommandFailed(ChildProcessError):
    """The command ended with a non-zero exit code or was killed: a failed delivery."""


class CommandTimeout(TimeoutError):
    """The command ran longer than `timeout` and was stopped: a failed delivery."""


class CommandOptions(ComponentOptions):
    argv: list[str] = Field(min_length=1)
    """The program and its arguments, e.g. `[python, ingest.py, "{path}"]`. Each element
    is one argument whatever the event holds (spaces, quotes, `$(...)`, newlines, bytes that
    are not UTF-8). Placeholders: {path} {kind} {src_path} {name} {stem} {ext} {dir}
    {relpath} {id} {time} {source} {is_dir} {meta.KEY} ({meta.KEY:-default}; without a
    default, an event that lacks the key fails), and {paths} (a whole element: one argument
    per path of a batch). With `shell: true`, argv[0] is the shell script."""
    shell: bool = False
    """Run argv[0] with /bin/sh -c. The script is never expanded: it reads the values from
    FSP_* variables ("$FSP_PATH") or from the other argv elements ("$1", "$@")."""
    stdin: StdinMode = "none"
    """What the command reads on stdin: `none` (/dev/null), `event` (the CloudEvents JSON,
    one line per event) or `paths` (each path followed by `stdin_separator`)."""
    stdin_separator: Separator = "nul"
    """What ends each path with `stdin: paths`: `nul` (lossless; `xargs -0`, `read -d ''`)
    or `newline` (then a path holding a newline fails its run instead of reading as two)."""
    cwd: ConfigPath | None = None
    """Working folder of the command; default: the config file's folder."""
    env: dict[str, str] = Field(default_factory=dict)
    """Variables added to the inherited environment (the FSP_* ones are set per run;
    FSPIPELINE_HTTP_TOKEN is never passed on)."""
    timeout: Duration | None = None
    """Longest run; then its whole process group is stopped and the delivery fails."""
    kill_grace: Duration = 5.0
    """How long a stopped command has after SIGTERM before its group gets SIGKILL."""
    max_concurrent: int = Field(default=1, ge=1, le=1024)
    """Runs at once. More than 1 only helps when the engine hands over several events at
    once (its `concurrency` option, or `on_busy` other than `queue`)."""
    on_busy: OnBusy = "queue"
    """When an event arrives while every run slot is busy: `queue` (wait, run it next),
    `restart` (stop the running command, run the new event), `ignore` (drop the event) or
    `signal` (send `busy_signal` to the running command instead of running again)."""
    busy_signal: str = "SIGHUP"
    """Signal sent to the running command's process group with `on_busy: signal`."""
    prefix_dash: bool = True
    """An argv element that begins with a placeholder whose value starts with `-` (a file
    named `-rf`, `--help` or `-o/etc/passwd` in {name} or {relpath}) is passed as `./-rf`:
    the same file (relative to `cwd`), never an option. {path} and {dir} are absolute and
    never start with `-`. Set false only for values that are not file names (a negative
    number from meta), and then end the options with `--`: `[rm, --, "{name}"]`."""
    output_lines: int = Field(default=100, ge=0, le=100_000)
    """Lines of stdout and stderr logged per run; the rest is counted, not logged."""

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, argv: list[str]) -> list[str]:
        parse_argv(argv, shell=None)  # argv[0] depends on `shell`: checked below
        return argv

    @field_validator("busy_signal")
    @classmethod
    def _check_signal(cls, name: str) -> str:
        full = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
        if full not in signal.Signals.__members__ or full.startswith("SIG_"):
            raise ValueError(f"unknown signal {name!r}; e.g. SIGHUP, SIGUSR1, SIGTERM")
        return full

    @model_validator(mode="after")
    def _check_modes(self) -> CommandOptions:
        parse_argv(self.argv, shell=self.shell)
        if self.on_busy in ("restart", "signal") and self.max_concurrent != 1:
            raise ValueError(
                f"on_busy: {self.on_busy} acts on the one running command; "
                "it needs max_concurrent: 1"
            )
        return self


@dataclasses.dataclass(eq=False)
class _Run:
    events: Sequence[Event]
    child: ChildProcess | None = None
    superseded: bool = False


class CommandSink(Sink[CommandOptions]):
    """Runs a command for each event, with the path as one exact argument, no shell needed.

    `argv: [python, ingest.py, "{path}"]` runs `python ingest.py /abs/inbox/a.csv`: every
    placeholder-bearing element becomes exactly one argument, with the original bytes of a
    file name that is not UTF-8. There is no shell unless `shell: true`, and even then
    event data is never put into the script text: it comes as positional parameters (the
    other argv elements, `"$1"`, `"$@"`) and as environment variables.

    Environment of every run: FSP_PATH, FSP_KIND, FSP_SRC_PATH, FSP_NAME, FSP_STEM, FSP_EXT,
    FSP_DIR, FSP_RELPATH, FSP_ID, FSP_TIME, FSP_SOURCE, FSP_IS_DIR, FSP_COUNT (number of
    paths), and FSP_META_<KEY> for each scalar meta value (key upper-cased, other characters
    as `_`). Write `$FSP_PATH`, not `${FSP_PATH}`: the config loader expands `${...}`
    itself (`$${FSP_PATH}` also works).

    Option injection: paths are absolute, so `{path}` never starts with `-`, but `{name}`
    or `{relpath}` may (a file named `-rf`). With `prefix_dash` (default) such an argument
    is passed as `./-rf`. Also end the options of commands that accept it with `--`:
    `argv: [rm, --, "{path}"]`, and in a shell script: `cp -- "$FSP_NAME" /dst/`.

    Values no program can receive intact fail the run at once (no retries; dead-lettered
    with the reason): a NUL byte (only a broker message can carry one), or with
    `stdin: paths` a path holding the separator.

    Delivery: exit code 0 is a delivered event. Any other exit code, a kill by a signal, a
    `timeout` or a program that cannot be started is a failed delivery: the engine retries
    it, then dead-letters it with the exit status and the last stderr line. Output never
    reaches the terminal: stdout and stderr go line by line into the log (with the path
    and the pid), at most `output_lines` per run.

    Batches: for a `batch` event (debounce's batch mode), `{paths}` expands to one argument
    per path and `stdin: paths` writes them all; `{path}` and the FSP_* variables describe
    the batch event itself. When the engine hands over several events at once
    (`batch_size`), a command that takes many paths (`{paths}` or any `stdin` mode) runs
    once for all of them; other commands run once per event.

    Busy: `max_concurrent` bounds the runs at once. `on_busy` says what an event that
    arrives while every slot is busy does — like watchexec's on-busy-update:
    `queue` waits and runs next (nothing is lost; the default); `restart` stops the running
    command (SIGTERM to its group, SIGKILL after `kill_grace`) and runs the new event — the
    superseded event counts as delivered, the new run is its successor; `ignore` drops the
    new event — deliberate loss you choose, counted in a warning when the run ends;
    `signal` sends `busy_signal` to the running command (e.g. to reload) and counts the
    new event as delivered. Arrivals while a command runs only happen when the engine calls
    this sink concurrently: the sink asks for that through `concurrent_sends()`; an engine
    that delivers one event at a time makes every mode behave like `queue`.
    """

    type_name = "command"
    Options = CommandOptions

    def __init__(self, options: CommandOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.command = CommandLine(
            options.argv,
            shell=options.shell,
            prefix_dash=options.prefix_dash,
            stdin=options.stdin,
            separator=options.stdin_separator,
            env=options.env,
        )
        self.cwd = options.cwd or context.config_dir
        self._slots = asyncio.Semaphore(options.max_concurrent)
        self._runs: list[_Run] = []
        self._children: set[ChildProcess] = set()  # started and maybe not yet gone
        self._latest = 0  # on_busy: restart — only the newest waiting event runs
        self._ignored = 0

    def concurrent_sends(self) -> int:
        """How many `send` calls this sink wants in flight at once, in arrival order.

        0 leaves it to the engine (one at a time, or its path-ordered lanes). `on_busy`
        other than `queue` must see events that arrive while a command runs.
        """
        return 0 if self.options.on_busy == "queue" else self.options.max_concurrent + 1

    async def open(self) -> None:
        if not self.cwd.is_dir():
            raise PipelineError(f"{self.context.label}: cwd {self.cwd} is not a folder")
        program = self.command.program
        if program is not None and not self._findable(program):
            raise PipelineError(
                f"{self.context.label}: command {program!r} not found "
                f"(looked in {'cwd ' + str(self.cwd) if '/' in program else 'PATH'})"
            )

    def _findable(self, program: str) -> bool:
        if "/" in program:
            path = Path(program) if os.path.isabs(program) else self.cwd / program
            return os.access(path, os.X_OK) and path.is_file()
        search = self.options.env.get("PATH", os.environ.get("PATH", os.defpath))
        return shutil.which(program, path=search) is not None

    async def send(self, event: Event) -> None:
        await self._dispatch([event])

    async def send_batch(self, events: Sequence[Event]) -> None:
        if self.command.takes_many:
            await self._dispatch(events)
        else:
            await super().send_batch(events)

    async def _dispatch(self, events: Sequence[Event]) -> None:
        mode, log = self.options.on_busy, self._log_for(events)
        busy = len(self._runs) >= self.options.max_concurrent
        if busy and mode == "ignore":
            self._ignored += 1
            log.debug("command busy; event ignored (on_busy: ignore)")
            return
        if busy and mode == "signal" and self._signal_running():
            log.info(
                "command busy; signalled it (on_busy: signal)", signal=self.options.busy_signal
            )
            return
        ticket = 0
        if mode == "restart":
            self._latest += 1
            ticket = self._latest
            for run in self._runs:
                if not run.superseded:
                    run.superseded = True
                    if run.child is not None:
                        log.info("newer event; stopping the running command (on_busy: restart)")
                        run.child.stop()
        async with self._slots:
            if mode == "restart" and ticket != self._latest:
                log.info("superseded by a newer event before it ran (on_busy: restart)")
                return
            await self._run(events, log)

    def _signal_running(self) -> bool:
        """Signal every running command; True if one got it or one is just starting."""
        signum = signal.Signals[self.options.busy_signal]
        reached = False
        for run in self._runs:
            reached = run.child is None or run.child.send_signal(signum) or reached
        return reached

    async def _run(self, events: Sequence[Event], log: FilteringBoundLogger) -> None:
        run = _Run(events)
        self._runs.append(run)
        try:
            try:
                invocation = self.command.build(events)
            except (TemplateError, UnsafeValue) as exc:
                # The same event gives the same argv: dead-letter it now, not after retries.
                raise DeliveryError(f"not run: {exc}", permanent=True) from None
            run.child = child = ChildProcess(
                invocation,
                cwd=self.cwd,
                log=log,
                clock=self.context.clock,
                grace=self.options.kill_grace,
                output_lines=self.options.output_lines,
            )
            try:
                await child.start()
            except OSError as exc:
                program = os.fsdecode(invocation.argv[0])
                raise CommandFailed(f"cannot run {printable(program)}: {exc}") from exc
            self._children.add(child)
            if run.superseded:  # a restart came while it was starting
                child.stop()
            ended = await child.wait(self.options.timeout)
            self._children.discard(child)  # a cancelled wait leaves it for close()
        finally:
            self._runs.remove(run)
            self._report_ignored()
        if run.superseded:
            log.info(
                "superseded command stopped; its event counts as delivered", status=ended.status
            )
        elif ended.timed_out:
            raise CommandTimeout(
                f"timed out after {self.options.timeout:g}s and was stopped ({ended.status})"
                + (f"; last stderr line: {redact(ended.last_stderr)}" if ended.last_stderr else "")
            )
        elif ended.returncode != 0:
            # The reason lands in dead letters and logs: a URL with a password stays masked.
            stderr = redact(ended.last_stderr) or "(nothing on stderr)"
            raise CommandFailed(f"{ended.status}: {stderr}")
        else:
            log.debug("command succeeded")

    def _report_ignored(self) -> None:
        if self._ignored:
            self.log.warning(
                "events ignored while the command was running (on_busy: ignore)",
                ignored=self._ignored,
            )
            self._ignored = 0

    def _log_for(self, events: Sequence[Event]) -> FilteringBoundLogger:
        if len(events) == 1:
            return self.log.bind(path=printable(events[0].path))
        return self.log.bind(path=printable(events[-1].path), events=len(events))

    async def close(self) -> None:
        for child in list(self._children):
            await child.stopped()
        self._children.clear()
        self._report_ignored()


@hookimpl
def pipeline_components() -> list[type[CommandSink]]:
    return [CommandSink]
