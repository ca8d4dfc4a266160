"""File facts for stages (stat, owner, MIME type, content hashes), read in worker threads."""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import stat as stat_module
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")

StatFn = Callable[[str], "os.stat_result | None"]
"""Stats a path, None if it does not exist; stages keep one as an attribute tests may swap."""

HASHES = ("sha256", "blake2b")
_CHUNK = 1 << 20
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
)


class Offload(Protocol):
    """Runs blocking work away from the loop: `asyncio.to_thread`, or inline in unit tests."""

    def __call__(self, func: Callable[..., _T], /, *args: Any) -> Awaitable[_T]: ...


async def inline(func: Callable[..., _T], /, *args: Any) -> _T:
    """An `Offload` that runs the work at once, on the loop (deterministic tests)."""
    return func(*args)


def try_stat(path: str) -> os.stat_result | None:
    """`os.stat` (following symlinks), or None when the path (or a parent) is gone."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def stat_all(stat: StatFn, paths: Sequence[str]) -> list[os.stat_result | None]:
    """Stat many paths in one go (one thread hop for a whole poll round)."""
    return [stat(p) for p in paths]


def content_key(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file's content does: (size, mtime_ns, inode)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def stat_meta(st: os.stat_result) -> dict[str, Any]:
    """The meta entries every stage uses for a file's state: size, mtime (s), mtime_ns, inode."""
    return {
        "size": st.st_size,
        "mtime": st.st_mtime_ns / 1e9,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
    }


def meta_number(meta: Mapping[str, Any], key: str) -> float | None:
    value = meta.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def is_regular(st: os.stat_result) -> bool:
    return stat_module.S_ISREG(st.st_mode)


def hash_file(path: str, algorithm: str) -> str:
    """Hex digest of a file's content (blocking: call it in a thread)."""
    return hash_file_many(path, (algorithm,))[algorithm]


def hash_file_many(path: str, algorithms: Collection[str]) -> dict[str, str]:
    """Several hex digests of a file's content in one read (blocking)."""
    digests = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    """Login name of `uid` (the number as text when unknown); cached, may query NSS."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


@functools.lru_cache(maxsize=1024)
def group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def sniff_mime(path: str) -> str | None:
    """MIME type from the first bytes: a few binary formats, else text/plain for UTF-8 text."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if not head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
    return None if b"\x00" in head else "text/plain"


def file_facts(path: str, wanted: Collection[str], sniff: bool) -> dict[str, Any]:
    """Meta entries for `path`: any of size, mtime, inode, owner, group, mode, mime and hashes.

    Blocking (run it in a thread). Raises FileNotFoundError if the file is gone.
    """
    st = os.stat(path)
    facts: dict[str, Any] = {}
    for key, value in stat_meta(st).items():
        if key in wanted or (key == "mtime_ns" and "mtime" in wanted):
            facts[key] = value
    if "owner" in wanted:
        facts["owner"] = user_name(st.st_uid)
    if "group" in wanted:
        facts["group"] = group_name(st.st_gid)
    if "mode" in wanted:
        facts["mode"] = f"{stat_module.S_IMODE(st.st_mode):04o}"
    regular = is_regular(st)
    if "mime" in wanted and regular:
        mime = mimetypes.guess_type(path, strict=False)[0]
        facts["mime"] = (
            mime or (sniff_mime(path) if sniff else None)
        ) or "application/octet-stream"
    hashes = [h for h in HASHES if h in wanted]
    if hashes and regular:
        facts.update(hash_file_many(path, hashes))
    return facts
