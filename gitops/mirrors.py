"""Bare mirrors of the configured repositories, fetched incrementally, and clean checkouts of commits.

The only module that uses pygit2. Blocking libgit2 calls run in worker threads; fetches of one
repository are serialized. Authentication: an HTTPS token (user ``x-access-token`` on GitHub,
``oauth2`` on GitLab) or an SSH key pair. SSH host keys are verified by libgit2 against a
``known_hosts`` file that this module assembles from the configured ``known_hosts_file`` of each
repository (libgit2 reads ``<home>/.ssh/known_hosts``; the home folder is set to one under the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FetchPrune, ObjectType, Option

from gitops.settings import RepositorySettings
from runner.model import dns_label

_REFSPECS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
_MODE_LINK = 0o120000
_MODE_SUBMODULE = 0o160000
_MODE_EXECUTABLE = 0o100755


class MirrorError(Exception):
    """Fetching or checking out failed; the message names the repository and never a credential."""


class CommitNotFound(MirrorError):
    """The commit is not (yet) in the mirror after a fetch."""


@dataclass(frozen=True)
class FetchResult:
    received_objects: int
    seconds: float


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, repository: RepositorySettings) -> None:
        super().__init__()
        self.settings = repository
        self.tries = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        self.tries += 1
        repository = self.settings
        if self.tries > 3:  # libgit2 asks again after a rejection; stop instead of looping
            raise MirrorError(f"{repository.name}: the server rejected the credentials")
        if allowed_types & CredentialType.SSH_KEY and repository.ssh_key_file:
            public = Path(f"{repository.ssh_key_file}.pub")
            return pygit2.Keypair(
                username_from_url or "git",
                str(public) if public.exists() else None,
                str(repository.ssh_key_file),
                "",
            )
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and repository.api_token:
            user = "oauth2" if repository.provider == "gitlab" else "x-access-token"
            return pygit2.UserPass(username_from_url or user, repository.api_token.reveal())
        raise MirrorError(
            f"{repository.name}: the server asks for credentials and none are configured; set "
            "api_token_env (HTTPS) or ssh_key_file (SSH)"
        )

    def certificate_check(self, certificate: object, valid: bool, host: bytes | str) -> bool:
        if valid or not self.settings.verify_host_keys:
            return True
        name = host.decode() if isinstance(host, bytes) else host
        raise MirrorError(
            f"{self.settings.name}: the host key or certificate of {name} could not be verified; add "
            "its key to the repository's known_hosts_file"
        )


def _safe_error(error: Exception, repository: RepositorySettings) -> str:
    text = str(error)
    if repository.api_token:
        text = text.replace(repository.api_token.reveal(), "********")
    return text


class Mirrors:
    def __init__(self, root: Path, repositories: Iterable[RepositorySettings] = ()) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self._configure_known_hosts(list(repositories))

    def _configure_known_hosts(self, repositories: list[RepositorySettings]) -> None:
        files = [r.known_hosts_file for r in repositories if r.known_hosts_file]
        if not files:
            return
        home = self.root / "ssh-home"
        (home / ".ssh").mkdir(parents=True, exist_ok=True)
        text = "".join(Path(f).read_text() + "\n" for f in files if Path(f).exists())
        (home / ".ssh" / "known_hosts").write_text(text)
        pygit2.option(Option.SET_HOMEDIR, str(home))

    def path_for(self, repository: RepositorySettings) -> Path:
        digest = hashlib.sha256(repository.url.encode()).hexdigest()[:10]
        return self.root / f"{dns_label(repository.name)}-{digest}.git"

    def _open(self, repository: RepositorySettings) -> pygit2.Repository:
        path = self.path_for(repository)
        if not (path / "HEAD").exists():
            repo = pygit2.init_repository(str(path), bare=True)
            repo.remotes.create("origin", repository.url, "+refs/heads/*:refs/heads/*")
            repo.remotes.add_fetch("origin", "+refs/tags/*:refs/tags/*")
            return repo
        repo = pygit2.Repository(str(path))
        if repo.remotes["origin"].url != repository.url:
            repo.remotes.set_url("origin", repository.url)
        return repo

    # -- blocking primitives (run in threads) ---------------------------------------------------

    def fetch_sync(self, repository: RepositorySettings) -> FetchResult:
        started = time.perf_counter()
        try:
            repo = self._open(repository)
            progress = repo.remotes["origin"].fetch(
                _REFSPECS, callbacks=_Callbacks(repository), prune=FetchPrune.PRUNE
            )
        except MirrorError:
            raise
        except (pygit2.GitError, KeyError, OSError, ValueError) as error:
            raise MirrorError(
                f"{repository.name}: fetching {repository.url} failed: {_safe_error(error, repository)}"
            ) from None
        return FetchResult(progress.received_objects, time.perf_counter() - started)

    def has_commit(self, repository: RepositorySettings, sha: str) -> bool:
        try:
            repo = self._open(repository)
            obj = repo.get(sha)
        except (pygit2.GitError, ValueError):
            return False
        return obj is not None and obj.type == ObjectType.COMMIT

    def resolve_sync(self, repository: RepositorySettings, ref: str) -> str | None:
        """The commit `ref` (``refs/heads/x``, ``refs/tags/v1``, a branch name or a SHA) points at."""
        repo = self._open(repository)
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            try:
                obj = repo.revparse_single(candidate)
                return str(obj.peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
                continue
        return None

    def checkout_sync(self, repository: RepositorySettings, sha: str, destination: Path) -> None:
        """Writes the tree of commit `sha` into the empty (or absent) folder `destination`."""
        repo = self._open(repository)
        obj = repo.get(sha)
        if obj is None or obj.type != ObjectType.COMMIT:
            raise CommitNotFound(f"{repository.name}: commit {sha} is not in the mirror")
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        self._write_tree(repo, obj.tree, destination)

    def _write_tree(self, repo: pygit2.Repository, tree: pygit2.Tree, folder: Path) -> None:
        for entry in tree:
            name = entry.name
            if not name or name in (".", "..") or "/" in name:
                raise MirrorError(f"refusing to check out a tree entry named {name!r}")
            target = folder / name
            if entry.filemode == _MODE_SUBMODULE:
                target.mkdir()
                continue
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                target.mkdir()
                self._write_tree(repo, obj, target)
            elif isinstance(obj, pygit2.Blob):
                if entry.filemode == _MODE_LINK:
                    os.symlink(obj.data.decode(), target)
                    continue
                target.write_bytes(obj.data)
                if entry.filemode == _MODE_EXECUTABLE:
                    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    # -- async API ------------------------------------------------------------------------------

    def _lock(self, repository: RepositorySettings) -> asyncio.Lock:
        return self._locks.setdefault(repository.key, asyncio.Lock())

    async def fetch(self, repository: RepositorySettings) -> FetchResult:
        async with self._lock(repository):
            return await asyncio.to_thread(self.fetch_sync, repository)

    async def ensure_commit(
        self, repository: RepositorySettings, sha: str, attempts: int, delay: float
    ) -> None:
        """Fetches until `sha` is in the mirror: a webhook can arrive before the commit is fetchable.

        Tries `attempts` times, waiting `delay` seconds before the second try and doubling it.
        """
        last_error = ""
        for attempt in range(attempts):
            if await asyncio.to_thread(self.has_commit, repository, sha):
                return
            if attempt:
                await asyncio.sleep(delay * 2 ** (attempt - 1))
            try:
                await self.fetch(repository)
            except MirrorError as error:
                last_error = str(error)
                continue
            if await asyncio.to_thread(self.has_commit, repository, sha):
                return
        detail = f": {last_error}" if last_error else ""
        raise CommitNotFound(
            f"{repository.name}: commit {sha} is not fetchable after {attempts} attempts{detail}"
        )

    async def resolve(self, repository: RepositorySettings, ref: str) -> str | None:
        await self.fetch(repository)
        return await asyncio.to_thread(self.resolve_sync, repository, ref)

    async def checkout(self, repository: RepositorySettings, sha: str, destination: Path) -> None:
        await asyncio.to_thread(self.checkout_sync, repository, sha, destination)
