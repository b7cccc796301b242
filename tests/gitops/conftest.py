"""Fixtures for the service's tests: Git over smart HTTP, the fake GitHub/GitLab APIs, the service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes._server import FakeApiServer
from tests.fakes.fixtures import fake_github, fake_gitlab
from tests.fakes.github_api import FakeGitHub
from tests.fakes.gitlab_api import FakeGitLab

from .gitserver import GitHttpServer, free_port
from .helpers import RunningService, ServiceProcess, SourceRepo, github_repository, write_config

__all__ = ["fake_github", "fake_gitlab"]

GITHUB_SECRET = "It's a Secret to Everybody"
GITLAB_SECRET = "gitlab-hook-secret-4711"
API_TOKEN = "manual-trigger-token-0815"


@pytest.fixture(autouse=True)
def fakes_rejected_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every end-to-end test ends with the fake GitHub and GitLab having refused no call, since a
    refusal is what the real service would answer to a bad call. A test whose scenario provokes a
    refusal on purpose names it: ``@pytest.mark.expected_rejections("text of the answer", ...)``."""
    # Requested here, before the test's own fixtures, so that the fakes are still up at teardown.
    names = [name for name in ("fake_github", "fake_gitlab") if name in request.fixturenames]
    fakes: list[FakeApiServer] = [request.getfixturevalue(name) for name in names]
    yield
    marker = request.node.get_closest_marker("expected_rejections")
    expected: tuple[str, ...] = marker.args if marker else ()
    for fake in fakes:
        unexpected = fake.unexpected_rejections(expected)
        assert unexpected == [], f"{type(fake).__name__} refused calls the service made: {unexpected}"


@pytest.fixture(scope="session")
def venv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every service in the session, so a stage's venv is built once."""
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def git_http(git_root: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(git_root) as server:
        yield server


@pytest.fixture
def github_repo(git_root: Path) -> SourceRepo:
    return SourceRepo(git_root, "pipelines")


@pytest.fixture
def gitlab_repo(git_root: Path) -> SourceRepo:
    return SourceRepo(git_root, "ml-project")


ServiceFactory = Callable[..., RunningService]


@pytest.fixture
def make_service(
    tmp_path: Path,
    venv_cache: Path,
    git_http: GitHttpServer,
    fake_github: FakeGitHub,
    fake_gitlab: FakeGitLab,
) -> Iterator[ServiceFactory]:
    """Starts the service with a config naming the GitHub repo `acme/pipelines` and the GitLab
    project `group/ml-project`, both served over smart HTTP; `extra` is appended to `service:`."""
    started: list[RunningService] = []

    def make(
        service_extra: str = "",
        repo_extra: str = "",
        github_url: str = "",
        max_concurrent: int = 4,
        public_url: str = "http://bodywork.example.invalid",
        **service_options: Any,
    ) -> RunningService:
        environ = {
            "GH_SECRET": GITHUB_SECRET,
            "GH_TOKEN": fake_github.token,
            "GL_SECRET": GITLAB_SECRET,
            "GL_TOKEN": fake_gitlab.token,
            "API_TOKEN": API_TOKEN,
        }
        config = f"""
service:
  data_dir: {tmp_path / "data"}
  public_url: {public_url}
  api_token_env: API_TOKEN
  status_min_interval_seconds: 0
  fetch_attempts: 4
  fetch_retry_seconds: 0.2
  max_concurrent_runs: {max_concurrent}
  backend: local
  backend_options:
    cache_dir: {venv_cache}
{service_extra}
repositories:
{github_repository(github_url or git_http.url("pipelines"), fake_github.api_base)}
    deploy_tags: ["v*"]
{repo_extra}
  - url: {git_http.url("ml-project")}
    provider: gitlab
    name: group/ml-project
    api_base: {fake_gitlab.api_base}
    webhook_secret_env: GL_SECRET
    api_token_env: GL_TOKEN
    deploy_branches: [main]
    preview_branches: ["review/*"]
"""
        settings = write_config(tmp_path / "service.yaml", config, environ)
        service = RunningService(settings, **service_options).__enter__()
        started.append(service)
        return service

    yield make
    for service in reversed(started):
        service.__exit__(None, None, None)


ProcessFactory = Callable[..., ServiceProcess]


@pytest.fixture
def service_process(
    tmp_path: Path, venv_cache: Path, git_http: GitHttpServer, fake_github: FakeGitHub
) -> Iterator[ProcessFactory]:
    """Starts `bodywork serve` as a child process, so that a test can kill it: the local backend, the
    GitHub repo `acme/pipelines`, data in ``tmp_path/data``. Keyword arguments add keys to `service:`;
    `repositories` adds entries to `repositories:`. Stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(repositories: str = "", **service: object) -> ServiceProcess:
        keys = "".join(f"  {key}: {value}\n" for key, value in service.items())
        config = tmp_path / "service.yaml"
        config.write_text(f"""
service:
  data_dir: {tmp_path / "data"}
  status_min_interval_seconds: 0
{keys}  backend: local
  backend_options:
    cache_dir: {venv_cache}
repositories:
{github_repository(git_http.url("pipelines"), fake_github.api_base)}
{repositories}""")
        environ = {"GH_SECRET": GITHUB_SECRET, "GH_TOKEN": fake_github.token}
        process = ServiceProcess(config, free_port(), environ, tmp_path / "service.log")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
