"""Pure parts of the service: signatures, parsing, environments, settings, scheduling, the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.environments import Target, preview_environment, target_for
from gitops.queue import Candidate, Picked, pick
from gitops.secret import Secret
from gitops.service import Service
from gitops.settings import RepositorySettings, Settings, SettingsError, load_settings
from gitops.status import RunStatus
from gitops.statuses import CommitStatus, StatusState
from gitops.store import NewRun, Store
from gitops.webhooks import ZERO_SHA, Ignored, MalformedWebhook, Ping, PushEvent, github, gitlab

pytestmark = pytest.mark.timeout(10)


# -- signatures and parsing -------------------------------------------------------------------------


def test_github_signature_matches_the_documented_test_vector() -> None:
    secret = Secret("It's a Secret to Everybody")
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github.signature(b"Hello, World!", secret.reveal()) == expected
    assert github.verify({"X-Hub-Signature-256": expected}, b"Hello, World!", secret)
    assert not github.verify({"X-Hub-Signature-256": expected}, b"Hello, World?", secret)
    assert not github.verify({}, b"Hello, World!", secret)


def test_secrets_never_show_in_repr_or_str() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert secret.matches("hunter2-very-secret") and not secret.matches("hunter2")


def _github(event: str, payload: object) -> object:
    return github.parse(
        {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1", "Content-Type": "application/json"},
        json.dumps(payload).encode(),
    )


def test_github_branch_deletion_and_annotated_tags() -> None:
    deleted = _github("push", {
        "ref": "refs/heads/feature/x", "before": "b" * 40, "after": ZERO_SHA, "deleted": True,
        "head_commit": None, "repository": {"full_name": "acme/pipelines"},
    })
    assert isinstance(deleted, PushEvent) and deleted.deleted and deleted.name == "feature/x"
    tag = _github("push", {
        "ref": "refs/tags/v1", "before": ZERO_SHA, "after": "t" * 0 + "c" * 40,
        "head_commit": {"id": "d" * 40}, "repository": {"full_name": "acme/pipelines"},
    })
    assert isinstance(tag, PushEvent) and tag.commit == "d" * 40 and tag.is_tag
    assert tag.idempotency_key == "d-1"
    assert isinstance(_github("ping", {"zen": "z"}), Ping)
    assert isinstance(_github("pull_request", {}), Ignored)
    with pytest.raises(MalformedWebhook, match="'ref'"):
        _github("push", {"before": "a", "after": "b" * 40, "repository": {"full_name": "x"}})


def test_gitlab_tag_push_uses_checkout_sha_and_the_idempotency_key() -> None:
    headers = {
        "X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Event-UUID": "uuid-1", "Idempotency-Key": "key-1",
        "X-Gitlab-Token": "s",
    }
    event = gitlab.parse(headers, json.dumps({
        "object_kind": "tag_push", "ref": "refs/tags/v2", "before": ZERO_SHA, "after": "e" * 40,
        "checkout_sha": "f" * 40, "project": {"path_with_namespace": "group/sub/proj"},
    }).encode())
    assert isinstance(event, PushEvent)
    assert (event.commit, event.idempotency_key, event.delivery_id) == ("f" * 40, "key-1", "uuid-1")
    assert gitlab.verify(headers, b"", Secret("s")) and not gitlab.verify(headers, b"", Secret("t"))
    deleted = gitlab.parse(headers, json.dumps({
        "object_kind": "push", "ref": "refs/heads/review/x", "before": "a" * 40, "after": ZERO_SHA,
        "checkout_sha": None, "project": {"path_with_namespace": "group/proj"},
    }).encode())
    assert isinstance(deleted, PushEvent) and deleted.deleted


# -- environments -----------------------------------------------------------------------------------


def _repository(**kw: object) -> RepositorySettings:
    defaults: dict[str, object] = {
        "url": "https://example.invalid/acme/pipelines.git", "provider": "github",
        "name": "acme/pipelines", "api_base": "https://api.github.com",
        "webhook_secret": Secret("s"), "deploy_branches": ("main",),
        "preview_branches": ("feature/*",), "deploy_tags": ("v*",),
    }
    defaults.update(kw)
    return RepositorySettings(**defaults)  # type: ignore[arg-type]


def test_branches_and_tags_map_to_environments() -> None:
    repository = _repository()
    assert target_for(repository, "refs/heads/main", False) == Target("deploy", "pipelines", False, None)
    assert target_for(repository, "refs/tags/v1.2", False) == Target("deploy", "pipelines", False, None)
    preview = target_for(repository, "refs/heads/feature/x", False)
    assert isinstance(preview, Target) and preview.preview and preview.namespace == preview.environment
    teardown = target_for(repository, "refs/heads/feature/x", True)
    assert isinstance(teardown, Target) and teardown.action == "teardown"
    assert teardown.environment == preview.environment
    assert "deleted" in str(target_for(repository, "refs/heads/main", True))
    assert "matches neither" in str(target_for(repository, "refs/heads/docs", False))
    assert "deploy_tags" in str(target_for(repository, "refs/tags/nightly", False))
    configured = _repository(environment="production")
    assert target_for(configured, "refs/heads/main", False) == Target(
        "deploy", "production", False, "production"
    )


@pytest.mark.parametrize(
    "branch",
    ["feature/x", "feature/X", "feature/x_", "feature/" + "a" * 200, "feature/ünïcödé", "feature/--"],
)
def test_preview_environments_are_dns_labels(branch: str) -> None:
    name = preview_environment("acme/pipelines", branch)
    assert len(name) <= 63
    assert name[0].isalnum() and name[-1].isalnum()
    assert all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in name)


def test_preview_environments_never_collide() -> None:
    branches = ["feature/x", "feature/X", "feature/x_", "feature-x", "feature/" + "a" * 100,
                "feature/" + "a" * 101]
    names = {preview_environment("acme/pipelines", b) for b in branches}
    assert len(names) == len(branches)
    assert preview_environment("acme/a", "x") != preview_environment("other/a", "x")


# -- settings ---------------------------------------------------------------------------------------


def test_settings_read_secrets_from_env_and_files_and_report_every_problem(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    config = tmp_path / "service.yaml"
    config.write_text(f"""
