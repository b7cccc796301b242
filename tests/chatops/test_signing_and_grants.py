"""Signature verification (Slack's scheme, 5-minute window, replays) and authorization grants."""

from __future__ import annotations

import pytest

from chatops.grants import Actor, Grant, allowed
from chatops.signing import ReplayGuard, SignatureError, sign, verify
from gitops.secret import Secret

SECRET = Secret("8f742231b10e8888abcd99yyyzzz85a5")
BODY = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fbodywork&text=status"
NOW = 1_531_420_618.0


def headers(timestamp: str, signature: str) -> dict[str, str]:
    return {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}


def test_slacks_documented_example_signature() -> None:
    # From Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign(SECRET.reveal(), "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_good_signature_passes_once_and_its_replay_is_rejected() -> None:
    guard = ReplayGuard()
    good = headers("1531420618", sign(SECRET.reveal(), "1531420618", BODY))
    verify(good, BODY, SECRET, NOW + 10, guard)
    with pytest.raises(SignatureError, match="replayed"):
        verify(good, BODY, SECRET, NOW + 20, guard)


@pytest.mark.parametrize(
    ("request_headers", "body", "message"),
    [
        ({}, BODY, "missing"),
        (headers("1531420618", "v0=" + "0" * 64), BODY, "mismatch"),
        (headers("1531420618", sign("another-secret", "1531420618", BODY)), BODY, "mismatch"),
        (headers("1531420618", sign(SECRET.reveal(), "1531420618", BODY)), BODY + b"&x=1", "mismatch"),
        (headers(str(int(NOW) - 301), sign(SECRET.reveal(), str(int(NOW) - 301), BODY)), BODY, "stale"),
        (headers(str(int(NOW) + 301), sign(SECRET.reveal(), str(int(NOW) + 301), BODY)), BODY, "stale"),
        (headers("yesterday", "v0=abc"), BODY, "not a number"),
    ],
)
def test_bad_requests_are_rejected(request_headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(request_headers, body, SECRET, NOW, ReplayGuard())


def test_the_replay_guard_forgets_signatures_older_than_the_window() -> None:
    guard = ReplayGuard()
    assert guard.first_time("v0=a", 100.0, 100.0)
    assert not guard.first_time("v0=a", 100.0, 399.0)
    assert guard.first_time("v0=b", 500.0, 500.0)
    assert len(guard._seen) == 1  # v0=a expired with the window


ALICE_IN_DEPLOYS = Actor("U0ALICE", "C0DEPLOYS", "deploys")
BOB_IN_DEPLOYS = Actor("U0BOB", "C0DEPLOYS", "deploys")
ALICE_ELSEWHERE = Actor("U0ALICE", "C0RANDOM", "random")


def test_nothing_is_allowed_without_a_grant() -> None:
    assert not allowed([], ALICE_IN_DEPLOYS, "rerun", "acme/pipelines", "production")
    assert not allowed([Grant()], ALICE_IN_DEPLOYS, "rerun", "acme/pipelines", "production")


def test_a_user_grant_holds_in_any_channel_for_its_repositories_environments_and_verbs() -> None:
    grant = Grant(
        users=("U0ALICE",), repositories=("acme/*",), environments=("staging", "prod*"), verbs=("rerun",)
    )
    assert allowed([grant], ALICE_ELSEWHERE, "rerun", "ACME/pipelines", "production")
    assert not allowed([grant], BOB_IN_DEPLOYS, "rerun", "acme/pipelines", "production")
    assert not allowed([grant], ALICE_IN_DEPLOYS, "delete", "acme/pipelines", "production")
    assert not allowed([grant], ALICE_IN_DEPLOYS, "rerun", "other/pipelines", "production")
    assert not allowed([grant], ALICE_IN_DEPLOYS, "rerun", "acme/pipelines", "dev")


def test_a_channel_grant_holds_for_everyone_in_it_by_id_or_name() -> None:
    assert allowed([Grant(channels=("C0DEPLOYS",))], BOB_IN_DEPLOYS, "cancel", "a/b", "x")
    assert allowed([Grant(channels=("#deploys",))], BOB_IN_DEPLOYS, "delete", "a/b", "x")
    assert not allowed([Grant(channels=("C0DEPLOYS",))], ALICE_ELSEWHERE, "cancel", "a/b", "x")


def test_users_and_channels_together_need_both() -> None:
    grant = Grant(users=("U0ALICE",), channels=("C0DEPLOYS",))
    assert allowed([grant], ALICE_IN_DEPLOYS, "rerun", "a/b", "x")
    assert not allowed([grant], ALICE_ELSEWHERE, "rerun", "a/b", "x")
    assert not allowed([grant], BOB_IN_DEPLOYS, "rerun", "a/b", "x")
