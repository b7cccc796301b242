"""Which user and group ids this machine already uses, and the first free one from a given id.

A stage user (:mod:`runner.backends.stage_users`) is a bare id with no account, so nothing stops it from
being an id in use: an account's or a group's (a stage running as it would own that account's files),
or one inside a subordinate range that ``/etc/subuid`` or ``/etc/subgid`` delegates to a user (rootless
containers map their users there, so the stage would own a container's files). Such ids are skipped.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable, Iterable
from pathlib import Path

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
LAST_ID = 2**32 - 2
"""The largest user or group id there is: 2**32 - 1 is ``(uid_t) -1``, "no change" to setuid and chown."""


def has_account(number: int) -> bool:
    """Whether a user or a group of this machine (in any name service it uses) has id `number`."""
    try:
        pwd.getpwuid(number)
    except KeyError:
        pass
    else:
        return True
    try:
        grp.getgrgid(number)
    except KeyError:
        return False
    return True


def subordinate_ranges(path: Path) -> list[range]:
    """The id ranges delegated in `path`, a file like ``/etc/subuid`` (``owner:first:count`` a line);
    none when there is no such file. Comments and lines of another form delegate nothing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    ranges = []
    for line in text.splitlines():
        fields = line.split(":")
        if line.lstrip().startswith("#") or len(fields) != 3:
            continue
        try:
            first, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if first >= 0 and count > 0:
            ranges.append(range(first, first + count))
    return ranges


def next_free_id(
    start: int, taken: Iterable[range], in_use: Callable[[int], bool], last: int = LAST_ID
) -> int | None:
    """The first id from `start` up to `last` that is in none of the `taken` ranges and not `in_use`
    (an account's, say); None when every one of them is."""
    ranges = list(taken)
    candidate = start
    while candidate <= last:
        covering = next((taken_range for taken_range in ranges if candidate in taken_range), None)
        if covering is not None:
            candidate = covering.stop  # past the whole range at once: ranges hold 65536 ids and more
        elif in_use(candidate):
            candidate += 1
        else:
            return candidate
    return None
