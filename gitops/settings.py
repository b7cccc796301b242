"""The service's typed settings: a YAML config file, then environment variables, then defaults.

Secrets (webhook secrets, API tokens, SSH keys) never sit in the config file: it names the environment
variable or the mounted file that holds each one. Loaded once, in :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitops.config_reader import ConfigReader, did_you_mean
from gitops.config_reader import SettingsError as SettingsError  # re-exported: callers catch it here
from gitops.extensions import Extension, check_sections, discover
from gitops.logs import FORMATS as LOG_FORMATS
from gitops.pages_access import PagesSettings, read_pages
from gitops.schedules.config import (
    ScheduleSettings,
    check_branches,
    read_repository_schedules,
    read_service_schedules,
)
from gitops.secret import Secret
from runner.schedule import Schedule
from runner.yaml_io import YamlError, parse_yaml

PROVIDERS = ("github", "gitlab")
BACKENDS = ("local", "kubernetes")
DEFAULT_API_BASES = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
# GitHub sends payloads up to 25 MB.
DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024


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


@dataclass(frozen=True)
class Settings:
    repositories: tuple[RepositorySettings, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    """Base of the links in commit statuses (the run pages)."""
    data_dir: Path = Path(".bodywork/service")
    """Holds the store (SQLite), the mirrors and the checkouts."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Webhook bodies above this answer 413."""
    max_concurrent_runs: int = 4
    """Global bound on runs executing at once (runs of one environment are always serialized)."""
    backend: str = "local"
    api_token: Secret | None = None
    """Bearer token for POST /api/runs and cancel; when unset, those endpoints answer 403."""
    fetch_attempts: int = 5
    """How often a commit that is not fetchable yet is fetched again before the run fails."""
    fetch_retry_seconds: float = 1.0
    """Delay before the first re-fetch; doubles each time."""
    quiet_period_seconds: float = 0.2
    """A queued run waits this long before it starts, so a burst of pushes to one branch runs
    only its newest commit (the others are superseded while they wait)."""
    delivery_retention_days: int = 30
    """Delivery ids are kept this long for idempotency (a redelivery after that starts a run)."""
    restart_reruns: int = 1
    """How often a run interrupted by a restart is re-run before it is failed."""
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the backend's constructor (local: cache_dir, state_dir)."""
    status_min_interval_seconds: float | None = None
    """Seconds between two status calls to one API host; default 1.0 on GitHub, 0.2 on GitLab."""
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    """Which replica fires the schedules (docs/schedules.md)."""
    extensions: Mapping[str, object] = field(default_factory=dict)
    """Each active extension's settings by its config section (see :mod:`gitops.extensions`)."""
    pages: PagesSettings = field(default_factory=PagesSettings)
    """Who may read the pages and the read API (the ``pages`` section)."""
    log_format: str = "text"
    """The service's own log: ``text`` or ``json`` (JSON lines)."""

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite3"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "checkouts"

    def repository(self, provider: str, name: str) -> RepositorySettings | None:
        key = f"{provider}:{name.lower()}"
        return next((r for r in self.repositories if r.key == key), None)


def repository_name_from_url(url: str) -> str:
    """``owner/name`` from an https, ssh:// or scp-like (git@host:owner/name.git) URL."""
    path = (urlsplit(url).path if "://" in url else url.split(":", 1)[-1]).strip("/")
    return path[:-4] if path.endswith(".git") else path


def default_backend(environ: Mapping[str, str]) -> str:
    return "kubernetes" if environ.get("KUBERNETES_SERVICE_HOST") else "local"


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _repository(reader: ConfigReader, data: Any, path: str) -> RepositorySettings | None:
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


_ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "BODYWORK_HOST": ("host", str),
    "BODYWORK_PORT": ("port", int),
    "BODYWORK_PUBLIC_URL": ("public_url", str),
    "BODYWORK_DATA_DIR": ("data_dir", str),
    "BODYWORK_MAX_BODY_BYTES": ("max_body_bytes", int),
    "BODYWORK_MAX_CONCURRENT_RUNS": ("max_concurrent_runs", int),
    "BODYWORK_BACKEND": ("backend", str),
    "BODYWORK_LOG_FORMAT": ("log_format", str),
}
_SECTIONS = ("service", "repositories", "pages")
_SERVICE_KEYS = (
    "host", "port", "public_url", "data_dir", "max_body_bytes", "max_concurrent_runs", "backend",
    "api_token_env", "api_token_file", "api_token", "fetch_attempts", "fetch_retry_seconds",
    "restart_reruns", "backend_options", "status_min_interval_seconds", "quiet_period_seconds",
    "delivery_retention_days", "schedules", "log_format",
)


