"""Schedules end to end on loopback: a push deploys a pipeline that declares a schedule; the service is
down over the schedule's fire; at the restart APScheduler fires it once and the run reports exactly as
the push's did (commit statuses on the strict fake GitHub, history, run page), marked as scheduled.
Deploys without the declaration and deleted preview branches remove the schedule."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitops.cli import main
from gitops.settings import SettingsError, load_settings
from gitops.store import Store
from tests.fakes.github_api import FakeGitHub

from .conftest import API_TOKEN, ServiceFactory
from .helpers import ZERO, RunningService, SourceRepo, pipeline_files, wait_until
from .test_e2e_github import push, statuses

pytestmark = pytest.mark.timeout(120)

YEARLY = "  schedule:\n    cron: '0 0 1 1 *'\n    timezone: Europe/London\n"


def scheduled_files(block: str = YEARLY) -> dict[str, str]:
    files = pipeline_files()
    files["bodywork.yaml"] = files["bodywork.yaml"].replace(
        "  DAG: prepare >> train\n", "  DAG: prepare >> train\n" + block
    )
    return files


def deploy(service: RunningService, repo: SourceRepo, branch: str, sha: str) -> dict[str, object]:
    answer = push(service, repo, f"refs/heads/{branch}", ZERO, sha)
    assert answer.status_code == 202, answer.text
    run = service.wait_for(answer.json()["run_id"])
    assert run["state"] == "succeeded", run["reason"]
    return run


def schedules(service: RunningService) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = service.client.get("/api/schedules").json()["schedules"]
    return listed


def _steady(description: str) -> str:
    return re.sub(r" in \d+s$", " in Ns", description)


def test_a_fire_missed_while_down_runs_once_at_restart_and_reports_like_a_push(
    make_service: ServiceFactory,
    github_repo: SourceRepo,
    fake_github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sha = github_repo.commit(scheduled_files())
    github_repo.push()
    service = make_service()
    pushed = deploy(service, github_repo, "main", sha)
    listed = service.client.get("/api/schedules").json()
    assert listed["firing"] is True
    assert listed["schedules"] == [
        {
            "id": "pipelines",
            "environment": "pipelines",
            "repository": "acme/pipelines",
            "ref": "refs/heads/main",
            "source": "bodywork.yaml",
            "schedule": {
                "cron": "0 0 1 1 *",
                "timezone": "Europe/London",
                "concurrency_policy": "forbid",
                "starting_deadline_seconds": None,
                "suspend": False,
            },
            "next_fire": f"{datetime.now(UTC).year + 1}-01-01T00:00:00+00:00",
            "last_fire": None,
            "last_outcome": None,
            "last_run_id": None,
            "last_detail": "",
        }
    ]
    wait_until(lambda: len(statuses(fake_github, sha)) == 5, what="the push's final status")
    service.__exit__(None, None, None)

    # Down over two new years (no starting deadline): the latest fire runs once, the other is missed.
    store = Store(tmp_path / "data" / "store.sqlite3")
    record = store.schedules.get("pipelines")
    assert record is not None
    year = datetime.now(UTC).year
    store.schedules.save(replace(record, since=datetime(year - 2, 12, 1, tzinfo=UTC).timestamp()))
    store.close()
    service = make_service()

    def history() -> list[dict[str, object]]:
        entries: list[dict[str, object]] = service.client.get("/api/schedules/pipelines/history").json()[
            "history"
        ]
        return entries[::-1]

    entries = wait_until(history, what="the fire missed while the service was down")
    assert [(e["scheduled_for"], e["outcome"]) for e in entries] == [
        (f"{year - 1}-01-01T00:00:00+00:00", "missed"),
        (f"{year}-01-01T00:00:00+00:00", "queued"),
    ]
    scheduled = service.wait_for(str(entries[1]["run_id"]))
    assert scheduled["state"] == "succeeded", scheduled["reason"]
    assert scheduled["trigger"] == "schedule"
    same = ("commit", "ref", "environment", "namespace", "pipeline", "steps")
    assert {k: scheduled[k] for k in same} == {k: pushed[k] for k in same}
    assert [s["state"] for s in scheduled["stages"]] == ["succeeded", "succeeded"]

    wait_until(lambda: len(statuses(fake_github, sha)) == 10, what="the scheduled run's final status")
    seen = [(context, state, _steady(text)) for context, state, text in statuses(fake_github, sha)]
    assert seen[5:] == seen[:5]
    urls = [s.target_url for s in fake_github.accepted(sha)]
    assert set(urls[5:]) == {f"http://bodywork.example.invalid/runs/{scheduled['id']}"}
    assert not fake_github.rejected
    listed_runs = service.client.get("/api/runs", params={"environment": "pipelines"}).json()["runs"]
    assert [(r["id"], r["trigger"]) for r in listed_runs] == [
        (scheduled["id"], "schedule"),
        (pushed["id"], "webhook"),
    ]
    page = service.client.get(f"/runs/{scheduled['id']}").text
    assert f"the fire due {year}-01-01 00:00:00 UTC of the schedule of" in page
    assert 'href="/environments/pipelines#schedule"' in page
    [after] = schedules(service)
    assert (after["last_fire"], after["last_outcome"], after["last_run_id"]) == (
        f"{year}-01-01T00:00:00+00:00",
        "queued",
        scheduled["id"],
    )

    main(["schedules", "list", "--url", service.base_url])
    main(["schedules", "history", "pipelines", "--url", service.base_url])
    assert main(["schedules", "history", "nope", "--url", service.base_url]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "ENVIRONMENT  SOURCE         CRON       TIME ZONE      POLICY  NEXT FIRE             "
        "LAST FIRE             LAST OUTCOME",
        f"pipelines    bodywork.yaml  0 0 1 1 *  Europe/London  forbid  {year + 1}-01-01 00:00 GMT  "
        f"{year}-01-01 00:00 GMT  queued (run {scheduled['id']})",
        "SCHEDULED FOR         OUTCOME  RUN" + " " * 11 + "DETAIL",
        f"{year}-01-01 00:00 UTC  queued   {scheduled['id']}  queued {sha[:10]}, the head of refs/heads/main",
        f"{year - 1}-01-01 00:00 UTC  missed   -"
        + " " * 13
        + f"due at {year - 1}-01-01 00:00:00 UTC: not run, "
        "the service was not running then; the latest fire runs instead",
    ]
    assert err == (
        f"error: {service.base_url}/api/schedules/nope/history?limit=50 answered 404: no schedule 'nope' "
        "and no history of one\n"
    )

    assert service.client.post("/api/schedules/pipelines/run").status_code == 401
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    now = service.client.post("/api/schedules/pipelines/run", headers=auth)
    assert now.status_code == 202, now.text
    assert now.json()["outcome"] == "queued"
    assert service.wait_for(now.json()["run_id"])["trigger"] == "schedule"
    assert service.client.post("/api/schedules/nope/run", headers=auth).status_code == 404


def test_a_deploy_without_the_declaration_removes_the_schedule(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    first = github_repo.commit(scheduled_files())
    github_repo.push()
    service = make_service()
    deploy(service, github_repo, "main", first)
    assert [s["id"] for s in schedules(service)] == ["pipelines"]
    changed = scheduled_files("  schedule: '30 6 * * 1-5'\n")
    second = github_repo.commit(changed, message="weekdays")
    github_repo.push()
    deploy(service, github_repo, "main", second)
    assert [s["schedule"]["cron"] for s in schedules(service)] == ["30 6 * * 1-5"]  # type: ignore[index]
    third = github_repo.commit(pipeline_files(), message="no schedule")
    github_repo.push()
    deploy(service, github_repo, "main", third)
    assert schedules(service) == []


def test_deleting_a_preview_branch_removes_its_schedule(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    github_repo.commit({"README.md": "main"})
    github_repo.push()
    sha = github_repo.commit(scheduled_files(), branch="feature/nightly")
    github_repo.push("feature/nightly")
    service = make_service()
    run = deploy(service, github_repo, "feature/nightly", sha)
    [listed] = schedules(service)
    assert (listed["id"], listed["ref"]) == (run["environment"], "refs/heads/feature/nightly")
    github_repo.delete_branch("feature/nightly")
    answer = push(service, github_repo, "refs/heads/feature/nightly", sha, ZERO, deleted=True)
    assert answer.status_code == 202, answer.text
    assert service.wait_for(answer.json()["run_id"])["state"] == "succeeded"
    assert schedules(service) == []
    history = service.client.get(f"/api/schedules/{run['environment']}/history")
    assert history.status_code == 404


def test_the_service_config_declares_schedules_per_branch_and_wins_over_bodywork_yaml(
    make_service: ServiceFactory, github_repo: SourceRepo
) -> None:
    extra = (
        "    schedules:\n      main: {cron: '15 4 * * *', timezone: Asia/Tokyo, concurrency_policy: allow}\n"
    )
    service = make_service(repo_extra=extra)
    [configured] = schedules(service)  # registered at start, before any deploy
    assert (configured["id"], configured["source"], configured["ref"]) == (
        "pipelines",
        "service config",
        "refs/heads/main",
    )
    assert configured["schedule"] == {
        "cron": "15 4 * * *",
        "timezone": "Asia/Tokyo",
        "concurrency_policy": "allow",
        "starting_deadline_seconds": None,
        "suspend": False,
    }
    assert str(configured["next_fire"]).endswith(":15:00+00:00")
    sha = github_repo.commit(scheduled_files())
    github_repo.push()
    deploy(service, github_repo, "main", sha)
    [after] = schedules(service)
    assert (after["source"], after["schedule"]["cron"]) == ("service config", "15 4 * * *")  # type: ignore[index]


def test_a_bad_schedule_in_the_service_config_names_its_path(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(
        "repositories:\n  - url: https://github.com/acme/pipelines.git\n    provider: github\n"
        "    webhook_secret_env: S\n    schedules:\n      main: {cron: '0 3 * *', timezone: Mars/Base}\n"
        "      develop: '0 4 * * *'\n"
        "service:\n  schedules: {lease: sometimes}\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {"S": "x"})
    assert caught.value.problems == [
        "repositories.0.schedules.main.cron -> is not a valid cron expression: must have 5 fields "
        '(minute hour day-of-month month day-of-week), got 4: "0 3 * *"; e.g. "0 3 * * *" for 03:00 '
        "every day (line 6)",
        'repositories.0.schedules.main.timezone -> unknown time zone "Mars/Base"; use an IANA name such '
        "as Europe/London or UTC (line 6)",
        "repositories.0.schedules.develop -> branch 'develop' matches neither deploy_branches nor "
        "preview_branches, so it has no environment to re-run; add it to one of them or remove the schedule "
        "(line 7)",
        "service.schedules.lease -> must be auto, true or false, not 'sometimes' (line 9)",
    ]
