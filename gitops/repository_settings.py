"""The ``repositories`` section of the service's settings: each repository the service deploys from,
how its webhooks are verified, which branches and tags deploy, and its schedules.

Read by :func:`gitops.settings.load_settings` (which re-exports :class:`RepositorySettings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitops.config_reader import ConfigReader
from gitops.schedules.config import check_branches, read_repository_schedules
from gitops.secret import Secret
from runner.schedule import Schedule

PROVIDERS = ("github", "gitlab")
DEFAULT_API_BASES = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


@dataclass(frozen=True)
class RepositorySettings:
    """One repository the service deploys from."""

    url: str
    """Clone URL (https://... or ssh://... or git@host:path)."""
    provider: str
    """``github`` or ``gitlab``: how webhooks are verified and statuses posted."""
    name: str
    """``owner/name`` (GitHub) or the project path (GitLab); derived from `url` by default."""
    api_base: str
    """API root: https://api.github.com, https://HOST/api/v3 (Enterprise), https://HOST/api/v4 (GitLab)."""
    webhook_secret: Secret
    api_token: Secret | None = None
    ssh_key_file: Path | None = None
    """Private key for ssh:// URLs; its public key is expected beside it as ``<file>.pub``."""
    known_hosts_file: Path | None = None
    """known_hosts used to verify SSH host keys (default ~/.ssh/known_hosts)."""
    verify_host_keys: bool = True
    deploy_branches: tuple[str, ...] = ("main",)
    preview_branches: tuple[str, ...] = ()
    """fnmatch patterns; a matching branch gets its own preview environment."""
    deploy_tags: tuple[str, ...] = ()
    """fnmatch patterns; a matching tag deploys to the deploy environment."""
    pipeline_path: str = "."
    """Folder inside the repository that holds bodywork.yaml."""
    environment: str | None = None
    """Environment of deploy branches and tags; default: the pipeline's namespace (see docs)."""
    schedules: tuple[tuple[str, Schedule], ...] = ()
    """Branch pattern -> schedule, for pipelines whose bodywork.yaml declares none (docs/schedules.md)."""

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.name.lower()}"


def repository_name_from_url(url: str) -> str:
    """``owner/name`` from an https, ssh:// or scp-like (git@host:owner/name.git) URL."""
    path = (urlsplit(url).path if "://" in url else url.split(":", 1)[-1]).strip("/")
    return path[:-4] if path.endswith(".git") else path



_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def read_repository(reader: ConfigReader, data: Any, path: str) -> RepositorySettings | None:
    if not isinstance(data, Mapping):
        reader.problem(path, f"must be a mapping, not {data!r}")
        return None
    known = {
        "url", "provider", "name", "api_base", "webhook_secret_env", "webhook_secret_file",
        "api_token_env", "api_token_file", "ssh_key_file", "known_hosts_file", "verify_host_keys",
        "deploy_branches", "preview_branches", "deploy_tags", "pipeline_path", "environment",
        "webhook_secret", "api_token", "schedules",
    }
    reader.unknown_keys(data, known, path)
    url = reader.string(data, "url", path)
    if not url:
        reader.problem(f"{path}.url", "required: the repository's clone URL")
        url = ""
    provider = reader.string(data, "provider", path) or ""
    if provider not in PROVIDERS:
        reader.problem(f"{path}.provider", f"must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    name = reader.string(data, "name", path) or repository_name_from_url(url)
    api_base = reader.string(data, "api_base", path) or DEFAULT_API_BASES.get(provider, "")
    if api_base and not api_base.startswith(("http://", "https://")):
        reader.problem(f"{path}.api_base", f"must be an http(s) URL, not {api_base!r}")
    webhook_secret = reader.secret(data, "webhook_secret", path, required=True)
    api_token = reader.secret(data, "api_token", path, required=False)
    environment = reader.string(data, "environment", path)
    if environment is not None and not _DNS_LABEL.match(environment):
        reader.problem(
            f"{path}.environment",
            f"must be a DNS label (a-z, 0-9, '-', at most 63), not {environment!r}",
        )
    verify = data.get("verify_host_keys", True)
    if not isinstance(verify, bool):
        reader.problem(f"{path}.verify_host_keys", f"must be true or false, not {verify!r}")
        verify = True
    ssh_key = reader.string(data, "ssh_key_file", path)
    known_hosts = reader.string(data, "known_hosts_file", path)
    deploys = reader.patterns(data, "deploy_branches", path, ("main",))
    previews = reader.patterns(data, "preview_branches", path, ())
    schedules = read_repository_schedules(reader, data.get("schedules"), f"{path}.schedules")
    check_branches(reader, schedules, deploys, previews, f"{path}.schedules")
    if webhook_secret is None:
        return None
    return RepositorySettings(
        url=url,
        provider=provider,
        name=name,
        api_base=api_base.rstrip("/"),
        webhook_secret=webhook_secret,
        api_token=api_token,
        ssh_key_file=Path(ssh_key) if ssh_key else None,
        known_hosts_file=Path(known_hosts) if known_hosts else None,
        verify_host_keys=verify,
        deploy_branches=deploys,
        preview_branches=previews,
        deploy_tags=reader.patterns(data, "deploy_tags", path, ()),
        pipeline_path=reader.string(data, "pipeline_path", path, ".") or ".",
        environment=environment,
        schedules=schedules,
    )


def read_repositories(reader: ConfigReader, raw: Any) -> tuple[RepositorySettings, ...]:
    raw = raw or []
    if not isinstance(raw, list):
        reader.problem("repositories", "must be a list of repositories")
        raw = []
    repositories: list[RepositorySettings] = []
    for index, item in enumerate(raw):
        repository = read_repository(reader, item, f"repositories.{index}")
        if repository is not None:
            if any(r.key == repository.key for r in repositories):
                reader.problem(f"repositories.{index}.name", f"{repository.name!r} is listed twice")
            repositories.append(repository)
    return tuple(repositories)
