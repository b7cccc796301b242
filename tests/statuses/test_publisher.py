"""The worker itself: coalescing, ordering, never blocking, never raising, never leaking the token."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from gitops.statuses import StatusState
from tests.fakes.clock import FakeTime
from tests.fakes.github_api import FakeGitHub
from tests.fakes.gitlab_api import FakeGitLab

from .conftest import run
from .helpers import OTHER_SHA, SHA, github_status, gitlab_status, publisher, until

pytestmark = pytest.mark.timeout(10)

LIFECYCLE = [StatusState.PENDING, StatusState.RUNNING, StatusState.SUCCESS]


def test_queued_statuses_for_one_context_coalesce_to_the_newest(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    async def scenario() -> None:
        publisher_ = publisher(fake_time)
        for state in LIFECYCLE:  # queued before the worker starts: all three wait together
            publisher_.publish(github_status(fake_github.api_base, fake_github.token, state))
        publisher_.publish(
            github_status(fake_github.api_base, fake_github.token, StatusState.PENDING, context="lint")
        )
        await publisher_.start()
        await publisher_.stop(timeout=5)
        assert [s.state for s in publisher_.superseded] == [StatusState.PENDING, StatusState.RUNNING]
        assert [d.status.state for d in publisher_.delivered] == [
            StatusState.SUCCESS,
            StatusState.PENDING,
        ]

    run(scenario())
    sent = fake_github.accepted(SHA)
    assert [(s.context, s.state) for s in sent] == [("bodywork/pipeline", "success"), ("lint", "pending")]


def test_a_status_waiting_to_retry_gives_way_to_a_newer_one(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    fake_github.fail_next(1, status=503)

    async def sleep_then_publish(seconds: float) -> None:
        # While the first status waits to retry, the run finishes.
        publisher_.publish(github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS))
        await fake_time.sleep(seconds)

    publisher_ = publisher(fake_time, sleep=sleep_then_publish)

    async def scenario() -> None:
        await publisher_.start()
        publisher_.publish(github_status(fake_github.api_base, fake_github.token, StatusState.PENDING))
        await publisher_.stop(timeout=5)

    run(scenario())
    assert [s.state for s in fake_github.accepted(SHA)] == ["success"]
    assert [s.state for s in publisher_.superseded] == [StatusState.PENDING]
    assert publisher_.failures == ()


def test_order_is_kept_per_sha_and_context(
    fake_github: FakeGitHub, fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    published = []
    for sha in (SHA, OTHER_SHA):
        for context in ("build", "deploy"):
            for state in LIFECYCLE:
                published.append(
                    github_status(fake_github.api_base, fake_github.token, state, sha=sha, context=context)
                )
                published.append(
                    gitlab_status(fake_gitlab.api_base, fake_gitlab.token, state, sha=sha, context=context)
                )

    async def scenario() -> None:
        publisher_ = publisher(fake_time)
        await publisher_.start()
        for status in published:
            publisher_.publish(status)
            await asyncio.sleep(0)  # let the worker take some of them while others queue up
        await publisher_.stop(timeout=5)
        assert publisher_.failures == ()

    run(scenario())
    for sha in (SHA, OTHER_SHA):
        for context in ("build", "deploy"):
            github_states = [s.state for s in fake_github.accepted(sha) if s.context == context]
            gitlab_states = [s.state for s in fake_gitlab.accepted(sha) if s.name == context]
            # Some intermediate states may be coalesced away; the order never goes back and the
            # final state always arrives last.
            assert github_states == sorted(github_states, key=["pending", "success"].index)
            assert github_states[-1] == "success"
            assert gitlab_states == sorted(gitlab_states, key=["pending", "running", "success"].index)
            assert gitlab_states[-1] == "success"
    assert fake_github.rejected == [] and fake_gitlab.rejected == []


def test_every_state_is_sent_in_order_when_the_worker_keeps_up(
    fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    async def scenario() -> None:
        publisher_ = publisher(fake_time)
        await publisher_.start()
        for state in [*LIFECYCLE, StatusState.PENDING, StatusState.FAILURE]:
            publisher_.publish(gitlab_status(fake_gitlab.api_base, fake_gitlab.token, state))
            assert await publisher_.flush(5)
        await publisher_.stop(timeout=5)

    run(scenario())
    states = [s.state for s in fake_gitlab.accepted(SHA)]
    assert states == ["pending", "running", "success", "pending", "failed"]


def test_publish_returns_at_once_while_the_server_hangs(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.hang_next(100)

    async def scenario() -> None:
        publisher_ = publisher(fake_time, request_timeout_seconds=0.3, max_attempts=2)
        await publisher_.start()
        for n in range(50):
            publisher_.publish(github_status(fake_github.api_base, fake_github.token, context=f"stage-{n}"))
        # All 50 calls returned before the worker sent anything: none of them waited for the server.
        assert fake_github.requests == [] and publisher_.queued == 50
        await until(lambda: len(fake_github.requests) == 1)
        assert publisher_.queued == 50  # the first is in flight, hanging
        await publisher_.stop(timeout=1.5)
        assert publisher_.queued == 0
        reasons = [f.reason for f in publisher_.failures]
        assert len(reasons) == 50
        assert reasons[0].startswith("gave up after 2 attempts: timed out")
        assert "not sent: the publisher stopped (stop timeout 1.5 s)" in reasons

    # Bounded: with every call hanging until its timeout, sending all 50 would outlast run()'s limit.
    run(scenario(), timeout=8)


def test_stop_is_bounded_even_when_a_call_would_take_long(
    fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    fake_gitlab.hang_next()

    async def scenario() -> None:
        publisher_ = publisher(fake_time, request_timeout_seconds=30)
        await publisher_.start()
        publisher_.publish(gitlab_status(fake_gitlab.api_base, fake_gitlab.token))
        await until(lambda: len(fake_gitlab.requests) == 1)  # in flight; the fake holds it until closed
        await publisher_.stop(timeout=0.2)
        # Stopped by its own timeout, not by the call's (30 s, which would outlast run()'s limit).
        [failure] = publisher_.failures
        assert failure.reason == "not sent: the publisher stopped (stop timeout 0.2 s)"

    run(scenario(), timeout=8)


def test_publish_from_another_thread(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    async def scenario() -> None:
        publisher_ = publisher(fake_time)
        await publisher_.start()
        states = [StatusState.PENDING, StatusState.SUCCESS]

        def publish_from_thread() -> None:
            for state in states:
                publisher_.publish(github_status(fake_github.api_base, fake_github.token, state))

        thread = threading.Thread(target=publish_from_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        await publisher_.stop(timeout=5)
        assert publisher_.failures == ()

    run(scenario())
    assert [s.state for s in fake_github.accepted(SHA)][-1] == "success"


def test_publish_after_stop_is_recorded_not_raised(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    async def scenario() -> None:
        publisher_ = publisher(fake_time)
        await publisher_.start()
        await publisher_.stop(timeout=1)
        publisher_.publish(github_status(fake_github.api_base, fake_github.token))
        [failure] = publisher_.failures
        assert failure.reason == "not sent: the publisher is stopped"

    run(scenario())
    assert fake_github.requests == []


def test_a_full_queue_drops_and_records(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    async def scenario() -> None:
        publisher_ = publisher(fake_time, max_queued=2)
        for n in range(3):
            publisher_.publish(github_status(fake_github.api_base, fake_github.token, context=f"c{n}"))
        assert [f.reason for f in publisher_.failures] == ["not sent: 2 statuses already queued"]
        await publisher_.start()
        await publisher_.stop(timeout=5)
        assert len(publisher_.delivered) == 2

    run(scenario())


def test_a_bad_repository_name_is_a_failure_not_an_exception(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    async def scenario() -> None:
        async with publisher(fake_time) as publisher_:
            publisher_.publish(github_status(fake_github.api_base, fake_github.token, repository="no-owner"))
            assert await publisher_.flush(5)
        assert "is not 'owner/name'" in publisher_.failures[0].reason

    run(scenario())
    assert fake_github.requests == []


def test_the_token_never_reaches_logs_failures_or_reprs(
    fake_github: FakeGitHub, fake_gitlab: FakeGitLab, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    github_token, gitlab_token = fake_github.token, fake_gitlab.token
    fake_github.respond_next(422, {"message": f"token {github_token} is not allowed here"})
    fake_github.fail_next(2, status=500)
    fake_gitlab.respond_next(400, {"message": f"bad PRIVATE-TOKEN {gitlab_token}"})
    with FakeGitHub() as gone:
        unreachable = gone.api_base
    statuses = [
        github_status(fake_github.api_base, github_token, context="echoes-token"),
        github_status(fake_github.api_base, github_token, context="server-errors"),
        github_status(fake_github.api_base, "ghp_wrong_token_value_xyz", context="wrong-token"),
        gitlab_status(fake_gitlab.api_base, gitlab_token, context="echoes-token"),
        github_status(unreachable, github_token, context="unreachable"),
    ]

    async def scenario() -> None:
        async with publisher(fake_time, max_attempts=2) as publisher_:
            for status in statuses:
                publisher_.publish(status)
        text = caplog.text + repr(publisher_.failures) + repr(publisher_.delivered)
        text += repr(publisher_.superseded) + "".join(map(str, statuses))
        assert len(publisher_.failures) == 5
        for token in (github_token, gitlab_token, "ghp_wrong_token_value_xyz"):
            assert token not in text
        assert "********" in text  # the echoed tokens were masked, not dropped silently

    run(scenario())
    assert "HTTP 422" in caplog.text and "HTTP 401" in caplog.text