def load_settings(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    extensions: Sequence[Extension] | None = None,
) -> Settings:
    """Settings from the YAML file at `path` (optional), overridden by BODYWORK_* variables.

    A top-level section other than ``service`` and ``repositories`` belongs to the extension that
    claims it (default: the installed ones, :func:`gitops.extensions.discover`).
    Raises :class:`SettingsError` listing every problem at once.
    """
    environ = os.environ if environ is None else environ
    extensions = check_sections(discover() if extensions is None else extensions, _SECTIONS)
    data = _read_file(path)
    reader = ConfigReader(environ)
    claimed = {e.section: e for e in extensions}
    for key in sorted(set(data) - set(_SECTIONS) - set(claimed)):
        expected = ", ".join(repr(name) for name in [*_SECTIONS, *sorted(claimed)])
        hint = did_you_mean(key, [*_SECTIONS, *claimed])
        reader.problem(key, f"unknown section{hint}; expected {expected}")
    service = _service_section(reader, data.get("service"), environ)
    listening = _listening(reader, service, environ)
    repositories = _repositories(reader, data.get("repositories"))
    settings = _settings(reader, service, listening, repositories)
    pages = read_pages(reader, data.get("pages"), settings.host, settings.api_token)
    configured = {
        name: extension.parse_settings(data[name], reader)
        for name, extension in claimed.items()
        if name in data
    }
    if reader.problems:
        raise SettingsError(reader.problems)
    return dataclasses.replace(settings, extensions=configured, pages=pages)


def _read_file(path: Path | None) -> Mapping[str, Any]:
    if path is None:
        return {}
    try:
        data = parse_yaml(path.read_text()).value or {}
    except OSError as error:
        raise SettingsError([f"{path} -> cannot read the config file: {error.strerror}"]) from None
    except YamlError as error:
        raise SettingsError([f"{path} -> not valid YAML: {error}"]) from None
    if not isinstance(data, Mapping):
        raise SettingsError([f"{path} -> must be a mapping with 'service' and 'repositories'"])
    return data


def _service_section(reader: ConfigReader, raw: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``service`` mapping with the BODYWORK_* overrides applied; unknown keys reported."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        reader.problem("service", f"must be a mapping, not {raw!r}")
        raw = {}
    service = dict(raw)
    for variable, (key, cast) in _ENV_OVERRIDES.items():
        if variable in environ:
            text = environ[variable]
            try:
                service[key] = cast(text)
            except ValueError:
                reader.problem(variable, f"must be {cast.__name__}, not {text!r}")
    reader.unknown_keys(service, _SERVICE_KEYS, "service")
    return service


def _repositories(reader: ConfigReader, raw: Any) -> tuple[RepositorySettings, ...]:
    raw = raw or []
    if not isinstance(raw, list):
        reader.problem("repositories", "must be a list of repositories")
        raw = []
    repositories: list[RepositorySettings] = []
    for index, item in enumerate(raw):
        repository = _repository(reader, item, f"repositories.{index}")
        if repository is not None:
            if any(r.key == repository.key for r in repositories):
                reader.problem(f"repositories.{index}.name", f"{repository.name!r} is listed twice")
            repositories.append(repository)
    return tuple(repositories)


def _listening(reader: ConfigReader, service: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Where the service listens and which backend it runs on (the rest left at the defaults)."""
    defaults = Settings()
    backend = reader.string(service, "backend", "service") or default_backend(environ)
    if backend not in BACKENDS:
        reader.problem("service.backend", f"must be one of {', '.join(BACKENDS)}, not {backend!r}")
    port = reader.integer(service, "port", "service", defaults.port, 0)
    host = reader.string(service, "host", "service", defaults.host) or defaults.host
    public_url = reader.string(service, "public_url", "service") or f"http://{host}:{port}"
    backend_options = reader.mapping(service.get("backend_options"), "service.backend_options")
    return dataclasses.replace(
        defaults, backend=backend, port=port, host=host, public_url=public_url.rstrip("/"),
        backend_options=dict(backend_options),
    )


def _settings(
    reader: ConfigReader,
    service: Mapping[str, Any],
    listening: Settings,
    repositories: tuple[RepositorySettings, ...],
) -> Settings:
    defaults = Settings()
    return dataclasses.replace(
        listening,
        repositories=repositories,
        data_dir=Path(reader.string(service, "data_dir", "service", str(defaults.data_dir)) or "."),
        max_body_bytes=reader.integer(service, "max_body_bytes", "service", defaults.max_body_bytes, 1),
        max_concurrent_runs=reader.integer(
            service, "max_concurrent_runs", "service", defaults.max_concurrent_runs, 1
        ),
        api_token=reader.secret(service, "api_token", "service", required=False),
        fetch_attempts=reader.integer(service, "fetch_attempts", "service", defaults.fetch_attempts, 1),
        fetch_retry_seconds=reader.number(
            service, "fetch_retry_seconds", "service", defaults.fetch_retry_seconds
        ),
        quiet_period_seconds=reader.number(
            service, "quiet_period_seconds", "service", defaults.quiet_period_seconds
        ),
        delivery_retention_days=reader.integer(
            service, "delivery_retention_days", "service", defaults.delivery_retention_days, 1
        ),
        restart_reruns=reader.integer(service, "restart_reruns", "service", defaults.restart_reruns, 0),
        log_format=_log_format(reader, service),
        schedules=read_service_schedules(reader, service.get("schedules"), "service.schedules"),
        status_min_interval_seconds=(
            reader.number(service, "status_min_interval_seconds", "service", 1.0)
            if "status_min_interval_seconds" in service
            else None
        ),
    )


def _log_format(reader: ConfigReader, service: Mapping[str, Any]) -> str:
    value = reader.string(service, "log_format", "service", "text") or "text"
    if value not in LOG_FORMATS:
        reader.problem("service.log_format", f"must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
        return "text"
    return value
