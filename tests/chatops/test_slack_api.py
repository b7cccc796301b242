"""The slack_sdk adapter and the courier against the strict fake Slack: what is retried and what not."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from chatops.courier import Courier, GaveUp, RateLimiter
from chatops.render import log_reply, run_message
from chatops.slack_api import MaybeApplied, NotSent, RateLimited, Refused, SlackApi
from gitops.secret import Secret
from tests.fakes.clock import FakeTime
from tests.fakes.slack_api import FakeSlack

from .builders import a_run

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def api(slack: FakeSlack, token: str | None = None, timeout: float = 5.0) -> SlackApi:
    return SlackApi(Secret(token or slack.token), slack.api_base, timeout=timeout)


def courier(fake_time: FakeTime) -> Courier:
    return Courier(RateLimiter(per_key_interval=1.0, clock=fake_time.clock, sleep=fake_time.sleep))


def test_a_rendered_run_is_accepted_and_updated_in_place(slack: FakeSlack) -> None:
    client = api(slack)
    message = run_message(a_run("running"))
    posted = client.post_message("#deploys", message.text, list(message.blocks))
    assert posted.channel == "C0DEPLOYS"
    final = run_message(a_run("succeeded"))
    client.update_message(posted.channel, posted.ts, final.text, list(final.blocks))
    assert slack.rejected == []
    [shown] = slack.top_level()
    assert "Succeeded" in shown.text and len(shown.updates) == 1


def test_the_upload_v2_flow_shares_a_long_log_in_the_thread(slack: FakeSlack) -> None:
    client = api(slack)
    parent = client.post_message("C0DEPLOYS", "run", [])
    reply = log_reply(a_run(), a_run().stages[0], [f"line {i}" for i in range(100)])
    assert reply.upload is not None
    data = reply.upload.encode()
    url, file_id = client.upload_url(reply.filename, len(data))
    client.upload_bytes(url, data)
    client.complete_upload(file_id, reply.filename, parent.channel, parent.ts)
    [shared] = slack.shared_files(slack.top_level()[0])
    assert shared.content == data and shared.title == reply.filename
    assert slack.rejected == []


def test_errors_are_sorted_by_whether_the_call_can_have_been_applied(slack: FakeSlack) -> None:
    client = api(slack)
    slack.rate_limit_next(retry_after=7)
    with pytest.raises(RateLimited) as limited:
        client.post_message("C0DEPLOYS", "hi", [])
    assert limited.value.retry_after == 7
    with pytest.raises(Refused, match="channel_not_found"):
        client.post_message("#nowhere", "hi", [])
    with pytest.raises(Refused, match="invalid_auth"):
        api(slack, token="xoxb-wrong").post_message("C0DEPLOYS", "hi", [])
    slack.fail_next(status=503)
    with pytest.raises(MaybeApplied):
        client.post_message("C0DEPLOYS", "hi", [])
    slack.hang_next()
    with pytest.raises(MaybeApplied):
        api(slack, timeout=1).post_message("C0DEPLOYS", "hi", [])
    assert slack.top_level() == []


def test_every_call_is_told_to_the_metrics_with_its_outcome(slack: FakeSlack) -> None:
    calls: list[tuple[str, bool]] = []
    client = SlackApi(
        Secret(slack.token), slack.api_base, on_call=lambda method, ok: calls.append((method, ok))
    )
    posted = client.post_message("C0DEPLOYS", "hi", [])
    client.update_message(posted.channel, posted.ts, "hi again", [])
    with pytest.raises(Refused):
        client.post_message("#nowhere", "hi", [])
    url, _ = client.upload_url("log.txt", 3)
    client.upload_bytes(url, b"abc")
    assert calls == [
        ("chat.postMessage", True), ("chat.update", True), ("chat.postMessage", False),
        ("files.getUploadURLExternal", True), ("file upload", True),
    ]


def test_a_closed_port_is_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NotSent):
        SlackApi(Secret("xoxb-x"), f"http://127.0.0.1:{port}/api/").post_message("C1", "hi", [])


def test_a_429_storm_ends_in_one_message_after_honouring_every_retry_after(slack: FakeSlack) -> None:
    fake_time = FakeTime()
    slack.rate_limit_next(times=4, retry_after=30)
    client = api(slack)
    posted = asyncio.run(
        courier(fake_time).deliver(
            "C0DEPLOYS", lambda: client.post_message("C0DEPLOYS", "hi", []), idempotent=False
        )
    )
    assert len(slack.top_level()) == 1 and posted.ts == slack.top_level()[0].ts
    assert sum(fake_time.sleeps) >= 4 * 30


def test_a_post_that_may_have_been_applied_is_not_retried_but_an_update_is(slack: FakeSlack) -> None:
    fake_time = FakeTime()
    client = api(slack)
    slack.fail_next(status=502)
    with pytest.raises(GaveUp):
        asyncio.run(
            courier(fake_time).deliver(
                "C", lambda: client.post_message("C0DEPLOYS", "hi", []), idempotent=False
            )
        )
    assert len([r for r in slack.requests if r.raw_path.endswith("chat.postMessage")]) == 1
    posted = client.post_message("C0DEPLOYS", "hi", [])
    slack.fail_next(times=2, status=502)
    asyncio.run(
        courier(fake_time).deliver(
            "C", lambda: client.update_message(posted.channel, posted.ts, "bye", []), idempotent=True
        )
    )
    assert slack.top_level()[-1].text == "bye"


def test_a_refused_call_is_given_up_at_once(slack: FakeSlack) -> None:
    client = api(slack)
    with pytest.raises(GaveUp, match="channel_not_found"):
        asyncio.run(
            courier(FakeTime()).deliver("C", lambda: client.post_message("#gone", "x", []), idempotent=True)
        )
    assert len(slack.requests) == 1


def test_the_limiter_paces_each_channel_and_blocks_all_after_a_retry_after() -> None:
    fake_time = FakeTime(start=0.0)
    limiter = RateLimiter(per_key_interval=1.0, clock=fake_time.clock, sleep=fake_time.sleep)

    async def scenario() -> list[tuple[str, float]]:
        taken = []
        for key in ["a", "a", "b", "a"]:
            await limiter.acquire(key)
            taken.append((key, fake_time.now))
        limiter.block(10)
        await limiter.acquire("c")
        taken.append(("c", fake_time.now))
        return taken

    assert asyncio.run(scenario()) == [("a", 0.0), ("a", 1.0), ("b", 1.0), ("a", 2.0), ("c", 12.0)]


def test_response_urls_take_five_posts(slack: FakeSlack) -> None:
    client = api(slack)
    url = slack.new_response_url()
    for index in range(5):
        client.respond(url, {"text": f"answer {index}"})
    with pytest.raises(Refused, match="404"):
        client.respond(url, {"text": "one too many"})
    assert [body["text"] for body in slack.responses(url)] == [f"answer {i}" for i in range(5)]
