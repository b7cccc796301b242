"""Runs as Slack messages: Block Kit within Slack's limits, secrets masked. Pure.

One message per run (updated in place as the run progresses) and one thread reply per stage log.
Every text that came from a user, a commit or a stage log is masked, then escaped for mrkdwn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chatops.model import RunView, StageView

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_MESSAGE_TEXT = 40_000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_CONTEXT_TEXT = 2000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_ACTIONS = 25

LOG_TAIL_LINES = 20
"""Lines of a stage log shown inline in the thread; the whole log is uploaded as a file when longer."""

ACTION_RERUN = "bodywork_rerun"
ACTION_CANCEL = "bodywork_cancel"
ACTION_DELETE = "bodywork_delete"

Mask = Callable[[str], str]

_RUN_ICONS = {
    "queued": ":hourglass_flowing_sand:",
    "running": ":arrows_counterclockwise:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "superseded": ":fast_forward:",
}
_STAGE_ICONS = {
    "pending": ":white_circle:",
    "running": ":arrows_counterclockwise:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rolled_back": ":leftwards_arrow_with_hook:",
    "cancelled": ":no_entry_sign:",
    "skipped": ":heavy_minus_sign:",
}


@dataclass(frozen=True)
class Message:
    text: str
    """The notification text (and what clients without blocks show)."""
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class LogReply:
    message: Message
    upload: str | None
    """The whole (masked) log when it is longer than the inline tail, to upload as a file."""
    filename: str


def no_mask(text: str) -> str:
    return text


def escape(text: str) -> str:
    """mrkdwn control characters; Slack asks for exactly these three."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, marker: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def short_sha(sha: str) -> str:
    return sha[:7]


def ref_name(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_CONTEXT_TEXT)}]}


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT)},
        "action_id": action_id,
        "value": value[:MAX_BUTTON_VALUE],
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, confirm: str) -> dict[str, Any]:
    return {
        "title": {"type": "plain_text", "text": truncate(title, MAX_CONFIRM_TITLE)},
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_CONFIRM_TEXT)},
        "confirm": {"type": "plain_text", "text": truncate(confirm, MAX_CONFIRM_BUTTON)},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger",
    }


def run_title(run: RunView) -> str:
    verb = "Teardown" if run.action == "teardown" else "Run"
    state = run.state.capitalize()
    took = f" in {duration_text(run.duration)}" if run.is_final and run.duration is not None else ""
    return f"{verb} of {run.repository} → {run.environment}: {state}{took}"


def run_message(run: RunView, mask: Mask = no_mask) -> Message:
    """The run's one message: header, commit and trigger, each stage, the outcome, and its buttons."""
    icon = _RUN_ICONS.get(run.state, ":grey_question:")
    blocks: list[dict[str, Any]] = [
        section(f"{icon} *<{run.url}|{escape(run_title(run))}>*"),
        _commit_context(run, mask),
    ]
    blocks += _stage_sections(run.stages, limit=MAX_BLOCKS - 4)
    outcome = _outcome(run, mask)
    if outcome:
        blocks.append(section(outcome))
    actions = _actions(run)
    if actions:
        blocks.append({"type": "actions", "elements": actions[:MAX_ACTIONS]})
    text = truncate(f"{run_title(run)} ({short_sha(run.commit.sha)})", MAX_MESSAGE_TEXT)
    return Message(text=text, blocks=tuple(blocks[:MAX_BLOCKS]))


def _commit_context(run: RunView, mask: Mask) -> dict[str, Any]:
    sha = short_sha(run.commit.sha)
    commit = f"<{run.commit.url}|`{sha}`>" if run.commit.url else f"`{sha}`"
    parts = [f"{commit} on `{escape(ref_name(run.ref))}`"]
    if run.commit.author:
        parts.append(f"by {escape(mask(run.commit.author))}")
    if run.commit.title:
        parts.append(f"“{escape(truncate(mask(run.commit.title), 200))}”")
    parts.append(f"· trigger: {escape(run.trigger)}")
    return context(" ".join(parts))


def stage_line(stage: StageView) -> str:
    icon = _STAGE_ICONS.get(stage.state, ":grey_question:")
    took = duration_text(stage.duration)
    suffix = f" · {took}" if took else ""
    return f"{icon} `{escape(stage.name)}` ({stage.kind}) {stage.state.replace('_', ' ')}{suffix}"


