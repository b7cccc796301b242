"""The scheduler's Lease on the real API server: one holder among candidates, renewal, release and
take-over; optimistic concurrency settles a race. Takeover time is the candidate's own (fake) clock,
so nothing sleeps."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from gitops.schedules.config import ScheduleSettings
from gitops.schedules.leader import lead_while_holding
from gitops.schedules.service import _lease
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.lease import LeaseLock
from tests.schedules.harness import FiringRecorder

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


class Rounds:
    """The leader loops' sleep: each loop waits for the test's next round, never for the clock."""

    def __init__(self) -> None:
        self.round = 0
        self.changed = asyncio.Condition()

    async def sleep(self, seconds: float) -> None:
        async with self.changed:
            start = self.round
            await self.changed.wait_for(lambda: self.round > start)

    async def next(self) -> None:
        async with self.changed:
            self.round += 1
            self.changed.notify_all()


async def until(check: Callable[[], bool], rounds: Rounds | None = None) -> None:
    # Bounded by count, not by a deadline: on a loaded machine each API round trip may take a while.
    for _ in range(3000):
        if check():
            return
        if rounds is not None:
            await rounds.next()
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_two_services_in_one_process_are_two_candidates(
    lease_namespace: tuple[KubeApi, str], kube_cluster: KubeCluster
) -> None:
    # Same hostname and pid, as two replicas on the host's network (pid 1 each) would have: they must
    # not take each other's hold for their own, or both fire.
    _, namespace = lease_namespace
    settings = ScheduleSettings(lease="true", lease_namespace=namespace)
    options = {"kubeconfig": kube_cluster.kubeconfig}
    first, second = (_lease(settings, "kubernetes", options) for _ in range(2))
    assert isinstance(first, LeaseLock) and isinstance(second, LeaseLock)
    assert first.identity != second.identity
    assert first.try_hold() is True
    assert second.try_hold() is False
    assert first.try_hold() is True  # renews


def test_of_two_replicas_one_fires_and_the_other_takes_over_when_it_stops(
    lease_namespace: tuple[KubeApi, str], kube_cluster: KubeCluster
) -> None:
    _, namespace = lease_namespace
    settings = ScheduleSettings(lease="true", lease_namespace=namespace)
    assert _lease(ScheduleSettings(lease="false"), "kubernetes", {"in_cluster": True}) is None
    assert _lease(ScheduleSettings(lease="auto"), "kubernetes", {"kubeconfig": "x"}) is None  # not in a pod
    assert _lease(ScheduleSettings(lease="auto"), "local", {}) is None

    async def scenario() -> None:
        rounds = Rounds()
        locks = [_lease(settings, "kubernetes", {"kubeconfig": kube_cluster.kubeconfig}) for _ in range(2)]
        assert all(isinstance(lock, LeaseLock) for lock in locks)
        replicas = [FiringRecorder(), FiringRecorder()]
        tasks = [
            asyncio.create_task(lead_while_holding(lock, replica, 5.0, rounds.sleep))  # type: ignore[arg-type]
            for lock, replica in zip(locks, replicas, strict=True)
        ]
        await until(
            lambda: sum("start" in r.calls for r in replicas) == 1 and rounds.changed.locked() is False
        )
        await rounds.next()
        await rounds.next()
        assert sorted(r.calls.count("start") for r in replicas) == [0, 1]  # exactly one fires
        leader = next(i for i, r in enumerate(replicas) if "start" in r.calls)
        tasks[leader].cancel()  # it stops (a rolling update): it stops firing and releases the Lease
        await asyncio.gather(tasks[leader], return_exceptions=True)
        assert replicas[leader].calls[-1] == "stop"
        follower = replicas[1 - leader]
        # The follower may be in the middle of an API call when a round passes: keep the rounds coming
        # until it has taken over, rather than a fixed number of them.
        await until(lambda: "start" in follower.calls, rounds)
        tasks[1 - leader].cancel()
        await asyncio.gather(tasks[1 - leader], return_exceptions=True)

    asyncio.run(scenario())
