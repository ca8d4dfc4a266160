"""Scans that follow symlinks: targets' entries, and loops read once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipeline.sources.snapscan import scan


def test_symlinks_are_followed_only_when_asked_and_loops_read_once(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "sub" / "f.csv").write_text("x")
    (tmp_path / "real" / "sub" / "up").symlink_to(tmp_path)  # a loop
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")

    plain = scan([str(tmp_path)]).entries
    assert stat.S_ISLNK(plain[str(tmp_path / "link")][0])
    assert str(tmp_path / "link" / "sub") not in plain

    followed = scan([str(tmp_path)], follow_symlinks=True).entries
    assert stat.S_ISLNK(followed[str(tmp_path / "dangling")][0])
    assert stat.S_ISDIR(followed[str(tmp_path / "real" / "sub" / "up")][0])
    # Each folder is read once, by whichever path reaches it first.
    files = [p for p in followed if p.endswith("f.csv")]
    assert len(files) == 1
    assert os.path.realpath(files[0]) == str(tmp_path / "real" / "sub" / "f.csv")
