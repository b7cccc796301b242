"""GET /metrics scraped around real runs: the counters and histograms move as the runs happen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitops.metrics import Metrics
from tests.fakes.github_api import FakeGitHub
from tests.gitops.conftest import GITHUB_SECRET, ServiceFactory
from tests.gitops.helpers import (
    ZERO,
    RunningService,
    SourceRepo,
    github_headers,
    github_push,
    pipeline_files,
    wait_until,
)
from tests.pages.helpers import gated_script, push

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(service: RunningService) -> Samples:
    answer = service.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_metrics_follow_webhooks_runs_stages_statuses_and_the_store(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    good = github_repo.commit(pipeline_files(scripts={"train.py": gated_script(gate, "start", "done")}))
    github_repo.push()
    bad = github_repo.commit({"train.py": "raise SystemExit(2)\n"}, branch="feature/broken")
    github_repo.push("feature/broken")
    service = make_service(max_concurrent=1)
    before = scrape(service)
    assert value(before, "bodywork_queue_depth") == 0
    fake_github.fail_next(1)  # the first status call fails (and is retried)

    running = push(service, "refs/heads/main", good)
    wait_until(lambda: any(s["state"] == "running" for s in service.run(running)["stages"]), what="a stage")
    queued = push(service, "refs/heads/feature/broken", bad)  # waits: one run at a time
    assert value(scrape(service), "bodywork_queue_depth") == 1
    body = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, good)).encode()
    bad_signature = service.client.post("/webhooks/github", content=body,
                                        headers=github_headers(body, "not the secret"))
    assert bad_signature.status_code == 401
    ignored = json.dumps(github_push("acme/pipelines", "refs/heads/elsewhere", ZERO, good)).encode()
    headers = github_headers(ignored, GITHUB_SECRET)
    answer = service.client.post("/webhooks/github", content=ignored, headers=headers)
    assert answer.json()["status"] == "ignored"
    gate.touch()
    assert service.wait_for(running)["state"] == "succeeded"
    assert service.wait_for(queued)["state"] == "failed"
    wait_until(lambda: [s.state for s in fake_github.accepted(bad)][-1:] == ["failure"], what="statuses")
    delivered = len(fake_github.accepted(good)) + len(fake_github.accepted(bad))
    preview = service.run(queued)["environment"]

    def settled() -> Samples | None:
        """The metrics once the last status call and the last run's end are counted (each is counted
        a moment after the fake or the store has it)."""
        samples = scrape(service)
        done = (
            value(samples, "bodywork_status_calls_total", provider="github", outcome="ok") == delivered
            and value(samples, "bodywork_runs_total", environment=preview, outcome="failed") == 1
        )
        return samples if done else None

    after: Samples = wait_until(settled, what="the last counts")

    assert value(after, "bodywork_queue_depth") == 0
    assert value(after, "bodywork_webhooks_total", provider="github", answer="accepted") == 2
    assert value(after, "bodywork_webhooks_total", provider="github", answer="unauthorized") == 1
    assert value(after, "bodywork_webhooks_total", provider="github", answer="ignored") == 1
    assert value(after, "bodywork_runs_total", environment="pipelines", outcome="succeeded") == 1
    assert value(after, "bodywork_runs_total", environment=preview, outcome="failed") == 1
    assert value(before, "bodywork_runs_total", environment="pipelines", outcome="succeeded") == 0
    run = service.run(running)
    count = value(after, "bodywork_run_duration_seconds_count", environment="pipelines", outcome="succeeded")
    total = value(after, "bodywork_run_duration_seconds_sum", environment="pipelines", outcome="succeeded")
    assert count == 1 and total == pytest.approx(run["finished_at"] - run["started_at"])
    for stage, outcome in (("prepare", "succeeded"), ("train", "succeeded"), ("train", "failed")):
        assert value(after, "bodywork_stage_duration_seconds_count", stage=stage, outcome=outcome) >= 1
    train = next(s for s in run["stages"] if s["stage"] == "train")
    # The gated stage took longer than the smallest bucket only if it waited that long; it is counted
    # in the +Inf bucket in any case, and its duration is in the sum.
    assert value(after, "bodywork_stage_duration_seconds_bucket", stage="train", outcome="succeeded",
                 le="+Inf") == 1
    assert value(after, "bodywork_stage_duration_seconds_sum", stage="train", outcome="succeeded") == \
        pytest.approx(train["duration"], abs=0.05)
    assert value(after, "bodywork_status_calls_total", provider="github", outcome="failed") == 1
    assert value(after, "bodywork_status_calls_total", provider="github", outcome="ok") == delivered
    writes = value(after, "bodywork_store_write_seconds_count")
    assert writes > value(before, "bodywork_store_write_seconds_count") + 5


def test_slack_calls_are_counted_for_chatops() -> None:
    metrics = Metrics()
    metrics.slack_call("chat.postMessage", ok=True)
    metrics.slack_call("chat.postMessage", ok=True)
    metrics.slack_call("chat.update", ok=False)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "bodywork_slack_calls_total", method="chat.postMessage", outcome="ok") == 2
    assert value(samples, "bodywork_slack_calls_total", method="chat.update", outcome="failed") == 1
    assert value(samples, "bodywork_queue_depth") == 0


def test_two_services_never_share_their_metrics() -> None:
    first, second = Metrics(queue_depth=lambda: 3), Metrics()
    first.webhook("github", "accepted")
    assert value(parse(first.exposition().decode()), "bodywork_queue_depth") == 3
    assert value(parse(second.exposition().decode()), "bodywork_webhooks_total",
                 provider="github", answer="accepted") == 0
