"""The service's typed settings: a YAML config file, then environment variables, then defaults.

Secrets (webhook secrets, API tokens, SSH keys) never sit in the config file: it names the environment
variable or the mounted file that holds each one. Loaded once, in :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.config_reader import ConfigReader, did_you_mean
from gitops.config_reader import SettingsError as SettingsError  # re-exported: callers catch it here
from gitops.extensions import Extension, check_sections, discover
from gitops.limits import HttpLimits, read_limits
from gitops.logs import FORMATS as LOG_FORMATS
from gitops.pages_access import PagesSettings, read_pages
from gitops.public_url import path_prefix, read_public_url
from gitops.repository_settings import PROVIDERS as PROVIDERS  # re-exported
from gitops.repository_settings import RepositorySettings as RepositorySettings
from gitops.repository_settings import read_repositories
from gitops.repository_settings import repository_name_from_url as repository_name_from_url
from gitops.schedules.config import (
    ScheduleSettings,
    read_service_schedules,
)
from gitops.secret import Secret
from runner.backends import backend_options
from runner.yaml_io import Index, YamlDocument, YamlError, parse_yaml

BACKENDS = ("local", "kubernetes")
# GitHub sends payloads up to 25 MB.
DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    repositories: tuple[RepositorySettings, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    """Base of the links in commit statuses and Slack messages; its path is the prefix the service is
    served under (:attr:`path_prefix`)."""
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
    limits: HttpLimits = field(default_factory=HttpLimits)
    """What one HTTP client may cost: connections, buffered bytes, header and body timeouts."""
    fsync_commits: bool = True
    """false: fsync at checkpoints, not before each 202: survives kill -9, not power loss."""
    trust_preview_branches: bool = False
    """Run preview branches on the local backend even where stages cannot be isolated from the
    service (see "Threat model" in docs/service.md); off, they are refused there."""

    @property
    def path_prefix(self) -> str:
        """The path of `public_url` (``/bodywork``): links, redirects and the login cookie carry it, and
        requests are answered with it and without it (a proxy may strip it). "" at the root of a host."""
        return path_prefix(self.public_url)

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


def default_backend(environ: Mapping[str, str]) -> str:
    return "kubernetes" if environ.get("KUBERNETES_SERVICE_HOST") else "local"


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
    "delivery_retention_days", "schedules", "limits", "trust_preview_branches", "log_format",
    "fsync_commits",
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
    document = _read_file(path)
    data: Mapping[str, Any] = document.value
    reader = ConfigReader(environ)
    claimed = {e.section: e for e in extensions}
    for key in sorted(set(data) - set(_SECTIONS) - set(claimed)):
        expected = ", ".join(repr(name) for name in [*_SECTIONS, *sorted(claimed)])
        hint = did_you_mean(key, [*_SECTIONS, *claimed])
        reader.problem(key, f"unknown section{hint}; expected {expected}")
    service = _service_section(reader, data.get("service"), environ)
    listening = _listening(reader, service, environ)
    repositories = read_repositories(reader, data.get("repositories"))
    settings = _settings(reader, service, listening, repositories)
    pages = read_pages(reader, data.get("pages"), settings.host, settings.api_token)
    configured = {
        name: extension.parse_settings(data[name], reader)
        for name, extension in claimed.items()
        if name in data
    }
    if reader.problems:
        raise SettingsError([located(problem, document) for problem in reader.problems])
    return dataclasses.replace(settings, extensions=configured, pages=pages)


def _read_file(path: Path | None) -> YamlDocument:
    if path is None:
        return YamlDocument(value={})
    try:
        document = parse_yaml(path.read_text())
    except OSError as error:
        raise SettingsError([f"{path} -> cannot read the config file: {error.strerror}"]) from None
    except (YamlError, UnicodeDecodeError) as error:
        raise SettingsError([f"{path} -> not valid YAML: {error}"]) from None
    document.value = document.value or {}
    if not isinstance(document.value, Mapping):
        raise SettingsError([f"{path} -> must be a mapping with 'service' and 'repositories'"])
    return document


def located(problem: str, document: YamlDocument) -> str:
    """`problem` (``dotted.path -> message``) with the line of the value it names, as bodywork.yaml
    problems have it: ``service.port -> must be an integer, not 'x' (line 3)``."""
    dotted, separator, _ = problem.partition(" -> ")
    if not separator:
        return problem
    path: list[object] = []
    value: Any = document.value
    for part in dotted.split("."):
        key: object = Index(int(part)) if isinstance(value, list) and part.isdigit() else part
        path.append(key)
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            value = None
    line = None
    while path and line is None:  # a missing key: the line of the mapping it is missing from
        line = document.key_lines.get(tuple(path)) or document.value_lines.get(tuple(path))
        path.pop()
    return f"{problem} (line {line})" if line else problem


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


def _listening(reader: ConfigReader, service: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Where the service listens and which backend it runs on (the rest left at the defaults)."""
    defaults = Settings()
    backend = reader.string(service, "backend", "service") or default_backend(environ)
    if backend not in BACKENDS:
        reader.problem("service.backend", f"must be one of {', '.join(BACKENDS)}, not {backend!r}")
    port = reader.integer(service, "port", "service", defaults.port, 0)
    host = reader.string(service, "host", "service", defaults.host) or defaults.host
    written = reader.string(service, "public_url", "service")
    public_url = read_public_url(reader, written) if written else f"http://{host}:{port}"
    backend_options = reader.mapping(service.get("backend_options"), "service.backend_options")
    if backend in BACKENDS:
        _check_backend_options(reader, backend, backend_options)
    return dataclasses.replace(
        defaults, backend=backend, port=port, host=host, public_url=public_url,
        backend_options=dict(backend_options),
    )


def _check_backend_options(reader: ConfigReader, backend: str, options: Mapping[str, Any]) -> None:
    """Each option must be one the backend takes, of the kind it takes (folders and names are
    strings, switches true or false), so that a typo is reported here, not as a crash at start-up."""
    known = backend_options(backend)
    for key, value in options.items():
        path = f"service.backend_options.{key}"
        if key not in known or key in ("api", "secrets"):
            reader.problem(path, f"unknown option of the {backend} backend{did_you_mean(key, known)}")
            continue
        kind = str(known[key])
        if kind.startswith(("Path", "str")) and not isinstance(value, str) and value is not None:
            reader.problem(path, f"must be a string, not {type(value).__name__} {value!r}")
        elif kind == "bool" and not isinstance(value, bool):
            reader.problem(path, f"must be true or false, not {value!r}")
        elif kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            reader.problem(path, f"must be a whole number, not {value!r}")


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
        limits=read_limits(reader, service.get("limits")),
        trust_preview_branches=reader.boolean(service, "trust_preview_branches", "service", False),
        fsync_commits=reader.boolean(service, "fsync_commits", "service", True),
    )


def _log_format(reader: ConfigReader, service: Mapping[str, Any]) -> str:
    value = reader.string(service, "log_format", "service", "text") or "text"
    if value not in LOG_FORMATS:
        reader.problem("service.log_format", f"must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
        return "text"
    return value
