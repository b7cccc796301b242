"""Run messages: what a user reads in Slack, within Slack's limits (checked by the strict fake's rules)."""

from __future__ import annotations

import json

from chatops.model import StageView
from chatops.render import ACTION_CANCEL, ACTION_DELETE, ACTION_RERUN, log_reply, run_message
from tests.fakes.slack_blocks import block_errors

from .builders import SHA, a_run


def texts(blocks: tuple[dict, ...]) -> str:  # type: ignore[type-arg]
    return json.dumps(blocks, ensure_ascii=False)


def action_ids(message_blocks: tuple[dict, ...]) -> list[str]:  # type: ignore[type-arg]
    actions = [b for b in message_blocks if b["type"] == "actions"]
    return [e["action_id"] for b in actions for e in b["elements"]]


def test_a_running_run_names_repository_environment_commit_trigger_and_each_stage() -> None:
    message = run_message(a_run("running"))
    shown = texts(message.blocks)
    assert "acme/pipelines → production: Running" in message.text
    assert SHA[:7] in shown and "Ada Lovelace" in shown and "Train on the new data" in shown
    assert "trigger: push" in shown and "`main`" in shown
    assert "`prepare` (batch) succeeded · 3s" in shown and "`train` (batch) running" in shown
    assert "http://bodywork.test/runs/" in shown
    assert action_ids(message.blocks) == [ACTION_RERUN, ACTION_CANCEL]
    assert block_errors(list(message.blocks)) == []


def test_a_finished_run_has_no_cancel_button_and_a_delete_button_per_deployed_service() -> None:
    stages = (
        StageView("train", "batch", "succeeded", 1.0, 5.0),
        StageView("serve", "service", "succeeded", 5.0, 9.0),
        StageView("api", "service", "succeeded", 5.0, 8.0),
    )
    message = run_message(a_run("succeeded", stages=stages))
    ids = action_ids(message.blocks)
    assert ids == [ACTION_RERUN, f"{ACTION_DELETE}:0", f"{ACTION_DELETE}:1"]
    delete = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]][1]
    assert json.loads(delete["value"]) == {"run": a_run().id, "service": "serve"}
    assert delete["confirm"]["confirm"]["text"] == "Delete it"
    assert "Succeeded in 12s" in message.text
    assert block_errors(list(message.blocks)) == []


def test_a_failed_run_names_the_failing_stage_and_masks_secrets_in_its_reason() -> None:
    stages = (
        StageView("train", "batch", "failed", 1.0, 2.0, reason="exit 1: token hunter2-secret rejected"),
    )
    message = run_message(
        a_run("failed", stages=stages), mask=lambda t: t.replace("hunter2-secret", "********")
    )
    shown = texts(message.blocks)
    assert "Stage `train` failed: exit 1: token ******** rejected" in shown
    assert "hunter2-secret" not in shown


def test_a_superseded_run_says_so_and_by_which_commit() -> None:
    message = run_message(a_run("superseded", stages=(), superseded_by_commit="fedcba9876543210"))
    assert "Superseded by `fedcba9`" in texts(message.blocks)


def test_huge_runs_stay_within_every_limit() -> None:
    long_name = "s" * 300
    stages = tuple(StageView(f"{long_name}{i}", "service", "succeeded", 0.0, 1.0) for i in range(400))
    message = run_message(
        a_run(
            "failed", stages=stages, reason="x" * 10_000, repository="r" * 500, trigger="slack:" + "u" * 3000
        )
    )
    assert block_errors(list(message.blocks)) == []
    assert len(message.text) <= 40_000
    assert "more stages on the run page" in texts(message.blocks)


def test_user_text_cannot_inject_mrkdwn_links_or_mentions() -> None:
    run = a_run(commit=a_run().commit.__class__(SHA, "<!channel>", "<http://evil|click> & more"))
    shown = texts(run_message(run).blocks)
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    assert "&lt;http://evil|click&gt; &amp; more" in shown


def test_a_short_log_goes_inline_and_a_long_one_also_as_a_file() -> None:
    run = a_run("failed")
    stage = StageView("train", "batch", "failed", 1.0, 2.0)
    short = log_reply(run, stage, ["epoch 1", "loss <0.5>"])
    assert short.upload is None and "loss &lt;0.5&gt;" in texts(short.message.blocks)
    lines = [f"line {i} password=s3cr3t-value" for i in range(500)]
    long = log_reply(run, stage, lines, mask=lambda t: t.replace("s3cr3t-value", "********"))
    assert long.upload is not None and long.upload.count("\n") == 499
    assert "s3cr3t-value" not in long.upload and "s3cr3t-value" not in texts(long.message.blocks)
    assert "line 499" in texts(long.message.blocks) and "line 479" not in texts(long.message.blocks)
    assert "last 20 of 500 lines" in texts(long.message.blocks)
    assert block_errors(list(long.message.blocks)) == []


def test_a_log_longer_than_the_attachment_says_only_its_end_is_attached() -> None:
    """A stage that printed 25,000 lines: the file holds the last 10,000, and the reply must not
    claim it is the whole log; it points to the run page, which has it."""
    run = a_run("failed")
    lines = [f"line {i}" for i in range(15_000, 25_000)]
    reply = log_reply(run, StageView("train", "batch", "failed", 1.0, 2.0), lines, written=25_000)
    shown = texts(reply.message.blocks)
    assert "last 20 of 25000 lines; the last 10000 are attached" in shown
    assert "the whole log is attached" not in shown and run.url in shown
    assert reply.upload is not None and reply.upload.splitlines()[0] == "line 15000"
    assert block_errors(list(reply.message.blocks)) == []


def test_a_log_with_huge_lines_keeps_its_end_within_the_section_limit() -> None:
    reply = log_reply(a_run(), StageView("t", "batch", "failed"), ["a" * 5000, "the end ```"])
    assert block_errors(list(reply.message.blocks)) == []
    assert reply.upload is not None
    assert "the end" in texts(reply.message.blocks)