service:
  port: 9000
  max_concurrent_runs: 2
repositories:
  - url: git@github.example.com:acme/pipelines.git
    provider: github
    api_base: https://github.example.com/api/v3
    webhook_secret_env: HOOK
    api_token_file: {token_file}
    deploy_branches: [main, release]
""")
    settings = load_settings(config, {"HOOK": "hook-secret", "BODYWORK_PORT": "9100"})
    (repository,) = settings.repositories
    assert repository.name == "acme/pipelines"
    assert repository.webhook_secret.reveal() == "hook-secret"
    assert repository.api_token is not None and repository.api_token.reveal() == "file-token"
    assert settings.port == 9100 and settings.max_concurrent_runs == 2
    assert settings.backend == "local"
    assert "hook-secret" not in repr(settings) and "file-token" not in repr(settings)
    assert load_settings(None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).backend == "kubernetes"

    config.write_text("""
service:
  max_concurrent_runs: 0
  colour: blue
repositories:
  - url: https://example.invalid/a/b.git
    provider: bitbucket
    webhook_secret: plain-text
  - provider: github
    webhook_secret_env: UNSET
""")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert caught.value.problems == [
        "service.colour -> unknown setting; see docs/service.md for the accepted keys (line 4)",
        "repositories.0.provider -> must be one of github, gitlab, not 'bitbucket' (line 7)",
        "repositories.0.webhook_secret -> secrets are not read from the config file; set "
        "webhook_secret_env to the name of an environment variable or webhook_secret_file to a "
        "mounted file (line 8)",
        "repositories.1.url -> required: the repository's clone URL (line 9)",
        "repositories.1.webhook_secret_env -> environment variable UNSET is not set or empty (line 10)",
        "service.max_concurrent_runs -> must be at least 1, not 0 (line 3)",
    ]


def test_fsync_commits_is_on_unless_the_config_turns_it_off(tmp_path: Path) -> None:
    """Off trades the last second of accepted deliveries on a power loss for webhook latency."""
    config = tmp_path / "service.yaml"
    assert load_settings(None, {}).fsync_commits is True
    config.write_text("service:\n  fsync_commits: false\n")
    assert load_settings(config, {}).fsync_commits is False
    config.write_text("service:\n  fsync_commits: sometimes\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert caught.value.problems == [
        "service.fsync_commits -> must be true or false, not 'sometimes' (line 2)"
    ]


# -- scheduling -------------------------------------------------------------------------------------


def test_pick_serializes_environments_and_bounds_concurrency() -> None:
    queued = [Candidate("1", "a"), Candidate("2", "a"), Candidate("3", "b"), Candidate("4", "c"),
              Candidate("5", "d")]
    assert pick(queued, set(), 10).ids == ["1", "3", "4", "5"]
    assert pick(queued, {"a"}, 10).ids == ["3", "4", "5"]
    assert pick(queued, set(), 2).ids == ["1", "3"]
    assert pick(queued, set(), 0).ids == []


def test_pick_waits_for_the_quiet_period() -> None:
    queued = [Candidate("1", "a", 10.0), Candidate("2", "b", 10.5), Candidate("3", "c", 9.0)]
    assert pick(queued, set(), 10, now=10.6, quiet_period=0.5) == Picked(["1", "3"], 11.0)
    assert pick(queued, set(), 10, now=11.0, quiet_period=0.5) == Picked(["1", "2", "3"], None)


# -- the store --------------------------------------------------------------------------------------


def _new(commit: str, ref: str = "refs/heads/main", environment: str = "prod") -> NewRun:
    return NewRun("github:acme/pipelines", "github", ref, commit, environment, None, False, "deploy",
                  "webhook")


def test_store_accepts_once_per_key_and_coalesces_queued_runs_of_a_ref(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3")
    first = store.accept(_new("a" * 40), ["k1"])
    assert not first.duplicate and first.run.state is RunStatus.QUEUED
    # The record accept answers with (built, not read back) is the one the store holds.
    assert first.run == store.get(first.run.id)
    again = store.accept(_new("a" * 40), ["k1"])
    assert again.duplicate and again.run.id == first.run.id
    other_ref = store.accept(_new("c" * 40, ref="refs/heads/other", environment="other"), ["k3"])
    second = store.accept(_new("b" * 40), ["k2"])
    assert [r.id for r in second.superseded] == [first.run.id]
    superseded = store.get(first.run.id)
    assert superseded is not None and superseded.state is RunStatus.SUPERSEDED
    assert superseded.superseded_by == second.run.id
    assert [r.id for r in store.queued()] == [other_ref.run.id, second.run.id]
    assert store.count_deliveries() == 3
    assert store.prune_deliveries(older_than=0) == 0
    assert store.prune_deliveries(older_than=second.run.created_at + 1) == 3
    assert not store.accept(_new("a" * 40), ["k1"]).duplicate
    store.close()


def test_a_run_that_supersedes_a_run_of_its_own_commit_leaves_its_own_status_on_the_commit(
    tmp_path: Path,
) -> None:
    """A re-run asked twice: both runs are of one commit, so they share its status; the commit must
    show the queued run, not the superseded one as cancelled."""
    repository = RepositorySettings(
        url="https://github.com/acme/pipelines.git", provider="github", name="acme/pipelines",
        api_base="https://api.github.com", webhook_secret=Secret("s"), api_token=Secret("t"),
    )
    published: list[CommitStatus] = []

    class Recording:
        def publish(self, status: CommitStatus) -> None:
            published.append(status)

    settings = Settings(repositories=(repository,), data_dir=tmp_path)
    service = Service(settings, publisher=Recording())  # type: ignore[arg-type]
    store = Store(tmp_path / "store.sqlite3")
    try:
        store.accept(_new("a" * 40), ["first"])
        again = store.accept(_new("a" * 40), ["second"])
        service.announce(again)
    finally:
        store.close()
    assert [s.state for s in published] == [StatusState.CANCELED, StatusState.PENDING]
    assert published[-1].target_url.endswith(again.run.id)


def test_store_recovery_requeues_interrupted_runs_once_then_fails_them(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = Store(path)
    run = store.accept(_new("a" * 40), ["k"]).run
    assert store.mark_running(run.id)
    store.stage_started(run.id, "train", "batch", 1, 1.0)
    store.close()

    store = Store(path)
    recovered = store.recover(max_reruns=1)
    assert [r.id for r in recovered.requeued] == [run.id] and not recovered.failed
    assert store.stages(run.id) == []
    assert "restarted" in store.logs(run.id)[-1].line
    assert store.mark_running(run.id)
    recovered = store.recover(max_reruns=1)
    assert [r.id for r in recovered.failed] == [run.id]
    failed = store.get(run.id)
    assert failed is not None and failed.state is RunStatus.FAILED
    assert "interrupted by a restart" in failed.reason
    store.close()
