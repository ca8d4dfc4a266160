"""Dropping root after the privileged set-up: become a user, keep only named capabilities.

Linux only. `setuid` from root clears every capability unless PR_SET_KEEPCAPS is set; it
is, and then `capset` trims the permitted and effective sets to what was asked for (the
fanotify source keeps CAP_DAC_READ_SEARCH: `open_by_handle_at` needs it for every event).
"""

from __future__ import annotations

import ctypes
import os
import pwd

from pipeline.linux.libc import check, libc

PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_SYS_ADMIN": 21,
    "CAP_LEASE": 28,
}
"""The capabilities a pipeline may want to keep, by name."""


class PrivilegeError(OSError):
    """The process could not become the user, or keep what was asked."""


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def capability_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        if name not in CAPABILITIES:
            known = ", ".join(sorted(CAPABILITIES))
            raise PrivilegeError(f"unknown capability {name!r}; known: {known}")
        mask |= 1 << CAPABILITIES[name]
    return mask


def lookup(user: str) -> pwd.struct_passwd:
    """The account `user` names (a name or a numeric uid)."""
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"run_as: no user {user!r} on this machine") from None


def drop_to(user: str, keep: list[str]) -> pwd.struct_passwd:
    """Become `user` (its primary group, no supplementary groups), keeping `keep`."""
    account = lookup(user)
    if os.geteuid() != 0:
        if os.geteuid() == account.pw_uid:
            return account  # already that user: nothing to drop
        raise PrivilegeError(f"run_as: {user!r} needs the process to start as root")
    mask = capability_mask(keep)
    call = libc()
    check(call.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)", PrivilegeError)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    check(call.capset(ctypes.byref(header), data), "capset", PrivilegeError)
    check(call.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)", PrivilegeError)
    return account


def effective_capabilities(pid: int | str = "self") -> int:
    """The CapEff mask of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0
