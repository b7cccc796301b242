"""Builders for the service's tests: Git repositories, pipelines, signed webhooks, a running service."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from gitops.commands.serve import build_server
from gitops.settings import Settings, load_settings

ZERO = "0" * 40
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class SourceRepo:
    """A bare repository (what the server serves) and a working clone that commits and pushes to it."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.bare = root / f"{name}.git"
        self.work = root / f"work-{name}"
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def commit(self, files: Mapping[str, str | None], message: str = "change", branch: str = "main") -> str:
        current = git(self.work, "rev-parse", "--abbrev-ref", "HEAD") if self._has_head() else "main"
        if current != branch:
            exists = subprocess.run(
                ["git", "rev-parse", "--verify", "-q", branch], cwd=self.work, env=GIT_ENV,
                capture_output=True, check=False,
            ).returncode == 0
            git(self.work, "checkout", "-q", *([] if exists else ["-b"]), branch)
        for path, text in files.items():
            target = self.work / path
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def _has_head(self) -> bool:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=self.work, env=GIT_ENV, capture_output=True, check=False
        ).returncode == 0

    def push(self, branch: str = "main") -> None:
        git(self.work, "push", "-q", "-f", "origin", f"{branch}:refs/heads/{branch}")

    def annotated_tag(self, tag: str, commit: str) -> str:
        git(self.work, "tag", "-a", "-m", f"release {tag}", tag, commit)
        git(self.work, "push", "-q", "origin", f"refs/tags/{tag}")
        return git(self.work, "rev-parse", f"refs/tags/{tag}")

    def delete_branch(self, branch: str) -> None:
        git(self.work, "push", "-q", "origin", f":refs/heads/{branch}")


def stage_yaml(name: str, limit: int = 30) -> str:
    return (
        f"  {name}:\n    executable_module_path: {name}.py\n    cpu_request: 0.1\n"
        f"    memory_request_mb: 64\n    batch:\n      max_completion_time_seconds: {limit}\n"
        "      retries: 0\n"
    )


def pipeline_files(
    name: str = "demo",
    dag: str = "prepare >> train",
    scripts: Mapping[str, str] | None = None,
    namespace: str | None = None,
) -> dict[str, str]:
    """A bodywork.yaml whose stages are tiny print scripts (override any in `scripts`)."""
    stages = [s.strip() for step in dag.split(">>") for s in step.split(",")]
    header = (
        f'version: "1.1"\npipeline:\n  name: {name}\n  docker_image: bodyworkml/bodywork-core:3.1\n'
        f"  DAG: {dag}\n" + (f"  namespace: {namespace}\n" if namespace else "") + "stages:\n"
    )
    files = {
        "bodywork.yaml": header + "".join(stage_yaml(s) for s in stages) + "logging:\n  log_level: INFO\n"
    }
    for stage in stages:
        files[f"{stage}.py"] = f'print("stage {stage} says hello", flush=True)\n'
    files.update(scripts or {})
    return files


# -- webhooks -------------------------------------------------------------------------------------


def github_push(
    repository: str,
    ref: str,
    before: str,
    after: str,
    *,
    clone_url: str = "",
    head_commit: str | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    head = None if deleted else {"id": head_commit or after, "message": "change"}
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "head_commit": head,
        "pusher": {"name": "octocat", "email": "octocat@example.invalid"},
        "repository": {
            "full_name": repository,
            "clone_url": clone_url,
            "ssh_url": "",
            "default_branch": "main",
        },
    }


def gitlab_push(
    project: str, ref: str, before: str, after: str, *, checkout_sha: str | None = None, tag: bool = False
) -> dict[str, Any]:
    return {
        "object_kind": "tag_push" if tag else "push",
        "before": before,
        "after": after,
        "ref": ref,
        "checkout_sha": None if after == ZERO else (checkout_sha or after),
        "user_username": "tanuki",
        "project_id": 42,
        "project": {
            "path_with_namespace": project,
            "git_http_url": "",
            "git_ssh_url": "",
            "default_branch": "main",
            "web_url": "",
        },
    }


