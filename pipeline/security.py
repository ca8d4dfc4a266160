"""Checks that keep untrusted input in its place: who may change a config, where paths lead.

A config that runs commands is code: whoever can change the file runs programs as the
user fspipeline runs as. `config_exposure` says who else could change it, the way
OpenSSH's StrictModes judges `authorized_keys`. `no_dot_segments` and `confine` keep a
path built from event data (a file name, a broker message's meta) inside the folder the
configuration meant.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PathEscapeError", "config_exposure", "confine", "no_dot_segments"]


class PathEscapeError(ValueError):
    """A path built from event data would lead outside the folder it must stay in."""


def _chain(path: Path) -> Iterator[Path]:
    """`path`'s folders from the nearest to `/`, for the path as given and as resolved."""
    seen: set[Path] = set()
    for start in (path.absolute(), path.resolve()):
        for folder in start.parents:
            if folder not in seen:
                seen.add(folder)
                yield folder


def _foreign(owner: int) -> bool:
    """Owned by someone other than root and the user this process runs as."""
    return owner not in (0, os.geteuid())


def config_exposure(path: Path) -> list[str]:
    """Why users other than this one (and root) could change what `path` says; [] if none.

    Each reason names the file or folder and the command that fixes it: a file writable
    by every user, or owned by another user; a folder on the way to it that every user may
    write to without the sticky bit (anyone can replace the file), or that another user
    owns. A path that cannot be examined gives no reason: reading it reports that.
    """
    reasons: list[str] = []
    if not hasattr(os, "geteuid"):
        return reasons  # Windows: ACLs, not mode bits, say who may write
    try:
        info = path.stat()
    except OSError:
        return reasons
    if info.st_mode & stat.S_IWOTH:
        reasons.append(f"{path} is writable by every user; run: chmod o-w {path}")
    if _foreign(info.st_uid):
        reasons.append(
            f"{path} belongs to another user (uid {info.st_uid}), who can change it; "
            f"run: chown {os.geteuid()} {path}"
        )
    for folder in _chain(path):
        try:
            info = folder.stat()
        except OSError:
            continue
        sticky = info.st_mode & stat.S_ISVTX
        if info.st_mode & stat.S_IWOTH and not sticky:
            reasons.append(
                f"folder {folder} is writable by every user and has no sticky bit, so anyone "
                f"can replace {path.name} in it; run: chmod o-w {folder} (or chmod +t {folder})"
            )
        if _foreign(info.st_uid) and not sticky:
            reasons.append(
                f"folder {folder} belongs to another user (uid {info.st_uid}), who can "
                f"replace {path.name}; move the config to a folder you own"
            )
    return reasons


def no_dot_segments(value: str) -> str:
    """`value` as it is, once it is sure not to climb: for `Template.render(escape=...)`.

    Raises PathEscapeError when a `/`-separated segment of `value` is `..`, or when it
    holds a NUL (which ends a path early): a file name or a meta value put into a path
    template may then add folders below where the template points, never leave it.
    """
    if "\0" in value:
        raise PathEscapeError(f"{value!r} holds a NUL byte, which no path may contain")
    if ".." in value.split("/"):
        raise PathEscapeError(
            f"{value!r} has a '..' segment; a value from an event may not lead out of the "
            "folder the template points into"
        )
    return value


def confine(path: str, base: str) -> str:
    """`path` normalized (relative ones taken from `base`), once it is `base` or below it.

    Only the text is checked (`..` folded away), not symlinks on the disk, which the user
    who owns the tree placed there. Raises PathEscapeError naming both otherwise.
    """
    folder = posixpath.normpath(base)
    target = posixpath.normpath(posixpath.join(folder, path))
    if target != folder and not target.startswith(folder.rstrip("/") + "/"):
        raise PathEscapeError(f"{path!r} leads to {target}, outside {folder}")
    return target
