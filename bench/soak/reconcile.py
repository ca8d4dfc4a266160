"""Accounts for every event of a soak run: delivered, filtered, merged or dead-lettered.

Three independent views must agree:

1. The generator's expectation (workload.Expected): the events the source must report.
2. The engine's counters (/api/stats): what entered and left each stage and sink.
3. What is on record: the logfile lines, the redis stream entries, the dead-letter file.

Counts chain from one to the next (source out = expected; filter in - out = the excluded
ones; debounce in - out = merged; transform out = what reached the sinks; each sink
delivered + dead-lettered = what it took; lines and entries = delivered), and the
remainder of the whole equation is the "unaccounted" figure, which must be 0. Then the
content is checked: each delivered event is about a path the generator touched and the
rule lets through, both sinks hold the same event ids, and replaying the logfile as a
consumer would gives exactly the files that are in the tree at the end (a difference is
only allowed where a dead-lettered event explains it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stats import Counters, Stats
from workload import Expected, is_excluded

QUOTED = re.compile(r"'[^']*'")
"""A quoted path in a dead-letter reason: left out when reasons are grouped."""
SET_KINDS = frozenset({"created", "closed_write", "modified", "attrib"})


@dataclasses.dataclass(frozen=True)
class Delivered:
    """One event as a sink recorded it."""

    id: str
    kind: str
    path: str
    src_path: str | None
    is_dir: bool


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    component: str
    reason: str
    event: Delivered


@dataclasses.dataclass
class Accounting:
    """Every figure of the reconciliation and every problem found (none on a good run)."""

    generated: int = 0
    expected_excluded: int = 0
    source_out: int = 0
    overflows: int = 0
    filtered: int = 0
    merged: int = 0
    stage_dead_lettered: int = 0
    reached_sinks: int = 0
    delivered: dict[str, int] = dataclasses.field(default_factory=dict)
    sink_dead_lettered: dict[str, int] = dataclasses.field(default_factory=dict)
    on_record: dict[str, int] = dataclasses.field(default_factory=dict)
    duplicates: dict[str, int] = dataclasses.field(default_factory=dict)
    dead_letter_reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    delivered_kinds: Counter[str] = dataclasses.field(default_factory=Counter)
    unaccounted: int = 0
    view_mismatches: int = 0
    view_explained: int = 0
    excluded_leaks: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    """What does not add up: the run failed."""
    findings: list[str] = dataclasses.field(default_factory=list)
    """What adds up but a user would notice (a wrong counter, a surprising event)."""

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def _event_of(envelope: dict[str, Any]) -> Delivered:
    data = envelope["data"]
    return Delivered(
        id=str(envelope["id"]),
        kind=str(data["kind"]),
        path=str(data["path"]),
        src_path=data.get("src_path"),
        is_dir=bool(data.get("is_dir", False)),
    )


def logfile_paths(logfile: Path) -> list[Path]:
    """The rotated files (oldest first, by the UTC time in their names), then the live one."""
    stem, suffix = os.path.splitext(logfile.name)
    rotated = sorted(logfile.parent.glob(f"{stem}.*{suffix}"))
    return [*rotated, *([logfile] if logfile.exists() else [])]


def read_logfile(logfile: Path) -> list[Delivered]:
    events: list[Delivered] = []
    for path in logfile_paths(logfile):
        with path.open("rb") as lines:
            events.extend(_event_of(json.loads(line)) for line in lines)
    return events


def read_dead_letters(path: Path) -> list[DeadLetter]:
    if not path.exists():
        return []
    letters = []
    with path.open("rb") as lines:
        for line in lines:
            record = json.loads(line)
            letters.append(
                DeadLetter(
                    str(record["component"]), str(record["reason"]), _event_of(record["event"])
                )
            )
    return letters


def disk_state(tree: Path, initial_dirs: set[str]) -> set[str]:
    """Every file and folder in the tree the filter lets through, but the initial folders."""
    found: set[str] = set()
    base = len(str(tree)) + 1
    for folder, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            if path not in initial_dirs and not is_excluded(path[base:]):
                found.add(path)
    return found


def replay(events: Iterable[Delivered]) -> set[str]:
    """The paths a consumer of these events believes exist, in the order it got them."""
    view: set[str] = set()
    for event in events:
        if event.kind in SET_KINDS:
            view.add(event.path)
        elif event.kind == "moved":
            if event.src_path is not None:
                view.discard(event.src_path)
            view.add(event.path)
        elif event.kind == "deleted":
            view.discard(event.path)
    return view


def _dead_by_type(letters: list[DeadLetter], stats: Stats) -> Counter[str]:
    type_of = {c.label: c.type_name for c in stats.components}
    return Counter(type_of.get(letter.component, letter.component) for letter in letters)


def reconcile(
    expected: Expected,
    stats: Stats,
    logfile: list[Delivered],
    redis_ids: list[str],
    letters: list[DeadLetter],
    *,
    tree: Path,
    initial_dirs: set[str],
) -> Accounting:
    """Account for every generated event; `Accounting.problems` lists what does not add up."""
    acc = Accounting(generated=expected.total, expected_excluded=expected.excluded)
    sinks = {"logfile": stats.one("sink", "logfile"), "redis": stats.one("sink", "redis")}
    dead = _dead_by_type(letters, stats)
    acc.dead_letter_reasons = Counter(
        letter.component + ": " + QUOTED.sub("'…'", letter.reason) for letter in letters
    )

    _count_chain(acc, expected, stats, dead)
    for name, sink in sinks.items():
        _count_sink(acc, name, sink, dead[name])
    _check_records(acc, logfile, redis_ids, letters, sinks)
    _check_content(acc, expected, logfile, letters, tree=tree, initial_dirs=initial_dirs)
    acc.check(
        not any(c.queue_depth for c in stats.components),
        "a sink queue was not empty at the end: "
        + ", ".join(f"{c.label}={c.queue_depth}" for c in stats.sinks),
    )
    return acc


def _count_chain(acc: Accounting, expected: Expected, stats: Stats, dead: Counter[str]) -> None:
    filt, deb, tra = (stats.one("stage", t) for t in ("filter", "debounce", "transform"))
    acc.source_out = stats.source.events_out
    acc.filtered = filt.events_in - filt.events_out - dead["filter"]
    # Counted where transform takes them: debounce's own events_out misses what it emits
    # from its timer (reported as a finding below).
    acc.merged = deb.events_in - tra.events_in - dead["debounce"]
    acc.stage_dead_lettered = dead["filter"] + dead["debounce"] + dead["transform"]
    acc.reached_sinks = tra.events_out
    acc.unaccounted = (
        acc.generated - acc.filtered - acc.merged - acc.stage_dead_lettered - acc.reached_sinks
    )
    acc.check(
        acc.source_out == acc.generated,
        f"the source emitted {acc.source_out:,} events; the generator expected "
        f"{acc.generated:,} ({acc.source_out - acc.generated:+,})",
    )
    acc.check(filt.events_in == acc.source_out, "filter took another count than the source gave")
    acc.check(
        acc.filtered == expected.excluded,
        f"the filter dropped {acc.filtered:,} events; {expected.excluded:,} match its rule",
    )
    acc.check(deb.events_in == filt.events_out, "debounce took another count than filter passed")
    if tra.events_in != deb.events_out:
        acc.findings.append(
            f"debounce's events_out counter says {deb.events_out:,}, but transform took "
            f"{tra.events_in:,}: what a stage emits from its timer (run/flush) is not counted"
        )
    acc.check(
        tra.events_in - tra.events_out == dead["transform"],
        f"transform lost {tra.events_in - tra.events_out:,} events but dead-lettered "
        f"{dead['transform']:,}",
    )
    acc.check(stats.events_seen == acc.reached_sinks, "the live tail saw another count")
    acc.check(acc.unaccounted == 0, f"{acc.unaccounted:,} events are unaccounted for")


def _count_sink(acc: Accounting, name: str, sink: Counters, dead: int) -> None:
    acc.delivered[name] = sink.delivered
    acc.sink_dead_lettered[name] = sink.dead_lettered
    acc.check(
        sink.events_in == acc.reached_sinks,
        f"{name} took {sink.events_in:,} events; {acc.reached_sinks:,} left the stages",
    )
    left = sink.events_in - sink.delivered - sink.dead_lettered - sink.queue_depth
    acc.check(left == 0, f"{name}: {left:,} events taken but neither delivered nor dead-lettered")
    acc.check(
        dead == sink.dead_lettered,
        f"{name} counts {sink.dead_lettered:,} dead letters; the file holds {dead:,}",
    )


def _check_records(
    acc: Accounting,
    logfile: list[Delivered],
    redis_ids: list[str],
    letters: list[DeadLetter],
    sinks: dict[str, Counters],
) -> None:
    records = {"logfile": [e.id for e in logfile], "redis": redis_ids}
    for name, ids in records.items():
        acc.on_record[name] = len(ids)
        acc.duplicates[name] = len(ids) - len(set(ids))
        acc.check(
            len(set(ids)) == sinks[name].delivered,
            f"{name} holds {len(set(ids)):,} distinct events; it delivered "
            f"{sinks[name].delivered:,}",
        )
    dead_ids = {letter.event.id for letter in letters}
    differ = set(records["logfile"]) ^ set(records["redis"])
    acc.check(
        not (differ - dead_ids),
        f"{len(differ - dead_ids):,} events are in one sink but not the other, with no "
        "dead letter to say why",
    )
    acc.check(all(letter.reason for letter in letters), "a dead letter has no reason")


def _check_content(
    acc: Accounting,
    expected: Expected,
    logfile: list[Delivered],
    letters: list[DeadLetter],
    *,
    tree: Path,
    initial_dirs: set[str],
) -> None:
    base = len(str(tree)) + 1
    strangers = 0
    for event in logfile:
        acc.delivered_kinds[event.kind] += 1
        if event.kind == "overflow":
            acc.overflows += 1
            continue
        if event.kind == "deleted" and event.path in expected.excluded_sources:
            acc.excluded_leaks += 1
            continue
        known = event.path in expected.paths and (
            event.src_path is None
            or event.src_path in expected.paths
            or event.src_path in expected.excluded_sources
        )
        if not known or is_excluded(event.path[base:]):
            strangers += 1
            if strangers <= 5:
                acc.problems.append(
                    f"delivered an event nobody caused or the rule excludes: {event}"
                )
    acc.check(strangers <= 5, f"{strangers:,} delivered events in all nobody caused")
    if acc.excluded_leaks:
        acc.findings.append(
            f"{acc.excluded_leaks:,} `deleted` events name a path the filter excludes: debounce "
            "turns `moved x.csv.tmp -> x.csv` + `deleted x.csv` (one window) into `deleted "
            "x.csv.tmp`, a path dropped upstream"
        )
    mismatched = replay(logfile) ^ disk_state(tree, initial_dirs)
    mentioned = {p for letter in letters for p in (letter.event.path, letter.event.src_path)}
    unexplained = sorted(mismatched - mentioned)
    acc.view_mismatches = len(mismatched)
    acc.view_explained = len(mismatched) - len(unexplained)
    acc.check(
        not unexplained,
        f"replaying the logfile gives {len(unexplained):,} paths unlike the tree "
        f"(e.g. {unexplained[:3]}) with no dead letter about them",
    )
