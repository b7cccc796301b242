"""Pure parts of the Kubernetes backend: manifests, status readings, packing, the bootstrap, errors.

No cluster needed: these run in milliseconds (the bootstrap test runs it as a subprocess).
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.base import StageError
from runner.backends.kubernetes import KubernetesBackend
from runner.backends.kubernetes import manifests as m
from runner.backends.kubernetes import status as st
from runner.backends.kubernetes import workloads as w
from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.errors import Forbidden, Gone, Invalid, NotFound, TemporaryError, Unreachable
from runner.backends.kubernetes.job_progress import session_exit
from runner.backends.kubernetes.packing import pack
from runner.backends.kubernetes.rest import error_for
from runner.backends.kubernetes.settings import KubernetesSettings
from runner.engine import Engine, RunRequest
from runner.events import RunState
from runner.model import BatchSettings, Pipeline, PipelineSettings, ServiceSettings, Stage
from tests.kubernetes.conftest import loopback_kubeconfig

BOOTSTRAP = Path(m.__file__).with_name("bootstrap.py")
IDENTITY = m.Identity("My.Pipeline", "prod", "abc123def456", "c" * 40)


def batch_stage(**kw: object) -> Stage:
    return Stage(
        name="train_model",
        executable_module_path="train/train.py",
        cpu_request=0.5,
        memory_request_mb=100,
        batch=BatchSettings(max_completion_time_seconds=30, retries=2),
        secrets=(("API_KEY", "keys"),),
        **kw,  # type: ignore[arg-type]
    )


def pod_settings(**kw: object) -> w.PodSettings:
    values: dict[str, object] = {
        "image": "bodywork-stage:bookworm",
        "image_pull_policy": "IfNotPresent",
        "code_config_maps": ("bodywork-bootstrap-1", "src-0", "src-1"),
        "cache_host_path": "/var/cache/bodywork",
        "secrets_group": "prod",
    }
    values.update(kw)
    return w.PodSettings(**values)  # type: ignore[arg-type]


# ---- names and labels ----------------------------------------------------------------------------


def test_dns_names_are_labels_and_long_ones_stay_distinct() -> None:
    assert m.dns_name("My.Pipeline", "train_model", "abc") == "my-pipeline-train-model-abc"
    long_a, long_b = m.dns_name("x" * 80, "a"), m.dns_name("x" * 80, "b")
    assert len(long_a) <= 63 and len(long_b) <= 63 and long_a != long_b


def test_label_values_are_valid_and_at_most_63_characters() -> None:
    assert m.label_value("My.Pipeline") == "My.Pipeline"
    assert m.label_value("a b/c") == "a-b-c"
    value = m.label_value("p" * 100)
    assert len(value) <= 63 and value[-1].isalnum()


def test_service_names_start_with_a_letter() -> None:
    assert m.service_name("score") == "score"
    assert m.service_name("1score")[0].isalpha()


def test_every_label_names_pipeline_environment_run_and_commit() -> None:
    labels = IDENTITY.labels("train", "batch")
    assert labels[m.PIPELINE] == "My.Pipeline" and labels[m.ENVIRONMENT] == "prod"
    assert labels[m.RUN_ID] == "abc123def456" and labels[m.COMMIT] == "c" * 40
    assert labels[m.STAGE] == "train" and labels[m.MANAGED_BY] == "bodywork-gitops"


# ---- Jobs and Deployments -------------------------------------------------------------------------


def test_job_maps_retries_time_limit_resources_secrets_and_commit() -> None:
    job = w.job("ns", IDENTITY, batch_stage(), {"GIT_COMMIT_HASH": "c" * 40}, pod_settings())
    assert job["spec"]["backoffLimit"] == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["activeDeadlineSeconds"] == 30 and pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "bodywork-stage"
    container = pod["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "0.5", "memory": "100Mi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["GIT_COMMIT_HASH"]["value"] == "c" * 40
    assert env["API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "prod-keys", "key": "API_KEY"}}
    assert json.loads(env["BODYWORK_ARGS"]["value"]) == []
    sources = pod["volumes"][0]["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == ["bodywork-bootstrap-1", "src-0", "src-1"]
    assert job["spec"]["template"]["metadata"]["labels"][m.JOB] == job["metadata"]["name"]
    assert len(job["metadata"]["name"]) <= 63


def test_a_zero_time_limit_means_no_deadline_and_gpus_are_limits() -> None:
    stage = Stage(
        name="s",
        executable_module_path="s.py",
        cpu_request=0,
        memory_request_mb=0,
        batch=BatchSettings(max_completion_time_seconds=0, retries=0),
    )
    job = w.job("ns", IDENTITY, stage, {}, pod_settings(gpus=2, cache_host_path=None))
    pod = job["spec"]["template"]["spec"]
    assert "activeDeadlineSeconds" not in pod
    assert pod["containers"][0]["resources"] == {"requests": {}, "limits": {"nvidia.com/gpu": "2"}}
    assert pod["volumes"][2] == {"name": "cache", "emptyDir": {}}


def test_deployment_keeps_the_old_version_until_the_new_is_ready() -> None:
    stage = Stage(
        name="score",
        executable_module_path="serve.py",
        cpu_request=0.1,
        memory_request_mb=64,
        service=ServiceSettings(max_startup_time_seconds=60, replicas=2, port=5000, ingress=True),
    )
    deployment = w.deployment("ns", IDENTITY, stage, {}, pod_settings())
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["selector"]["matchLabels"] == {m.PIPELINE: "My.Pipeline", m.STAGE: "score"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["tcpSocket"] == {"port": 5000}
    service = w.cluster_service("ns", IDENTITY, stage)
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    ingress = w.ingress("ns", IDENTITY, stage, "traefik")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"].startswith("/ns/score")


def test_source_config_maps_are_immutable_and_named_by_commit() -> None:
    maps = m.source_config_maps("ns", IDENTITY, ["QQ==", "Qg=="], "f" * 64)
    assert [c["immutable"] for c in maps] == [True, True]
    assert maps[0]["metadata"]["name"].endswith("-0") and "cccccccccccc" in maps[0]["metadata"]["name"]
    assert list(maps[1]["binaryData"]) == ["source.tar.gz.001"]


# ---- status readings --------------------------------------------------------------------------


def pod(phase: str = "Pending", **status: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "uid": "u"}, "spec": {}, "status": {"phase": phase, **status}}


def test_unschedulable_pod_gives_the_schedulers_message() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu.",
    }
    assert "Insufficient cpu" in str(st.unschedulable(pod(conditions=[condition])))


def test_image_that_cannot_be_pulled_is_stuck() -> None:
    waiting = {"state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image x not present"}}}
    reason = st.stuck(pod(containerStatuses=[waiting]))
    assert reason is not None and "ErrImageNeverPull" in reason and "image x not present" in reason


def test_deadline_exceeded_names_the_time_limit() -> None:
    failed = pod("Failed", reason="DeadlineExceeded")
    failed["spec"] = {"activeDeadlineSeconds": 5}
    assert "time limit of 5 s" in st.failure_reason(failed)


def test_failure_reason_gives_the_exit_code() -> None:
    terminated = {"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    reason = st.failure_reason(pod("Failed", containerStatuses=[terminated]))
    assert reason == "failed with exit code 3, Error"


def test_warnings_give_the_latest_two_that_say_something() -> None:
    events = [
        {"reason": "FailedMount", "message": "secret x not found", "lastTimestamp": "2026-01-01T00:00:02Z"},
        {"reason": "MissingClusterDNS", "message": "no DNS", "lastTimestamp": "2026-01-01T00:00:09Z"},
        {"reason": "BackOff", "message": "x" * 400, "eventTime": "2026-01-01T00:00:05Z"},
        {"reason": "FailedScheduling", "message": "old", "lastTimestamp": "2026-01-01T00:00:01Z"},
    ]
    assert (
        st.warnings_text(events) == f" (last warnings: FailedMount: secret x not found; BackOff: {'x' * 300})"
    )
    assert st.warnings_text([]) == ""


def test_only_an_image_pull_a_registry_may_recover_from_is_given_a_grace() -> None:
    def waiting(reason: str) -> dict[str, object]:
        return pod(containerStatuses=[{"state": {"waiting": {"reason": reason}}}])

    assert st.pull_may_recover(waiting("ErrImagePull")) and st.pull_may_recover(waiting("ImagePullBackOff"))
    assert not st.pull_may_recover(waiting("ErrImageNeverPull"))
    assert not st.pull_may_recover(waiting("InvalidImageName"))
    assert not st.pull_may_recover(waiting("ContainerCreating"))


def test_rollout_is_done_only_when_every_replica_is_new_and_available() -> None:
    status = {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}
    assert st.rollout_done({"status": {**status, "replicas": 2}}, 2, 2)
    assert not st.rollout_done({"status": {**status, "replicas": 3}}, 2, 2)  # an old pod remains
    assert not st.rollout_done({"status": {**status, "replicas": 2}}, 3, 2)  # not yet observed


# ---- packing and the bootstrap --------------------------------------------------------------------


def test_packing_is_deterministic_and_skips_git(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("token=secret")
    (tmp_path / "a.py").write_text("print(1)")
    first = pack(tmp_path)
    os.utime(tmp_path / "a.py", (1, 1))
    assert pack(tmp_path).digest == first.digest
    assert b"token=secret" not in base64.b64decode(first.chunks()[0])


def test_packing_refuses_a_repository_too_large_to_ship(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(os.urandom(1024 * 1024))
    with pytest.raises(StageError, match=r"at most 0\.9 MiB"):
        pack(tmp_path, max_chunks=1)


def test_bootstrap_extracts_chunks_and_runs_the_module_with_args(tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "stage").mkdir(parents=True)
    (source / "stage" / "helper.py").write_text("VALUE = 'helped'\n")
    (source / "stage" / "main.py").write_text(
        "import os, sys, helper\nprint(helper.VALUE, sys.argv[1:], os.getcwd().endswith('stage'))\n"
    )
    code, work = tmp_path / "code", tmp_path / "work"
    code.mkdir()
    work.mkdir()
    for index, chunk in enumerate(pack(source).chunks(size=200)):
        (code / f"source.tar.gz.{index:03d}").write_bytes(base64.b64decode(chunk))
    env = {
        **os.environ,
        "BODYWORK_CODE_DIR": str(code),
        "BODYWORK_WORK_DIR": str(work),
        "BODYWORK_CACHE_DIR": str(tmp_path / "cache"),
        "BODYWORK_MODULE": "stage/main.py",
        "BODYWORK_ARGS": json.dumps(["--x", "1"]),
        "GIT_COMMIT_HASH": "d" * 40,
    }
    done = subprocess.run(
        [sys.executable, str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "helped ['--x', '1'] True" in done.stdout
    assert "at commit dddddddddddd" in done.stdout


def run_bootstrap(
    tmp_path: Path, files: dict[str, str], module: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Runs the bootstrap on ``files`` packed as one chunk, working in ``tmp_path``, with ``env`` added."""
    (tmp_path / "repo").mkdir()
    for name, text in files.items():
        (tmp_path / "repo" / name).write_text(text)
    code = tmp_path / "code"
    code.mkdir()
    (code / "source.tar.gz.000").write_bytes(pack(tmp_path / "repo").data)
    environ = {
        **os.environ,
        "BODYWORK_CODE_DIR": str(code),
        "BODYWORK_WORK_DIR": str(tmp_path),
        "BODYWORK_MODULE": module,
        **env,
    }
    return subprocess.run([sys.executable, str(BOOTSTRAP)], env=environ, capture_output=True, text=True)


