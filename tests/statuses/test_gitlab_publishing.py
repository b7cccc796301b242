"""Publishing to the fake GitLab over real HTTP: mapping, project paths, bases, retries, repeats."""

from __future__ import annotations

import pytest

from gitops.statuses import CommitStatus, StatusPublisher, StatusState
from tests.fakes.clock import FakeTime
from tests.fakes.gitlab_api import FakeGitLab

from .conftest import run
from .helpers import gitlab_status, publisher

pytestmark = pytest.mark.timeout(10)


async def _publish_all(
    fake_time: FakeTime, statuses: list[CommitStatus], one_by_one: bool = False, **settings: object
) -> StatusPublisher:
    publisher_ = publisher(fake_time, **settings)
    await publisher_.start()
    for status in statuses:
        publisher_.publish(status)
        if one_by_one:
            assert await publisher_.flush(5)
    await publisher_.stop(timeout=5)
    return publisher_


@pytest.mark.parametrize(
    ("state", "sent_state"),
    [
        (StatusState.PENDING, "pending"),
        (StatusState.RUNNING, "running"),
        (StatusState.SUCCESS, "success"),
        (StatusState.FAILURE, "failed"),
        (StatusState.ERROR, "failed"),
        (StatusState.CANCELED, "canceled"),
    ],
)
def test_each_state_is_sent_as_gitlab_expects(
    fake_gitlab: FakeGitLab, fake_time: FakeTime, state: StatusState, sent_state: str
) -> None:
    status = gitlab_status(fake_gitlab.api_base, fake_gitlab.token, state, description="stage 2/5")
    result = run(_publish_all(fake_time, [status]))
    [accepted] = fake_gitlab.accepted(status.sha)
    assert (accepted.state, accepted.name, accepted.ref) == (sent_state, "bodywork/pipeline", "main")
    assert accepted.description == "stage 2/5"
    assert accepted.target_url == "https://bodywork.example.com/runs/17"
    assert accepted.project == "data-team/models/churn"
    assert len(result.delivered) == 1 and fake_gitlab.rejected == []


def test_project_path_is_url_encoded_and_token_is_a_private_token(
    fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    run(_publish_all(fake_time, [gitlab_status(fake_gitlab.api_base, fake_gitlab.token)]))
    [request] = fake_gitlab.requests
    assert request.raw_path == (
        "/api/v4/projects/data-team%2Fmodels%2Fchurn/statuses/0123456789abcdef0123456789abcdef01234567"
    )
    assert request.headers["private-token"] == fake_gitlab.token
    assert "authorization" not in request.headers


def test_numeric_project_id(fake_time: FakeTime) -> None:
    with FakeGitLab(projects={"data-team/models/churn": 42}) as fake:
        status = gitlab_status(fake.api_base, fake.token, StatusState.SUCCESS, repository="42")
        run(_publish_all(fake_time, [status]))
        assert fake.requests[0].raw_path.startswith("/api/v4/projects/42/statuses/")
        assert [s.project for s in fake.accepted(status.sha)] == ["data-team/models/churn"]
        assert fake.rejected == []


def test_self_hosted_base_with_relative_root_and_a_base_ending_in_api_v4(fake_time: FakeTime) -> None:
    with FakeGitLab(prefix="/gitlab") as fake:
        statuses = [
            gitlab_status(fake.api_base, fake.token, context="plain-base"),
            gitlab_status(fake.api_base + "/api/v4/", fake.token, context="api-base"),
        ]
        run(_publish_all(fake_time, statuses))
        assert [s.name for s in fake.accepted(statuses[0].sha)] == ["plain-base", "api-base"]
        assert all(r.raw_path.startswith("/gitlab/api/v4/projects/") for r in fake.requests)
        assert fake.rejected == []


def test_long_description_is_truncated_to_255(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    status = gitlab_status(fake_gitlab.api_base, fake_gitlab.token, description="d" * 400)
    run(_publish_all(fake_time, [status]))
    [accepted] = fake_gitlab.accepted(status.sha)
    assert accepted.description == "d" * 254 + "…"


def test_same_state_twice_counts_as_applied_and_is_not_retried(
    fake_gitlab: FakeGitLab, fake_time: FakeTime
) -> None:
    first = gitlab_status(fake_gitlab.api_base, fake_gitlab.token, StatusState.RUNNING)
    again = gitlab_status(
        fake_gitlab.api_base, fake_gitlab.token, StatusState.RUNNING, description="stage 3/5"
    )
    result = run(_publish_all(fake_time, [first, again], one_by_one=True))
    assert [d.already_applied for d in result.delivered] == [False, True]
    assert result.failures == () and fake_time.sleeps == []
    assert len(fake_gitlab.requests) == 2
    [rejection] = fake_gitlab.rejected
    assert "Cannot transition status via :run from :running" in rejection.answer.body["message"]


def test_429_with_retry_after(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    fake_gitlab.rate_limit_next(retry_after=3)
    result = run(_publish_all(fake_time, [gitlab_status(fake_gitlab.api_base, fake_gitlab.token)]))
    assert fake_time.sleeps == [3.0]
    assert [d.attempts for d in result.delivered] == [2]


def test_429_with_ratelimit_reset(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    fake_gitlab.rate_limit_next(reset_at=fake_time.now + 9)
    result = run(_publish_all(fake_time, [gitlab_status(fake_gitlab.api_base, fake_gitlab.token)]))
    assert fake_time.sleeps == [9.0]
    assert len(result.delivered) == 1


def test_5xx_then_success(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    fake_gitlab.fail_next(2, status=502)
    status = gitlab_status(fake_gitlab.api_base, fake_gitlab.token, StatusState.SUCCESS)
    result = run(_publish_all(fake_time, [status]))
    assert fake_time.sleeps == [1.0, 2.0]
    assert [s.state for s in fake_gitlab.accepted(status.sha)] == ["success"]
    assert [d.attempts for d in result.delivered] == [3]


def test_bad_request_is_not_retried(fake_gitlab: FakeGitLab, fake_time: FakeTime) -> None:
    status = gitlab_status(fake_gitlab.api_base, fake_gitlab.token, target_url="javascript:alert(1)")
    result = run(_publish_all(fake_time, [status]))
    assert len(fake_gitlab.requests) == 1
    assert result.failures[0].reason.startswith("rejected, not retried: HTTP 400")
    assert "Only allowed schemes are http, https" in result.failures[0].reason


def test_unknown_project_is_not_retried(fake_time: FakeTime) -> None:
    with FakeGitLab(projects={"other/project": 7}) as fake:
        result = run(_publish_all(fake_time, [gitlab_status(fake.api_base, fake.token)]))
        assert [r.status for r in fake.rejected] == [404]
        assert "404 Project Not Found" in result.failures[0].reason
