"""The extension point: an extension found through its entry point owns a config section, mounts
routes on the real app, observes every run change, and is started and stopped with the service."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.config_reader import ConfigReader
from gitops.extensions import ENTRY_POINT_GROUP, Extension, ExtensionError, discover
from gitops.service import Service
from gitops.settings import Settings, SettingsError, load_settings
from gitops.store import RunRecord
from gitops.web import create_app
from gitops.web.responses import service_of

from .helpers import RunningService, wait_until


class EchoExtension:
    """A minimal extension: ``echo: {greeting: ...}``, ``GET /echo`` answers the greeting."""

    section = "echo"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.events: list[str] = []

    def parse_settings(self, raw: Any, reader: ConfigReader) -> object:
        section = reader.mapping(raw, self.section)
        reader.unknown_keys(section, ["greeting"], self.section)
        return reader.string(section, "greeting", self.section, "hello") or "hello"

    def routes(self, settings: Settings) -> Sequence[object]:
        return [Route("/echo", _echo)]

    def observe(self, run: RunRecord) -> None:
        asyncio.get_running_loop()  # raises unless called on the event loop, as promised
        self.seen.append((run.id, run.state.value))

    async def start(self, service: Service) -> None:
        self.events.append(f"start ready={service.store is not None}")

    async def stop(self) -> None:
        self.events.append("stop")


class NotAnExtension:
    section = "nothing"


async def _echo(request: Request) -> Response:
    return JSONResponse({"greeting": service_of(request).settings.extensions["echo"]})


def test_an_installed_extension_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [type(e).__name__ for e in discover()] == ["SlackExtension"]  # chatops, from pyproject.toml
    dist = tmp_path / "echo_extension-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-extension\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = tests.gitops.test_extensions:EchoExtension\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover()
    assert [type(e).__name__ for e in found] == ["EchoExtension", "SlackExtension"]  # by entry point name
    assert isinstance(found[0], Extension)

    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbad = tests.gitops.test_extensions:NotAnExtension\n"
    )
    with pytest.raises(ExtensionError) as caught:
        discover()
    assert str(caught.value) == (
        "extension bad (tests.gitops.test_extensions:NotAnExtension) is not a "
        "gitops.extensions.Extension: it lacks parse_settings, routes, observe, start, stop"
    )


def test_an_extension_owns_its_section_and_reports_problems_like_the_service(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("echo:\n  greting: hi\nservce: {}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {}, [EchoExtension()])
    assert caught.value.problems == [
        "servce -> unknown section; did you mean 'service'; "
        "expected 'service', 'repositories', 'pages', 'echo' (line 3)",
        "echo.greting -> unknown setting; did you mean 'greeting'; see docs/service.md for the accepted keys "
        "(line 2)",
    ]
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {}, [])
    expected = "echo -> unknown section; expected 'service', 'repositories', 'pages' (line 1)"
    assert caught.value.problems[0] == expected

    config.write_text("echo:\n  greeting: hi\n")
    assert load_settings(config, {}, [EchoExtension()]).extensions == {"echo": "hi"}
    assert load_settings(None, {}, [EchoExtension()]).extensions == {}


def test_two_extensions_cannot_claim_one_section() -> None:
    class Service_(EchoExtension):
        section = "service"

    with pytest.raises(ExtensionError, match="'service', which the service already owns"):
        load_settings(None, {}, [Service_()])
    with pytest.raises(ExtensionError, match="'echo', which EchoExtension already owns"):
        load_settings(None, {}, [EchoExtension(), EchoExtension()])


def test_an_active_extension_serves_routes_observes_runs_and_stops_with_the_service(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(f"""
service:
  data_dir: {tmp_path / "data"}
  api_token_env: API_TOKEN
  fetch_attempts: 1
  fetch_retry_seconds: 0
  quiet_period_seconds: 0
  backend: local
repositories:
  - url: file://{tmp_path / "missing.git"}
    provider: github
    name: acme/pipelines
    webhook_secret_env: SECRET
echo:
  greeting: hi there
""")
    echo = EchoExtension()
    settings = load_settings(config, {"API_TOKEN": "t0k3n", "SECRET": "s"}, [echo])
    with RunningService(settings, extensions=[echo]) as service:
        assert echo.events == ["start ready=True"]
        assert service.client.get("/echo").json() == {"greeting": "hi there"}
        answer = service.post_json(
            "/api/runs", {"repository": "acme/pipelines", "ref": "main", "commit": "a" * 40},
            {"authorization": "Bearer t0k3n"},
        )
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        run = service.wait_for(run_id)
        assert run["state"] == "failed" and run["failure"] == "git", run
        wait_until(lambda: (run_id, "failed") in echo.seen, what="the final change observed")
        assert [state for seen_id, state in echo.seen if seen_id == run_id] == ["queued", "running", "failed"]
    assert echo.events == ["start ready=True", "stop"]


def test_an_extension_without_its_section_is_not_active(tmp_path: Path) -> None:
    echo = EchoExtension()
    settings = load_settings(None, {"BODYWORK_DATA_DIR": str(tmp_path)}, [echo])
    with RunningService(settings, extensions=[echo]) as service:
        assert service.client.get("/echo").status_code == 404
    assert echo.events == []


class _Stamp:
    """A pure ASGI middleware that adds a header to every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def test_create_app_adds_routes_and_middleware_beside_the_built_in_ones(tmp_path: Path) -> None:
    settings = load_settings(None, {"BODYWORK_DATA_DIR": str(tmp_path)}, [])
    app = create_app(
        Service(settings, extensions=[]),
        extra_routes=[Route("/extra", _echo_service_ready)],
        middleware=[Middleware(_Stamp)],
    )

    async def scenario() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
        ):
            extra = await client.get("/extra")
            assert extra.json() == {"ready": True} and extra.headers["x-stamp"] == "1"
            assert (await client.get("/api/runs")).json() == {"runs": []}
            assert (await client.get("/readyz")).headers["x-stamp"] == "1"

    asyncio.run(scenario())


async def _echo_service_ready(request: Request) -> Response:
    return JSONResponse({"ready": service_of(request).ready})


def test_an_extension_that_returns_something_else_than_routes_is_refused(tmp_path: Path) -> None:
    class Broken(EchoExtension):
        def routes(self, settings: Settings) -> Sequence[object]:
            return ["/echo"]

    config = tmp_path / "service.yaml"
    config.write_text("echo: {}\n")
    broken = Broken()
    settings = load_settings(config, {"BODYWORK_DATA_DIR": str(tmp_path)}, [broken])
    with pytest.raises(TypeError, match=r"extension 'echo' returned '/echo' from routes\(\)"):
        create_app(Service(settings, extensions=[broken]))