def test_bootstrap_names_a_missing_module(tmp_path: Path) -> None:
    done = run_bootstrap(tmp_path, {"x.py": ""}, "missing.py", GIT_COMMIT_HASH="e" * 40)
    assert done.returncode == 2
    assert "'missing.py' is not a file of commit eeee" in done.stderr


# ---- settings and errors --------------------------------------------------------------------------


def test_unknown_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown Kubernetes backend option.*kubconfig"):
        KubernetesSettings.from_options(kubconfig="x")
    settings = KubernetesSettings.from_options(images={"*": "local:1"})
    assert settings.image_for("bodyworkml/bodywork-core:3.0") == "local:1"


def test_forbidden_names_the_verb_and_resource() -> None:
    payload = json.dumps({"message": 'jobs.batch is forbidden: User "x" cannot create resource "jobs"'})
    error = error_for("POST", "/apis/batch/v1/namespaces/ns/jobs", "jobs j in namespace ns", 403, payload)
    assert isinstance(error, Forbidden)
    assert "may not create jobs j in namespace ns" in str(error) and "RBAC" in str(error)
    assert isinstance(error_for("GET", "/x", "x", 404, "{}"), NotFound)
    assert isinstance(error_for("GET", "/x", "x", 410, "{}"), Gone)
    assert isinstance(error_for("POST", "/x", "x", 422, "{}"), Invalid)
    assert isinstance(error_for("GET", "/x", "x", 503, "{}"), TemporaryError)


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig naming a loopback port nothing listens on."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    yield loopback_kubeconfig(tmp_path, port)


