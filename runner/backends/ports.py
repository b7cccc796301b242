"""Which process listens on a TCP port, read from Linux's /proc without any privilege.

A service is ready when *its own* process listens on its port: a port that answers because another
program (or another stage) holds it must never make a stage look ready.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"


def listening_inodes(port: int, proc: Path = _PROC) -> set[int] | None:
    """Inodes of the sockets listening on `port` (IPv4 and IPv6), or None where /proc cannot tell."""
    found: set[int] = set()
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(fields[9]))
    return found if readable else None


def group_members(group: int, proc: Path = _PROC) -> list[int]:
    """The processes of process group `group`."""
    members = []
    for entry in proc.iterdir() if proc.exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: fields follow its last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def socket_inodes(pid: int, proc: Path = _PROC) -> set[int]:
    inodes: set[int] = set()
    folder = proc / str(pid) / "fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(folder / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def group_listens_on(group: int, port: int, proc: Path = _PROC) -> bool | None:
    """Whether a process of `group` listens on `port`; None where /proc cannot tell (not Linux)."""
    listening = listening_inodes(port, proc)
    if listening is None:
        return None
    if not listening:
        return False
    return any(socket_inodes(pid, proc) & listening for pid in group_members(group, proc))
