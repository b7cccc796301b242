"""A Kubernetes Lease (``coordination.k8s.io/v1``) as a leader lock: of the processes that try to hold
it, one at a time does.

The holder renews the Lease every few seconds. Another candidate takes it over only when the Lease's
record (holder, renew time, transitions) has not changed for ``leaseDurationSeconds`` *as measured on
the candidate's own monotonic clock*, as client-go's leader election does, so clocks that disagree
between nodes cannot make two holders. Every write carries the ``resourceVersion`` it read: of two
candidates writing at once the API server accepts one and answers 409 Conflict to the other.

:func:`decide` is pure (the table-driven tests cover it); :class:`LeaseLock` does the API calls and
is blocking (call it in a thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from runner.backends.kubernetes.api import KubeApi, Obj
from runner.backends.kubernetes.errors import Conflict, KubeError

log = logging.getLogger(__name__)

class Step(StrEnum):
    CREATE = "create"
    RENEW = "renew"
    TAKE_OVER = "take over"
    WAIT = "wait"
    """Someone else holds it and has renewed it recently enough."""


@dataclass(frozen=True)
class Observed:
    """The Lease record a candidate last saw, and when it first saw it (its own monotonic clock)."""

    record: tuple[Any, ...]
    since: float


def record_of(spec: Obj) -> tuple[Any, ...]:
    return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))


def decide(lease: Obj | None, identity: str, observed: Observed | None, now: float, duration: int) -> Step:
    """What a candidate named `identity` does with `lease` (None: there is none) at monotonic `now`."""
    if lease is None:
        return Step.CREATE
    spec = lease.get("spec", {})
    holder = spec.get("holderIdentity")
    if holder == identity:
        return Step.RENEW
    if not holder:
        return Step.TAKE_OVER  # released
    unchanged = observed is not None and observed.record == record_of(spec)
    held_for = spec.get("leaseDurationSeconds") or duration
    if unchanged and observed is not None and now - observed.since > held_for:
        return Step.TAKE_OVER
    return Step.WAIT


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """One candidate's view of the Lease `name` in `namespace`."""

    def __init__(
        self,
        api: KubeApi,
        name: str,
        namespace: str,
        identity: str,
        duration: int = 15,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self.clock = clock
        self._observed: Observed | None = None

    def _spec(self, transitions: int, acquired: str | None) -> Obj:
        now = _micro_time(datetime.now(UTC))
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: Obj | None) -> None:
        record = record_of(lease.get("spec", {})) if lease else ()
        if self._observed is None or self._observed.record != record:
            self._observed = Observed(record, self.clock())

    def try_hold(self) -> bool:
        """Creates, renews or takes over the Lease; True while this candidate holds it."""
        try:
            lease = self.api.find("Lease", self.name, self.namespace)
            self._observe(lease)
            step = decide(lease, self.identity, self._observed, self.clock(), self.duration)
            if step is Step.WAIT:
                return False
            self._write(step, lease)
            return True
        except Conflict:
            return False  # another candidate wrote first
        except KubeError as error:
            log.warning("the scheduler lease %s/%s: %s", self.namespace, self.name, error)
            return False

    def _write(self, step: Step, lease: Obj | None) -> None:
        if step is Step.CREATE or lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, None),
            }
            created = self.api.create("Lease", body, self.namespace)
            self._observe(created)
            return
        spec = lease.get("spec", {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if step is Step.TAKE_OVER:
            lease["spec"] = self._spec(transitions + 1, None)
        else:
            lease["spec"] = self._spec(transitions, spec.get("acquireTime"))
        written = self.api.replace("Lease", self.name, lease, self.namespace)
        self._observe(written)

    def release(self) -> None:
        """Gives the Lease up at once (on shutdown), so that another candidate need not wait."""
        try:
            lease = self.api.find("Lease", self.name, self.namespace)
            if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["leaseDurationSeconds"] = 1
            self.api.replace("Lease", self.name, lease, self.namespace)
        except KubeError as error:
            log.warning("could not release the scheduler lease %s/%s: %s", self.namespace, self.name, error)


def lease_lock(
    name: str,
    namespace: str,
    identity: str,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    duration: int = 15,
) -> LeaseLock:
    """A lock on the Lease `name`, with credentials as the Kubernetes backend loads them."""
    api = KubeApi(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
    return LeaseLock(api, name, namespace, identity, duration)
