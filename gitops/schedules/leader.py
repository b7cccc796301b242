"""Which replica fires the schedules: exactly one.

Every replica registers and removes schedules (in the store) as its runs deploy and tear down; only
the leader arms timers and fires. With a Kubernetes Lease (``schedules.lease`` in the service config,
on by default in a cluster) the replica holding the Lease leads, re-reading the store every period so
that schedules registered by another replica are armed; without it, the process leads alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class Lock(Protocol):
    """A leader lock; blocking calls (:class:`runner.backends.kubernetes.lease.LeaseLock`)."""

    def try_hold(self) -> bool: ...

    def release(self) -> None: ...


class Follower(Protocol):
    """What the leader does: start, keep in step with the store, stop."""

    def start_firing(self) -> None: ...

    def reconcile(self) -> None: ...

    def stop_firing(self) -> None: ...


async def lead_alone(scheduler: Follower) -> None:
    """One process: it leads from the start until cancelled."""
    scheduler.start_firing()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.stop_firing()


async def lead_while_holding(
    lock: Lock, scheduler: Follower, period: float, sleep: Sleep = asyncio.sleep
) -> None:
    """Tries to hold `lock` every `period` seconds; fires while it holds it. Until cancelled, when it
    stops firing and releases the lock so that another replica takes over at once."""
    leading = False
    try:
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(lock.try_hold))
            try:
                holds = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # Stopped while a renewal is on the wire: let it finish, or it could take the Lease
                # again after our release and keep the other replicas waiting for it to expire.
                with contextlib.suppress(Exception):
                    leading = await attempt or leading
                raise
            if holds and not leading:
                log.info("this replica now fires the schedules (it holds the lease)")
                scheduler.start_firing()
            elif leading and not holds:
                log.warning("this replica lost the scheduler lease; another one fires the schedules")
                scheduler.stop_firing()
            elif holds:
                scheduler.reconcile()
            leading = holds
            await sleep(period)
    finally:
        if leading:
            scheduler.stop_firing()
            await asyncio.to_thread(lock.release)
