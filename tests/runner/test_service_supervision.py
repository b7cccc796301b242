"""Ports a service really owns, and services that die after they were ready (restarted with back-off)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.local import LocalBackend
from runner.backends.local_services import RestartPolicy
from runner.console import ConsoleReporter
from runner.events import RunState, ServiceExited, ServiceRestarted, StageState
from tests.runner.builders import HTTP_SERVICE, free_port, pipeline, service, write
from tests.runner.conftest import Harness, Recorder


def _get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


@pytest.mark.parametrize("dag", ["a, b", "a >> b"])
def test_two_services_on_one_port_fail_before_either_starts(
    harness: Harness, tmp_path: Path, dag: str
) -> None:
    port = free_port()
    started = tmp_path / "started"
    body = f"open({str(started)!r}, 'a').write('x')\n" + HTTP_SERVICE.format(answer="x", port=port)
    source = write(tmp_path / "repo", {"a.py": body, "b.py": body})
    p = pipeline(dag, service("a", "a.py", port), service("b", "b.py", port))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == (
        f"could not prepare the environment: stages a and b both declare port {port}: on Kubernetes "
        "each service has an address of its own, but locally they share this machine's, so give each "
        "a port of its own (stages.b.service.port); other stages still reach them by stage name"
    )
    assert not started.exists()


def test_a_port_held_by_a_service_of_another_pipeline_names_that_stage(
    harness: Harness, tmp_path: Path
) -> None:
    port = free_port()
    source = write(tmp_path / "repo", {"serve.py": HTTP_SERVICE.format(answer="x", port=port)})

    async def scenario() -> None:
        one = pipeline("api", service("api", "serve.py", port), name="one")
        two = pipeline("web", service("web", "serve.py", port), name="two")
        first = await harness.run_async(one, source)
        assert first.state is RunState.SUCCEEDED, first.reason
        second = await harness.run_async(two, source)
        await harness.backend.close()
        assert second.reason == (
            f"stage web failed: port {port} is held by service stage api (environment one, commit "
            f"aaaaaaaaaaaa), which this backend runs; locally every service needs a port of its own: "
            "change stages.web.service.port"
        )

    asyncio.run(scenario())


@pytest.fixture
def squatter_pid_file(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "squatter.pid"
    yield pid_file
    if pid_file.exists():
        with_pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(with_pid, signal.SIGKILL)


def test_readiness_never_accepts_a_port_that_another_process_holds(
    harness: Harness, tmp_path: Path, squatter_pid_file: Path
) -> None:
    # The stage starts a detached process (its own session, so not the stage's) that takes the port,
    # then never listens itself, as a second service of one port did when it died with EADDRINUSE.
    port = free_port()
    squatter = HTTP_SERVICE.format(answer="squatter", port=port)
    source = write(tmp_path / "repo", {
        "squatter.py": squatter,
        "serve.py": f"""
            import subprocess, sys, time
            child = subprocess.Popen([sys.executable, "squatter.py"], start_new_session=True)
            open({str(squatter_pid_file)!r}, "w").write(str(child.pid))
            time.sleep(600)
        """,
    })

    outcome = harness.run(pipeline("serve", service("serve", "serve.py", port, startup=3)), source)

    assert outcome.state is RunState.FAILED
    assert outcome.stages["serve"].state is StageState.ROLLED_BACK
    assert outcome.reason == (
        f"stage serve rolled_back: service was not ready on port {port} (it answers, but from a "
        "process that is not this service) within max_startup_time_seconds (3s); the new version was "
        "removed (there was no previous version)"
    )


CRASHY_SERVICE = """
import http.server, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(3)
        self.send_response(200); self.end_headers(); self.wfile.write(b"alive")
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
"""


def test_a_service_that_dies_after_it_was_ready_is_reported_and_restarted(
    tmp_path: Path, venv_cache: Path
) -> None:
    policy = RestartPolicy(initial_seconds=0.2, max_seconds=0.4, reset_after_seconds=600)
    backend = LocalBackend(cache_dir=venv_cache, state_dir=tmp_path / "state", restart_policy=policy)
    recorder = Recorder()
    harness = Harness(backend, recorder)
    port = free_port()
    source = write(tmp_path / "repo", {"serve.py": CRASHY_SERVICE.format(port=port)})

    async def crash_and_wait_for_restart(number: int) -> ServiceRestarted:
        with contextlib.suppress(OSError):  # the connection dies with the process
            await asyncio.to_thread(_get, port, "/crash")
        while len(recorder.of(ServiceRestarted)) < number:
            await asyncio.sleep(0.05)
        return recorder.of(ServiceRestarted)[-1]

    async def scenario() -> None:
        outcome = await harness.run_async(pipeline("api", service("api", "serve.py", port)), source)
        assert outcome.state is RunState.SUCCEEDED, outcome.reason
        for number in (1, 2, 3):
            restarted = await asyncio.wait_for(crash_and_wait_for_restart(number), 30)
            assert (restarted.restarts, restarted.ready) == (number, True)
            assert await asyncio.to_thread(_get, port) == "alive"
        await backend.close()

    asyncio.run(scenario())
    exits = recorder.of(ServiceExited)
    assert [(e.stage, e.exit_code, e.restarts, e.restart_in) for e in exits] == [
        ("api", 3, 1, 0.2), ("api", 3, 2, 0.4), ("api", 3, 3, 0.4),
    ]
    assert exits[0].last_lines == ("serving", "crashing on request")
    assert backend.running_services() == []


def test_the_console_shows_a_service_exit_and_its_restart() -> None:
    stream = io.StringIO()
    console = ConsoleReporter(stream)
    console(ServiceExited("r1", "api", 3, 1, 10.0, ("serving", "crashing on request")))
    console(ServiceRestarted("r1", "api", 1, True))
    console(ServiceRestarted("r1", "api", 2, False, "service exited with code 3 before it was ready"))

    assert stream.getvalue().splitlines() == [
        "  api: service exited with code 3; restart 1 in 10s; its last lines:",
        "  api ! serving",
        "  api ! crashing on request",
        "  api: service restarted (restart 1), serving again",
        "  api: service restarted (restart 2), restarted but not ready: service exited with code 3 "
        "before it was ready",
    ]
