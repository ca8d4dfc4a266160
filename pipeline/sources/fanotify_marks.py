"""The `fanotify` source's kernel side: the group, its marks, and what a refusal means.

Everything here turns an errno into a SourceError that says what to do, so the source
itself only handles events.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Collection, Sequence

from pipeline.errors import SourceError
from pipeline.event import EventKind
from pipeline.linux import fanotify as api
from pipeline.sources.fanotify_paths import Root

KIND_MASKS: dict[EventKind, int] = {
    EventKind.CREATED: api.FAN_CREATE,
    EventKind.MODIFIED: api.FAN_MODIFY,
    EventKind.ATTRIB: api.FAN_ATTRIB,
    EventKind.OPENED: api.FAN_OPEN,
    EventKind.CLOSED_WRITE: api.FAN_CLOSE_WRITE,
    EventKind.CLOSED_NOWRITE: api.FAN_CLOSE_NOWRITE,
    EventKind.DELETED: api.FAN_DELETE | api.FAN_RENAME,  # a rename out is a deletion
    EventKind.MOVED: api.FAN_RENAME,
    EventKind.OVERFLOW: 0,
}
MOUNT_KINDS = frozenset(
    {EventKind.OPENED, EventKind.MODIFIED, EventKind.CLOSED_WRITE, EventKind.CLOSED_NOWRITE}
)
"""What a mount mark can report: the kernel refuses create, delete, rename and attrib."""
FOLDER_RENAMES = api.FAN_RENAME | api.FAN_ONDIR
"""Always marked: folder renames keep the cached folder paths right."""
CAPABILITY_HINT = (
    "run it as root, or grant the capabilities (systemd: AmbientCapabilities=CAP_SYS_ADMIN "
    "CAP_DAC_READ_SEARCH), or use the `inotify` or `poll` source, which need no privilege"
)


@dataclasses.dataclass
class Group:
    """An fanotify descriptor with its marks, and a descriptor per file system marked."""

    fd: int = -1
    mounts: dict[bytes, int] = dataclasses.field(default_factory=dict)
    """fsid bytes (as events report them) → a folder descriptor on that file system."""
    fsids: dict[str, bytes] = dataclasses.field(default_factory=dict)
    """Configured path → fsid bytes of its file system."""

    def close(self) -> None:
        for fd in [self.fd, *self.mounts.values()]:
            if fd >= 0:
                os.close(fd)
        self.fd = -1
        self.mounts.clear()


def masks(wanted: Collection[EventKind], mark: str) -> tuple[int, int, int]:
    """(file-system mark mask, what that mark ignores for files only, mount mark mask)."""
    kinds = 0
    for kind in wanted:
        kinds |= KIND_MASKS[kind]
    if mark == "mount":
        return FOLDER_RENAMES, api.FAN_RENAME, kinds
    file_renames = EventKind.MOVED in wanted or EventKind.DELETED in wanted
    return kinds | FOLDER_RENAMES, 0 if file_renames else api.FAN_RENAME, 0


def open_group(
    group: Group,
    roots: Sequence[Root],
    wanted: Collection[EventKind],
    mark: str,
    unlimited_queue: bool = False,
) -> None:
    """Fill `group`: create the descriptor, mark each root's file system (or mount), and
    check that handles can be opened. Raises SourceError; `group.close()` cleans up."""
    group.fd = init_group(unlimited_queue)
    fs_mask, ignore_files, mount_mask = masks(wanted, mark)
    for root in roots:
        folder = anchor(root)
        fsid = api.fsid_bytes(os.statvfs(folder).f_fsid)
        group.fsids[root.path] = fsid
        if fsid not in group.mounts:
            group.mounts[fsid] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            _mark(group.fd, folder, api.FAN_MARK_FILESYSTEM, fs_mask, root=root, mark=mark)
            if ignore_files:
                flags = api.FAN_MARK_FILESYSTEM | api.FAN_MARK_IGNORE_SURV
                _mark(group.fd, folder, flags, ignore_files, root=root, mark=mark)
            _check_handles(root, folder, group.mounts[fsid])
        if mount_mask:
            _mark(group.fd, folder, api.FAN_MARK_MOUNT, mount_mask, root=root, mark=mark)


def anchor(root: Root) -> str:
    """The folder whose file system (or mount) is marked for `root`: the root itself, the
    folder of a file, or for a path that does not exist yet the nearest folder above it."""
    folder = root.real if root.is_dir else os.path.dirname(root.real)
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder


def init_group(unlimited_queue: bool = False) -> int:
    """A new fanotify group descriptor, or SourceError saying what stands in the way."""
    flags = api.FAN_CLASS_NOTIF | api.FAN_REPORT_DFID_NAME_TARGET
    if unlimited_queue:
        flags |= api.FAN_UNLIMITED_QUEUE
    try:
        return api.init(flags)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise SourceError(f"fanotify needs CAP_SYS_ADMIN: {CAPABILITY_HINT}") from exc
        if exc.errno == errno.EINVAL:
            raise SourceError(
                "this kernel's fanotify cannot report file names and handles "
                "(FAN_REPORT_DFID_NAME_TARGET needs Linux 5.17+); use the `inotify` source"
            ) from exc
        if exc.errno == errno.EMFILE:
            raise SourceError(
                "too many fanotify groups (fs.fanotify.max_user_groups); raise it with "
                "sysctl, or use the `inotify` source"
            ) from exc
        raise SourceError(f"fanotify is not available: {exc.strerror}") from exc


def _mark(fd: int, folder: str, flags: int, mask: int, *, root: Root, mark: str) -> None:
    try:
        api.mark(fd, api.FAN_MARK_ADD | flags, mask, os.fsencode(folder))
    except OSError as exc:
        raise SourceError(_refusal(root, exc, mark)) from exc


def _refusal(root: Root, exc: OSError, mark: str) -> str:
    what = "mount" if mark == "mount" else "file system"
    if exc.errno == errno.EPERM:
        return f"fanotify needs CAP_SYS_ADMIN to watch a whole {what}: {CAPABILITY_HINT}"
    if exc.errno == errno.EXDEV:
        return (
            f"{root.path} is on a file system fanotify cannot mark as a whole (a btrfs "
            "subvolume, or another without a unique id); use the `inotify` or `poll` source"
        )
    if exc.errno in (errno.EOPNOTSUPP, errno.ENODEV, errno.ENOSYS):
        return (
            f"the file system of {root.path} cannot report file handles to fanotify "
            f"({exc.strerror}); use the `inotify` or `poll` source"
        )
    if exc.errno == errno.ENOSPC:
        return "too many fanotify marks (fs.fanotify.max_user_marks); raise it with sysctl"
    if exc.errno == errno.EINVAL:
        return (
            f"the kernel refused a fanotify {what} mark on {root.path}: it needs Linux 5.17+ "
            "(FAN_RENAME) and, on a mount, only the events opened, modified, closed_write "
            "and closed_nowrite"
        )
    return f"cannot watch {root.path} with fanotify: {exc.strerror}"


def _check_handles(root: Root, folder: str, mount_fd: int) -> None:
    """Fail at start, not at the first event, if handles cannot be opened."""
    try:
        os.close(api.open_by_handle(mount_fd, api.name_to_handle(os.fsencode(folder))))
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise SourceError(
                f"fanotify needs CAP_DAC_READ_SEARCH to turn file handles into paths: "
                f"{CAPABILITY_HINT}"
            ) from exc
        raise SourceError(
            f"cannot open file handles on the file system of {root.path} ({exc.strerror}); "
            "use the `inotify` or `poll` source"
        ) from exc