def github_headers(
    body: bytes, secret: str, event: str = "push", delivery: str | None = None
) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
        "User-Agent": "GitHub-Hookshot/test",
    }


def gitlab_headers(secret: str, event: str = "Push Hook", key: str | None = None) -> dict[str, str]:
    key = key or str(uuid.uuid4())
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event-UUID": key,
        "Idempotency-Key": key,
        "X-Gitlab-Instance": "https://gitlab.example.invalid",
    }


# -- the service ----------------------------------------------------------------------------------


def github_repository(url: str, api_base: str) -> str:
    """The config entry, under ``repositories:``, of the GitHub repository ``acme/pipelines`` at ``url``
    (secret and token from ``GH_SECRET`` and ``GH_TOKEN``; deploys main, previews ``feature/*``)."""
    return f"""  - url: {url}
    provider: github
    name: acme/pipelines
    api_base: {api_base}
    webhook_secret_env: GH_SECRET
    api_token_env: GH_TOKEN
    deploy_branches: [main]
    preview_branches: ["feature/*"]"""


def write_config(path: Path, text: str, environ: Mapping[str, str]) -> Settings:
    path.write_text(text)
    return load_settings(path, environ)


def deliver_push(client: httpx.Client, ref: str, sha: str, secret: str) -> str:
    """A signed GitHub push of `sha` to `ref` of ``acme/pipelines``; the id of the run it queued."""
    body = json.dumps(github_push("acme/pipelines", ref, ZERO, sha)).encode()
    answer = client.post("/webhooks/github", content=body, headers=github_headers(body, secret))
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


class RunningService:
    """The service under uvicorn on a real loopback port, in a thread of this process."""

    def __init__(self, settings: Settings, **service_options: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.settings = settings
        self.server = build_server(settings, **service_options)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.client = httpx.Client(base_url=self.base_url, timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> RunningService:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.server.started:
                try:
                    if self.client.get("/readyz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
            if not self._thread.is_alive():
                raise RuntimeError("the service stopped while starting")
            time.sleep(0.02)
        raise RuntimeError("the service did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.client.close()
        self.sock.close()

    def push(self, ref: str, sha: str, secret: str) -> str:
        """Delivers a signed push of ``acme/pipelines`` to `sha`; the id of the run it queued."""
        return deliver_push(self.client, ref, sha, secret)

    def post_json(self, path: str, payload: Any, headers: Mapping[str, str]) -> httpx.Response:
        return self.client.post(path, content=json.dumps(payload).encode(), headers=dict(headers))

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/runs/{run_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def wait_for(
        self, run_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled", "superseded"),
        timeout: float = 60,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = self.run(run_id)
            if data["state"] in states:
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {data['state']} after {timeout}s: {data}")
            time.sleep(0.05)


def wait_until(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class ServiceProcess:
    """`bodywork serve` as a child process on a real port: it can be killed like a crashed service."""

    def __init__(self, config: Path, port: int, environ: Mapping[str, str], log: Path) -> None:
        self.config = config
        self.port = port
        self.environ = environ
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def start(self) -> ServiceProcess:
        import os
        import sys

        env = {**os.environ, **self.environ}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gitops.cli", "serve", "--config", str(self.config),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()}")
            try:
                return self.client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=30, what="the service to be ready")
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()

    def run(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get(f"/api/runs/{run_id}").json()
        return data

    def restarted(self) -> ServiceProcess:
        """The service started again (after `kill` or `stop`) on the same port, config and log."""
        return ServiceProcess(self.config, self.port, self.environ, self.log).start()

    def push(self, ref: str, sha: str, secret: str) -> str:
        """Delivers a signed push of ``acme/pipelines`` to `sha`; the id of the run it queued."""
        return deliver_push(self.client, ref, sha, secret)
