"""The `usn` source and `pipeline usn dump` through the `pipeline` command, on real journals;
the history is checked against what dissect.ntfs reads in the same journal."""

from __future__ import annotations

import json
import ntpath
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dissect.ntfs.usnjrnl import UsnJrnl

from pipeline import from_json
from pipeline.windows import usn_reasons as r
from tests.e2e.cli import PIPELINE, Background

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "usn"
PLASO = DATA / "plaso_UsnJrnl.raw"
POOR = DATA / "PoorBillionaire_usnjrnl.bin"
History = dict[str, list[tuple[str, ...]]]
ALONE = {"FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD": "1"}  # built-ins only: others' plugins may vary


def pipeline(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPELINE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **ALONE},
    )


def dissect_history(journal: Path) -> History:
    """The create/write/close/rename/delete history of `journal` as dissect.ntfs reads it:
    each close record sums up one open of a file (its reasons accumulate until the close),
    and a rename is the name of its RENAME_OLD_NAME record and that of the RENAME_NEW_NAME
    record that follows it for the same file."""
    history: History = {k: [] for k in ("created", "modified", "closed_write", "moved", "deleted")}
    old_names: dict[int, str] = {}
    with open(journal, "rb") as handle:
        for record in UsnJrnl(handle).records():
            reasons = int(record.Reason)
            ref = record.FileReferenceNumber
            key = ref.SegmentNumberLowPart | ref.SequenceNumber << 48
            if reasons & r.RENAME_OLD_NAME:
                old_names[key] = record.filename
            elif reasons & r.RENAME_NEW_NAME and key in old_names:
                history["moved"].append((old_names.pop(key), record.filename))
            if not reasons & r.CLOSE:
                continue
            is_dir = bool(int(record.FileAttributes) & r.FILE_ATTRIBUTE_DIRECTORY)
            if reasons & r.FILE_CREATE:
                history["created"].append((record.filename,))
            if reasons & r.DATA_CHANGE:
                history["modified"].append((record.filename,))
            if reasons & r.FILE_DELETE:
                history["deleted"].append((record.filename,))
            elif reasons & r.WRITTEN and not is_dir:
                history["closed_write"].append((record.filename,))
    return history


def our_history(lines: list[bytes]) -> History:
    history: History = {k: [] for k in ("created", "modified", "closed_write", "moved", "deleted")}
    for line in lines:
        event = from_json(line)
        name = ntpath.basename(event.path)
        if event.kind.value == "moved":
            assert event.src_path is not None
            history["moved"].append((ntpath.basename(event.src_path), name))
        elif event.kind.value in history:
            history[event.kind.value].append((name,))
    return history


def write_config(folder: Path, source: str) -> Path:
    config = folder / "config.yaml"
    config.write_text(
        "pipelines:\n"
        "  evidence:\n"
        "    sources:\n"
        f"{source}"
        "    sinks:\n"
        "      - type: console\n"
        "        format: json\n"
    )
    return config


def test_run_replays_a_journal_with_the_history_dissect_reads(tmp_path: Path) -> None:
    shutil.copy(PLASO, tmp_path / "UsnJrnl-J")
    write_config(
        tmp_path,
        "      - type: usn\n        mode: offline\n        journal: UsnJrnl-J\n",
    )
    run = Background("run", "config.yaml", cwd=tmp_path, env=ALONE)
    run.wait_ready()
    lines = run.lines(12)
    assert run.quiet(0.5) == []
    assert run.interrupt() == 0
    expected = dissect_history(PLASO)
    assert our_history(lines) == expected
    assert expected["moved"] == [
        ("Nieuw - Tekstdocument.txt", "first.txt"),
        ("Kopie van first.txt", "second.txt"),
    ]
    assert len(expected["closed_write"]) == 3
    first = json.loads(lines[0])
    assert first["source"] == "fspipeline/evidence/usn"
    assert first["data"]["path"] == "C:\\Nieuw - Tekstdocument.txt"
    assert first["time"] == "2015-11-30T21:15:27.203125Z"
    assert '"event": "journal replayed"' in run.stderr


def test_live_mode_checks_everywhere_and_says_at_run_that_it_needs_windows(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, "      - type: usn\n        paths: ['C:\\data\\inbox']\n")
    assert pipeline("check", "config.yaml", cwd=tmp_path).returncode == 0
    result = pipeline("run", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("pipeline: error: evidence.sources[0]: the usn source in live mode")
    assert "needs Windows" in line and "mode: offline" in line
    assert "Traceback" not in result.stderr


def test_check_names_a_live_path_that_is_not_a_windows_path(tmp_path: Path) -> None:
    write_config(tmp_path, "      - type: usn\n        paths: [/data/inbox]\n")
    result = pipeline("check", "config.yaml", cwd=tmp_path)
    assert result.returncode == 2
    report = result.stdout + result.stderr
    assert "evidence.sources[0].paths" in report
    assert "write it like C:\\data\\inbox" in report


def test_dump_prints_cloudevents_lines(tmp_path: Path) -> None:
    result = pipeline("usn", "dump", str(PLASO))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.encode().splitlines()
    assert our_history(lines) == dissect_history(PLASO)
    events = [from_json(line) for line in lines]
    assert [e.meta["usn"] for e in events][:3] == [0, 112, 336]
    assert events[1].meta["reasons"] == ["FILE_CREATE", "CLOSE"]


def test_dump_text_table_and_options() -> None:
    result = pipeline("usn", "dump", str(POOR), "--format", "text", "--root", "/mnt/img")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:5] == ["USN", "TIME", "(UTC)", "KIND", "REASONS"]
    assert rows[0].split()[:3] == ["8388608", "2016-02-22T02:02:23.340870Z", "moved"]
    assert "(outside) -> /mnt/img/<unknown:14038-1>/79b3d4b1" in rows[0]
    assert "closed_write  DATA_EXTEND|FILE_CREATE|CLOSE" in rows[3]
    only = pipeline("usn", "dump", str(POOR), "--events", "closed_write")
    assert [json.loads(x)["type"] for x in only.stdout.splitlines()] == ["fs.closed_write"]


def test_dump_reports_damage_and_bad_usage(tmp_path: Path) -> None:
    damaged = bytearray(PLASO.read_bytes())
    damaged[112:116] = b"\x01\x00\x00\x00"
    (tmp_path / "J").write_bytes(bytes(damaged))
    result = pipeline("usn", "dump", str(tmp_path / "J"))
    assert result.returncode == 0
    assert "skipped a damaged record: USN record at offset 112: record length 1" in result.stderr
    events = [from_json(line) for line in result.stdout.splitlines()]
    assert events[0].kind.value == "created" and events[-1].meta["usn"] == 1504  # read on
    missing = pipeline("usn", "dump", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    (tmp_path / "notes.txt").write_text("not a journal at all\n" * 20)
    foreign = pipeline("usn", "dump", str(tmp_path / "notes.txt"))
    assert foreign.returncode == 1 and "is it a $UsnJrnl:$J stream?" in foreign.stderr
    kinds = pipeline("usn", "dump", str(PLASO), "--events", "opened")
    assert kinds.returncode == 2 and "unknown event kind opened" in kinds.stderr


def test_plugins_documents_the_usn_source() -> None:
    result = pipeline("plugins", "usn")
    assert result.returncode == 0
    for option in ("mode", "journal", "root", "follow", "only_on_close", "checkpoint_interval"):
        assert option in result.stdout
