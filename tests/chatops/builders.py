"""Runs for chatops tests."""

from __future__ import annotations

from dataclasses import replace

from chatops.model import CommitView, RunView, StageView

SHA = "0123456789abcdef0123456789abcdef01234567"


def a_run(state: str = "running", stages: tuple[StageView, ...] | None = None, **changes: object) -> RunView:
    run = RunView(
        id="3f2a9c1e-0000-4000-8000-000000000001",
        repository="acme/pipelines",
        environment="production",
        ref="refs/heads/main",
        commit=CommitView(
            SHA, "Ada Lovelace", "Train on the new data", f"https://github.com/acme/pipelines/commit/{SHA}"
        ),
        state=state,
        trigger="push",
        url="http://bodywork.test/runs/3f2a9c1e-0000-4000-8000-000000000001",
        created_at=100.0,
        started_at=101.0,
        finished_at=113.0 if state in ("succeeded", "failed", "cancelled") else None,
        stages=stages
        if stages is not None
        else (
            StageView("prepare", "batch", "succeeded", 101.0, 104.0),
            StageView("train", "batch", "running" if state == "running" else "succeeded", 104.0, None),
            StageView("serve", "service", "pending"),
        ),
    )
    return replace(run, **changes)  # type: ignore[arg-type]
