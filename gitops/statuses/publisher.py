"""The worker that sends commit statuses: one queue, one writer, coalescing, pacing and retries.

``publish`` never blocks and never raises: a status that cannot be sent is logged and kept in
``failures``, because reporting must never fail a pipeline. With a :class:`StatusJournal` (the
service's store) every status waits durably until it is delivered: it is retried for as long as it
is the latest of its commit and context (up to ``max_age_seconds``), and after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

from gitops.statuses import github, gitlab
from gitops.statuses.api import (
    ApiRequest,
    ApiResponse,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    excerpt,
    rate_limit_reset,
)
from gitops.statuses.http import HttpClient, HttpxClient, TransportFailure
from gitops.statuses.model import CommitStatus
from gitops.statuses.records import Delivery, Failure, PublisherSettings, StatusJournal

log = logging.getLogger(__name__)

StatusKey = tuple[str, str, str, str, str]


class Provider(Protocol):
    """What ``github`` and ``gitlab`` provide: pure request building and answer classification."""

    def build_request(self, status: CommitStatus, user_agent: str) -> ApiRequest: ...

    def classify(self, response: ApiResponse, now: float, secrets: tuple[str, ...] = ()) -> Outcome: ...


_PROVIDERS: dict[str, Provider] = {"github": github, "gitlab": gitlab}

DEFAULT_MIN_INTERVAL_SECONDS = {"github": 1.0, "gitlab": 0.2}
"""GitHub asks for at least one second between content-creating calls; GitLab.com allows far more."""


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class StatusPublisher:
    """Use ``await start()`` in a running loop, ``publish()`` from anywhere, ``await stop()``."""

    def __init__(
        self,
        settings: PublisherSettings,
        http_client: HttpClient,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        journal: StatusJournal | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self._http = http_client
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._jitter = jitter
        self._pending: dict[StatusKey, CommitStatus] = {}  # insertion-ordered: first come, first sent
        self._queued_at: dict[StatusKey, float] = {}  # when the latest status of a key was queued
        self._in_flight: CommitStatus | None = None
        self._next_call_at: dict[str, float] = {}
        # Bounded: a long-lived service keeps the newest only (each holds its token).
        self._delivered: deque[Delivery] = deque(maxlen=settings.history)
        self._failures: deque[Failure] = deque(maxlen=settings.history)
        self._superseded: deque[CommitStatus] = deque(maxlen=settings.history)
        self.counts = {"delivered": 0, "failed": 0, "superseded": 0, "duplicates_avoided": 0}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self.on_call: Callable[[str, bool], None] | None = None
        """Told of each API call: the provider, and whether the status was delivered (metrics)."""
        self._stopping = False
        self._stopped = False

    # What tests and the service can inspect.

    @property
    def delivered(self) -> tuple[Delivery, ...]:
        return tuple(self._delivered)

    @property
    def failures(self) -> tuple[Failure, ...]:
        return tuple(self._failures)

    @property
    def superseded(self) -> tuple[CommitStatus, ...]:
        """Statuses not sent because a newer one for the same commit and context replaced them."""
        return tuple(self._superseded)

    @property
    def queued(self) -> int:
        return len(self._pending) + (self._in_flight is not None)

    # Life cycle.

    async def start(self) -> None:
        if self._worker is not None:
            return
        if self._stopped:
            raise RuntimeError("StatusPublisher was stopped: create a new one with create_publisher().")
        self._loop = asyncio.get_running_loop()
        for status in self.journal.pending() if self.journal is not None else ():
            self._enqueue(status, journaled=True)  # what a previous process left undelivered
        self._worker = asyncio.create_task(self._run(), name="commit-status-publisher")

    async def stop(self, timeout: float = 10.0) -> None:
        """Sends what is queued for at most ``timeout`` seconds; what is left becomes a failure."""
        if self._stopped:
            return
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout)
            except TimeoutError:
                self._worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker
        self._stopped = True
        reason = f"not sent: the publisher stopped (stop timeout {timeout:g} s)"
        if self.journal is not None:
            reason += "; kept in the journal, sent after the next start"
        if self._in_flight is not None:
            self._fail(self._in_flight, reason, attempts=0)
            self._in_flight = None
        for status in self._pending.values():
            self._fail(status, reason, attempts=0)
        self._pending.clear()
        self._idle.set()
        await self._http.aclose()

    async def flush(self, timeout: float) -> bool:
        """Waits until nothing is queued or in flight; ``False`` if that took over ``timeout`` s."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> StatusPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def publish(self, status: CommitStatus) -> None:
        """Queues ``status``; safe from any thread; never blocks, never raises."""
        try:
            loop = self._loop
            if loop is not None and not self._stopped:
                try:
                    running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is not loop:
                    loop.call_soon_threadsafe(self._enqueue, status)
                    return
            self._enqueue(status)
        except Exception as error:  # reporting must never fail the caller
            self._fail(status, f"not queued: {type(error).__name__}: {error}", attempts=0)

    # The worker.

    def _enqueue(self, status: CommitStatus, journaled: bool = False) -> None:
        if self.journal is not None and not journaled:
            self.journal.record(status)  # durable first: also kept when it is not sent now
        if self._stopped:
            self._fail(status, "not sent: the publisher is stopped", attempts=0)
            return
        key = status.key
        previous = self._pending.get(key)
        if previous is not None:
            self._supersede(previous)  # keeps its place in the queue, with the newer content
        elif len(self._pending) >= self.settings.max_queued:
            self._fail(status, f"not sent: {self.settings.max_queued} statuses already queued", 0)
            return
        self._pending[key] = status
        self._queued_at[key] = self._clock()
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._pending))
            status = self._pending.pop(key)
            self._in_flight = status
            try:
                await self._deliver(status)
            except Exception as error:
                log.exception("Commit status %s: unexpected error", status.short_label)
                reason = excerpt(f"{type(error).__name__}: {error}", (status.token,))
                self._fail(status, f"not sent: {reason}", attempts=0)
            self._in_flight = None

    async def _deliver(self, status: CommitStatus) -> None:
        provider = _PROVIDERS[status.provider]
        try:
            request = provider.build_request(status, self.settings.user_agent)
        except ValueError as error:
            self._fail(status, str(error), attempts=0, outcome="rejected")
            return
        maybe_applied = False
        for attempt in itertools.count(1):
            await self._pace(request.host)
            if maybe_applied and await self._was_applied(status):
                self._delivered_now(status, attempt - 1, already_applied=True)
                return
            outcome, maybe_applied = await self._call(provider, status, request)
            if isinstance(outcome, Delivered):
                self._delivered_now(status, attempt, outcome.already_applied)
                return
            if isinstance(outcome, Rejected):
                self._fail(status, f"rejected, not retried: {outcome.reason}", attempt, "rejected")
                return
            delay = outcome.delay if outcome.delay is not None else self._backoff(attempt)
            if (why := self._give_up(status, attempt, delay, outcome)) is not None:
                self._fail(status, why, attempt, "expired")
                return
            log.info(
                "Commit status %s: attempt %d failed (%s); retrying in %.2f s",
                status.short_label, attempt, outcome.reason, delay,
            )
            await self._sleep(delay)
            if status.key in self._pending:
                self._supersede(status)
                log.debug("Commit status %s superseded while waiting to retry", status.short_label)
                return

    async def _call(
        self, provider: Provider, status: CommitStatus, request: ApiRequest
    ) -> tuple[Outcome, bool]:
        """One call: its outcome, and whether it may have been applied though no answer came."""
        response: ApiResponse | None = None
        maybe_applied = False
        try:
            response = await self._http.send(request)
        except TransportFailure as error:
            outcome: Outcome = Retry(excerpt(str(error), (status.token,)))
            maybe_applied = error.maybe_applied
        else:
            outcome = provider.classify(response, self._wall_clock(), (status.token,))
        self._after_call(status, request.host, response)
        if self.on_call is not None:
            self.on_call(status.provider, isinstance(outcome, Delivered))
        return outcome, maybe_applied

    async def _was_applied(self, status: CommitStatus) -> bool:
        """After a call that timed out: whether the provider shows the status already, so that a
        retry does not post it twice (GitHub lists statuses; GitLab refuses a repeated state)."""
        if status.provider != "github":
            return False
        check = github.build_check(status, self.settings.user_agent)
        try:
            response = await self._http.send(check)
        except TransportFailure:
            return False
        self._after_call(status, check.host, response)
        if github.already_applied(response, status):
            self.counts["duplicates_avoided"] += 1
            return True
        return False

    def _give_up(self, status: CommitStatus, attempt: int, delay: float, outcome: Retry) -> str | None:
        """Why a status that failed `attempt` times is not retried after `delay`, or None."""
        limit = self.settings.max_attempts
        if limit is not None and attempt >= max(1, limit):
            return f"gave up after {attempt} attempts: {outcome.reason}"
        if delay > self.settings.max_retry_wait_seconds:
            return (
                f"gave up: asked to wait {delay:.0f} s, more than max_retry_wait_seconds "
                f"({self.settings.max_retry_wait_seconds:g}): {outcome.reason}"
            )
        age = self._clock() + delay - self._queued_at.get(status.key, self._clock())
        if age > self.settings.max_age_seconds:
            return (
                f"gave up after {attempt} attempts in {age:.0f} s (max_age_seconds "
                f"{self.settings.max_age_seconds:g}): {outcome.reason}"
            )
        return None

    def _delivered_now(self, status: CommitStatus, attempts: int, already_applied: bool) -> None:
        self._delivered.append(Delivery(status, attempts, already_applied))
        self.counts["delivered"] += 1
        self._forget(status)
        if self.journal is not None:
            self.journal.settle(status, "delivered")
        log.debug("Commit status %s sent", status.short_label)

    def _supersede(self, status: CommitStatus) -> None:
        self._superseded.append(status)
        self.counts["superseded"] += 1

    def _forget(self, status: CommitStatus) -> None:
        if status.key not in self._pending:
            self._queued_at.pop(status.key, None)

    def _backoff(self, attempt: int) -> float:
        step = self.settings.backoff_base_seconds * 2.0 ** (attempt - 1)
        step = min(step, self.settings.backoff_max_seconds)
        return step * (0.5 + 0.5 * self._jitter())  # jitter: between half and all of the step

    def _min_interval(self, provider: str) -> float:
        if self.settings.min_interval_seconds is not None:
            return self.settings.min_interval_seconds
        return DEFAULT_MIN_INTERVAL_SECONDS[provider]

    async def _pace(self, host: str) -> None:
        wait = self._next_call_at.get(host, float("-inf")) - self._clock()
        if wait > 0:
            await self._sleep(min(wait, self.settings.max_retry_wait_seconds))

    def _after_call(self, status: CommitStatus, host: str, response: ApiResponse | None) -> None:
        next_at = self._clock() + self._min_interval(status.provider)
        if response is not None and 200 <= response.status_code < 300:
            # The call went through but used the last of the quota: wait for the reset next time.
            reset = rate_limit_reset(response, self._wall_clock())
            if reset is not None:
                next_at = max(next_at, self._clock() + reset)
        self._next_call_at[host] = next_at

    def _fail(self, status: CommitStatus, reason: str, attempts: int, outcome: str = "") -> None:
        """Records a status not delivered; with an `outcome` it is settled for good (not resent)."""
        reason = excerpt(reason, (status.token,), limit=500)
        self._failures.append(Failure(status, reason, attempts))
        self.counts["failed"] += 1
        if outcome:
            self._forget(status)
            if self.journal is not None:
                self.journal.settle(status, outcome, reason)
        log.warning("Commit status %s not delivered: %s", status.short_label, reason)


def create_publisher(
    *,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
    http_client: HttpClient | None = None,
    journal: StatusJournal | None = None,
    **settings: Any,
) -> StatusPublisher:
    """A publisher with an httpx client; `settings` are :class:`PublisherSettings` fields.

    ``clock``, ``wall_clock``, ``sleep`` and ``jitter`` are for tests (``clock`` paces calls and ages
    statuses, ``wall_clock`` reads epoch rate-limit resets)."""
    values = PublisherSettings(**settings)
    client = http_client if http_client is not None else HttpxClient(values.request_timeout_seconds)
    return StatusPublisher(
        values, client, clock=clock, wall_clock=wall_clock, sleep=sleep, jitter=jitter, journal=journal
    )
