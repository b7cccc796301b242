"""``services`` and ``delete`` ask the backend through its ServiceInventory capability only
(runner.backends.base), whatever the backend is called and whatever else it happens to have."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from chatops.operations import OperationError, ServiceView
from chatops.service_ops import ServiceOperations
from chatops.views import ServiceViews
from gitops.service import Service
from gitops.status import RunStatus
from gitops.store import NewRun, Store
from runner.backends.base import RemovedService, ServiceInventory

SECRET = "xoxb-not-for-slack"


class Reporter:
    def target_url(self, run_id: str) -> str:
        return f"https://bodywork.example.invalid/runs/{run_id}"


@dataclass
class StandInService:
    """What ServiceOperations reads of the service: its store, backend and run links."""

    store: Store
    backend: object
    reporter: Reporter = field(default_factory=Reporter)

    def require_store(self) -> Store:
        return self.store


@dataclass
class Inventory:
    """A backend with the capability that maps every environment to one namespace, as the Kubernetes
    backend does with a fixed ``namespace``; it records what it is asked."""

    live: set[tuple[str, str]]
    removes: dict[tuple[str, str], RemovedService | Exception | None] = field(default_factory=dict)
    failure: Exception | None = None
    asked: list[tuple[str, str]] = field(default_factory=list)
    name: str = "a-new-backend"

    def namespace_for(self, environment: str) -> str:
        return "fixed"

    async def list_services(self) -> set[tuple[str, str]]:
        if self.failure is not None:
            raise self.failure
        return self.live

    async def remove_service(self, namespace: str, name: str) -> RemovedService | None:
        self.asked.append((namespace, name))
        outcome = self.removes.get((namespace, name))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class NamedLikeKubernetes:
    """No capability, but the name and the methods the old duck typing looked for."""

    name: str = "kubernetes"
    api: object = None
    calls: list[str] = field(default_factory=list)

    def namespace_for(self, environment: str) -> str:
        self.calls.append("namespace_for")
        return "elsewhere"

    def running_services(self) -> list[tuple[str, str, int, str]]:
        self.calls.append("running_services")
        return []

    async def remove_service(self, environment: str, name: str) -> bool:
        self.calls.append("remove_service")
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """One successful deploy of production (namespace production) with the service stages serve and
    stale."""
    store = Store(tmp_path / "store.sqlite3", fsync_commits=False)
    new = NewRun("github:acme/app", "github", "refs/heads/main", "a" * 40, "production", None, False,
                 "deploy", "webhook")  # fmt: skip
    run_id = store.accept(new, []).run.id
    store.mark_running(run_id)
    store.set_pipeline(run_id, "app", [["serve", "stale"]], "production")
    for stage in ("serve", "stale"):
        store.stage_started(run_id, stage, "service", 1, 1.0)
        store.stage_finished(run_id, stage, "succeeded", 1, 1.0, 2.0, "")
    store.finish(run_id, RunStatus.SUCCEEDED, "")
    yield store
    store.close()


def operations(store: Store, backend: object) -> ServiceOperations:
    service = cast(Service, StandInService(store, backend))
    return ServiceOperations(service, ServiceViews(service, lambda text: text.replace(SECRET, "***")))


def names(found: list[ServiceView]) -> list[str]:
    return [s.name for s in found]


SERVE = ServiceView("serve", "acme/app", "production", "r1", namespace="production")


def test_a_backend_with_the_inventory_is_asked_in_its_own_namespaces(store: Store) -> None:
    backend = Inventory(live={("fixed", "serve")})
    backend.removes[("fixed", "serve")] = RemovedService("fixed", "serve", ("Service", "Deployment"))
    ops = operations(store, backend)
    assert isinstance(backend, ServiceInventory)

    [serve] = asyncio.run(ops.services(None, None))  # stale is not running any more
    answer = asyncio.run(ops.delete_service(serve))

    assert (serve.name, serve.environment, serve.namespace) == ("serve", "production", "production")
    assert backend.asked == [("fixed", "serve")]
    assert answer == "Deleted service serve in production (Deployment, Service in fixed)."


def test_what_the_runs_deployed_is_listed_when_the_backend_cannot_say_now(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Inventory(live=set(), failure=ConnectionError(f"cluster unreachable with {SECRET}"))

    listed = asyncio.run(operations(store, backend).services(None, None))

    assert names(list(listed)) == ["serve", "stale"]
    [record] = [r for r in caplog.records if r.name == "chatops.service_ops"]
    assert "could not list its services (cluster unreachable with ***)" in record.getMessage()
    assert SECRET not in caplog.text


def test_a_failed_removal_is_a_masked_answer_and_nothing_there_says_where_it_looked(store: Store) -> None:
    backend = Inventory(live={("fixed", "serve")})
    backend.removes[("fixed", "serve")] = PermissionError(f"forbidden for token {SECRET}")
    ops = operations(store, backend)

    with pytest.raises(OperationError) as refused:
        asyncio.run(ops.delete_service(SERVE))
    stale = ServiceView("stale", "acme/app", "production", "r1", namespace="production")
    with pytest.raises(OperationError) as missing:
        asyncio.run(ops.delete_service(stale))

    assert str(refused.value) == "Could not delete `serve`: forbidden for token ***"
    assert str(missing.value) == "`stale` is not running in `production` (namespace `fixed`) any more."


def test_a_backend_without_the_inventory_cannot_delete_whatever_its_name_and_methods(store: Store) -> None:
    backend = NamedLikeKubernetes()
    ops = operations(store, backend)
    assert not isinstance(backend, ServiceInventory)

    with pytest.raises(OperationError) as refused:
        asyncio.run(ops.delete_service(SERVE))
    listed = asyncio.run(ops.services(None, None))

    assert str(refused.value) == "This backend cannot delete services."
    assert names(list(listed)) == ["serve", "stale"]  # what the runs deployed, in their namespaces
    assert {s.namespace for s in listed} == {"production"}
    assert backend.calls == []  # neither its name nor its look-alike methods were used
