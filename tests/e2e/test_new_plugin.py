"""`pipeline new-plugin`: the scaffold installs with pip, passes its own tests, and is loaded;
the "Writing a plugin" guide's code, put into a scaffold, passes its tests too."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, pipeline
from tests.e2e.test_plugin_template import PIPELINE, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["sink", "stage", "source"])
def test_a_scaffolded_plugin_passes_its_tests_and_is_loaded(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "fspipeline-hello"
    made = pipeline("new-plugin", "hello", "--kind", kind, "--output", str(folder))
    assert made.returncode == 0, made.stderr
    assert f"pytest {folder}" in made.stdout
    env = install(folder, tmp_path)
    assert_tests_pass(folder, env)

    rows = json.loads(run([*PIPELINE, "plugins", "--json"], env, cwd=tmp_path))
    (row,) = [r for r in rows if r["type"] == "hello"]
    assert (row["kind"], row["distribution"]) == (kind, "fspipeline-hello 0.1.0")


def install(folder: Path, tmp_path: Path) -> dict[str, str]:
    """pip-install `folder` offline into a folder of its own; the env that sees it."""
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    offline = ["--no-index", "--no-build-isolation", "--no-deps", "--target", str(site)]
    run([*pip, *offline, str(folder)], env, cwd=tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def assert_tests_pass(folder: Path, env: dict[str, str]) -> None:
    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], env, cwd=folder)
    assert " passed" in tests and "failed" not in tests


def test_the_guides_manifest_sink_works_as_written(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "writing-a-plugin.md").read_text()
    sink_code, test_code = re.findall(r"```python\n(.*?)```", guide, re.S)
    folder = tmp_path / "fspipeline-manifest"
    assert pipeline("new-plugin", "manifest", "--output", str(folder)).returncode == 0
    (folder / "src" / "fspipeline_manifest" / "sink.py").write_text(sink_code)
    (folder / "tests" / "test_manifest.py").write_text(test_code)
    env = install(folder, tmp_path)
    assert_tests_pass(folder, env)
    text = run([*PIPELINE, "plugins", "manifest"], env, cwd=tmp_path)
    assert "Manifest file to append to (`sha256sum -c` format)" in text


def test_bad_names_and_used_folders_are_refused(tmp_path: Path) -> None:
    bad = pipeline("new-plugin", "2fast", "--output", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "'2fast' cannot name a plugin" in bad.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    taken = pipeline("new-plugin", "ok", "--output", str(tmp_path / "used"))
    assert taken.returncode == 2
    assert "already exists and is not empty" in taken.stderr
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
