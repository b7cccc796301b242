"""Keeping stage processes apart from the process that starts them: they die with it, they are found
again after it was killed, and they cannot read its secrets.

A pipeline comes from any branch that can be pushed, so a stage is untrusted code. For the local
backend this module provides, without the backend's other modules knowing the details:

* **dying together**: on Linux each stage asks the kernel for SIGKILL when the service dies
  (``PR_SET_PDEATHSIG``); everywhere, each started stage is recorded in a folder of the backend's
  state, and :meth:`Isolation.reap` stops what a killed predecessor left running (its whole process
  group), so a restarted service never runs a stage twice or finds a port held by an orphan;
* **no access to secrets**: when the service runs as root, stages run as an unprivileged user, with
  a scrubbed environment (:mod:`runner.backends.processes`) and a HOME of their own; the service's
  ``/proc/<pid>/environ``, its secret files (mode 0600) and its store (mode 0600, in a folder only
  root may list) are then out of reach. The service also marks itself non-dumpable, so that a
  same-user process cannot read its memory or environment either;
* **environments apart**: each environment's stages get a user id of their own
  (:mod:`runner.backends.stage_users`: no account needed, never an id this machine uses), and their
  workspace and artifacts folders are that user's alone (0700). A preview branch's stage (anyone who
  can push) can then neither read a production stage's environment (its secrets) through ``/proc``
  nor read or change its artifacts, as it could when every stage ran as ``nobody``. A configured
  ``stage_user`` is shared by all.

Where the service does not run as root, a stage runs as the service's user and could read what the
service can: :attr:`Isolation.isolated` is False and the service refuses untrusted (preview) code.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import pwd
import signal
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from runner.backends.base import ARTIFACTS_DIR_VARIABLE
from runner.backends.ports import group_members
from runner.backends.stage_users import STAGE_UID_BASE as STAGE_UID_BASE  # re-exported
from runner.backends.stage_users import StageUser, StageUsers

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
MARKER_VARIABLE = "BODYWORK_STAGE_ID"
"""Set in every stage's environment: how a process found at start-up is recognized as one of ours."""


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _prctl()


