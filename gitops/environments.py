"""Branch and tag -> environment: which pushes deploy, where, and which tear down. Pure, no I/O.

* A deploy branch (or a tag matching ``deploy_tags``) deploys to the repository's deploy environment:
  ``environment`` when configured, else a label made of the repository's name. The namespace the run
  deploys into is the pipeline's own ``namespace`` unless ``environment`` is configured.
* A branch matching ``preview_branches`` gets its own environment, whose name is a valid DNS label of at
  most 63 characters: the slug of repository and branch, truncated, plus a short hash of both so that
  two branches never collide.
* Deleting a preview branch tears its environment down.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gitops.settings import RepositorySettings
from runner.model import dns_label

MAX_LABEL = 63
_HASH_LENGTH = 6


@dataclass(frozen=True)
class Target:
    """What a push asks for."""

    action: str
    """``deploy`` or ``teardown``."""
    environment: str
    """The environment key: serialization unit of the queue and the commit-status context."""
    preview: bool
    namespace: str | None
    """The namespace to deploy into, or None for the pipeline's own namespace."""


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def deploy_environment(repository: RepositorySettings) -> str:
    return repository.environment or dns_label(repository.name.rsplit("/", 1)[-1])


def preview_environment(repository: str, branch: str) -> str:
    """A DNS label unique to (`repository`, `branch`): slug, truncated, plus a 6-hex-digit hash."""
    digest = hashlib.sha256(f"{repository}\0{branch}".encode()).hexdigest()[:_HASH_LENGTH]
    short = repository.rsplit("/", 1)[-1]
    slug = dns_label(f"{short}-{branch}", max_length=MAX_LABEL - _HASH_LENGTH - 1)
    return f"{slug}-{digest}"


def target_for(
    repository: RepositorySettings, ref: str, deleted: bool
) -> Target | str:
    """The :class:`Target` of a push to `ref`, or the reason it is ignored."""
    if ref.startswith("refs/tags/"):
        tag = ref[len("refs/tags/") :]
        if not _matches(tag, repository.deploy_tags):
            return f"tag {tag!r} matches none of deploy_tags"
        if deleted:
            return f"tag {tag!r} was deleted; nothing to do"
        return Target("deploy", deploy_environment(repository), False, repository.environment)
    if not ref.startswith("refs/heads/"):
        return f"ref {ref!r} is neither a branch nor a tag"
    branch = ref[len("refs/heads/") :]
    if _matches(branch, repository.deploy_branches):
        if deleted:
            return f"deploy branch {branch!r} was deleted; its environment is kept"
        return Target("deploy", deploy_environment(repository), False, repository.environment)
    if _matches(branch, repository.preview_branches):
        environment = preview_environment(repository.name, branch)
        return Target("teardown" if deleted else "deploy", environment, True, environment)
    return f"branch {branch!r} matches neither deploy_branches nor preview_branches"


def manual_target(repository: RepositorySettings, ref: str) -> tuple[str, Target | str]:
    """The full ref a manual trigger means (a branch before a tag) and its target, or why none."""
    if ref.startswith("refs/"):
        return ref, target_for(repository, ref, False)
    branch = target_for(repository, f"refs/heads/{ref}", False)
    if not isinstance(branch, str):
        return f"refs/heads/{ref}", branch
    tag = target_for(repository, f"refs/tags/{ref}", False)
    if not isinstance(tag, str):
        return f"refs/tags/{ref}", tag
    return ref, branch
