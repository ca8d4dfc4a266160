"""A frozen copy of fspipeline's sources, so that one run measures one version of them.

fspipeline is installed editable and people edit it while a run goes on: a run copies
`pipeline/` into its scratch folder, compiles it, and puts it first on the PYTHONPATH of
the processes under test (the editable finder comes after the path in Python's search).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from harness import CHILD_ENV


def live_package() -> Path:
    """The `pipeline` package folder this interpreter imports."""
    spec = importlib.util.find_spec("pipeline")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench: fspipeline is not installed in this Python")
    return Path(next(iter(spec.submodule_search_locations)))


def digest(package: Path) -> str:
    """A short sha256 of the package's Python sources, to tell versions apart."""
    hashed = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        hashed.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()[:16]


def freeze(base: Path) -> str:
    """Copy and compile the package under `base`; the watchers import that copy from now
    on. Returns the copy's digest."""
    code = base / "code"
    copy = code / "pipeline"
    shutil.copytree(live_package(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    CHILD_ENV["PYTHONPATH"] = str(code)  # the harness's own imports stay on the live code
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(copy)], env=CHILD_ENV, check=False
    )
    return digest(copy)
