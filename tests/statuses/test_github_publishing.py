"""Publishing to the fake GitHub over real HTTP: mapping, headers, retries, rate limits, failures."""

from __future__ import annotations

import pytest

from gitops.statuses import CommitStatus, StatusPublisher, StatusState
from tests.fakes.clock import FakeTime
from tests.fakes.github_api import FakeGitHub

from .conftest import run
from .helpers import github_status, publisher

pytestmark = pytest.mark.timeout(10)


async def _publish_all(
    fake_time: FakeTime, statuses: list[CommitStatus], **settings: object
) -> StatusPublisher:
    publisher_ = publisher(fake_time, **settings)
    await publisher_.start()
    for status in statuses:
        publisher_.publish(status)
    await publisher_.stop(timeout=5)
    return publisher_


@pytest.mark.parametrize(
    ("state", "sent_state", "sent_description"),
    [
        (StatusState.PENDING, "pending", "Pipeline queued"),
        (StatusState.RUNNING, "pending", "Running: Pipeline queued"),
        (StatusState.SUCCESS, "success", "Pipeline queued"),
        (StatusState.FAILURE, "failure", "Pipeline queued"),
        (StatusState.ERROR, "error", "Pipeline queued"),
        (StatusState.CANCELED, "error", "Cancelled: Pipeline queued"),
    ],
)
def test_each_state_is_sent_as_github_expects(
    fake_github: FakeGitHub,
    fake_time: FakeTime,
    state: StatusState,
    sent_state: str,
    sent_description: str,
) -> None:
    status = github_status(fake_github.api_base, fake_github.token, state)
    result = run(_publish_all(fake_time, [status]))
    [accepted] = fake_github.accepted(status.sha)
    assert (accepted.state, accepted.description) == (sent_state, sent_description)
    assert accepted.context == "bodywork/pipeline"
    assert accepted.target_url == "https://bodywork.example.com/runs/17"
    assert accepted.repository == "octo-org/ml-pipeline"
    assert [d.attempts for d in result.delivered] == [1]
    assert result.failures == () and fake_github.rejected == []


