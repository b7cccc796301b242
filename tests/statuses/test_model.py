"""The pure rules: state mapping, truncation, URLs and paths, and how answers are classified."""

from __future__ import annotations

import pytest

from gitops.statuses import CommitStatus, StatusState
from gitops.statuses import github as github_api
from gitops.statuses import gitlab as gitlab_api
from gitops.statuses.api import ApiResponse, Delivered, Rejected, Retry
from gitops.statuses.model import (
    github_description,
    github_state,
    gitlab_ref,
    gitlab_state,
    truncate,
)

from .helpers import github_status, gitlab_status

pytestmark = pytest.mark.timeout(5)

TOKEN = "ghp_S3cretValue_never_shown_1234"
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("state", "github", "gitlab"),
    [
        (StatusState.PENDING, "pending", "pending"),
        (StatusState.RUNNING, "pending", "running"),
        (StatusState.SUCCESS, "success", "success"),
        (StatusState.FAILURE, "failure", "failed"),
        (StatusState.ERROR, "error", "failed"),
        (StatusState.CANCELED, "error", "canceled"),
    ],
)
def test_state_mapping(state: StatusState, github: str, gitlab: str) -> None:
    assert github_state(state) == github
    assert gitlab_state(state) == gitlab


def test_github_descriptions_say_running_and_cancelled() -> None:
    assert github_description(StatusState.RUNNING, "stage 2 of 5") == "Running: stage 2 of 5"
    assert github_description(StatusState.RUNNING, "") == "Running"
    assert github_description(StatusState.RUNNING, "Running stage 2 of 5") == "Running stage 2 of 5"
    assert github_description(StatusState.CANCELED, "by alice") == "Cancelled: by alice"
    assert github_description(StatusState.CANCELED, "Run cancelled") == "Run cancelled"
    assert github_description(StatusState.SUCCESS, "done") == "done"


def test_truncate_keeps_short_text_and_ends_long_text_with_an_ellipsis() -> None:
    assert truncate("x" * 140, 140) == "x" * 140
    assert truncate("x" * 141, 140) == "x" * 139 + "…"
    assert len(truncate("word " * 100, 140)) <= 140
    long_running = github_description(StatusState.RUNNING, "y" * 500)
    assert len(long_running) == 140 and long_running.startswith("Running: ")


def test_gitlab_ref_is_the_branch_or_tag_name() -> None:
    assert gitlab_ref("refs/heads/feature/x") == "feature/x"
    assert gitlab_ref("refs/tags/v1.2") == "v1.2"
    assert gitlab_ref("main") == "main"


def test_token_is_not_in_repr_or_str() -> None:
    status = github_status("https://api.github.com", TOKEN)
    assert TOKEN not in repr(status)
    assert TOKEN not in str(status)
    request = github_api.build_request(status, "agent")
    assert TOKEN not in repr(request)


def test_unknown_provider_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="provider 'bitbucket' is not supported: use 'github' or"):
        github_status("https://api.github.com", TOKEN, provider="bitbucket")


def test_state_given_as_text_becomes_a_status_state() -> None:
    status = github_status("https://api.github.com", TOKEN, state="success")  # type: ignore[arg-type]
    assert status.state is StatusState.SUCCESS


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        ("https://api.github.com", "https://api.github.com/repos/octo-org/ml-pipeline/statuses/"),
        ("https://api.github.com/", "https://api.github.com/repos/octo-org/ml-pipeline/statuses/"),
        ("https://github.com", "https://api.github.com/repos/octo-org/ml-pipeline/statuses/"),
        ("https://ghe.corp/api/v3", "https://ghe.corp/api/v3/repos/octo-org/ml-pipeline/statuses/"),
    ],
)
def test_github_urls(api_base: str, url: str) -> None:
    request = github_api.build_request(github_status(api_base, TOKEN), "agent")
    assert request.url == url + github_status(api_base, TOKEN).sha
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_github_repository_must_be_owner_slash_name() -> None:
    status = github_status("https://api.github.com", TOKEN, repository="just-a-name")
    with pytest.raises(ValueError, match="'just-a-name' is not 'owner/name'"):
        github_api.build_request(status, "agent")


