"""The event value (pipeline/event.py) and its ids (pipeline/ids.py)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import types
import uuid
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

import pipeline.ids
from pipeline import Event, EventKind
from pipeline.event import ALL_KINDS
from pipeline.ids import new_event_id


def make(**changes: object) -> Event:
    fields: dict[str, object] = {
        "kind": EventKind.CLOSED_WRITE,
        "path": "/in/a.csv",
        "source": "landing/inotify",
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


# -- the kinds of the contract ---------------------------------------------------------


def test_kinds_are_exactly_those_of_the_contract() -> None:
    assert {k.value for k in EventKind} == {
        "created",
        "modified",
        "attrib",
        "opened",
        "closed_write",
        "closed_nowrite",
        "deleted",
        "moved",
        "overflow",
        "batch",  # added to the contract for debounce's batch mode
    }
    assert frozenset(EventKind) - {EventKind.BATCH} == ALL_KINDS
    assert EventKind("closed_write") is EventKind.CLOSED_WRITE
    assert EventKind.MOVED == "moved"  # a StrEnum compares equal to its contract string


# -- defaults --------------------------------------------------------------------------


def test_defaults_are_a_file_with_no_src_path_now_in_utc_and_empty_meta() -> None:
    before = datetime.now(UTC)
    event = make()
    after = datetime.now(UTC)

    assert event.is_dir is False
    assert event.src_path is None
    assert dict(event.meta) == {}
    assert event.time.tzinfo is not None
    assert event.time.utcoffset() == timedelta(0)
    assert before <= event.time <= after
    assert uuid.UUID(event.id).version == 7


def test_each_new_event_gets_its_own_id() -> None:
    ids = {make().id for _ in range(1000)}
    assert len(ids) == 1000


# -- immutability ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", "/elsewhere"),
        ("kind", EventKind.DELETED),
        ("id", "x"),
        ("meta", {"x": 1}),
        ("is_dir", True),
    ],
)
def test_fields_cannot_be_assigned(field: str, value: object) -> None:
    event = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, value)
    assert getattr(event, field) != value


def test_new_attributes_cannot_be_added() -> None:
    event = make()
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]


def test_meta_is_read_only() -> None:
    event = make(meta={"size": 1})
    with pytest.raises(TypeError):
        event.meta["size"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        del event.meta["size"]  # type: ignore[attr-defined]
    assert event.meta["size"] == 1


def test_meta_is_copied_from_the_mapping_given() -> None:
    given = {"size": 1}
    event = make(meta=given)
    given["size"] = 2
    given["inode"] = 3
    assert dict(event.meta) == {"size": 1}


def test_meta_given_as_a_read_only_view_is_shared_not_copied() -> None:
    # The documented contract: sources pass one read-only view per watched root, and
    # events share it instead of copying it (no per-event allocation on the hot path).
    shared = MappingProxyType({"root": "/in"})
    first, second = make(meta=shared), make(meta=shared)
    assert first.meta is shared and second.meta is shared


def test_events_are_hashable_values() -> None:
    # An immutable value type: usable as a dict key or in a set (e.g. to drop repeats).
    event = make(meta={"size": 1})
    assert len({event, event.evolve()}) == 1
    assert {event: "seen"}[event] == "seen"


def test_equal_fields_make_equal_events() -> None:
    moment = datetime(2026, 11, 24, 6, 16, 49, 123456, tzinfo=UTC)
    a = make(id="same", time=moment, meta={"size": 1})
    b = make(id="same", time=moment, meta={"size": 1})
    assert a == b
    assert a != b.with_meta(size=2)


# -- evolve / with_meta / without_meta -------------------------------------------------


def test_evolve_returns_a_changed_copy_and_keeps_the_id() -> None:
    event = make(meta={"size": 1})
    moved = event.evolve(kind=EventKind.MOVED, path="/in/b.csv", src_path="/in/a.csv")

    assert (moved.kind, moved.path, moved.src_path) == (EventKind.MOVED, "/in/b.csv", "/in/a.csv")
    assert moved.id == event.id
    assert moved.time == event.time
    assert dict(moved.meta) == {"size": 1}
    # the original is untouched
    assert (event.kind, event.path, event.src_path) == (EventKind.CLOSED_WRITE, "/in/a.csv", None)


def test_evolve_can_set_a_new_id() -> None:
    event = make()
    other = event.evolve(id=new_event_id())
    assert other.id != event.id


def test_evolve_with_a_plain_dict_meta_is_still_read_only() -> None:
    event = make().evolve(meta={"size": 5})
    assert event.meta["size"] == 5
    with pytest.raises(TypeError):
        event.meta["size"] = 6  # type: ignore[index]


def test_evolve_rejects_an_unknown_field() -> None:
    with pytest.raises(TypeError):
        make().evolve(paht="/x")


def test_with_meta_adds_and_replaces_without_touching_the_original() -> None:
    event = make(meta={"size": 1, "inode": 7})
    richer = event.with_meta(size=2, sha256="ab")

    assert dict(richer.meta) == {"size": 2, "inode": 7, "sha256": "ab"}
    assert dict(event.meta) == {"size": 1, "inode": 7}
    assert richer.id == event.id
    assert (richer.kind, richer.path) == (event.kind, event.path)
    with pytest.raises(TypeError):
        richer.meta["size"] = 3  # type: ignore[index]


def test_without_meta_removes_keys_and_ignores_absent_ones() -> None:
    event = make(meta={"size": 1, "inode": 7, "root": "/in"})
    leaner = event.without_meta("size", "root", "not-there")

    assert dict(leaner.meta) == {"inode": 7}
    assert dict(event.meta) == {"size": 1, "inode": 7, "root": "/in"}
    assert leaner.id == event.id
    with pytest.raises(TypeError):
        leaner.meta["x"] = 1  # type: ignore[index]


# -- ids ---------------------------------------------------------------------------------


def _ms_of(event_id: str) -> int:
    return int(event_id.replace("-", "")[:12], 16)


def test_id_is_a_canonical_uuid7_string_stamped_with_now() -> None:
    before_ms = datetime.now(UTC).timestamp() * 1000
    event_id = new_event_id()
    after_ms = datetime.now(UTC).timestamp() * 1000

    parsed = uuid.UUID(event_id)
    assert str(parsed) == event_id  # 36 characters, lower-case, canonical dashes
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before_ms - 2 <= _ms_of(event_id) <= after_ms + 2


def test_100k_ids_are_unique_and_strictly_increasing() -> None:
    ids = [new_event_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    # sorting the strings sorts the UUIDs the same way
    assert sorted(ids, key=uuid.UUID) == ids


def _restore_id_state_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that fake the clock must not leave the process-wide counter in the future."""
    monkeypatch.setattr(pipeline.ids, "_last_ms", pipeline.ids._last_ms)
    monkeypatch.setattr(pipeline.ids, "_seq", pipeline.ids._seq)


def test_ids_keep_increasing_when_many_are_made_within_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _restore_id_state_afterwards(monkeypatch)
    frozen_ns = pipeline.ids.time.time_ns()
    monkeypatch.setattr(pipeline.ids, "time", types.SimpleNamespace(time_ns=lambda: frozen_ns))

    ids = [new_event_id() for _ in range(10_000)]  # more than the 12-bit counter holds

    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _restore_id_state_afterwards(monkeypatch)
    first = new_event_id()
    an_hour_ago = pipeline.ids.time.time_ns() - 3600 * 10**9
    monkeypatch.setattr(pipeline.ids, "time", types.SimpleNamespace(time_ns=lambda: an_hour_ago))

    later = [new_event_id() for _ in range(100)]

    assert first < later[0]
    assert all(a < b for a, b in itertools.pairwise(later))


def test_ids_from_several_threads_are_unique() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(10_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [i for out in results for i in out]
    assert len(set(every)) == 40_000
    for out in results:  # each thread sees its own ids in increasing order
        assert all(a < b for a, b in itertools.pairwise(out))
