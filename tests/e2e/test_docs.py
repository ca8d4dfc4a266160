"""`pipeline docs`: the committed reference matches the code; stale pages are named."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.e2e.cli import REPO, pipeline

REFERENCE = REPO / "docs" / "reference"


def test_the_committed_reference_is_current() -> None:
    result = pipeline("docs", "--check", "--output", str(REFERENCE))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nrun `pipeline docs`"


def test_a_stale_or_orphaned_page_is_named(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    assert pipeline("docs", "--output", str(out)).returncode == 0
    page = out / "sinks" / "logfile.md"
    assert "| `rotate_size` | size, or null |" in page.read_text()
    page.write_text(page.read_text().replace("Appends", "Prepends"))
    (out / "sinks" / "gone.md").write_text("old")
    result = pipeline("docs", "--check", "--output", str(out))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{out}/sinks/gone.md: stale",
        f"{out}/sinks/logfile.md: stale",
    ]
    shutil.rmtree(out)
