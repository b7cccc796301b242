"""The local backend's service inventory (runner.backends.base.ServiceInventory), with real processes:
what ChatOps' ``services`` and ``delete`` ask of a backend."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from runner.backends.base import RemovedService, ServiceInventory
from runner.events import RunState
from tests.runner.builders import HTTP_SERVICE, free_port, pipeline, service, write
from tests.runner.conftest import Harness


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def test_the_local_backend_lists_and_removes_its_running_services(harness: Harness, tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    source = write(tmp_path / "repo", {
        "a.py": HTTP_SERVICE.format(answer="a", port=port_a),
        "b.py": HTTP_SERVICE.format(answer="b", port=port_b),
    })  # fmt: skip
    p = pipeline("a, b", service("a", "a.py", port_a), service("b", "b.py", port_b))
    inventory: ServiceInventory = harness.backend  # and statically: mypy checks the protocol here
    assert isinstance(harness.backend, ServiceInventory)

    async def scenario() -> None:
        assert await inventory.list_services() == set()
        assert (await harness.run_async(p, source)).state is RunState.SUCCEEDED
        assert inventory.namespace_for("test") == "test"  # an environment is its own namespace locally
        assert await inventory.list_services() == {("test", "a"), ("test", "b")}

        removed = await inventory.remove_service("test", "a")

        assert removed == RemovedService("test", "a", ())
        assert await inventory.list_services() == {("test", "b")}
        try:
            await asyncio.to_thread(_get, port_a)
            raise AssertionError("the removed service still answers")
        except OSError:
            pass
        assert await asyncio.to_thread(_get, port_b) == "b"  # the other one keeps running
        assert await inventory.remove_service("test", "a") is None  # nothing there any more
        assert await inventory.remove_service("other", "b") is None  # another environment's name
        await harness.backend.close()

    asyncio.run(scenario())
