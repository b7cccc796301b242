"""No status lost (issue 13, item 7): long outages and rate limits are waited out, a call that timed out
is not repeated when it went through, memory stays bounded, and a journal keeps what is not sent."""

from __future__ import annotations

import time

import pytest

from gitops.statuses import CommitStatus, StatusState
from tests.fakes.clock import FakeTime
from tests.fakes.github_api import FakeGitHub
from tests.fakes.gitlab_api import FakeGitLab

from .conftest import run
from .helpers import SHA, github_status, gitlab_status, publisher

pytestmark = pytest.mark.timeout(20)


class MemoryJournal:
    """A StatusJournal in a dict, to see what the publisher records and settles."""

    def __init__(self, pending: list[CommitStatus] | None = None) -> None:
        self.waiting = {s.key: s for s in pending or []}
        self.settled: list[tuple[str, str]] = []

    def record(self, status: CommitStatus) -> None:
        self.waiting[status.key] = status

    def settle(self, status: CommitStatus, outcome: str, reason: str = "") -> None:
        if self.waiting.get(status.key) == status:
            del self.waiting[status.key]
        self.settled.append((status.state.value, outcome))

    def pending(self) -> list[CommitStatus]:
        return list(self.waiting.values())


def test_a_server_error_lasting_40_seconds_is_waited_out(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    # 1 + 2 + 4 + 8 + 16 s of backoff (jitter 1.0) pass 31 s; the 7th call comes after 63 s.
    fake_github.fail_next(6, status=500)
    status = github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS)

    async def scenario() -> int:
        async with publisher(fake_time) as publisher_:
            publisher_.publish(status)
            assert await publisher_.flush(5)
        [delivery] = publisher_.delivered
        return delivery.attempts

    assert run(scenario()) == 7
    assert sum(fake_time.sleeps) > 40
    assert [s.state for s in fake_github.accepted(SHA)] == ["success"]


@pytest.mark.parametrize("kind", ["retry-after", "reset"])
def test_rate_limits_are_honoured_for_as_long_as_asked(
    fake_github: FakeGitHub, fake_time: FakeTime, kind: str
) -> None:
    if kind == "retry-after":
        fake_github.rate_limit_next(3, status=429, retry_after=900)
    else:  # GitHub's primary rate limit: 403, remaining 0, reset in 50 minutes
        fake_github.rate_limit_next(1, status=403, reset_at=fake_time.now + 3000)
    status = github_status(fake_github.api_base, fake_github.token, StatusState.FAILURE)

    async def scenario() -> None:
        async with publisher(fake_time) as publisher_:
            publisher_.publish(status)
            assert await publisher_.flush(5)
        assert publisher_.failures == ()

    run(scenario())
    waited = [s for s in fake_time.sleeps if s >= 900]
    assert waited == ([900.0] * 3 if kind == "retry-after" else [3000.0])
    assert [s.state for s in fake_github.accepted(SHA)] == ["failure"]


def test_a_status_older_than_max_age_is_given_up(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    fake_gitlab.fail_next(100, status=503)
    journal = MemoryJournal()

    async def scenario() -> str:
        async with publisher(fake_time, max_age_seconds=3600, journal=journal) as publisher_:
            publisher_.publish(gitlab_status(fake_gitlab.api_base, fake_gitlab.token, StatusState.SUCCESS))
            assert await publisher_.flush(5)
        return publisher_.failures[0].reason

    reason = run(scenario())
    assert reason.startswith("gave up after ") and "(max_age_seconds 3600)" in reason
    assert journal.settled == [("success", "expired")] and journal.waiting == {}


def test_a_call_answered_after_the_timeout_is_not_posted_twice(fake_github: FakeGitHub) -> None:
    statuses = [
        github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS, context=f"c{n}")
        for n in range(2)
    ]

    async def scenario() -> None:
        async with publisher(FakeTime(time.time()), request_timeout_seconds=0.3) as publisher_:
            for status in statuses:
                fake_github.answer_late_next(1.0)  # applied, but answered after the 0.3 s timeout
                publisher_.publish(status)
                assert await publisher_.flush(8)
        assert [d.already_applied for d in publisher_.delivered] == [True, True]
        assert publisher_.counts["duplicates_avoided"] == 2

    run(scenario(), timeout=15)
    assert sorted(s.context for s in fake_github.accepted(SHA)) == ["c0", "c1"]  # once each


def test_what_the_journal_holds_is_sent_when_the_publisher_starts(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    left_over = github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS)
    journal = MemoryJournal([left_over])

    async def scenario() -> None:
        async with publisher(fake_time, journal=journal) as publisher_:
            assert await publisher_.flush(5)

    run(scenario())
    assert [s.state for s in fake_github.accepted(SHA)] == ["success"]
    assert journal.settled == [("success", "delivered")] and journal.waiting == {}


def test_a_stopped_publisher_leaves_undelivered_statuses_in_the_journal(fake_github: FakeGitHub) -> None:
    fake_github.hang_next()
    journal = MemoryJournal()
    status = github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS)

    async def scenario() -> None:
        publisher_ = publisher(FakeTime(), request_timeout_seconds=5, journal=journal)
        await publisher_.start()
        publisher_.publish(status)
        await publisher_.stop(timeout=0.2)
        assert "kept in the journal" in publisher_.failures[0].reason

    run(scenario())
    assert journal.pending() == [status] and journal.settled == []


def test_memory_stays_bounded_however_many_statuses_pass(
    fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    async def scenario() -> None:
        async with publisher(fake_time, history=50) as publisher_:
            for n in range(400):
                for state in (StatusState.PENDING, StatusState.SUCCESS):
                    publisher_.publish(
                        gitlab_status(fake_gitlab.api_base, fake_gitlab.token, state, context=f"c{n}")
                    )
            assert await publisher_.flush(15)
        assert len(publisher_.delivered) == 50 and len(publisher_.superseded) <= 50
        assert publisher_.counts["delivered"] + publisher_.counts["superseded"] == 800
        assert publisher_._queued_at == {} and publisher_._pending == {}

    run(scenario(), timeout=18)
