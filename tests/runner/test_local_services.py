"""Service stages on the local backend: readiness, rollback, clean-up, ports in use."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from pathlib import Path

from runner.events import RunState, StageState
from tests.runner.builders import HTTP_SERVICE, batch, free_port, pipeline, service, write
from tests.runner.conftest import Harness


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def test_failed_new_version_is_rolled_back_and_the_old_one_keeps_answering(
    harness: Harness, tmp_path: Path
) -> None:
    port = free_port()
    v1 = write(tmp_path / "v1", {"serve.py": HTTP_SERVICE.format(answer="v1", port=port)})
    v2 = write(tmp_path / "v2", {"serve.py": "import time; print('warming up'); time.sleep(600)"})
    p = pipeline("serve", service("serve", "serve.py", port, startup=2))

    async def scenario() -> None:
        first = await harness.run_async(p, v1, "1" * 40)
        assert first.state is RunState.SUCCEEDED
        assert await asyncio.to_thread(_get, port) == "v1"

        second = await harness.run_async(p, v2, "2" * 40)

        assert second.state is RunState.FAILED
        assert second.stages["serve"].state is StageState.ROLLED_BACK
        assert second.reason == (
            f"stage serve rolled_back: service was not ready on port {port} within "
            "max_startup_time_seconds (2s); rolled back to the previous version (commit 111111111111)"
        )
        assert await asyncio.to_thread(_get, port) == "v1"
        assert harness.backend.running_services() == [("test", "serve", port, "1" * 40)]
        await harness.backend.close()

    asyncio.run(scenario())


def test_a_new_service_that_crashes_is_removed(harness: Harness, tmp_path: Path) -> None:
    port = free_port()
    source = write(tmp_path / "repo", {"serve.py": "raise SystemExit('no model found')"})
    p = pipeline("serve", service("serve", "serve.py", port, startup=5))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == (
        f"stage serve rolled_back: service exited with code 1 before it was ready on port {port}; "
        "the new version was removed (there was no previous version)"
    )
    assert harness.recorder.logs("serve") == ["no model found"]
    assert harness.backend.running_services() == []


def test_a_port_held_by_another_program_is_named_with_the_fix(harness: Harness, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        source = write(tmp_path / "repo", {"serve.py": HTTP_SERVICE.format(answer="x", port=port)})

        outcome = harness.run(pipeline("serve", service("serve", "serve.py", port)), source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == (
        f"stage serve failed: port {port} is already in use by another program; stop that program or "
        "change stages.serve.service.port"
    )


def test_services_dropped_from_the_pipeline_are_stopped(harness: Harness, tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    both = write(tmp_path / "both", {
        "a.py": HTTP_SERVICE.format(answer="a", port=port_a),
        "b.py": HTTP_SERVICE.format(answer="b", port=port_b),
    })
    only_a = write(tmp_path / "only-a", {"a.py": HTTP_SERVICE.format(answer="a2", port=port_a)})

    async def scenario() -> None:
        first = await harness.run_async(
            pipeline("a, b", service("a", "a.py", port_a), service("b", "b.py", port_b)), both
        )
        assert first.state is RunState.SUCCEEDED
        assert await asyncio.to_thread(_get, port_b) == "b"

        second = await harness.run_async(pipeline("a", service("a", "a.py", port_a)), only_a)

        assert second.state is RunState.SUCCEEDED
        assert await asyncio.to_thread(_get, port_a) == "a2"
        assert [s[1] for s in harness.backend.running_services()] == ["a"]
        try:
            await asyncio.to_thread(_get, port_b)
            raise AssertionError("the dropped service still answers")
        except OSError:
            pass
        await harness.backend.close()

    asyncio.run(scenario())


def test_a_batch_step_then_a_service_that_reads_its_artifact(harness: Harness, tmp_path: Path) -> None:
    port = free_port()
    source = write(tmp_path / "repo", {
        "train.py": """
            import os, pathlib
            pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt").write_text("model-7")
        """,
        "serve.py": HTTP_SERVICE.format(answer="unused", port=port).replace(
            'os.environ.get("ANSWER", "unused")',
            'open(os.path.join(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt")).read()',
        ),
    })
    p = pipeline("train >> serve", batch("train", "train.py"), service("serve", "serve.py", port))

    async def scenario() -> None:
        outcome = await harness.run_async(p, source)
        assert outcome.state is RunState.SUCCEEDED, outcome.reason
        assert await asyncio.to_thread(_get, port) == "model-7"
        await harness.backend.close()

    asyncio.run(scenario())


def test_tearing_down_an_environment_stops_its_services_and_deletes_its_artifacts(
    harness: Harness, tmp_path: Path
) -> None:
    port = free_port()
    source = write(tmp_path / "repo", {
        "train.py": """
            import os, pathlib
            pathlib.Path(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.txt").write_text("m")
        """,
        "serve.py": HTTP_SERVICE.format(answer="up", port=port),
    })
    p = pipeline("train >> serve", batch("train", "train.py"), service("serve", "serve.py", port))

    async def scenario() -> None:
        assert (await harness.run_async(p, source)).state is RunState.SUCCEEDED
        assert await asyncio.to_thread(_get, port) == "up"
        assert (harness.backend.artifacts_dir("test") / "model.txt").exists()

        await harness.backend.teardown("test")

        assert harness.backend.running_services() == []
        assert not harness.backend.artifacts_dir("test").exists()
        try:
            await asyncio.to_thread(_get, port)
            raise AssertionError("the torn-down service still answers")
        except OSError:
            pass

    asyncio.run(scenario())


def test_rollback_restarts_the_previous_versions_own_module(harness: Harness, tmp_path: Path) -> None:
    port = free_port()
    v1 = write(tmp_path / "v1", {"api/v1.py": HTTP_SERVICE.format(answer="v1", port=port)})
    v2 = write(tmp_path / "v2", {"api/v2.py": "raise SystemExit('broken')"})

    async def scenario() -> None:
        first = await harness.run_async(pipeline("api", service("api", "api/v1.py", port)), v1, "1" * 40)
        assert first.state is RunState.SUCCEEDED, first.reason
        second = await harness.run_async(pipeline("api", service("api", "api/v2.py", port)), v2, "2" * 40)

        assert second.stages["api"].state is StageState.ROLLED_BACK
        assert second.reason.endswith("rolled back to the previous version (commit 111111111111)")
        assert await asyncio.to_thread(_get, port) == "v1"
        await harness.backend.close()

    asyncio.run(scenario())
