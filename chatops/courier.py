"""Carries Slack calls: one shared rate limiter, and retries only where a retry cannot duplicate.

Slack answers 429 with ``Retry-After`` when a method's rate is exceeded; posting is limited to about one
message per second per channel. :class:`RateLimiter` holds every call back until the latest
``Retry-After`` has passed and paces calls per key (a channel). :class:`Courier` runs a blocking
:class:`~chatops.slack_api.SlackApi` call in a thread of its own, so Slack being slow never holds up the
event loop or the service's other threads, and retries it after :class:`RateLimited` and
:class:`NotSent` (never applied), after :class:`MaybeApplied` only when the call is idempotent
(``chat.update``), and never after :class:`Refused`. Clock and sleep are injected: tests run on fake time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from chatops.slack_api import MaybeApplied, NotSent, RateLimited, Refused, SlackCallError

log = logging.getLogger(__name__)
T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    def __init__(
        self, per_key_interval: float = 1.0, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ):
        self.per_key_interval = per_key_interval
        self.clock = clock
        self.sleep = sleep
        self.blocked_until = 0.0
        self._next: dict[str, float] = {}

    def block(self, seconds: float) -> None:
        """Every call waits `seconds` from now (a 429's ``Retry-After``)."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    async def acquire(self, key: str) -> None:
        """Waits for the global block and this key's pace, then takes the key's next slot."""
        while True:
            now = self.clock()
            ready_at = max(self.blocked_until, self._next.get(key, 0.0))
            if ready_at <= now:
                self._next[key] = now + self.per_key_interval
                return
            await self.sleep(ready_at - now)


class GaveUp(Exception):
    """A Slack call was dropped; `error` says why. The caller logs it and carries on."""

    def __init__(self, error: SlackCallError) -> None:
        super().__init__(str(error))
        self.error = error


class Courier:
    def __init__(
        self,
        limiter: RateLimiter,
        attempts: int = 6,
        backoff: float = 1.0,
        threads: int = 4,
    ) -> None:
        self.limiter = limiter
        self.attempts = attempts
        self.backoff = backoff
        # Threads of Slack's own: a hanging Slack cannot use up the default executor, which the
        # service's Git fetches and checkouts use.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slack")

    async def deliver(self, key: str, call: Callable[[], T], *, idempotent: bool) -> T:
        """The call's result; raises :class:`GaveUp` when it failed for good or may have been applied."""
        delay = self.backoff
        last: SlackCallError | None = None
        for _attempt in range(self.attempts):
            await self.limiter.acquire(key)
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, call)
            except RateLimited as error:
                self.limiter.block(error.retry_after)
                last = error
                continue
            except Refused as error:
                raise GaveUp(error) from None
            except MaybeApplied as error:
                if not idempotent:
                    raise GaveUp(error) from None
                last = error
            except NotSent as error:
                last = error
            await self.limiter.sleep(delay)
            delay = min(delay * 2, 60.0)
        assert last is not None
        raise GaveUp(last)

    def close(self) -> None:
        """Lets calls in flight finish in their threads; takes no new ones."""
        self._executor.shutdown(wait=False, cancel_futures=True)