def _stage_sections(stages: Sequence[StageView], limit: int) -> list[dict[str, Any]]:
    """Stage lines packed into as few sections as fit 3000 characters each, at most `limit` sections."""
    sections: list[str] = []
    current = ""
    for stage in stages:
        line = truncate(stage_line(stage), MAX_SECTION_TEXT)
        if current and len(current) + 1 + len(line) > MAX_SECTION_TEXT:
            sections.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
    if len(sections) > limit:
        hidden = sum(s.count("\n") + 1 for s in sections[limit - 1 :])
        sections = [*sections[: limit - 1], f"… and {hidden} more stages on the run page"]
    return [section(text) for text in sections]


def _outcome(run: RunView, mask: Mask) -> str:
    if run.state == "superseded":
        by = f" by `{short_sha(run.superseded_by_commit)}`" if run.superseded_by_commit else ""
        return f":fast_forward: Superseded{by} before it started; not run."
    failed = run.failed_stage
    if run.state == "failed" and failed is not None:
        reason = escape(truncate(mask(failed.reason or run.reason), 1500))
        return f":x: Stage `{escape(failed.name)}` failed: {reason}\nIts log is in the thread."
    if run.state in ("failed", "cancelled") and run.reason:
        return f"{_RUN_ICONS[run.state]} {escape(truncate(mask(run.reason), 2000))}"
    return ""


def _actions(run: RunView) -> list[dict[str, Any]]:
    elements = [button("Re-run", ACTION_RERUN, run.id)]
    if run.state in ("queued", "running"):
        elements.append(
            button(
                "Cancel",
                ACTION_CANCEL,
                run.id,
                style="danger",
                confirm=confirm_dialog(
                    "Cancel this run?",
                    f"Cancel the run of *{escape(run.repository)}* in `{escape(run.environment)}`?",
                    "Cancel the run",
                ),
            )
        )
    services = [s for s in run.stages if s.kind == "service" and s.state == "succeeded"]
    for index, stage in enumerate(services):
        value = json.dumps({"run": run.id, "service": stage.name}, separators=(",", ":"))
        elements.append(
            button(
                f"Delete service {stage.name}",
                f"{ACTION_DELETE}:{index}",  # action ids are unique within a block
                value,
                style="danger",
                confirm=confirm_dialog(
                    f"Delete service {stage.name}?",
                    f"This stops `{escape(stage.name)}` in `{escape(run.environment)}`; "
                    "it comes back with the next deploy.",
                    "Delete it",
                ),
            )
        )
    return elements


def log_reply(
    run: RunView, stage: StageView, lines: Sequence[str], mask: Mask = no_mask, written: int | None = None
) -> LogReply:
    """The thread reply of a finished stage: its state, the tail of its log, the log as a file.

    `lines` is the end of the stage's log, `written` how many lines it wrote in all (None: `lines`
    is all of them); when the file holds only the end, the reply says so and links the run page,
    which has the whole log."""
    masked = [mask(line) for line in lines]
    written = max(written or 0, len(masked))
    header = (
        f"{_STAGE_ICONS.get(stage.state, '')} Log of `{escape(stage.name)}` ({stage.state.replace('_', ' ')})"
    )
    if not masked:
        return LogReply(
            Message(text=f"Log of {stage.name}: empty", blocks=(section(f"{header}: no output"),)), None, ""
        )
    tail = masked[-LOG_TAIL_LINES:]
    note = ""
    if written > len(masked):
        note = (
            f", last {len(tail)} of {written} lines; the last {len(masked)} are attached, "
            f"the whole log is on <{run.url}|the run's page>"
        )
    elif len(tail) < len(masked):
        note = f", last {len(tail)} of {len(masked)} lines; the whole log is attached"
    body = _code_block(escape("\n".join(tail)), MAX_SECTION_TEXT - len(header) - len(note) - 4)
    blocks = (section(f"{header}{note}\n{body}"),)
    whole = "\n".join(masked)
    long = len(tail) < len(masked) or len(whole) > MAX_SECTION_TEXT - len(header) - 10
    filename = f"{run.id[:8]}-{stage.name}.log"
    return LogReply(
        Message(text=f"Log of {stage.name} ({stage.state})", blocks=blocks), whole if long else None, filename
    )


def _code_block(text: str, limit: int) -> str:
    """A ``` block of at most `limit` characters, keeping the end of `text` (the end is what matters)."""
    text = text.replace("```", "`\u200b``")  # a zero-width space keeps a log from closing the block
    room = max(0, limit - 8)
    if len(text) > room:
        text = "…" + text[len(text) - room + 1 :]
    return f"```\n{text}\n```"