def test_an_unreachable_api_server_is_retried_then_reported(unreachable_kubeconfig: Path) -> None:
    api = KubeApi(kubeconfig=str(unreachable_kubeconfig), retry_delays=(0.01, 0.02))
    with pytest.raises(Unreachable, match=r"cannot reach the Kubernetes API server.*after 3 attempts"):
        api.get("Namespace", "default")
    api.close()


def test_a_missing_kubeconfig_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="--kubeconfig"):
        KubeApi(kubeconfig=str(tmp_path / "nope"))


def _serve_forbidden() -> tuple[http.server.HTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.dumps(
                {
                    "kind": "Status",
                    "code": 403,
                    "message": 'jobs.batch is forbidden: User "ci" cannot create resource "jobs"',
                }
            ).encode()
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_forbidden_answer_becomes_a_clear_error(tmp_path: Path) -> None:
    server, port = _serve_forbidden()
    api = KubeApi(kubeconfig=str(loopback_kubeconfig(tmp_path, port)))
    try:
        with pytest.raises(Forbidden, match=r'may not create jobs j in namespace ns.*User "ci"'):
            api.create("Job", {"metadata": {"name": "j"}}, "ns")
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def test_a_batch_bootstrap_reports_the_exit_with_its_session(tmp_path: Path) -> None:
    job = "import sys\nprint('[bodywork] session fake exited with code 0')\nsys.exit(3)\n"
    done = run_bootstrap(tmp_path, {"job.py": job}, "job.py", BODYWORK_STAGE_KIND="batch")
    assert done.returncode == 3
    lines = done.stdout.splitlines()
    assert lines[0].startswith(m.SESSION_PREFIX)
    session = lines[0][len(m.SESSION_PREFIX) :]
    assert lines[-1] == f"{m.SESSION_PREFIX}{session} exited with code 3"
    sessions: dict[str, str] = {}
    reported = [session_exit(sessions, "pod", line) for line in lines if line.startswith(m.SESSION_PREFIX)]
    assert reported == [None, None, "3"]  # the stage's own imitation is ignored


def test_an_unreachable_cluster_fails_the_run_with_the_reason(
    unreachable_kubeconfig: Path, tmp_path: Path
) -> None:
    (tmp_path / "job.py").write_text("print('never')\n")
    stage = Stage(
        name="job",
        executable_module_path="job.py",
        cpu_request=0.1,
        memory_request_mb=10,
        batch=BatchSettings(max_completion_time_seconds=10, retries=0),
    )
    pipe = Pipeline(
        version="1.1",
        pipeline=PipelineSettings(name="p", docker_image="img", dag=(("job",),)),
        stages={"job": stage},
    )
    backend = KubernetesBackend(kubeconfig=str(unreachable_kubeconfig), api_retry_delays=(0.01, 0.01))
    outcome = asyncio.run(Engine(backend).run(RunRequest(pipe, tmp_path, "a" * 40, environment="env")))
    assert outcome.state is RunState.FAILED
    assert outcome.reason.startswith(
        "could not prepare the environment: cannot reach the Kubernetes API server"
    )
    assert "gave up after 3 attempts" in outcome.reason
