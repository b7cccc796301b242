"""What the pages show, without a browser: links, filters, headlines, the live events, escaping."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from gitops.secret import Secret
from gitops.settings import RepositorySettings
from gitops.status import FailureKind, RunStatus
from gitops.store import LogRecord, NewRun, RunRecord, Store
from gitops.web import views
from gitops.web.live import follow
from gitops.web.schedules_view import schedule_view
from gitops.web.templating import render_text, templates

SHA = "0123456789abcdef0123456789abcdef01234567"


def repository(provider: str, api_base: str, name: str = "acme/pipelines") -> RepositorySettings:
    return RepositorySettings(url="https://x/y.git", provider=provider, name=name, api_base=api_base,
                              webhook_secret=Secret("s"))


@pytest.mark.parametrize(("provider", "api_base", "expected"), [
    ("github", "https://api.github.com", f"https://github.com/acme/pipelines/commit/{SHA}"),
    ("github", "https://ghe.example.com/api/v3", f"https://ghe.example.com/acme/pipelines/commit/{SHA}"),
    ("gitlab", "https://gitlab.example.com/api/v4", f"https://gitlab.example.com/acme/pipelines/-/commit/{SHA}"),
])
def test_a_commit_links_to_its_provider(provider: str, api_base: str, expected: str) -> None:
    assert views.commit_url(repository(provider, api_base), SHA) == expected


def test_no_commit_link_without_a_repository_or_a_real_sha() -> None:
    github = repository("github", "https://api.github.com")
    assert views.commit_url(None, SHA) is None
    assert views.commit_url(github, "0" * 40) is None
    assert views.commit_url(github, "javascript:alert(1)") is None


def test_refs_and_durations_read_as_people_say_them() -> None:
    assert [views.ref_name(r) for r in ("refs/heads/feature/x", "refs/tags/v1.2", "abc")] == [
        "feature/x", "v1.2", "abc"]
    assert [views.duration_text(s) for s in (None, 0.25, 59.9, 61, 3725)] == ["", "0.2s", "59.9s", "1m 01s",
                                                                              "1h 02m"]


def test_the_runs_list_filters_come_from_the_query_and_make_page_links() -> None:
    query = {"environment": "prod", "branch": " main ", "state": "failed", "page": "3"}
    filters = views.RunFilters.parse(query)
    assert filters.store_query() == {
        "repository": None, "environment": "prod", "ref": "main", "state": RunStatus.FAILED, "trigger": None,
        "limit": views.PAGE_SIZE + 1, "offset": 2 * views.PAGE_SIZE,
    }
    assert filters.link(4) == "?environment=prod&branch=main&state=failed&page=4"
    assert filters.link(1) == "?environment=prod&branch=main&state=failed"
    for bad in ({"state": "exploded"}, {"page": "0"}, {"page": "two"}):
        with pytest.raises(views.FilterError):
            views.RunFilters.parse(bad)


def test_a_schedule_reads_as_the_schedules_api_describes_it() -> None:
    view = schedule_view({
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "suspend": False},
        "source": "bodywork.yaml", "next_fire": "2026-11-30T02:00:00+00:00", "last_fire": None,
        "last_outcome": None,
    })
    assert (view.cron, view.timezone, view.source, view.last_fire) == (
        "0 3 * * *", "Europe/Berlin", "bodywork.yaml", None)
    assert views.time_text(view.next_fire) == "2026-11-30 02:00:00 UTC"


def test_the_environment_page_shows_a_schedule_and_its_next_fire() -> None:
    run = _record(RunStatus.SUCCEEDED)
    schedule = views.ScheduleView("*/15 * * * *", "UTC", 1_800_000_000.0, source="service config")
    page = views.EnvironmentView("prod", run, run, [], schedule, [run])
    html = render_text("environment.html", {"env": page, "commit_url": None, "visitor": _Visitor()})
    assert "*/15 * * * *" in html and "2027-01-15 08:00:00 UTC" in html and "service config" in html


def test_templates_escape_what_they_show() -> None:
    assert templates.env.autoescape is not False
    run = _record(RunStatus.FAILED, ref="refs/heads/<script>x</script>", reason='<img src=x onerror="y">')
    html = render_text("run.html", {
        "run": run, "steps": [], "headline": views.headline(run), "duration": "", "commit_url": None,
        "log": views.LogLines(lambda after, limit: [LogRecord(1, "train", "<b>b</b>", 1.0)][after:limit]),
        "stage_names": ["service"], "stage": "", "search": "", "visitor": _Visitor(),
    })
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=&#34;y&#34;&gt;" in html
    assert "<b>" not in html and "&lt;b&gt;b&lt;/b&gt;" in html


def test_the_page_reads_the_log_in_batches_up_to_its_limit() -> None:
    records = [LogRecord(i, "train" if i % 2 else "", f"line {i}", 1.0) for i in range(1, 8)]
    calls: list[tuple[int, int]] = []

    def fetch(after: int, limit: int) -> list[LogRecord]:
        calls.append((after, limit))
        return [x for x in records if x.id > after][:limit]

    everything = views.LogLines(fetch, batch=3)
    assert [line[0] for line in everything] == [1, 2, 3, 4, 5, 6, 7]
    assert (everything.count, everything.last_id, everything.truncated) == (7, 7, False)
    assert calls == [(0, 3), (3, 3), (6, 3), (7, 3)]
    some = views.LogLines(fetch, stage="service", search="LINE", limit=5, batch=2)
    assert list(some) == [(2, 2, "service", "line 2"), (4, 4, "service", "line 4")]
    assert (some.count, some.last_id, some.truncated) == (5, 5, True)


def test_the_live_events_send_lines_and_states_then_end(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3")
    try:
        run = store.accept(NewRun("github:acme/p", "github", "refs/heads/main", SHA, "prod", None, False,
                                  "deploy", "webhook"), []).run
        store.mark_running(run.id)
        store.set_pipeline(run.id, "demo", [["train"]], "demo")
        store.stage_started(run.id, "train", "batch", 1, 1.0)
        store.add_logs(run.id, [("train", "</script><b>one</b>", 1.5)])
        events = asyncio.run(_events(store, run.id, after=0, finish_after=2))
    finally:
        store.close()
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["logs", "run"] and kinds[-1] == "end"
    assert events[0][1] == [{"id": 1, "stage": "train", "line": "</script><b>one</b>"}]
    assert events[1][1]["stages"][0]["state"] == "running"
    final = [data for kind, data in events if kind == "run"][-1]
    assert final["state"] == "failed" and final["final"] and final["headline"] == "Failed (pipeline): oops"
    last_lines = [data for kind, data in events if kind == "logs"][-1]
    assert last_lines == [{"id": 2, "stage": "service", "line": "bye"}]


async def _events(store: Store, run_id: str, after: int, finish_after: int) -> list[tuple[str, Any]]:
    """The events `follow` yields; after `finish_after` of them, the run ends with a last line."""
    found: list[tuple[str, Any]] = []
    async for text in follow(store, run_id, after, fallback=0.01):
        if text.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
        if len(found) == finish_after:
            store.add_logs(run_id, [("", "bye", 2.0)])
            store.finish(run_id, RunStatus.FAILED, "oops", failure=FailureKind.PIPELINE)
    return found


def test_an_idle_stream_sends_keep_alive_comments_without_reading_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store.sqlite3")
    run = store.accept(NewRun("github:acme/p", "github", "refs/heads/main", SHA, "prod", None, False,
                              "deploy", "webhook"), []).run
    store.mark_running(run.id)
    reads: list[str] = []
    original = store.get

    def counted_get(run_id: str) -> RunRecord | None:
        reads.append(run_id)
        return original(run_id)

    store.get = counted_get  # type: ignore[method-assign]

    async def go() -> list[str]:
        texts: list[str] = []
        stream = follow(store, run.id, 0, fallback=3600, keepalive=0.05)
        async with contextlib.aclosing(stream):
            async for text in stream:
                texts.append(text)
                if texts.count(": keep-alive\n\n") == 3:
                    break
        return texts

    try:
        texts = asyncio.run(asyncio.wait_for(go(), 10))
        assert store.changes.followed() == {}
    finally:
        store.close()
    assert texts[0].startswith("event: run") and texts[1:] == [": keep-alive\n\n"] * 3
    assert reads == [run.id]  # the first look only: nothing changed since


class _Visitor:
    can_read = True
    operator = False
    user = ""
    csrf = ""


def _record(state: RunStatus, ref: str = "refs/heads/main", reason: str = "") -> RunRecord:
    return RunRecord(
        id="abc", repository="github:acme/p", provider="github", ref=ref, commit=SHA, environment="prod",
        namespace=None, preview=False, action="deploy", trigger="webhook", delivery_id="", state=state,
        reason=reason, problems=[], pipeline="demo", steps=[], superseded_by=None, interruptions=0,
        created_at=1.0, started_at=2.0, finished_at=3.0,
        failure=FailureKind.PIPELINE if state is RunStatus.FAILED else None,
    )
