"""The Kubernetes backend on the real test cluster, driven through :class:`runner.engine.Engine`.

Each test gets its own environment (namespace), deleted afterwards. Stages are tiny standard-library
scripts so that pods start in seconds; the example pipeline with scikit-learn has its own test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.backends.kubernetes import KubernetesBackend
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes.api import KubeApi
from runner.engine import Engine, RunOutcome, RunRequest
from runner.events import (
    Event,
    EventBus,
    LogLine,
    RunState,
    StageAttemptFailed,
    StageFinished,
    StageStarted,
    StageState,
)
from runner.model import BatchSettings, Pipeline, PipelineSettings, ServiceSettings, Stage
from tests.kubernetes.conftest import KubeCluster, scratch_namespace
from tests.runner.builders import write

COMMIT_1 = "1" * 40
COMMIT_2 = "2" * 40

# ---- builders ------------------------------------------------------------------------------------


def batch(name: str, module: str, *, retries: int = 0, limit: int = 60, **kw: Any) -> Stage:
    return Stage(
        name=name,
        executable_module_path=module,
        cpu_request=kw.pop("cpu", 0.05),
        memory_request_mb=32,
        batch=BatchSettings(max_completion_time_seconds=limit, retries=retries),
        **kw,
    )


def service(name: str, module: str, *, port: int = 8000, startup: int = 60, replicas: int = 1) -> Stage:
    return Stage(
        name=name,
        executable_module_path=module,
        cpu_request=0.05,
        memory_request_mb=32,
        service=ServiceSettings(max_startup_time_seconds=startup, replicas=replicas, port=port),
    )


def pipeline(dag: str, *stages: Stage, name: str = "kt", **kw: Any) -> Pipeline:
    steps = tuple(tuple(s.strip() for s in step.split(",")) for step in dag.split(">>"))
    return Pipeline(
        version="1.1",
        pipeline=PipelineSettings(name=name, docker_image="bodyworkml/bodywork-core:3.1", dag=steps, **kw),
        stages={s.name: s for s in stages},
    )


HTTP_SERVICE = """
import http.server, json, os
VERSION = "{version}"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{{}}")
        answer = json.dumps({{"version": VERSION, "echo": body,
                             "commit": os.environ["GIT_COMMIT_HASH"]}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(answer)))
        self.end_headers(); self.wfile.write(answer)
    def log_message(self, *args):
        pass