@pytest.mark.parametrize(
    ("api_base", "repository", "prefix"),
    [
        ("https://gitlab.com", "group/sub/name", "https://gitlab.com/api/v4/projects/group%2Fsub%2Fname"),
        ("https://gitlab.com/api/v4/", "42", "https://gitlab.com/api/v4/projects/42"),
        ("https://git.corp/gitlab", "a.b/c-d", "https://git.corp/gitlab/api/v4/projects/a.b%2Fc-d"),
    ],
)
def test_gitlab_urls(api_base: str, repository: str, prefix: str) -> None:
    status = gitlab_status(api_base, TOKEN, repository=repository)
    request = gitlab_api.build_request(status, "agent")
    assert request.url == f"{prefix}/statuses/{status.sha}"
    assert request.headers["PRIVATE-TOKEN"] == TOKEN
    assert request.json["ref"] == "main"


def _answer(code: int, text: str = "{}", **headers: str) -> ApiResponse:
    return ApiResponse(code, {k.lower().replace("_", "-"): v for k, v in headers.items()}, text)


def test_github_classification() -> None:
    classify = github_api.classify
    assert classify(_answer(201), NOW) == Delivered()
    assert classify(_answer(429, retry_after="12"), NOW) == Retry("rate limited: HTTP 429 {}", 12.0)
    reset = _answer(403, x_ratelimit_remaining="0", x_ratelimit_reset=str(int(NOW) + 30))
    assert isinstance(classify(reset, NOW), Retry)
    assert classify(reset, NOW).delay == 30.0  # type: ignore[union-attr]
    secondary = _answer(403, '{"message": "You have exceeded a secondary rate limit."}')
    assert classify(secondary, NOW) == Retry(
        'rate limited: HTTP 403 {"message": "You have exceeded a secondary rate limit."}', None
    )
    forbidden = _answer(403, '{"message": "Resource not accessible by integration"}')
    assert isinstance(classify(forbidden, NOW), Rejected)
    assert classify(_answer(502), NOW) == Retry("HTTP 502 {}")
    for code in (401, 404, 422):
        assert isinstance(classify(_answer(code), NOW), Rejected)


def test_retry_after_as_an_http_date() -> None:
    answer = _answer(429, retry_after="Fri, 15 Jan 2027 08:00:10 GMT")
    outcome = github_api.classify(answer, 1_800_000_000.0)
    assert isinstance(outcome, Retry) and outcome.delay is not None and outcome.delay > 0


def test_gitlab_classification() -> None:
    classify = gitlab_api.classify
    again = _answer(400, '{"message": "Cannot transition status via :run from :running"}')
    assert classify(again, NOW) == Delivered(already_applied=True)
    assert isinstance(classify(_answer(400, '{"error": "state is missing"}'), NOW), Rejected)
    assert classify(_answer(429, ratelimit_remaining="0", ratelimit_reset=str(int(NOW) + 5)), NOW) == (
        Retry("rate limited: HTTP 429 {}", 5.0)
    )
    assert isinstance(classify(_answer(503), NOW), Retry)


def test_answers_are_masked_and_cut() -> None:
    outcome = github_api.classify(_answer(422, f"echo {TOKEN} " + "z" * 1000), NOW, (TOKEN,))
    assert isinstance(outcome, Rejected)
    assert TOKEN not in outcome.reason and "********" in outcome.reason
    assert len(outcome.reason) < 330


def test_status_is_a_frozen_value() -> None:
    status = gitlab_status("https://gitlab.com", TOKEN)
    with pytest.raises(AttributeError):
        status.state = StatusState.SUCCESS  # type: ignore[misc]
    assert isinstance(status, CommitStatus)