def make_undumpable() -> bool:
    """Marks this process non-dumpable (Linux): its /proc entries become root's, so a process of the
    same user can neither read its environment nor attach to it. True when done."""
    return _PRCTL is not None and _PRCTL(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def _is_root() -> bool:
    """Whether this process may switch users (root on a POSIX system)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def stage_user(name: str | None) -> StageUser | None:
    """The user stages run as: `name` (default ``nobody``) when this process is root, else None."""
    if not _is_root():
        return None
    try:
        entry = pwd.getpwnam(name or "nobody")
    except KeyError:
        return None
    if entry.pw_uid == 0:
        return None
    return StageUser(entry.pw_uid, entry.pw_gid, entry.pw_name)


class Isolation:
    """How stage processes are started and kept track of; one per backend."""

    def __init__(
        self,
        record_dir: Path,
        user: StageUser | None = None,
        niceness: int = 0,
        users: StageUsers | None = None,
    ) -> None:
        """Stages run as `user` when given, else as their environment's user from `users` (if any)."""
        self.record_dir = record_dir
        self.user = user
        self.users = users
        self.niceness = niceness
        record_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(record_dir, 0o700)

    @classmethod
    def for_state_dir(
        cls, state_dir: Path, user_name: str | None = None, switch_user: bool = True, niceness: int = 0
    ) -> Isolation:
        """Records under `state_dir`; if `switch_user` and this process is root, stages run as
        `user_name`, or by default as a user of their environment's own; at `niceness` (added to this
        process's)."""
        record_dir = state_dir / "stage-processes"
        if not switch_user:
            return cls(record_dir, niceness=niceness)
        if user_name:
            return cls(record_dir, stage_user(user_name), niceness)
        if not _is_root():  # no user to switch to
            return cls(record_dir, niceness=niceness)
        return cls(record_dir, niceness=niceness, users=StageUsers(state_dir / "stage-users.json"))

    @property
    def isolated(self) -> bool:
        """Whether a stage runs as a user that cannot read the service's secrets."""
        return self.user is not None or self.users is not None

    def user_for(self, env: Mapping[str, str]) -> StageUser | None:
        """The user a stage with environment `env` runs as (None: this process's)."""
        if self.user is not None or self.users is None:
            return self.user
        return self.users.of(env.get(ARTIFACTS_DIR_VARIABLE, ""))

    # -- starting --------------------------------------------------------------------------------

    def prepare(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> dict[str, str]:
        """The environment a stage starts with; hands its folders to the stage user and lets it
        reach its interpreter."""
        prepared = dict(env)
        prepared[MARKER_VARIABLE] = uuid.uuid4().hex
        user = self.user_for(env)
        if user is not None:
            for folder in (cwd, Path(env.get(ARTIFACTS_DIR_VARIABLE, cwd))):
                _hand_over(folder, user)
            _let_through(Path(argv[0]))
            _let_through(Path(argv[0]).resolve())  # a venv's python links to the base interpreter
            prepared["HOME"] = str(cwd)
            prepared["USER"] = prepared["LOGNAME"] = user.name
        return prepared

    def spawn_options(self, env: Mapping[str, str]) -> dict[str, object]:
        """Keyword arguments for ``subprocess.Popen`` of a stage with environment `env`: a session
        (and process group) of its own, the CPU priority, the stage user, and the death signal, set in
        that order in the child."""
        parent = os.getpid()
        user = self.user_for(env)
        niceness = self.niceness

        def in_child() -> None:  # runs between fork and exec: async-signal-safe calls only
            if niceness:
                os.nice(niceness)
            if user is not None:
                os.setgroups([])
                os.setgid(user.gid)
                os.setuid(user.uid)
            # After setuid: a change of credentials clears the death signal.
            if _PRCTL is not None:
                _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:  # the service died before the signal was asked for
                    os._exit(137)

        return {"start_new_session": True, "preexec_fn": in_child}

    # -- the record --------------------------------------------------------------------------------

    def started(self, pid: int, env: Mapping[str, str]) -> None:
        record = {"pgid": pid, "marker": env.get(MARKER_VARIABLE, ""), "service": os.getpid()}
        path = self.record_dir / f"{pid}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        temporary.replace(path)

    def stopped(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.record_dir / f"{pid}.json").unlink()

    def reap(self) -> list[int]:
        """Stops the process groups of stages a previous service process started and left running;
        returns their ids. Called once, before this process starts any stage."""
        stopped = []
        for path in sorted(self.record_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                pgid, marker = int(record["pgid"]), str(record["marker"])
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if record.get("service") != os.getpid() and _is_our_group(pgid, marker):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                    stopped.append(pgid)
                    log.warning("stopped stage process group %d left running by a previous service", pgid)
            path.unlink(missing_ok=True)
        return stopped


def _is_our_group(pgid: int, marker: str) -> bool:
    """Whether process group `pgid` still has a member started as the recorded stage.

    A process id is not reused while a group of that id has members, so a live group is ours when one
    of its members carries the stage's marker (checked where /proc can tell; trusted elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for pid in group_members(pgid):
        try:
            environ = (proc / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if f"{MARKER_VARIABLE}={marker}".encode() in environ.split(b"\0"):
            return True
    return False


def _hand_over(folder: Path, user: StageUser) -> None:
    """Makes `folder` and everything in it the stage user's alone (a workspace, an artifacts folder):
    another environment's stage user may neither list it nor read what is in it."""
    if not folder.exists():
        return
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(root, name), user.uid, user.gid)
        with contextlib.suppress(OSError):
            os.lchown(root, user.uid, user.gid)
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    _let_through(folder)


def _let_through(path: Path) -> None:
    """Lets others traverse (not list) the folders above `path`; the service's files keep their own
    modes (the store and secret files are 0600)."""
    for parent in path.parents:
        with contextlib.suppress(OSError):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, (mode & 0o7777) | 0o001)
