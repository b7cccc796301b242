"""Fetches a pipeline's source from a Git URL at exactly one commit. The runner's only pygit2 user."""

from __future__ import annotations

from pathlib import Path

import pygit2

from runner.errors import FatalError

_URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "file://", "git@")


def is_git_url(source: str) -> bool:
    return source.startswith(_URL_PREFIXES)


def clone_at(url: str, destination: Path, branch: str | None, commit: str | None) -> str:
    """Clones `url` into `destination` and checks out `commit` (or the tip of `branch`, or HEAD).

    Returns the full SHA of the commit checked out.
    """
    try:
        repository = pygit2.clone_repository(url, str(destination), checkout_branch=branch)
    except (pygit2.GitError, KeyError, ValueError) as error:
        raise FatalError(
            f"cannot clone {url}{f' (branch {branch})' if branch else ''}: {error}; check the URL, "
            "the branch name and your access to the repository"
        ) from None
    if commit is None:
        return str(repository.head.target)
    try:
        target = repository.revparse_single(commit).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise FatalError(
            f"commit {commit} is not in {url}; give a full or abbreviated SHA that has been pushed"
        ) from None
    repository.checkout_tree(target, strategy=pygit2.enums.CheckoutStrategy.FORCE)
    repository.set_head(target.id)
    return str(target.id)


def head_commit(folder: Path) -> str | None:
    """The commit checked out in `folder` when it is a Git work tree, else None."""
    location = pygit2.discover_repository(str(folder))
    if location is None:
        return None
    try:
        return str(pygit2.Repository(location).head.target)
    except (pygit2.GitError, KeyError):  # a repository with no commit yet
        return None
