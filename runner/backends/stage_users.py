"""One unprivileged user id per environment for its local stages, never handed out twice.

The ids are bare numbers (no account: ``setuid`` to one works as root), from :data:`STAGE_UID_BASE` up,
each skipping the ids this machine already uses (:mod:`runner.backends.taken_ids`). The record,
``stage-users.json`` in the backend's state, maps each environment's artifacts folder to its id, so that
an environment keeps its id across restarts, and holds ``next``, the id above every one handed out so
far. An environment whose artifacts folder is gone (torn down) leaves the record when the next new
environment is given an id, but ``next`` keeps its id from being handed out again: files of a torn-down
environment may outlive it, and must not become a new environment's.
"""

from __future__ import annotations

import json
import logging
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
        record.ids = {folder: id_ for folder, id_ in record.ids.items() if Path(folder).exists()}
        record.ids[key] = uid
        record.next = uid + 1
        self._checked.intersection_update(record.ids)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"next": record.next, "environments": record.ids}))
        temporary.replace(self.path)
        return uid

    def _read(self) -> _Record:
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            loaded = {}
        except (OSError, ValueError) as error:
            log.warning("%s cannot be read (%s): stage user ids may repeat ones handed out", self.path, error)
            loaded = {}
        return _parse(loaded if isinstance(loaded, dict) else {})


def _parse(loaded: dict[str, object]) -> _Record:
    """The record from its JSON; also of the first format, ``{folder: id}`` with no ``next``, whose ids
    were all handed out in order (so ``next`` is above the largest)."""
    environments = loaded.get("environments")
    table = environments if isinstance(environments, dict) else loaded
    ids = {str(folder): id_ for folder, id_ in table.items() if _is_id(id_)}
    recorded_next = loaded.get("next") if isinstance(environments, dict) else None
    floor = recorded_next if _is_id(recorded_next) else STAGE_UID_BASE
    return _Record(ids, max([STAGE_UID_BASE, floor, *(id_ + 1 for id_ in ids.values())]))


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
