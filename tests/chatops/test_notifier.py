"""The notifier against the strict fake Slack: one message per run, logs in its thread, no duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest

from chatops.courier import Courier, RateLimiter
from chatops.model import RunView, StageView
from chatops.notifier import MessageRef, Notifier
from chatops.slack_api import SlackApi
from gitops.secret import Secret
from gitops.store.changes import Change, Changes
from tests.fakes.clock import FakeTime
from tests.fakes.slack_api import FakeSlack

from .builders import a_run

pytestmark = pytest.mark.timeout(20)


@dataclass
class Memory:
    """Stands in for the store: runs as the service sees them, message ids, posted logs."""

    runs: dict[str, RunView] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    refs: dict[str, MessageRef] = field(default_factory=dict)

    def view(self, run_id: str) -> RunView | None:
        return self.runs.get(run_id)

    def stage_log(self, run_id: str, stage: str) -> Sequence[str]:
        return self.logs.get((run_id, stage), [])

    def stage_log_length(self, run_id: str, stage: str) -> int:
        return len(self.stage_log(run_id, stage))

    def get(self, run_id: str) -> MessageRef | None:
        return self.refs.get(run_id)

    async def put(self, run_id: str, channel: str, ts: str) -> None:
        self.refs[run_id] = MessageRef(channel, ts)

    async def log_posted(self, run_id: str, stage: str) -> None:
        ref = self.refs[run_id]
        self.refs[run_id] = replace(ref, logs_posted=ref.logs_posted | {stage})


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def notifier(slack: FakeSlack, memory: Memory, fake_time: FakeTime, timeout: float = 5.0) -> Notifier:
    limiter = RateLimiter(per_key_interval=1.0, clock=fake_time.clock, sleep=fake_time.sleep)
    return Notifier(
        SlackApi(Secret(slack.token), slack.api_base, timeout=timeout),
        Courier(limiter, attempts=4),
        memory,
        memory,
        channel_for=lambda repository, environment: "#deploys",
        mask=lambda text: text.replace("hunter2", "********"),
        queued_notice=0.0,
    )


STAGES_DONE = (
    StageView("prepare", "batch", "succeeded", 1.0, 2.0),
    StageView("train", "batch", "failed", 2.0, 9.0, reason="exit 1"),
)


def progress(memory: Memory) -> list[RunView]:
    run = a_run("queued", stages=())
    memory.logs[(run.id, "prepare")] = ["prepared"]
    memory.logs[(run.id, "train")] = [f"epoch {i} password hunter2" for i in range(50)]
    return [
        run,
        replace(run, state="running", stages=(StageView("prepare", "batch", "running", 1.0),)),
        replace(run, state="running", stages=(STAGES_DONE[0], StageView("train", "batch", "running", 2.0))),
        replace(run, state="failed", stages=STAGES_DONE, finished_at=9.0, reason="stage train failed"),
    ]


def play(
    memory: Memory,
    steps: list[RunView],
    make: Callable[[], Notifier],
    between: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    async def go() -> None:
        current = make()
        current.start()
        for index, run in enumerate(steps):
            memory.runs[run.id] = run
            current.changed(run.id)
            await current.idle()
            if between is not None and index == 1:
                await current.stop()  # a restart of the service
                current = make()
                current.start()
                await between(index)
        await current.idle()
        await current.stop()

    asyncio.run(go())


def assert_one_final_message(slack: FakeSlack) -> None:
    [message] = slack.top_level()
    assert "Failed" in message.text
    replies = slack.replies(message)
    assert [r.text for r in replies] == ["Log of prepare (succeeded)", "Log of train (failed)"]
    [attached] = slack.shared_files(message)
    assert attached.content is not None and b"epoch 49 password ********" in attached.content
    assert all(b"hunter2" not in (f.content or b"") for f in slack.files.values())
    assert "hunter2" not in str([m.blocks for m in slack.messages])
    assert slack.rejected == []


def test_a_run_gets_one_message_updated_to_its_final_state_with_its_logs_in_the_thread(
    slack: FakeSlack,
) -> None:
    memory, fake_time = Memory(), FakeTime()
    play(memory, progress(memory), lambda: notifier(slack, memory, fake_time))
    assert_one_final_message(slack)
    assert len(slack.top_level()[0].updates) == 3


def test_a_restart_mid_run_keeps_updating_the_same_message(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()

    async def nothing(index: int) -> None:
        pass

    play(memory, progress(memory), lambda: notifier(slack, memory, fake_time), between=nothing)
    assert_one_final_message(slack)


def test_a_429_storm_still_ends_in_one_message_in_the_right_state(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()
    slack.rate_limit_next(times=3, retry_after=20)
    steps = progress(memory)

    def make() -> Notifier:
        return notifier(slack, memory, fake_time)

    async def storm(index: int) -> None:
        slack.rate_limit_next(times=3, retry_after=20)

    play(memory, steps, make, between=storm)
    assert_one_final_message(slack)
    assert len(slack.scripted) == 6 and fake_time.sleeps.count(20.0) >= 6


def test_a_post_that_may_have_been_applied_is_not_repeated(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()
    slack.fail_next(status=500)
    play(memory, progress(memory), lambda: notifier(slack, memory, fake_time))
    assert [r.raw_path for r in slack.requests] == ["/api/chat.postMessage"]


def test_slack_refusing_everything_does_not_raise(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()
    play(
        memory,
        progress(memory),
        lambda: Notifier(
            SlackApi(Secret("xoxb-revoked"), slack.api_base),
            Courier(RateLimiter(clock=fake_time.clock, sleep=fake_time.sleep)),
            memory,
            memory,
            channel_for=lambda r, e: "#deploys",
            queued_notice=0.0,
        ),
    )
    assert slack.messages == [] and {r.answer.body["error"] for r in slack.rejected} == {"invalid_auth"}


def test_a_run_coalesced_away_while_queued_posts_nothing_and_a_waiting_one_says_superseded_once(
    slack: FakeSlack,
) -> None:
    memory, fake_time = Memory(), FakeTime()
    gone = a_run("superseded", stages=(), id="coalesced", superseded_by_commit="f" * 40)
    waited = a_run("queued", stages=(), id="waited")
    play(
        memory,
        [gone, waited, replace(waited, state="superseded", superseded_by_commit="e" * 40)],
        lambda: notifier(slack, memory, fake_time),
    )
    [message] = slack.top_level()
    assert len(message.updates) == 1 and "Superseded by `eeeeeee`" in str(message.blocks)


def test_a_queued_run_waits_for_its_notice_period_before_it_is_posted(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()
    clock = {"now": 1000.0}
    run = a_run("queued", stages=(), created_at=1000.0)

    async def go() -> None:
        n = notifier(slack, memory, fake_time)
        n.queued_notice, n.clock = 5.0, lambda: clock["now"]
        n.start()
        memory.runs[run.id] = run
        n.changed(run.id)
        await n.idle()
        assert slack.messages == []
        clock["now"] = 1006.0
        n._wake.set()
        await n.idle()
        await n.stop()

    asyncio.run(go())
    assert len(slack.top_level()) == 1


def counted_views(memory: Memory) -> list[str]:
    """The ids of the runs the notifier reads from `memory` from now on, in order."""
    reads: list[str] = []
    original = memory.view

    def counting_view(run_id: str) -> RunView | None:
        reads.append(run_id)
        return original(run_id)

    memory.view = counting_view  # type: ignore[method-assign]
    return reads

def test_a_burst_of_queued_and_superseded_runs_costs_no_reads_until_one_is_due(slack: FakeSlack) -> None:
    memory, fake_time = Memory(), FakeTime()
    reads = counted_views(memory)

    async def go() -> None:
        n = notifier(slack, memory, fake_time)
        n.queued_notice = 3600.0  # longer than the test
        n.start()
        for index in range(50):
            run = a_run("queued", stages=(), id=f"burst-{index}", created_at=n.clock())
            memory.runs[run.id] = run
            n.changed(run.id, "queued", run.created_at)
            if index:
                n.changed(f"burst-{index - 1}", "superseded")
        await n.idle()
        assert list(n._due) == ["burst-49"]
        await n.stop()

    asyncio.run(go())
    assert reads == [] and slack.requests == []


def test_a_stage_change_told_by_the_store_updates_the_message_at_once_and_lines_cost_nothing(
    slack: FakeSlack,
) -> None:
    """The store's change feed announces stage changes (committed in any thread): a run whose message
    is up is read again then, not at its next look (an hour away here); log lines, and runs the
    notifier is not watching, cost no read."""
    memory, fake_time = Memory(), FakeTime()
    reads = counted_views(memory)
    feed = Changes()
    run = a_run("running", stages=(StageView("prepare", "batch", "running", 1.0),))
    finished = replace(run, stages=(StageView("prepare", "batch", "succeeded", 1.0, 2.0),))

    async def go() -> None:
        n = notifier(slack, memory, fake_time)
        n.watch_interval = 3600.0
        n.start()
        unwatch = feed.watch(n.progressed, Change.STAGES)
        memory.runs[run.id] = run
        n.changed(run.id, "running")
        await n.idle()
        assert len(reads) == 1 and len(slack.top_level()) == 1
        feed.changed(run.id, Change.LOGS)  # new lines: not on the message
        feed.changed("not-watched", Change.STAGES)
        await asyncio.sleep(0.1)
        await n.idle()
        assert len(reads) == 1
        memory.runs[run.id] = finished
        await asyncio.to_thread(feed.changed, run.id, Change.STAGES)  # committed in a worker thread
        for _ in range(500):
            if slack.top_level()[0].updates:
                break
            await asyncio.sleep(0.01)
        await n.idle()
        unwatch()
        await n.stop()

    asyncio.run(go())
    [message] = slack.top_level()
    assert len(message.updates) == 1 and "succeeded" in str(message.blocks) and len(reads) == 2
    assert [r.text for r in slack.replies(message)] == ["Log of prepare: empty"]  # its log in the thread


def test_a_stage_change_while_slack_is_being_told_is_looked_at_as_soon_as_that_is_done(
    slack: FakeSlack,
) -> None:
    memory, fake_time = Memory(), FakeTime()
    run = a_run("running", stages=(StageView("prepare", "batch", "running", 1.0),))
    finished = replace(run, stages=(StageView("prepare", "batch", "succeeded", 1.0, 2.0),))
    n = notifier(slack, memory, fake_time)
    n.watch_interval = 3600.0
    original = memory.view

    def view_then_the_stage_finishes(run_id: str) -> RunView | None:
        found = original(run_id)
        if memory.runs[run_id] is run:  # committed while this look is under way
            memory.runs[run_id] = finished
            n.progressed(run_id)
        return found

    memory.view = view_then_the_stage_finishes  # type: ignore[method-assign]

    async def go() -> None:
        n.start()
        memory.runs[run.id] = run
        n.changed(run.id, "running")
        await n.idle()
        await n.stop()

    asyncio.run(go())
    [message] = slack.top_level()
    assert len(message.updates) == 1 and "succeeded" in str(message.blocks)
