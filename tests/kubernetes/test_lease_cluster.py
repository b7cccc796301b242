"""The scheduler's Lease on the real API server: one holder among candidates, renewal, release and
take-over; optimistic concurrency settles a race. Takeover time is the candidate's own (fake) clock,
so nothing sleeps."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.lease import LeaseLock

from .conftest import KubeCluster

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lease_namespace(kube_cluster: KubeCluster) -> Iterator[tuple[KubeApi, str]]:
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    namespace = f"bw-lease-{uuid.uuid4().hex[:8]}"
    api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        yield api, namespace
    finally:
        api.delete("Namespace", namespace)
        api.close()


def candidate(api: KubeApi, namespace: str, name: str, clock: Clock) -> LeaseLock:
    return LeaseLock(api, "bodywork-gitops-scheduler", namespace, name, duration=15, clock=clock)


def holder(api: KubeApi, namespace: str) -> tuple[str | None, int]:
    spec = api.get("Lease", "bodywork-gitops-scheduler", namespace)["spec"]
    return spec.get("holderIdentity"), spec.get("leaseTransitions", 0)


def test_one_holder_renewal_release_and_takeover(lease_namespace: tuple[KubeApi, str]) -> None:
    api, namespace = lease_namespace
    clock_a, clock_b = Clock(), Clock()
    a = candidate(api, namespace, "replica-a", clock_a)
    b = candidate(api, namespace, "replica-b", clock_b)

    assert a.try_hold() is True  # creates the Lease
    assert b.try_hold() is False
    assert holder(api, namespace) == ("replica-a", 0)
    clock_b.now += 60
    assert a.try_hold() is True  # renews: the record changes, so b's wait starts again
    assert b.try_hold() is False
    clock_b.now += 10
    assert b.try_hold() is False  # 10 s < 15 s since it saw the renewal

    a.release()
    assert holder(api, namespace) == (None, 0)
    assert b.try_hold() is True  # a released: no waiting
    assert holder(api, namespace) == ("replica-b", 1)
    assert a.try_hold() is False

    # b stops renewing (it died): a takes over once the record has not changed for 15 s on a's clock
    clock_a.now += 14
    assert a.try_hold() is False
    clock_a.now += 2
    assert a.try_hold() is True
    assert holder(api, namespace) == ("replica-a", 2)
    assert b.try_hold() is False  # b comes back: a holds it


def test_of_candidates_racing_for_a_new_lease_exactly_one_holds_it(
    lease_namespace: tuple[KubeApi, str],
) -> None:
    api, namespace = lease_namespace
    candidates = [candidate(api, namespace, f"replica-{n}", Clock()) for n in range(4)]
    results: dict[str, bool] = {}
    start = threading.Barrier(len(candidates))

    def race(lock: LeaseLock) -> None:
        start.wait()
        results[lock.identity] = lock.try_hold()

    threads = [threading.Thread(target=race, args=(lock,)) for lock in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, held in results.items() if held]
    assert len(winners) == 1
    assert holder(api, namespace) == (winners[0], 0)