print("serving", VERSION, flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def logs(self, stage: str) -> list[str]:
        return [e.line for e in self.of(LogLine) if e.stage == stage]

    def finished(self, stage: str) -> StageFinished:
        finished: StageFinished = next(e for e in self.of(StageFinished) if e.stage == stage)
        return finished


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def environment(api: KubeApi) -> Iterator[str]:
    yield from scratch_namespace(api, "bw-kt")


def backend_for(cluster: KubeCluster, **options: Any) -> KubernetesBackend:
    options.setdefault("images", {"*": cluster.stage_image})
    return KubernetesBackend(kubeconfig=cluster.kubeconfig, **options)


async def run(
    backend: KubernetesBackend,
    pipe: Pipeline,
    source: Path,
    environment: str,
    commit: str = COMMIT_1,
    recorder: Recorder | None = None,
) -> tuple[RunOutcome, Recorder]:
    recorder = recorder or Recorder()
    engine = Engine(backend, EventBus(recorder))
    outcome = await engine.run(RunRequest(pipe, source, commit, environment=environment))
    return outcome, recorder


def run_on_new_backend(
    cluster: KubeCluster, pipe: Pipeline, source: Path, environment: str, teardown: bool = False,
    **options: Any,
) -> tuple[RunOutcome, Recorder]:
    """One run of ``pipe`` at COMMIT_1 on a backend of its own, closed afterwards (after tearing the
    environment down, with `teardown`)."""

    async def scenario() -> tuple[RunOutcome, Recorder]:
        backend = backend_for(cluster, **options)
        try:
            result = await run(backend, pipe, source, environment)
            if teardown:
                await backend.teardown(environment)
            return result
        finally:
            await backend.close()

    return asyncio.run(scenario())


def cancel_once_logged(
    cluster: KubeCluster, pipe: Pipeline, source: Path, environment: str, line: str
) -> Recorder:
    """Starts a run of ``pipe`` at COMMIT_1 and cancels it once a stage has logged ``line``."""

    async def scenario() -> Recorder:
        backend = backend_for(cluster)
        recorder = Recorder()
        logged = asyncio.Event()

        def watch(event: Event) -> None:
            recorder(event)
            if isinstance(event, LogLine) and event.line == line:
                logged.set()

        try:
            task = asyncio.create_task(
                Engine(backend, EventBus(watch)).run(
                    RunRequest(pipe, source, COMMIT_1, environment=environment)
                )
            )
            await asyncio.wait_for(logged.wait(), 120)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return recorder
        finally:
            await backend.close()

    return asyncio.run(scenario())


def post(api: KubeApi, namespace: str, name: str, body: Any, port: int = 8000) -> dict[str, Any]:
    status, data = api.service_proxy("POST", namespace, name, port, "", json_body=body)
    assert status == 200, f"POST through the service proxy answered {status}: {data[:300]!r}"
    answer: dict[str, Any] = json.loads(data)
    return answer


def wait_until_ready(api: KubeApi, namespace: str, name: str, replicas: int) -> None:
    """Watches the Deployment until `replicas` of it are ready (the test's timeout bounds the wait)."""
    fields = f"metadata.name={name}"
    while True:  # list, then watch from the list's version; list again when the watch ends
        listing = api.list_objects("Deployment", namespace, fields=fields)
        if any(d.get("status", {}).get("readyReplicas") == replicas for d in listing["items"]):
            return
        version = listing["metadata"]["resourceVersion"]
        stream = api.watch("Deployment", namespace, fields=fields, resource_version=version)
        try:
            for line in stream.lines():
                event = json.loads(line)
                if (
                    event["type"] != "ERROR"
                    and event["object"].get("status", {}).get("readyReplicas") == replicas
                ):
                    return
        finally:
            stream.close()


# ---- tests ----------------------------------------------------------------------------------------


def test_batch_stage_then_service_that_answers_post(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        {
            "prep/prep.py": """
                import os, sys
                print("preparing", sys.argv[1:], "commit", os.environ["GIT_COMMIT_HASH"])
                out = os.path.join(os.environ["BODYWORK_ARTIFACTS_DIR"], "prepared.txt")
                open(out, "w").write("ready")
            """,
            "serve/serve.py": HTTP_SERVICE.format(version="v1"),
        },
    )
    prep = batch("prep", "prep/prep.py", args=("--rows", "3"))
    pipe = pipeline("prep >> serve", prep, service("serve", "serve/serve.py"))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert f"preparing ['--rows', '3'] commit {COMMIT_1}" in recorder.logs("prep")
    assert post(api, environment, "serve", {"x": 1}) == {
        "version": "v1",
        "echo": {"x": 1},
        "commit": COMMIT_1,
    }
    job = api.get(
        "Job", m.job_name(m.Identity("kt", environment, outcome.run_id, COMMIT_1), "prep"), environment
    )
    labels = job["metadata"]["labels"]
    assert labels[m.PIPELINE] == "kt" and labels[m.COMMIT] == COMMIT_1 and labels[m.RUN_ID] == outcome.run_id
    namespace = api.get("Namespace", environment)
    assert namespace["metadata"]["labels"][m.MANAGED_BY] == m.MANAGER


def test_retries_then_failure_runs_run_on_failure(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        {
            "fail.py": "import sys\nprint('about to fail')\nsys.exit(3)\n",
            "on_failure.py": "import os\nprint('handling:', os.environ['EXCEPTION_MESSAGE'])\n",
        },
    )
    pipe = pipeline(
        "flaky",
        batch("flaky", "fail.py", retries=1),
        batch("cleanup", "on_failure.py"),
        run_on_failure="cleanup",
    )

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.FAILED
    failed = recorder.of(StageAttemptFailed)
    assert [(e.stage, e.attempt) for e in failed] == [("flaky", 1)]
    assert "exit code 3" in failed[0].reason
    assert [e.attempt for e in recorder.of(StageStarted) if e.stage == "flaky"] == [1, 2]
    final = recorder.finished("flaky")
    assert final.state is StageState.FAILED and final.attempts == 2
    assert "attempt 2 of 2 failed with exit code 3" in final.reason
    assert recorder.logs("flaky").count("about to fail") == 2
    assert recorder.finished("cleanup").state is StageState.SUCCEEDED
    handled = [line for line in recorder.logs("cleanup") if line.startswith("handling:")]
    assert handled and "exit code 3" in handled[0]


def test_a_stage_exceeding_its_time_limit_is_stopped(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    stage = "import time\nprint('started', flush=True)\ntime.sleep(120)\nprint('woke up', flush=True)\n"
    source = write(tmp_path, {"slow.py": stage})
    pipe = pipeline("slow", batch("slow", "slow.py", limit=4))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.FAILED
    final = recorder.finished("slow")
    assert "exceeded its time limit of 4 s" in final.reason
    assert "started" in recorder.logs("slow")  # the log was streamed while it ran
    assert "woke up" not in recorder.logs("slow")  # stopped before its own end


def test_the_stages_of_a_step_run_at_overlapping_times(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    stage = "import time\nprint('start', time.time(), flush=True)\ntime.sleep(4)\nprint('end', time.time())\n"
    source = write(tmp_path, {"a.py": stage, "b.py": stage})
    pipe = pipeline("a, b", batch("a", "a.py"), batch("b", "b.py"))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.SUCCEEDED, outcome.reason

    def span(name: str) -> tuple[float, float]:
        lines = dict(line.split() for line in recorder.logs(name) if line.split()[0] in ("start", "end"))
        return float(lines["start"]), float(lines["end"])

    (a_start, a_end), (b_start, b_end) = span("a"), span("b")
    assert a_start < b_end and b_start < a_end, f"a ran {a_start}-{a_end}, b ran {b_start}-{b_end}"


def test_secrets_reach_the_stage_as_env_vars_and_are_masked(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    identity = m.Identity("kt", environment, "setup", COMMIT_1)
    api.create("Namespace", m.namespace(environment, identity))
    api.create("Secret", m.secret(environment, "team", "creds", {"API_KEY": "s3cr3t-value"}), environment)
    source = write(
        tmp_path,
        {"use.py": "import os\nkey = os.environ['API_KEY']\nprint('length', len(key))\nprint('key', key)\n"},
    )
    stage = batch("use", "use.py", secrets=(("API_KEY", "creds"),))
    pipe = pipeline("use", stage, secrets_group="team")

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert "length 12" in recorder.logs("use")
    assert "key ********" in recorder.logs("use")
    assert not any("s3cr3t-value" in line for line in recorder.logs("use"))


def test_a_missing_secret_fails_the_stage_with_the_fix(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"use.py": "print('never')\n"})
    pipe = pipeline("use", batch("use", "use.py", secrets=(("API_KEY", "creds"),)), secrets_group="team")

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.FAILED
    assert "bodywork secrets create creds --group team" in recorder.finished("use").reason


def test_a_broken_new_version_is_rolled_back_and_the_old_keeps_answering(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    good = write(tmp_path / "good", {"serve.py": HTTP_SERVICE.format(version="v1")})
    broken = write(
        tmp_path / "broken",
        {"serve.py": "import sys\nprint('cannot load the model', flush=True)\nsys.exit(4)\n"},
    )
    pipe = pipeline("score", service("score", "serve.py", startup=90))

    async def scenario() -> tuple[RunOutcome, RunOutcome, Recorder]:
        backend = backend_for(kube_cluster)
        try:
            first, _ = await run(backend, pipe, good, environment, COMMIT_1)
            assert first.state is RunState.SUCCEEDED, first.reason
            assert post(api, environment, "score", {})["version"] == "v1"
            second, recorder = await run(backend, pipe, broken, environment, COMMIT_2)
            return first, second, recorder
        finally:
            await backend.close()

    _first, second, recorder = asyncio.run(scenario())
    assert second.state is RunState.FAILED
    final = recorder.finished("score")
    assert final.state is StageState.ROLLED_BACK
    assert "restarted" in final.reason or "CrashLoopBackOff" in final.reason
    assert "cannot load the model" in final.reason
    assert f"rolled back to the previous version (commit {COMMIT_1[:12]})" in final.reason
    assert "not ready within" not in final.reason  # the crash was noticed, not the 90 s deadline
    assert post(api, environment, "score", {"after": "rollback"})["commit"] == COMMIT_1
    deployment = api.get("Deployment", "score", environment)
    assert deployment["spec"]["template"]["metadata"]["annotations"][m.COMMIT_ANNOTATION] == COMMIT_1


def test_a_new_service_that_never_gets_ready_is_removed(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(
        tmp_path, {"serve.py": "import time\nprint('not listening', flush=True)\ntime.sleep(600)\n"}
    )
    pipe = pipeline("score", service("score", "serve.py", startup=8))

    _outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    final = recorder.finished("score")
    assert final.state is StageState.ROLLED_BACK
    assert "not ready within 8 s" in final.reason and "running, not ready" in final.reason
    assert "removed the new Deployment" in final.reason
    assert api.find("Deployment", "score", environment) is None
    assert api.find("Service", "score", environment) is None


def test_a_retry_after_a_newer_commit_still_runs_the_old_commit(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    marker = f"{uuid.uuid4().hex}"
    flaky = f"""
        import os, pathlib, sys
        VERSION = "{{version}}"
        print("version", VERSION, "commit", os.environ["GIT_COMMIT_HASH"], flush=True)
        mark = pathlib.Path(os.environ["BODYWORK_CACHE_DIR"]) / "test-markers" / "{marker}"
        if VERSION == "old" and not mark.exists():
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.write_text("first attempt failed")
            sys.exit(1)
    """
    old = write(tmp_path / "old", {"job.py": flaky.format(version="old")})
    new = write(tmp_path / "new", {"job.py": flaky.format(version="new")})
    pipe = pipeline("job", batch("job", "job.py", retries=1))

    async def scenario() -> tuple[RunOutcome, Recorder, RunOutcome]:
        backend = backend_for(kube_cluster)
        try:
            recorder = Recorder()
            first_attempt_failed = asyncio.Event()
            recorder_call = recorder.__call__

            def watch(event: Event) -> None:
                recorder_call(event)
                if isinstance(event, StageAttemptFailed):
                    first_attempt_failed.set()

            engine = Engine(backend, EventBus(watch))
            old_run = asyncio.create_task(
                engine.run(RunRequest(pipe, old, COMMIT_1, environment=environment))
            )
            await asyncio.wait_for(first_attempt_failed.wait(), 120)
            # A newer commit lands: the checkout of the old run changes, and a run of the new one starts.
            (old / "job.py").write_text((new / "job.py").read_text())
            newer, _ = await run(backend, pipe, new, environment, COMMIT_2)
            return await old_run, recorder, newer
        finally:
            await backend.close()

    old_outcome, recorder, newer = asyncio.run(scenario())
    assert newer.state is RunState.SUCCEEDED, newer.reason
    assert old_outcome.state is RunState.SUCCEEDED, old_outcome.reason
    versions = [line for line in recorder.logs("job") if line.startswith("version")]
    assert versions == [f"version old commit {COMMIT_1}"] * 2, versions
    assert recorder.finished("job").attempts == 2


def test_an_unschedulable_stage_fails_fast_with_the_reason(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"big.py": "print('never')\n"})
    pipe = pipeline("big", batch("big", "big.py", cpu=500))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.FAILED
    reason = recorder.finished("big").reason
    # The scheduler's reason (a pending pod has no time limit: only failing fast ends the stage) ...
    assert "cannot be scheduled" in reason and "Insufficient cpu" in reason
    # ... and the Job that would wait forever deleted.
    jobs = api.list_objects("Job", environment)["items"]
    assert all(j["metadata"].get("deletionTimestamp") for j in jobs), "the pending Job was not deleted"


def test_an_image_that_cannot_be_pulled_fails_fast(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"x.py": "print('never')\n"})
    pipe = pipeline("x", batch("x", "x.py"))

    _outcome, recorder = run_on_new_backend(
        kube_cluster, pipe, source, environment, images={"*": "bodywork-missing:0"}, image_pull_policy="Never"
    )
    assert "ErrImageNeverPull" in recorder.finished("x").reason  # at once: the time limit is 60 s
    jobs = api.list_objects("Job", environment)["items"]
    assert all(j["metadata"].get("deletionTimestamp") for j in jobs), "the stuck Job was not deleted"


def test_cancelling_a_run_deletes_its_job(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"long.py": "import time\nprint('working', flush=True)\ntime.sleep(300)\n"})
    pipe = pipeline("long", batch("long", "long.py", limit=600))

    recorder = cancel_once_logged(kube_cluster, pipe, source, environment, "working")
    assert recorder.finished("long").state is StageState.CANCELLED
    remaining = [
        j for j in api.list_objects("Job", environment)["items"] if not j["metadata"].get("deletionTimestamp")
    ]
    assert remaining == []


def test_services_no_longer_in_the_pipeline_are_removed(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": HTTP_SERVICE.format(version="v1"), "job.py": "print('ok')\n"})
    first = pipeline("old-api, job", service("old-api", "serve.py"), batch("job", "job.py"))
    second = pipeline("job", batch("job", "job.py"))

    async def scenario() -> tuple[RunOutcome, RunOutcome]:
        backend = backend_for(kube_cluster)
        try:
            one, _ = await run(backend, first, source, environment, COMMIT_1)
            assert api.find("Service", "old-api", environment) is not None
            two, _ = await run(backend, second, source, environment, COMMIT_2)
            return one, two
        finally:
            await backend.close()

    one, two = asyncio.run(scenario())
    assert one.state is RunState.SUCCEEDED and two.state is RunState.SUCCEEDED, (one.reason, two.reason)
    assert api.find("Deployment", "old-api", environment) is None
    assert api.find("Service", "old-api", environment) is None


def test_a_notebook_stage_runs_its_code_cells_in_order(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# title"]},
            {"cell_type": "code", "source": ["import os\n", "value = 20\n"]},
            # A real IPython kernel runs the notebook, so magics work (matplotlib is not installed).
            {"cell_type": "code", "source": ["%time total = value + 22\n", "print('answer', total)"]},
            {"cell_type": "code", "source": ["display({'via': 'a kernel'})"]},
        ],
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    source = write(tmp_path, {"nb/analysis.ipynb": json.dumps(notebook)})
    pipe = pipeline("nb", batch("nb", "nb/analysis.ipynb"))

    outcome, recorder = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert "answer 42" in recorder.logs("nb")
    assert "{'via': 'a kernel'}" in recorder.logs("nb")


def test_an_ingress_follows_the_services_setting(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": HTTP_SERVICE.format(version="v1")})
    plain = service("web", "serve.py")
    assert plain.service is not None
    exposed = dataclasses.replace(plain, service=dataclasses.replace(plain.service, ingress=True))

    async def scenario() -> None:
        backend = backend_for(kube_cluster, ingress_class="traefik")
        try:
            first, _ = await run(backend, pipeline("web", exposed), source, environment, COMMIT_1)
            assert first.succeeded, first.reason
            ingress = api.get("Ingress", "web", environment)
            assert ingress["spec"]["ingressClassName"] == "traefik"
            assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == f"/{environment}/web(/|$)(.*)"
            second, _ = await run(backend, pipeline("web", plain), source, environment, COMMIT_2)
            assert second.succeeded, second.reason
            assert api.find("Ingress", "web", environment) is None
        finally:
            await backend.close()

    asyncio.run(scenario())


def test_cancelling_a_service_rollout_rolls_it_back(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": "import time\nprint('warming up', flush=True)\ntime.sleep(600)\n"})
    pipe = pipeline("web", service("web", "serve.py", startup=300))

    recorder = cancel_once_logged(kube_cluster, pipe, source, environment, "warming up")
    assert recorder.finished("web").state is StageState.CANCELLED
    assert api.find("Deployment", "web", environment) is None
    assert api.find("Service", "web", environment) is None


def test_new_replicas_run_the_deployed_commit_after_the_checkout_moved_on(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": HTTP_SERVICE.format(version="v1")})
    pipe = pipeline("web", service("web", "serve.py"))

    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, environment)
    assert outcome.succeeded, outcome.reason
    (source / "serve.py").write_text(textwrap.dedent(HTTP_SERVICE.format(version="v2")))  # a newer checkout
    api.merge_patch("Deployment", "web", {"spec": {"replicas": 3}}, environment)
    wait_until_ready(api, environment, "web", 3)
    answers = {(a["version"], a["commit"]) for a in (post(api, environment, "web", {}) for _ in range(12))}
    assert answers == {("v1", COMMIT_1)}


def test_tearing_down_an_environment_deletes_its_objects_and_namespace(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    source = write(tmp_path, {"serve.py": HTTP_SERVICE.format(version="v1")})

    pipe = pipeline("api", service("api", "serve.py"))
    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, environment, teardown=True)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert api.find("Deployment", "api", environment) is None
    assert api.find("Service", "api", environment) is None
    namespace = api.find("Namespace", environment)
    # Deleting a namespace takes a while; it is gone or on its way out.
    assert namespace is None or namespace["metadata"].get("deletionTimestamp")


def test_tearing_down_leaves_a_namespace_someone_else_made(
    kube_cluster: KubeCluster, api: KubeApi, environment: str, tmp_path: Path
) -> None:
    api.create("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": environment}})
    source = write(tmp_path, {"job.py": "print('ok')\n"})

    pipe = pipeline("job", batch("job", "job.py"))
    outcome, _ = run_on_new_backend(kube_cluster, pipe, source, environment, teardown=True)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    namespace = api.get("Namespace", environment)
    assert not namespace["metadata"].get("deletionTimestamp"), "someone else's namespace was deleted"
    labels = namespace["metadata"].get("labels") or {}
    assert labels.get(m.PIPELINE) == "kt" and m.MANAGED_BY not in labels
    jobs = api.list_objects("Job", environment)["items"]
    assert all(j["metadata"].get("deletionTimestamp") for j in jobs), "the run's Job was left"
