"""`bodywork run` as a user runs it: a real process, real output, real Git repositories, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.runner.builders import HTTP_SERVICE, free_port, write

BODYWORK = [sys.executable, "-m", "gitops.cli", "run"]


def _yaml(dag: str, stages: dict[str, dict[str, object]], **pipeline: object) -> str:
    """A bodywork.yaml; JSON is YAML, so json.dumps writes one without indentation traps."""
    return json.dumps({
        "version": "1.1",
        "pipeline": {"name": "cli-test", "docker_image": "bodyworkml/bodywork-core:3.1", "DAG": dag,
                     **pipeline},
        "stages": stages,
        "logging": {"log_level": "INFO"},
    })


def _batch(module: str, **extra: object) -> dict[str, object]:
    return {"executable_module_path": module, "cpu_request": 0.1, "memory_request_mb": 64,
            "batch": {"max_completion_time_seconds": 30, "retries": 0}, **extra}


def _run(args: list[str], env_home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_STATE_HOME=str(env_home / "state"), XDG_CACHE_HOME=str(env_home / "cache"))
    return subprocess.run(BODYWORK + args, capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_a_folder_runs_and_reports_progress(tmp_path: Path, home: Path) -> None:
    source = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("hello >> bye", {"hello": _batch("hello.py"), "bye": _batch("bye.py")}),
        "hello.py": "print('hello from', __import__('os').environ['GIT_COMMIT_HASH'][:7])",
        "bye.py": "print('bye')",
    })

    result = _run([str(source), "--once"], home)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("run ") and "pipeline cli-test" in lines[0]
    assert "step 1/2: hello" in lines
    assert "step 2/2: bye" in lines
    assert any(line.startswith("  hello | hello from ") for line in lines)
    assert any(line.startswith("  hello: done in ") for line in lines)
    assert lines[-1].startswith("run ") and " succeeded in " in lines[-1]


def test_a_failing_run_exits_1_with_the_reason(tmp_path: Path, home: Path) -> None:
    source = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("boom", {"boom": _batch("boom.py")}),
        "boom.py": "raise SystemExit('the data is missing')",
    })

    result = _run([str(source), "--once"], home)

    assert result.returncode == 1
    assert "  boom | the data is missing" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("failed: exited with code 1")
    assert "Traceback" not in result.stderr


def test_an_invalid_config_is_listed_without_a_traceback(tmp_path: Path, home: Path) -> None:
    source = write(tmp_path / "repo", {"bodywork.yaml": "version: '1.1'\npipeline: [not, a, mapping]\n"})

    result = _run([str(source)], home)

    assert result.returncode == 1
    assert result.stderr.startswith("error: bodywork.yaml has ")
    assert "Traceback" not in result.stderr


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                 GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com"),
    ).stdout.strip()


def _first_commit(repo: Path) -> str:
    """Makes the folder `repo` a Git repository whose main branch commits all its files; the commit."""
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    return _git(repo, "rev-parse", "HEAD")


def test_a_git_url_runs_exactly_the_commit_asked_for(tmp_path: Path, home: Path) -> None:
    repo = write(tmp_path / "origin", {
        "bodywork.yaml": _yaml("show", {"show": _batch("show.py")}),
        "show.py": "import os; print('version 1 at', os.environ['GIT_COMMIT_HASH'])",
    })
    first = _first_commit(repo)
    (repo / "show.py").write_text("print('version 2')")
    _git(repo, "commit", "-qam", "v2")

    old = _run([f"file://{repo}", "--commit", first[:10], "--once"], home)
    new = _run([f"file://{repo}", "--branch", "main", "--once"], home)

    assert old.returncode == 0, old.stderr
    assert f"  show | version 1 at {first}" in old.stdout
    assert "  show | version 2" in new.stdout
    unknown = _run([f"file://{repo}", "--commit", "deadbeef", "--once"], home)
    assert unknown.returncode == 1
    assert "commit deadbeef is not in" in unknown.stderr


def test_secrets_come_from_the_secrets_file_and_never_show(tmp_path: Path, home: Path) -> None:
    stage = _batch("use.py", secrets={"TOKEN": "api-token"})
    source = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("use", {"use": stage}, secrets_group="prod"),
        "use.py": "import os; print('token', os.environ['TOKEN'])",
    })
    secrets = write(tmp_path, {"secrets.yaml": """
        secrets:
          api-token: {TOKEN: default-token-value}
        groups:
          prod:
            api-token: {TOKEN: s3cr3t-prod-token}
    """}) / "secrets.yaml"

    result = _run([str(source), "--once", "--secrets-file", str(secrets)], home)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "  use | token ********" in result.stdout
    assert "s3cr3t" not in result.stdout + result.stderr


def test_ctrl_c_stops_the_services_cleanly(tmp_path: Path, home: Path) -> None:
    port = free_port()
    service = {"executable_module_path": "web.py", "cpu_request": 0.1, "memory_request_mb": 64,
               "service": {"max_startup_time_seconds": 20, "replicas": 1, "port": port, "ingress": False}}
    source = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("web", {"web": service}),
        "web.py": HTTP_SERVICE.format(answer="hello", port=port),
    })
    env = dict(os.environ, XDG_STATE_HOME=str(home / "state"), XDG_CACHE_HOME=str(home / "cache"))
    with subprocess.Popen(
        [*BODYWORK, str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 60
            for line in process.stdout:
                if "press Ctrl-C" in line or time.monotonic() > deadline:
                    break
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                assert response.read() == b"hello"

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_uncommitted_changes_run_and_are_said_with_a_dirty_commit(tmp_path: Path, home: Path) -> None:
    repo = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("hello", {"hello": _batch("hello.py")}),
        "hello.py": "import os; print('v1', os.environ['GIT_COMMIT_HASH'])",
    })
    head = _first_commit(repo)
    (repo / "hello.py").write_text("import os; print('v2', os.environ['GIT_COMMIT_HASH'])")

    result = _run([str(repo), "--once"], home)

    assert result.returncode == 0, result.stderr
    assert f"v2 {head}-dirty" in result.stdout
    assert (
        f"notice: {repo} has uncommitted changes (hello.py); they run as they are, with "
        f"GIT_COMMIT_HASH={head}-dirty; commit them, or stash them to run the commit itself"
    ) in result.stderr


def test_a_missing_secret_without_a_secrets_file_says_none_was_given(tmp_path: Path, home: Path) -> None:
    ran = tmp_path / "first-ran"
    source = write(tmp_path / "repo", {
        "bodywork.yaml": _yaml("first >> use", {
            "first": _batch("first.py"),
            "use": _batch("use.py", secrets={"API_KEY": "external-api"}),
        }),
        "first.py": f"open({str(ran)!r}, 'w').write('x')",
        "use.py": "print('never')",
    })

    result = _run([str(source), "--once"], home)

    assert result.returncode == 1
    assert (
        "could not prepare the environment: stage use needs key 'API_KEY' of secret 'external-api'; no "
        "secrets file was given"
    ) in result.stdout
    assert not ran.exists()
