"""The ready stage in virtual time over a scripted file system: close, rename, stable, marker."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from pipeline import ComponentContext, Event, EventKind, FakeClock
from pipeline.stages.fileinfo import inline
from pipeline.stages.ready import ReadyStage

K = EventKind


class FakeFiles:
    """Files by path: size, mtime_ns and inode; folders are implied by the paths."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int, int]] = {}
        self._inode = 100
        self._time = 1_000_000_000_000

    def write(self, path: str, size: int) -> None:
        self._time += 1_000_000
        ino = self.files[path][2] if path in self.files else self._next_inode()
        self.files[path] = (size, self._time, ino)

    def _next_inode(self) -> int:
        self._inode += 1
        return self._inode

    def remove(self, path: str) -> None:
        del self.files[path]

    def rename(self, src: str, dst: str) -> None:
        self.files[dst] = self.files.pop(src)

    def stat(self, path: str) -> os.stat_result | None:
        if path not in self.files:
            return None
        size, mtime_ns, ino = self.files[path]
        fields = (stat.S_IFREG | 0o644, ino, 1, 1, 0, 0, size, 0, mtime_ns // 10**9, 0)
        return os.stat_result(fields, {"st_mtime_ns": mtime_ns})

    def listdir(self, folder: str) -> list[str]:
        names = [p[len(folder) + 1 :] for p in self.files if os.path.dirname(p) == folder]
        if not names and not any(p.startswith(folder + "/") for p in self.files):
            raise FileNotFoundError(folder)
        return names


class Harness:
    def __init__(self, stage: ReadyStage, clock: FakeClock, files: FakeFiles) -> None:
        self.stage, self.clock, self.files = stage, clock, files
        self.out: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.out.append(event)

    async def send(
        self, kind: EventKind, path: str, src: str | None = None, source: str = "p/inotify"
    ) -> None:
        await self.stage.process(
            Event(kind, path, source, src_path=src, meta={"root": "/in"}), self.emit
        )
        await asyncio.sleep(0)

    def emitted(self) -> list[tuple[str, str, str | None, str]]:
        return [(e.kind.value, e.path, e.src_path, e.meta["ready"]) for e in self.out]


def play(mode: str, scenario: Callable[[Harness], Awaitable[None]], **options: Any) -> Harness:
    clock, files = FakeClock(), FakeFiles()
    validated = ReadyStage.Options.model_validate({"mode": mode, **options})
    context = ComponentContext("p", "p.stages[0]", Path("/"), None, structlog.get_logger(), clock)
    stage = ReadyStage(validated, context)
    stage.stat, stage.listdir, stage.offload = files.stat, files.listdir, inline
    harness = Harness(stage, clock, files)

    async def main() -> None:
        timer = asyncio.create_task(stage.run(harness.emit))
        await asyncio.sleep(0)
        await scenario(harness)
        timer.cancel()

    asyncio.run(main())
    return harness


def test_close_mode_passes_a_file_closed_after_writing_with_its_final_size() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/a.csv", 10)
        await h.send(K.CREATED, "/in/a.csv")
        await h.send(K.MODIFIED, "/in/a.csv")
        assert h.out == []
        h.files.write("/in/a.csv", 25)
        await h.send(K.CLOSED_WRITE, "/in/a.csv")
        [event] = h.out
        assert event.kind is K.CLOSED_WRITE
        assert event.meta["size"] == 25
        assert event.meta["mtime_ns"] == h.files.files["/in/a.csv"][1]
        assert event.meta["mtime"] == event.meta["mtime_ns"] / 1e9
        assert event.meta["inode"] == h.files.files["/in/a.csv"][2]
        assert (event.meta["ready"], event.meta["root"]) == ("close", "/in")

    play("close", scenario)


@pytest.mark.parametrize(("dedupe", "sizes"), [(True, [10, 20]), (False, [10, 10, 20])])
def test_each_content_passes_once_unless_dedupe_is_off(dedupe: bool, sizes: list[int]) -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/a.csv", 10)
        await h.send(K.CLOSED_WRITE, "/in/a.csv")
        await h.send(K.CLOSED_WRITE, "/in/a.csv")  # closed again, same content
        h.files.write("/in/a.csv", 20)
        await h.send(K.CLOSED_WRITE, "/in/a.csv")  # new content
        assert [e.meta["size"] for e in h.out] == sizes

    play("close", scenario, dedupe=dedupe)


def test_dedupe_memory_is_bounded_by_remember() -> None:
    async def scenario(h: Harness) -> None:
        for name in ("a", "b", "c", "a"):
            h.files.files.setdefault(f"/in/{name}", (1, 1, ord(name)))
            await h.send(K.CLOSED_WRITE, f"/in/{name}")
        # a was forgotten when c was remembered, so its unchanged content passes again
        assert [e.path for e in h.out] == ["/in/a", "/in/b", "/in/c", "/in/a"]

    play("close", scenario, remember=2)


def test_partial_files_never_pass() -> None:
    async def scenario(h: Harness) -> None:
        for path in ("/in/a.csv.tmp", "/in/.a.csv.swp", "/in/b.part", "/in/c.csv~"):
            h.files.write(path, 5)
            await h.send(K.CLOSED_WRITE, path)
        await h.send(K.CLOSED_WRITE, "/in/gone.csv")  # closed, then removed before the stat
        await h.stage.process(Event(K.CLOSED_WRITE, "/in", "p/inotify", True), h.emit)
        await h.stage.process(Event(K.DELETED, "/in/x.csv", "p/inotify"), h.emit)
        assert h.out == []
        overflow = Event(K.OVERFLOW, "/in", "p/inotify", True)
        await h.stage.process(overflow, h.emit)
        assert h.out == [overflow]

    play("auto", scenario)


def test_rename_mode_passes_files_renamed_into_place() -> None:
    async def scenario(h: Harness) -> None:
        moves = [
            ("/in/.a.csv.partial", "/in/a.csv"),  # from a hidden temp name
            ("/in/b.csv.tmp", "/in/b.csv"),
            ("/staging/c.csv", "/in/c.csv"),  # from another folder: atomic placement
            (None, "/in/d.csv"),  # from outside the watched folders
            ("/in/e.csv", "/in/e2.csv"),  # a plain rename of a visible file: not a signal
            ("/in/f.csv", "/in/f.csv.tmp"),  # to a temp name
        ]
        for src, dst in moves:
            h.files.write(dst, 3)
            await h.send(K.MOVED, dst, src)
        h.files.write("/in/g.csv", 3)
        await h.send(K.CLOSED_WRITE, "/in/g.csv")  # closes do not count in rename mode
        assert h.emitted() == [
            ("moved", "/in/a.csv", "/in/.a.csv.partial", "rename"),
            ("moved", "/in/b.csv", "/in/b.csv.tmp", "rename"),
            ("moved", "/in/c.csv", "/staging/c.csv", "rename"),
            ("moved", "/in/d.csv", None, "rename"),
        ]

    play("rename", scenario)


def test_stable_mode_waits_until_size_and_mtime_stop_changing() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/big.csv", 0)
        await h.send(K.CREATED, "/in/big.csv", source="p/poll")
        for size in range(1, 7):  # written in chunks every 0.5s, no events (NFS)
            await h.clock.advance(0.5)
            h.files.write("/in/big.csv", size * 100)
        assert h.stage.tracked == 1
        # The last write, just after the t=3.0 poll, is seen at t=3.5: stable at t=5.5.
        await h.clock.advance(2.4)
        assert h.out == []
        await h.clock.advance(0.2)
        assert h.emitted() == [("closed_write", "/in/big.csv", None, "stable")]
        assert h.out[0].meta["size"] == 600
        assert h.stage.tracked == 0
        await h.clock.advance(10)
        assert len(h.out) == 1

    play("stable", scenario, stable_for="2s", poll_interval="500ms")


def test_stable_mode_restarts_the_wait_on_each_event_and_forgets_deleted_files() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/a.csv", 1)
        h.files.write("/in/b.csv", 1)
        await h.send(K.CREATED, "/in/a.csv")
        await h.send(K.CREATED, "/in/b.csv")
        await h.clock.advance(0.8)
        await h.send(K.MODIFIED, "/in/a.csv")  # same size and mtime, but an event: wait again
        h.files.remove("/in/b.csv")
        await h.clock.advance(0.5)
        assert h.stage.tracked == 1  # b vanished: dropped, never passed
        await h.clock.advance(0.4)
        assert h.out == []  # a: only 0.9s since its last event
        await h.clock.advance(0.2)
        assert [e.path for e in h.out] == ["/in/a.csv"]

    play("stable", scenario, stable_for="1s", poll_interval="100ms")


def test_marker_mode_folder_marker_makes_every_file_in_the_folder_ready() -> None:
    async def scenario(h: Harness) -> None:
        for name in ("part-0.parquet", "part-1.parquet", ".part-2.parquet.crc", "x.tmp"):
            h.files.write(f"/in/day/{name}", 7)
        h.files.write("/in/day/sub/other.parquet", 7)
        await h.send(K.CLOSED_WRITE, "/in/day/part-0.parquet")  # before the marker: wait
        assert h.out == []
        h.files.write("/in/day/_SUCCESS", 0)
        await h.send(K.CREATED, "/in/day/_SUCCESS")
        await h.send(K.CLOSED_WRITE, "/in/day/_SUCCESS")  # seen twice: nothing twice
        assert h.emitted() == [
            ("closed_write", "/in/day/part-0.parquet", None, "marker"),
            ("closed_write", "/in/day/part-1.parquet", None, "marker"),
        ]
        h.files.write("/in/day/late.parquet", 9)
        await h.send(K.CLOSED_WRITE, "/in/day/late.parquet")  # after the marker: at once
        assert h.out[-1].path == "/in/day/late.parquet"
        assert len(h.out) == 3

    play("marker", scenario)


def test_marker_mode_suffix_marker_makes_one_file_ready() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/x.csv", 5)
        h.files.write("/in/y.csv", 5)
        await h.send(K.CLOSED_WRITE, "/in/x.csv")
        h.files.write("/in/x.csv.done", 0)
        await h.send(K.CLOSED_WRITE, "/in/x.csv.done")
        await h.send(K.CLOSED_WRITE, "/in/missing.csv.done")  # marks nothing that exists
        h.files.write("/in/y.csv.ok", 0)
        await h.send(K.CLOSED_WRITE, "/in/y.csv.ok")
        assert h.emitted() == [
            ("closed_write", "/in/x.csv", None, "marker"),
            ("closed_write", "/in/y.csv", None, "marker"),
        ]

    play("marker", scenario, marker_suffixes=[".done", ".ok"])


def test_auto_mode_uses_closes_when_the_source_reports_them_else_stability() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/a.csv", 5)
        await h.send(K.CREATED, "/in/a.csv", source="p/inotify")
        await h.send(K.MODIFIED, "/in/a.csv", source="p/inotify")
        h.files.write("/in/a.csv", 9)
        await h.send(K.CLOSED_WRITE, "/in/a.csv", source="p/inotify")
        h.files.write("/in/b.csv", 5)
        await h.send(K.CREATED, "/in/b.csv", source="p/inotify")  # a known closer: wait for it
        h.files.write("/in/c.csv", 5)
        await h.send(K.CREATED, "/in/c.csv", source="p/poll")  # never reports closes
        h.files.write("/in/d.csv", 5)
        await h.send(K.MOVED, "/in/d.csv", "/in/d.csv.part", source="p/inotify")
        await h.clock.advance(5)
        assert h.emitted() == [
            ("closed_write", "/in/a.csv", None, "close"),
            ("moved", "/in/d.csv", "/in/d.csv.part", "rename"),
            ("closed_write", "/in/c.csv", None, "stable"),
        ]

    play("auto", scenario, stable_for="1s")


def test_too_many_files_waiting_drops_the_oldest_with_a_warning() -> None:
    async def scenario(h: Harness) -> None:
        with capture_logs() as logs:
            for name in "abc":
                h.files.write(f"/in/{name}", 1)
                await h.send(K.CREATED, f"/in/{name}", source="p/poll")
        assert h.stage.tracked == 2
        assert [entry["path"] for entry in logs] == ["/in/a"]
        await h.clock.advance(3)
        assert [e.path for e in h.out] == ["/in/b", "/in/c"]

    play("stable", scenario, stable_for="1s", max_tracked=2)


def test_sha256_dedupe_ignores_a_rewrite_with_the_same_bytes(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"

    async def scenario() -> list[Event]:
        clock = FakeClock()
        options = ReadyStage.Options.model_validate({"mode": "close", "dedupe_by": "sha256"})
        context = ComponentContext("p", "p.s", tmp_path, None, structlog.get_logger(), clock)
        stage = ReadyStage(options, context)
        out: list[Event] = []

        async def emit(event: Event) -> None:
            out.append(event)

        for content in (b"one", b"one", b"two"):
            target.write_bytes(content)
            os.utime(target, ns=(len(out) + 1, len(out) * 10**9 + 7))  # a new mtime each time
            await stage.process(Event(K.CLOSED_WRITE, str(target), "p/inotify"), emit)
        return out

    out = asyncio.run(scenario())
    assert [e.meta["sha256"][:8] for e in out] == ["7692c3ad", "3fc4ccfe"]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"mode": "sometimes"}, "auto"), ({"remember": 0}, "greater than or equal to 1")],
)
def test_options_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReadyStage.Options.model_validate(options)


