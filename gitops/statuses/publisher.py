"""The worker that sends commit statuses: one queue, one writer, coalescing, pacing and retries.

``publish`` never blocks and never raises: a status that cannot be sent is logged and kept in
``failures``, because reporting must never fail a pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

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

log = logging.getLogger(__name__)

StatusKey = tuple[str, str, str, str, str]


class Provider(Protocol):
    """What ``github`` and ``gitlab`` provide: pure request building and answer classification."""

    def build_request(self, status: CommitStatus, user_agent: str) -> ApiRequest: ...

    def classify(self, response: ApiResponse, now: float, secrets: tuple[str, ...] = ()) -> Outcome: ...


_PROVIDERS: dict[str, Provider] = {"github": github, "gitlab": gitlab}

DEFAULT_MIN_INTERVAL_SECONDS = {"github": 1.0, "gitlab": 0.2}
"""GitHub asks for at least one second between content-creating calls; GitLab.com allows far more."""


@dataclass(frozen=True)
class PublisherSettings:
    min_interval_seconds: float | None = None
    """Seconds between two calls to the same host; ``None``: 1.0 for GitHub, 0.2 for GitLab."""
    max_attempts: int = 5
    """Calls per status before giving up, rate-limited ones included."""
    backoff_base_seconds: float = 1.0
    """First exponential backoff (5xx, connection errors, rate limits without a reset header)."""
    backoff_max_seconds: float = 60.0
    """Cap of one exponential backoff step, before jitter."""
    max_retry_wait_seconds: float = 300.0
    """A provider that asks for a longer wait (``Retry-After``, a rate-limit reset) gets no retry."""
    request_timeout_seconds: float = 10.0
    """Connect, read and write timeout of one call."""
    max_queued: int = 10_000
    """Statuses waiting at once; more are dropped (and logged), so memory stays bounded."""
    user_agent: str = "bodywork-gitops"


@dataclass(frozen=True)
class Delivery:
    status: CommitStatus
    attempts: int
    already_applied: bool = False
    """GitLab answered that the status already had this state."""


@dataclass(frozen=True)
class Failure:
    status: CommitStatus
    reason: str
    """Why it was not delivered: an HTTP code with an excerpt of the answer, never the token."""
    attempts: int


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
    ) -> None:
        self.settings = settings
        self._http = http_client
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._jitter = jitter
        self._pending: dict[StatusKey, CommitStatus] = {}  # insertion-ordered: first come, first sent
        self._in_flight: CommitStatus | None = None
        self._next_call_at: dict[str, float] = {}
        self._delivered: list[Delivery] = []
        self._failures: list[Failure] = []
        self._superseded: list[CommitStatus] = []
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

    def _enqueue(self, status: CommitStatus) -> None:
        if self._stopped:
            self._fail(status, "not sent: the publisher is stopped", attempts=0)
            return
        key = status.key
        previous = self._pending.get(key)
        if previous is not None:
            self._superseded.append(previous)  # keeps its place in the queue, with the newer content
        elif len(self._pending) >= self.settings.max_queued:
            self._fail(status, f"not sent: {self.settings.max_queued} statuses already queued", 0)
            return
        self._pending[key] = status
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
            self._fail(status, str(error), attempts=0)
            return
        secrets = (status.token,)
        max_attempts = max(1, self.settings.max_attempts)
        for attempt in range(1, max_attempts + 1):
            await self._pace(request.host)
            response: ApiResponse | None = None
            try:
                response = await self._http.send(request)
            except TransportFailure as error:
                outcome: Outcome = Retry(excerpt(str(error), secrets))
            else:
                outcome = provider.classify(response, self._wall_clock(), secrets)
            self._after_call(status, request.host, response)
            if self.on_call is not None:
                self.on_call(status.provider, isinstance(outcome, Delivered))

            if isinstance(outcome, Delivered):
                self._delivered.append(Delivery(status, attempt, outcome.already_applied))
                log.debug("Commit status %s sent to %s", status.short_label, request.host)
                return
            if isinstance(outcome, Rejected):
                self._fail(status, f"rejected, not retried: {outcome.reason}", attempt)
                return
            if attempt == max_attempts:
                self._fail(status, f"gave up after {attempt} attempts: {outcome.reason}", attempt)
                return
            delay = outcome.delay if outcome.delay is not None else self._backoff(attempt)
            if delay > self.settings.max_retry_wait_seconds:
                self._fail(
                    status,
                    f"gave up: asked to wait {delay:.0f} s, more than max_retry_wait_seconds "
                    f"({self.settings.max_retry_wait_seconds:g}): {outcome.reason}",
                    attempt,
                )
                return
            log.info(
                "Commit status %s: attempt %d of %d failed (%s); retrying in %.2f s",
                status.short_label,
                attempt,
                max_attempts,
                outcome.reason,
                delay,
            )
            await self._sleep(delay)
            if status.key in self._pending:
                self._superseded.append(status)
                log.debug("Commit status %s superseded while waiting to retry", status.short_label)
                return

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

    def _fail(self, status: CommitStatus, reason: str, attempts: int) -> None:
        reason = excerpt(reason, (status.token,), limit=500)
        self._failures.append(Failure(status, reason, attempts))
        log.warning("Commit status %s not delivered: %s", status.short_label, reason)


def create_publisher(
    *,
    min_interval_seconds: float | None = None,
    max_attempts: int = 5,
    backoff_base_seconds: float = 1.0,
    backoff_max_seconds: float = 60.0,
    max_retry_wait_seconds: float = 300.0,
    request_timeout_seconds: float = 10.0,
    max_queued: int = 10_000,
    user_agent: str = "bodywork-gitops",
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
    http_client: HttpClient | None = None,
) -> StatusPublisher:
    """A publisher with an httpx client; ``clock``, ``wall_clock``, ``sleep`` and ``jitter`` are for
    tests (``clock`` paces calls, ``wall_clock`` reads epoch rate-limit resets)."""
    settings = PublisherSettings(
        min_interval_seconds=min_interval_seconds,
        max_attempts=max_attempts,
        backoff_base_seconds=backoff_base_seconds,
        backoff_max_seconds=backoff_max_seconds,
        max_retry_wait_seconds=max_retry_wait_seconds,
        request_timeout_seconds=request_timeout_seconds,
        max_queued=max_queued,
        user_agent=user_agent,
    )
    client = http_client if http_client is not None else HttpxClient(request_timeout_seconds)
    return StatusPublisher(settings, client, clock=clock, wall_clock=wall_clock, sleep=sleep, jitter=jitter)
