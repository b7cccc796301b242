"""Bare mirrors of the configured repositories, fetched incrementally, and clean checkouts of commits.

The Git work itself is :mod:`runner.git_mirror` (the project's only pygit2 user); this module maps each
configured repository to a mirror folder and its credentials, serializes fetches of one repository,
runs the blocking calls in worker threads, and retries a commit that a webhook announced before it was
fetchable. SSH host keys are verified against a ``known_hosts`` file assembled from the configured
``known_hosts_file`` of each repository.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path

from gitops.settings import RepositorySettings
from runner.git_mirror import BareMirror, CommitNotFound, FetchResult, GitAccess, use_known_hosts
from runner.git_mirror import GitError as MirrorError
from runner.model import dns_label

__all__ = ["CommitNotFound", "FetchResult", "MirrorError", "Mirrors"]


class Mirrors:
    def __init__(self, root: Path, repositories: Iterable[RepositorySettings] = ()) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self._configure_known_hosts(list(repositories))

    def _configure_known_hosts(self, repositories: list[RepositorySettings]) -> None:
        files = [Path(r.known_hosts_file) for r in repositories if r.known_hosts_file]
        if files:
            use_known_hosts(self.root / "ssh-home", files)

    def path_for(self, repository: RepositorySettings) -> Path:
        digest = hashlib.sha256(repository.url.encode()).hexdigest()[:10]
        return self.root / f"{dns_label(repository.name)}-{digest}.git"

    def _mirror(self, repository: RepositorySettings) -> BareMirror:
        access = GitAccess(
            name=repository.name,
            url=repository.url,
            token=repository.api_token.reveal() if repository.api_token else None,
            token_user="oauth2" if repository.provider == "gitlab" else "x-access-token",
            ssh_key_file=repository.ssh_key_file,
            verify_host_keys=repository.verify_host_keys,
            credentials_hint="set api_token_env (HTTPS) or ssh_key_file (SSH)",
        )
        return BareMirror(self.path_for(repository), access)

    # -- blocking primitives (run in threads) ---------------------------------------------------

    def fetch_sync(self, repository: RepositorySettings) -> FetchResult:
        return self._mirror(repository).fetch()

    def has_commit(self, repository: RepositorySettings, sha: str) -> bool:
        return self._mirror(repository).has_commit(sha)

    def describe_sync(self, repository: RepositorySettings, sha: str) -> tuple[str, str] | None:
        """(author, first line of the message) of a commit already fetched, else None."""
        return self._mirror(repository).describe(sha)

    def resolve_sync(self, repository: RepositorySettings, ref: str) -> str | None:
        """The commit `ref` (``refs/heads/x``, ``refs/tags/v1``, a branch name or a SHA) points at."""
        return self._mirror(repository).resolve(ref)

    def checkout_sync(self, repository: RepositorySettings, sha: str, destination: Path) -> None:
        """Writes the tree of commit `sha` into the empty (or absent) folder `destination`."""
        self._mirror(repository).export(sha, destination)

    # -- async API ------------------------------------------------------------------------------

    def _lock(self, repository: RepositorySettings) -> asyncio.Lock:
        return self._locks.setdefault(repository.key, asyncio.Lock())

    async def fetch(self, repository: RepositorySettings) -> FetchResult:
        async with self._lock(repository):
            return await asyncio.to_thread(self.fetch_sync, repository)

    async def ensure_commit(
        self, repository: RepositorySettings, sha: str, attempts: int, delay: float
    ) -> bool:
        """Fetches until `sha` is in the mirror: a webhook can arrive before the commit is fetchable.
        True when it fetched (the mirror's refs are as fresh as a fetch can make them), False when the
        commit was already there.

        Tries `attempts` times, waiting `delay` seconds before the second try and doubling it.
        """
        last_error = ""
        for attempt in range(attempts):
            if await asyncio.to_thread(self.has_commit, repository, sha):
                return attempt > 0
            if attempt:
                await asyncio.sleep(delay * 2 ** (attempt - 1))
            try:
                await self.fetch(repository)
            except MirrorError as error:
                last_error = str(error)
                continue
            if await asyncio.to_thread(self.has_commit, repository, sha):
                return True
        detail = f": {last_error}" if last_error else ""
        raise CommitNotFound(
            f"{repository.name}: commit {sha} is not fetchable after {attempts} attempts{detail}"
        )

    async def resolve(self, repository: RepositorySettings, ref: str, fetch: bool = True) -> str | None:
        """The commit `ref` points at, after a fetch unless `fetch` is False (one was just made)."""
        if fetch:
            await self.fetch(repository)
        return await asyncio.to_thread(self.resolve_sync, repository, ref)

    async def message(self, repository: RepositorySettings, sha: str) -> str:
        """The message of commit `sha`, once it is in the mirror."""
        return await asyncio.to_thread(self._mirror(repository).message, sha)

    async def checkout(self, repository: RepositorySettings, sha: str, destination: Path) -> None:
        await asyncio.to_thread(self.checkout_sync, repository, sha, destination)
