"""`pipeline new-plugin`: the files of a new plugin distribution that passes its own tests."""

from __future__ import annotations

import keyword
import re
import string
from importlib import resources
from pathlib import Path

KINDS = ("sink", "stage", "source")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ScaffoldError(ValueError):
    """A name or folder the scaffold cannot use; the message says what to do."""


def check_name(name: str) -> str:
    """The component type name, or ScaffoldError saying what a valid one looks like."""
    normal = name.strip().lower().replace("-", "_")
    if not _NAME.match(normal) or keyword.iskeyword(normal):
        raise ScaffoldError(
            f"{name!r} cannot name a plugin: use lower-case letters, digits and _ "
            "(starting with a letter), e.g. 'slack_notify'"
        )
    return normal


def render(name: str, kind: str) -> dict[str, str]:
    """Relative path -> text of every file of the plugin distribution."""
    if kind not in KINDS:
        raise ScaffoldError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    name = check_name(name)
    words = {
        "name": name,
        "dist": f"fspipeline-{name.replace('_', '-')}",
        "package": f"fspipeline_{name}",
        "cls": "".join(part.capitalize() for part in name.split("_")) + kind.capitalize(),
        "kind": kind,
    }
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"src/{words['package']}/__init__.py": "init.py.tmpl",
        f"src/{words['package']}/plugin.py": "plugin.py.tmpl",
        f"src/{words['package']}/{kind}.py": f"{kind}.py.tmpl",
        f"src/{words['package']}/py.typed": None,
        f"tests/test_{name}.py": f"test_{kind}.py.tmpl",
    }
    templates = resources.files(__package__)
    out: dict[str, str] = {}
    for path, template in files.items():
        if template is None:
            out[path] = ""
            continue
        text = templates.joinpath(template).read_text(encoding="utf-8")
        out[path] = string.Template(text).substitute(words)
    return out


def write(name: str, kind: str, folder: Path) -> list[Path]:
    """Write the distribution into `folder` (which must not exist or be empty)."""
    files = render(name, kind)
    if folder.exists() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} already exists and is not empty; pick another --output")
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
