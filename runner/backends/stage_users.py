"""One unprivileged user id per environment for its local stages, never handed out twice.

The ids are bare numbers (no account: ``setuid`` to one works as root), from :data:`STAGE_UID_BASE` up,
each skipping the ids this machine already uses (:mod:`runner.backends.taken_ids`). The record,
``stage-users.json`` in the backend's state, maps each environment's artifacts folder to its id, so that
an environment keeps its id across restarts, and holds ``next``, the id above every one handed out so
far. An environment whose artifacts folder is gone (torn down) leaves the record when the next new
environment is given an id, but ``next`` keeps its id from being handed out again: files of a torn-down
environment may outlive it, and must not become a new environment's.

So the record is written durably (a power loss leaves the old record or the new one, whole), and a
record that cannot be read or is not one (an empty file, ids out of range, ``next`` not above them)
refuses the stage with the fix: read as empty, it would hand out the ids again from the base.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from runner.backends.base import StageError
from runner.backends.taken_ids import LAST_ID, SUBGID, SUBUID, has_account, next_free_id, subordinate_ranges

log = logging.getLogger(__name__)

STAGE_UID_BASE = 2_000_000_000
"""The first user (and group) id of the environments' stage users: far above any account's, and below
2**31, which some tools still read as a signed number."""
_STAGE_USER_NAME = "bodywork-stage"


@dataclass(frozen=True)
class StageUser:
    uid: int
    gid: int
    name: str


@dataclass
class _Record:
    ids: dict[str, int]
    """An environment's artifacts folder -> its stage user's id (user and group alike)."""
    next: int
    """No id below it is handed out again, whether its environment is still recorded or not."""


class StageUsers:
    """The environments' stage users, recorded in `path`. An id must be free as a user and as a group:
    no account of this machine has it (`has_account`) and no range of `subuid` or `subgid` holds it."""

    def __init__(
        self,
        path: Path,
        subuid: Path = SUBUID,
        subgid: Path = SUBGID,
        has_account: Callable[[int], bool] = has_account,
    ) -> None:
        self.path = path
        self.subordinate_files = (subuid, subgid)
        self.has_account = has_account
        self._lock = threading.Lock()
        self._record: _Record | None = None  # read once: only this backend writes it
        self._checked: set[str] = set()  # environments whose id was found free since this process started

    def of(self, key: str) -> StageUser:
        """The stage user of the environment whose artifacts folder is `key`; a new one the first time."""
        with self._lock:
            if self._record is None:
                self._record = self._read()
            uid = self._record.ids.get(key)
            # A recorded id is checked again once a process: an account or a range may have come since.
            if uid is not None and key not in self._checked and self._taken(uid):
                log.warning("stage user id %d of %s is now in use on this machine: it gets another", uid, key)
                uid = None
            if uid is None:
                uid = self._allocate(self._record, key)
            self._checked.add(key)
        return StageUser(uid, uid, _STAGE_USER_NAME)

    def _subordinate_ranges(self) -> list[range]:
        return [taken for path in self.subordinate_files for taken in subordinate_ranges(path)]

    def _taken(self, uid: int) -> bool:
        return any(uid in taken for taken in self._subordinate_ranges()) or self.has_account(uid)

    def _allocate(self, record: _Record, key: str) -> int:
        """A new id for `key`, recorded; the environments that are gone leave the record meanwhile (a
        new environment is rare, and the record is written then anyway)."""
        uid = next_free_id(record.next, self._subordinate_ranges(), self.has_account)
        if uid is None:
            subuid, subgid = self.subordinate_files
            raise StageError(
                f"no user id is left for the stage user of a new environment: every id from {record.next} "
                f"(above those handed out before, recorded in {self.path}) to {LAST_ID} belongs to an "
                f"account or a group, or to a subordinate range of {subuid} or {subgid}. Move or shrink "
                f"the subordinate range that holds them, or set the backend option stage_user to run "
                f"every environment's stages as that one account"
            )
        ids = {folder: id_ for folder, id_ in record.ids.items() if Path(folder).exists()}
        ids[key] = uid
        # On disk before any stage runs as it; the record in memory changes only once it is.
        try:
            _write_durably(self.path, json.dumps({"next": uid + 1, "environments": ids}))
        except OSError as error:
            raise StageError(
                f"{self.path} cannot be written ({error}), so the stage user id {uid} of a new environment "
                f"would not be recorded and could be handed out again. Fix the file system of "
                f"{self.path.parent} (space, permissions, errors in the system log)"
            ) from error
        record.ids, record.next = ids, uid + 1
        self._checked.intersection_update(record.ids)
        return uid

    def _read(self) -> _Record:
        """The record; none yet (no environment) when there is no file. One that cannot be read or is
        not a record is kept as it is and refuses the stage: the ids handed out are unknown then."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return _Record({}, STAGE_UID_BASE)
        except OSError as error:
            raise self._untrusted(f"cannot be read ({error})") from error
        try:
            return _parse(json.loads(content))
        except ValueError as error:  # not text, not JSON, or not a record (_Corrupt)
            raise self._untrusted(f"is not a record of stage user ids ({error})") from error

    def _untrusted(self, problem: str) -> StageError:
        state = self.path.parent
        return StageError(
            f"{self.path} {problem}, so the stage user ids handed out before cannot be trusted: a new "
            f"environment could get one another environment has, and with it that environment's files "
            f"and, while both run, its secrets. Restore it from a backup; or delete it only if every "
            f"environment's workspace and artifacts folder under {state} ({state / 'runs'}, "
            f"{state / 'environments'}) is removed too, as their files are owned by the ids it recorded"
        )