def test_headers(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    run(_publish_all(fake_time, [github_status(fake_github.api_base, fake_github.token)]))
    [request] = fake_github.requests
    assert request.headers["authorization"] == f"Bearer {fake_github.token}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["user-agent"] == "bodywork-gitops"
    assert request.headers["content-type"] == "application/json"


def test_long_description_is_truncated_to_140(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    status = github_status(fake_github.api_base, fake_github.token, description="stage failed: " * 40)
    run(_publish_all(fake_time, [status]))
    [accepted] = fake_github.accepted(status.sha)
    assert accepted.description is not None
    assert len(accepted.description) == 140 and accepted.description.endswith("…")
    assert fake_github.rejected == []


def test_enterprise_server_base(fake_time: FakeTime) -> None:
    with FakeGitHub(prefix="/api/v3") as enterprise:
        assert enterprise.api_base.endswith("/api/v3")
        status = github_status(enterprise.api_base, enterprise.token, StatusState.SUCCESS)
        run(_publish_all(fake_time, [status]))
        assert [s.state for s in enterprise.accepted(status.sha)] == ["success"]
        assert enterprise.requests[0].raw_path.startswith("/api/v3/repos/octo-org/ml-pipeline/statuses/")
        assert enterprise.rejected == []


def test_429_honours_retry_after(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.rate_limit_next(retry_after=7)
    status = github_status(fake_github.api_base, fake_github.token)
    result = run(_publish_all(fake_time, [status]))
    assert fake_time.sleeps == [7.0]
    assert [d.attempts for d in result.delivered] == [2]
    assert len(fake_github.accepted(status.sha)) == 1


def test_403_rate_limit_waits_for_the_reset(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.rate_limit_next(status=403, reset_at=fake_time.now + 42)
    status = github_status(fake_github.api_base, fake_github.token)
    result = run(_publish_all(fake_time, [status]))
    assert fake_time.sleeps == [42.0]
    assert [d.attempts for d in result.delivered] == [2]


def test_rate_limit_without_headers_backs_off(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.respond_next(403, {"message": "You have exceeded a secondary rate limit."}, times=2)
    status = github_status(fake_github.api_base, fake_github.token)
    result = run(_publish_all(fake_time, [status]))
    assert fake_time.sleeps == [1.0, 2.0]
    assert [d.attempts for d in result.delivered] == [3]


def test_a_wait_longer_than_allowed_gives_up(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.rate_limit_next(retry_after=3600)
    status = github_status(fake_github.api_base, fake_github.token)
    result = run(_publish_all(fake_time, [status], max_retry_wait_seconds=300))
    [failure] = result.failures
    assert "asked to wait 3600 s, more than max_retry_wait_seconds (300)" in failure.reason
    assert fake_time.sleeps == [] and len(fake_github.requests) == 1


def test_5xx_then_success(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.fail_next(1, status=500)
    fake_github.fail_next(1, status=502)
    status = github_status(fake_github.api_base, fake_github.token, StatusState.SUCCESS)
    result = run(_publish_all(fake_time, [status]))
    assert fake_time.sleeps == [1.0, 2.0]  # exponential; the jitter is pinned to the full step
    assert [d.attempts for d in result.delivered] == [3]
    assert [s.state for s in fake_github.accepted(status.sha)] == ["success"]


def test_backoff_has_jitter_and_a_cap(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.fail_next(5, status=503)
    status = github_status(fake_github.api_base, fake_github.token)
    run(_publish_all(fake_time, [status], max_attempts=6, backoff_max_seconds=5.0, jitter=lambda: 0.0))
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 2.5, 2.5]


def test_5xx_forever_gives_up_without_raising(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    fake_github.fail_next(100, status=500)
    status = github_status(fake_github.api_base, fake_github.token)
    result = run(_publish_all(fake_time, [status], max_attempts=4))
    assert result.delivered == ()
    [failure] = result.failures
    assert failure.attempts == 4
    assert failure.reason.startswith("gave up after 4 attempts: HTTP 500")
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert len(fake_github.requests) == 4


def test_422_is_not_retried_and_is_logged(
    fake_github: FakeGitHub, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    status = github_status(fake_github.api_base, fake_github.token, target_url="ftp://nope")
    result = run(_publish_all(fake_time, [status]))
    assert len(fake_github.requests) == 1 and fake_time.sleeps == []
    [failure] = result.failures
    assert failure.reason.startswith("rejected, not retried: HTTP 422")
    assert "target_url is not a valid URL" in failure.reason
    assert "HTTP 422" in caplog.text and "'bodywork/pipeline'=pending" in caplog.text


@pytest.mark.parametrize("code", [401, 404])
def test_other_client_errors_are_not_retried(fake_github: FakeGitHub, fake_time: FakeTime, code: int) -> None:
    fake_github.respond_next(code, {"message": "nope"})
    result = run(_publish_all(fake_time, [github_status(fake_github.api_base, fake_github.token)]))
    assert len(fake_github.requests) == 1
    assert result.failures[0].reason.startswith(f"rejected, not retried: HTTP {code}")


def test_wrong_token_is_refused_by_the_fake(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    status = github_status(fake_github.api_base, "ghp_wrong_token_abcdef")
    result = run(_publish_all(fake_time, [status]))
    assert [r.status for r in fake_github.rejected] == [401]
    assert "Bad credentials" in result.failures[0].reason


def test_min_interval_between_calls_to_one_host(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    statuses = [
        github_status(fake_github.api_base, fake_github.token, context=f"bodywork/stage-{n}")
        for n in range(3)
    ]
    run(_publish_all(fake_time, statuses, min_interval_seconds=1.0))
    assert fake_time.sleeps == [1.0, 1.0]
    assert len(fake_github.accepted(statuses[0].sha)) == 3


def test_github_default_interval_is_one_second(fake_github: FakeGitHub, fake_time: FakeTime) -> None:
    statuses = [github_status(fake_github.api_base, fake_github.token, context=f"c{n}") for n in range(2)]
    run(_publish_all(fake_time, statuses, min_interval_seconds=None))
    assert fake_time.sleeps == [1.0]


def test_exhausted_quota_on_success_delays_the_next_call(
    fake_github: FakeGitHub, fake_time: FakeTime
) -> None:
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(fake_time.now) + 20)}
    fake_github.respond_next(201, {"id": 1}, reset)
    statuses = [github_status(fake_github.api_base, fake_github.token, context=f"c{n}") for n in range(2)]
    result = run(_publish_all(fake_time, statuses))
    assert fake_time.sleeps == [20.0]
    assert len(result.delivered) == 2


def test_connection_refused_is_retried_then_given_up(fake_time: FakeTime) -> None:
    with FakeGitHub() as gone:
        api_base, token = gone.api_base, gone.token
    status = github_status(api_base, token)
    result = run(_publish_all(fake_time, [status], max_attempts=3))
    [failure] = result.failures
    assert failure.reason.startswith("gave up after 3 attempts: ConnectError")
    assert fake_time.sleeps == [1.0, 2.0]