def test_stable_mode_is_not_delayed_by_readers() -> None:
    async def scenario(h: Harness) -> None:
        h.files.write("/in/a.csv", 3)
        await h.send(K.CLOSED_WRITE, "/in/a.csv", source="p/fanotify")
        for _ in range(5):  # a reader keeps opening it; that changes nothing
            await h.clock.advance(0.3)
            await h.send(K.OPENED, "/in/a.csv", source="p/fanotify")
            await h.send(K.CLOSED_NOWRITE, "/in/a.csv", source="p/fanotify")
        assert [e.path for e in h.out] == ["/in/a.csv"]
        assert h.stage.tracked == 0

    play("stable", scenario, stable_for="1s", poll_interval="100ms")


def test_auto_waits_for_a_scanned_file_to_be_stable_but_a_real_close_passes_at_once() -> None:
    async def scenario(h: Harness) -> None:
        # A file a scan found (new folder, overflow, catch-up): maybe still being written.
        h.files.write("/in/found.csv", 10)
        event = Event(
            K.CLOSED_WRITE, "/in/found.csv", "p/inotify", meta={"root": "/in", "scan": True}
        )
        await h.stage.process(event, h.emit)
        await h.clock.advance(1.0)
        h.files.write("/in/found.csv", 30)  # the writer was not done
        await h.clock.advance(1.5)
        assert h.out == []
        await h.clock.advance(3.0)  # quiet for stable_for (2s): now it is complete
        assert [(e.path, e.meta["size"], e.meta["ready"]) for e in h.out] == [
            ("/in/found.csv", 30, "stable")
        ]
        # A close seen as it happened needs no wait.
        h.files.write("/in/live.csv", 5)
        await h.send(K.CLOSED_WRITE, "/in/live.csv")
        assert h.out[-1].path == "/in/live.csv"

    play("auto", scenario)