class _Corrupt(ValueError):
    """What makes a record's JSON not a record."""


def _parse(loaded: object) -> _Record:
    """The record from its JSON; also of the first format, ``{folder: id}`` with no ``next``, whose ids
    were all handed out in order (so ``next`` is above the largest). Raises _Corrupt for anything else."""
    if not isinstance(loaded, dict):
        raise _Corrupt(f"a JSON {type(loaded).__name__}, not an object")
    if "next" not in loaded and "environments" not in loaded:  # the first format (its keys are paths)
        ids = _environments(loaded)
        return _Record(ids, max([STAGE_UID_BASE, *(id_ + 1 for id_ in ids.values())]))
    if set(loaded) != {"next", "environments"}:
        raise _Corrupt(f'keys {sorted(loaded)}, not "next" and "environments"')
    ids, next_id = _environments(loaded["environments"]), loaded["next"]
    if not _is_id(next_id) or not STAGE_UID_BASE <= next_id <= LAST_ID + 1:
        raise _Corrupt(f'"next" is {next_id!r}, not a number from {STAGE_UID_BASE} to {LAST_ID + 1}')
    if ids and next_id <= max(ids.values()):
        raise _Corrupt(f'"next" is {next_id}, not above the id {max(ids.values())} of an environment')
    return _Record(ids, next_id)


def _environments(table: object) -> dict[str, int]:
    """Artifacts folder -> id, each id in the stage users' range and no two environments' the same."""
    if not isinstance(table, dict):
        raise _Corrupt(f"the environments are a JSON {type(table).__name__}, not an object")
    for folder, id_ in table.items():
        if not _is_id(id_) or not STAGE_UID_BASE <= id_ <= LAST_ID:
            raise _Corrupt(f"the id of {folder} is {id_!r}, not a number from {STAGE_UID_BASE} to {LAST_ID}")
    if len(set(table.values())) != len(table):
        raise _Corrupt("two environments have the same id")
    return {str(folder): id_ for folder, id_ in table.items()}


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _write_durably(path: Path, text: str) -> None:
    """Replaces `path` by a file of `text`, on disk when this returns. Without the fsyncs a power loss
    could leave the new name on an empty or partial file (ext4 and xfs write the data later), or bring
    back the old file: an old record's lower "next" would hand out the new ids again."""
    temporary = path.with_suffix(".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)  # the rename is a change of the folder
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
