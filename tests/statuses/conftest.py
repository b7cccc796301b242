"""Fixtures for commit-status tests: the fake APIs, fake time, and a publisher wired to them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

# Imported, they are this folder's fixtures (tests/gitops/conftest.py does the same).
from tests.fakes.fixtures import fake_github, fake_gitlab, fake_time

__all__ = ["fake_github", "fake_gitlab", "fake_time", "run"]

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 8.0) -> T:
    """Runs one async scenario in a fresh loop, failing it (not hanging) after ``timeout`` s."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())
