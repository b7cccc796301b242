"""A pipeline's source from a Git URL, at exactly one commit, for ``bodywork run URL``."""

from __future__ import annotations

from pathlib import Path

from runner.errors import FatalError
from runner.git_mirror import BareMirror, GitAccess, GitError

_URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "file://", "git@")


def is_git_url(source: str) -> bool:
    return source.startswith(_URL_PREFIXES)


def fetch_commit(url: str, scratch: Path, branch: str | None, commit: str | None) -> tuple[Path, str]:
    """Fetches `url` into `scratch` and writes the files of `commit` (or of the tip of `branch`, or of
    the remote's default branch) to a folder. Returns the folder and the commit's full SHA."""
    mirror = BareMirror(scratch / "mirror.git", GitAccess(name=url, url=url))
    try:
        mirror.fetch()
    except GitError as error:
        raise FatalError(f"{error}; check the URL and your access to the repository") from None
    if commit is not None:
        sha = mirror.resolve(commit)
        if sha is None:
            raise FatalError(
                f"commit {commit} is not in {url}; give a full or abbreviated SHA that has been pushed"
            )
    else:
        ref = f"refs/heads/{branch}" if branch else mirror.default_branch()
        sha = mirror.resolve(ref) if ref else None
        if sha is None:
            what = f"branch {branch}" if branch else "a default branch"
            raise FatalError(f"{url} has no {what}; name an existing branch with --branch")
    source = scratch / "source"
    mirror.export(sha, source)
    return source, sha
