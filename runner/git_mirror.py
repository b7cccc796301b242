"""Bare Git mirrors: fetched incrementally, and the tree of one exact commit written to a folder.

The only module that imports pygit2; ``bodywork run URL`` and the GitOps service's mirrors both use it.
Every call blocks (libgit2); async callers run them in threads. Error messages name the repository and
never a credential.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FetchPrune, ObjectType, Option

from runner.errors import FatalError

_REFSPECS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
_MODE_LINK = 0o120000
_MODE_SUBMODULE = 0o160000
_MODE_EXECUTABLE = 0o100755
_MAX_CREDENTIAL_TRIES = 3  # libgit2 asks again after a rejection; stop instead of looping


class GitError(FatalError):
    """Fetching or checking out failed; the message names the repository and never a credential."""


class CommitNotFound(GitError):
    """The commit is not (yet) in the mirror."""


@dataclass(frozen=True)
class GitAccess:
    """How to reach one repository."""

    name: str  # how messages call the repository
    url: str
    # HTTPS: a token sent as the password of `token_user` (GitHub: x-access-token; GitLab: oauth2).
    token: str | None = None
    token_user: str = "x-access-token"
    # SSH: a private key file; its public half is read from `<file>.pub` when present.
    ssh_key_file: Path | None = None
    verify_host_keys: bool = True
    # What to tell the user when the server wants credentials and none were given.
    credentials_hint: str = "give an API token (HTTPS) or an SSH key file (SSH)"

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return f"GitAccess(name={self.name!r}, url={self.url!r})"

    def mask(self, text: str) -> str:
        return text.replace(self.token, "********") if self.token else text


@dataclass(frozen=True)
class FetchResult:
    received_objects: int
    seconds: float


def use_known_hosts(home: Path, known_hosts_files: list[Path]) -> None:
    """Makes libgit2 verify SSH host keys against these files (it reads `<home>/.ssh/known_hosts`)."""
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    text = "".join(f.read_text() + "\n" for f in known_hosts_files if f.exists())
    (home / ".ssh" / "known_hosts").write_text(text)
    pygit2.option(Option.SET_HOMEDIR, str(home))


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, access: GitAccess) -> None:
        super().__init__()
        self.access = access
        self.tries = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        self.tries += 1
        access = self.access
        if self.tries > _MAX_CREDENTIAL_TRIES:
            raise GitError(f"{access.name}: the server rejected the credentials")
        if allowed_types & CredentialType.SSH_KEY and access.ssh_key_file:
            public = Path(f"{access.ssh_key_file}.pub")
            return pygit2.Keypair(
                username_from_url or "git",
                str(public) if public.exists() else None,
                str(access.ssh_key_file),
                "",
            )
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and access.token:
            return pygit2.UserPass(username_from_url or access.token_user, access.token)
        raise GitError(
            f"{access.name}: the server asks for credentials and none are configured; "
            f"{access.credentials_hint}"
        )

    def certificate_check(self, certificate: object, valid: bool, host: bytes | str) -> bool:
        if valid or not self.access.verify_host_keys:
            return True
        name = host.decode() if isinstance(host, bytes) else host
        raise GitError(
            f"{self.access.name}: the host key or certificate of {name} could not be verified; add "
            "its key to the known_hosts file"
        )


class BareMirror:
    """A bare repository at `path` mirroring every branch and tag of `access.url`."""

    def __init__(self, path: Path, access: GitAccess) -> None:
        self.path = path
        self.access = access

    def _open(self) -> pygit2.Repository:
        if not (self.path / "HEAD").exists():
            repo = pygit2.init_repository(str(self.path), bare=True)
            repo.remotes.create("origin", self.access.url, _REFSPECS[0])
            repo.remotes.add_fetch("origin", _REFSPECS[1])
            return repo
        repo = pygit2.Repository(str(self.path))
        if repo.remotes["origin"].url != self.access.url:
            repo.remotes.set_url("origin", self.access.url)
        return repo

    def fetch(self) -> FetchResult:
        """Fetches what is new (only that: the mirror is incremental), pruning deleted refs."""
        started = time.perf_counter()
        try:
            remote = self._open().remotes["origin"]
            progress = remote.fetch(_REFSPECS, callbacks=_Callbacks(self.access), prune=FetchPrune.PRUNE)
        except GitError:
            raise
        except (pygit2.GitError, KeyError, OSError, ValueError) as error:
            raise GitError(
                f"{self.access.name}: fetching {self.access.url} failed: {self.access.mask(str(error))}"
            ) from None
        return FetchResult(progress.received_objects, time.perf_counter() - started)

    def default_branch(self) -> str | None:
        """The branch the remote's HEAD names (asks the remote)."""
        try:
            heads = self._open().remotes["origin"].list_heads(callbacks=_Callbacks(self.access))
        except (pygit2.GitError, KeyError, OSError, ValueError):
            return None
        for head in heads:
            if head.name == "HEAD" and head.symref_target:
                return str(head.symref_target)
        return None

    def has_commit(self, sha: str) -> bool:
        try:
            obj = self._open().get(sha)
        except (pygit2.GitError, ValueError):
            return False
        return obj is not None and obj.type == ObjectType.COMMIT

    def describe(self, sha: str) -> tuple[str, str] | None:
        """(author name, first line of the message) of commit `sha`, or None when it is not here."""
        try:
            obj = self._open().get(sha)
        except (pygit2.GitError, ValueError):
            return None
        if not isinstance(obj, pygit2.Commit):
            return None
        message = obj.message.strip().splitlines()
        return obj.author.name, message[0] if message else ""

    def resolve(self, ref: str) -> str | None:
        """The commit `ref` (``refs/heads/x``, ``refs/tags/v1``, a branch or tag name, a SHA or an
        abbreviated one) points at, or None."""
        repo = self._open()
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            try:
                return str(repo.revparse_single(candidate).peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
                continue
        return None

    def message(self, sha: str) -> str:
        """The message of commit `sha` ("" when it is not in the mirror)."""
        obj = self._open().get(sha)
        if not isinstance(obj, pygit2.Commit):
            return ""
        return str(obj.message)

    def export(self, sha: str, destination: Path) -> None:
        """Writes the tree of commit `sha` into `destination` (replaced if present), without .git."""
        repo = self._open()
        obj = repo.get(sha)
        if obj is None or obj.type != ObjectType.COMMIT:
            raise CommitNotFound(f"{self.access.name}: commit {sha} is not in the mirror")
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        _write_tree(repo, obj.tree, destination)


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, folder: Path) -> None:
    for entry in tree:
        name = entry.name
        # A hostile tree could name an entry so that it lands outside the folder.
        if not name or name in (".", "..", ".git") or "/" in name:
            raise GitError(f"refusing to check out a tree entry named {name!r}")
        target = folder / name
        if entry.filemode == _MODE_SUBMODULE:
            target.mkdir()
            continue
        obj = repo[entry.id]
        if isinstance(obj, pygit2.Tree):
            target.mkdir()
            _write_tree(repo, obj, target)
        elif isinstance(obj, pygit2.Blob):
            if entry.filemode == _MODE_LINK:
                os.symlink(obj.data.decode(), target)
                continue
            target.write_bytes(obj.data)
            if entry.filemode == _MODE_EXECUTABLE:
                target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def head_commit(folder: Path) -> str | None:
    """The commit checked out in `folder` when it is inside a Git work tree, else None."""
    location = pygit2.discover_repository(str(folder))
    if location is None:
        return None
    try:
        return str(pygit2.Repository(location).head.target)
    except (pygit2.GitError, KeyError):  # a repository with no commit yet
        return None


def uncommitted_changes(folder: Path) -> list[str]:
    """Paths that differ from the checked-out commit (changed, staged, new, deleted), ignored ones not."""
    location = pygit2.discover_repository(str(folder))
    if location is None:
        return []
    try:
        repository = pygit2.Repository(location)
        status = repository.status()
    except pygit2.GitError:
        return []
    if repository.workdir is None:
        return []
    inside = folder.resolve().relative_to(Path(repository.workdir).resolve()).as_posix()
    prefix = "" if inside == "." else f"{inside}/"
    changed = (p for p, flags in status.items() if flags & ~pygit2.enums.FileStatus.IGNORED)
    return sorted(p for p in changed if p.startswith(prefix))
