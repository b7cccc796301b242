"""The engine with the local backend running real stages as real processes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from runner.backends.local import LocalBackend
from runner.engine import RunOutcome
from runner.events import RunFinished, RunState, StageAttemptFailed, StageStarted, StageState
from tests.runner.builders import batch, pipeline, write
from tests.runner.conftest import Harness, Recorder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_steps_run_in_order_with_the_commit_hash(harness: Harness, tmp_path: Path) -> None:
    source = write(tmp_path / "repo", {
        "prepare/prepare.py": """
            import os, sys
            print("prepare", os.environ["GIT_COMMIT_HASH"], sys.argv[1:])
            open("prepared.txt", "w").write("x")
        """,
        "train/train.py": "print('train in', __import__('os').getcwd().rsplit('/', 1)[-1])",
    })
    p = pipeline(
        "prepare >> train",
        batch("prepare", "prepare/prepare.py", args=("--rows", "10")),
        batch("train", "train/train.py"),
    )

    outcome = harness.run(p, source, COMMIT)

    assert outcome.state is RunState.SUCCEEDED
    assert harness.recorder.logs("prepare") == [f"prepare {COMMIT} ['--rows', '10']"]
    assert harness.recorder.logs("train") == ["train in train"]
    started = [e.stage for e in harness.recorder.of(StageStarted)]
    assert started == ["prepare", "train"]
    # Stages run in a copy of the commit: the repository itself is never written to.
    assert not (source / "prepare" / "prepared.txt").exists()


def test_retries_then_failure_runs_run_on_failure_with_the_message(
    harness: Harness, tmp_path: Path
) -> None:
    source = write(tmp_path / "repo", {
        "flaky.py": "import sys; print('attempt failing'); sys.exit(3)",
        "never.py": "print('must not run')",
        "on_failure.py": """
            import os
            print("handler got:", os.environ["EXCEPTION_MESSAGE"])
        """,
    })
    p = pipeline(
        "flaky >> never",
        batch("flaky", "flaky.py", retries=2),
        batch("never", "never.py"),
        batch("on-failure", "on_failure.py"),
        run_on_failure="on-failure",
    )

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == "stage flaky failed: exited with code 3"
    assert [e.attempt for e in harness.recorder.of(StageAttemptFailed)] == [1, 2]
    assert harness.recorder.finished("flaky").attempts == 3
    assert harness.recorder.logs("flaky") == ["attempt failing"] * 3
    assert harness.recorder.logs("never") == []
    assert harness.recorder.logs("on-failure") == [
        "handler got: stage flaky failed: exited with code 3"
    ]
    assert harness.recorder.finished("on-failure").state is StageState.SUCCEEDED


@pytest.mark.timeout(60)
def test_time_limit_kills_the_stage_and_its_children(harness: Harness, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    source = write(tmp_path / "repo", {
        "slow.py": f"""
            import subprocess, time
            child = subprocess.Popen(["sleep", "600"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            print("started child", flush=True)
            time.sleep(600)
        """,
    })
    p = pipeline("slow", batch("slow", "slow.py", limit=2))

    # The stage would sleep 600 s: the run ending within this test's timeout shows that it was stopped.
    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert "did not finish within max_completion_time_seconds (2s)" in outcome.reason
    child = int(pid_file.read_text())
    assert not _alive(child), "the stage's child process survived the time limit"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child may linger as a zombie until reaped by init.
    status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else ""
    return "State:\tZ" not in status and bool(status)


def test_stages_of_one_step_overlap_in_time(harness: Harness, tmp_path: Path) -> None:
    # A rendezvous: each stage announces itself, then waits for the other. Only stages that run at
    # the same time can both see each other; one after the other, the first would wait in vain.
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    stage_code = f"""
        import pathlib, sys, time
        me, other = sys.argv[1:]
        meeting = pathlib.Path({str(meeting)!r})
        (meeting / me).touch()
        deadline = time.monotonic() + 20
        while not (meeting / other).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        print("met " + other if (meeting / other).exists() else "alone", flush=True)
    """
    source = write(tmp_path / "repo", {"meet.py": stage_code})
    p = pipeline("a, b", batch("a", "meet.py", args=("a", "b")), batch("b", "meet.py", args=("b", "a")))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert harness.recorder.logs("a") == ["met b"], "stages of one step did not overlap"
    assert harness.recorder.logs("b") == ["met a"], "stages of one step did not overlap"


def test_notebook_stage_executes_its_code_cells(harness: Harness, tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Train\n"]},
            {"cell_type": "code", "source": ["x = 20\n", "%time y = 1\n"]},
            {"cell_type": "code", "source": "print('answer', x + 22)"},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    source = write(tmp_path / "repo", {"nb/train.ipynb": json.dumps(notebook)})
    p = pipeline("train", batch("train", "nb/train.ipynb"))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.SUCCEEDED, outcome.reason
    assert harness.recorder.logs("train")[-1] == "answer 42"


def test_binary_garbage_output_reaches_the_log_as_readable_text(harness: Harness, tmp_path: Path) -> None:
    source = write(tmp_path / "repo", {
        "noisy.py": r"""
            import sys
            sys.stdout.buffer.write(b"ok \xff\xfe\x00\x1b[31m red\n" + b"x" * 100000)
        """,
    })
    outcome = harness.run(pipeline("noisy", batch("noisy", "noisy.py")), source)

    assert outcome.state is RunState.SUCCEEDED
    lines = harness.recorder.logs("noisy")
    assert lines[0] == "ok \ufffd\ufffd\ufffd red"
    assert all(line.isprintable() for line in lines)
    assert sum(len(line) for line in lines[1:]) == 100000


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("../../etc/passwd.py", "executable_module_path '../../etc/passwd.py' leaves the repository"),
        ("missing/train.py", "executable_module_path 'missing/train.py' does not exist at this commit"),
    ],
)
def test_bad_module_paths_fail_the_run_before_any_stage(
    harness: Harness, tmp_path: Path, module: str, message: str
) -> None:
    source = write(tmp_path / "repo", {"ok.py": "print('ok')"})
    p = pipeline("ok >> bad", batch("ok", "ok.py"), batch("bad", module))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason.startswith(f"stage bad: {message}")
    assert harness.recorder.of(StageStarted) == []


def test_symlink_out_of_the_repository_is_refused(harness: Harness, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"evil.py": "print('escaped')"})
    source = write(tmp_path / "repo", {"ok.py": "print('ok')"})
    (source / "link.py").symlink_to(outside / "evil.py")

    outcome = harness.run(pipeline("link", batch("link", "link.py")), source)

    assert outcome.state is RunState.FAILED
    assert "resolves outside the repository" in outcome.reason


def test_secrets_reach_the_stage_and_are_masked_in_logs(tmp_path: Path, venv_cache: Path) -> None:
    from runner.backends.local import LocalBackend
    from runner.engine import Engine, RunRequest
    from runner.events import EventBus
    from tests.runner.conftest import Recorder

    source = write(tmp_path / "repo", {
        "use.py": """
            import os, sys
            print("password is", os.environ["DB_PASSWORD"])
            sys.exit(0 if os.environ["DB_PASSWORD"] == "hunter2-very-secret" else 1)
        """,
    })
    stage = batch("use", "use.py", secrets=(("DB_PASSWORD", "database"),))
    backend = LocalBackend(
        cache_dir=venv_cache, state_dir=tmp_path / "state",
        secrets={"database": {"DB_PASSWORD": "hunter2-very-secret"}},
    )
    recorder = Recorder()

    outcome = asyncio.run(Engine(backend, EventBus(recorder)).run(
        RunRequest(pipeline("use", stage), source, COMMIT)
    ))
    asyncio.run(backend.close())

    assert outcome.state is RunState.SUCCEEDED
    assert recorder.logs("use") == ["password is ********"]


def test_missing_secrets_are_all_reported_before_the_first_stage_runs(
    harness: Harness, tmp_path: Path
) -> None:
    ran = tmp_path / "first-stage-ran"
    source = write(tmp_path / "repo", {
        "first.py": f"open({str(ran)!r}, 'w').write('x')",
        "use.py": "print('x')",
    })
    p = pipeline(
        "first >> use >> other",
        batch("first", "first.py"),
        batch("use", "use.py", secrets=(("API_KEY", "external-api"),)),
        batch("other", "use.py", secrets=(("DB_PASSWORD", "database"),)),
    )

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == (
        "could not prepare the environment: stage use needs key 'API_KEY' of secret 'external-api'; "
        "stage other needs key 'DB_PASSWORD' of secret 'database'; no secrets file was given: write the "
        "secrets into a YAML file (its format is in `bodywork run --help`) and pass it with --secrets-file"
    )
    assert not ran.exists()


def test_a_secret_missing_from_the_given_file_names_the_file(tmp_path: Path, venv_cache: Path) -> None:
    secrets_file = tmp_path / "secrets.yaml"
    backend = LocalBackend(
        cache_dir=venv_cache, state_dir=tmp_path / "state", secrets={"database": {"DB_USER": "alice"}},
        secrets_file=secrets_file,
    )
    source = write(tmp_path / "repo", {"use.py": "print('x')"})
    stage = batch("use", "use.py", secrets=(("DB_PASSWORD", "database"),))

    outcome = Harness(backend, Recorder()).run(pipeline("use", stage), source)
    asyncio.run(backend.close())

    assert outcome.reason == (
        "could not prepare the environment: stage use needs key 'DB_PASSWORD' of secret 'database'; "
        f"add them under `secrets:` in the secrets file {secrets_file}"
    )


def test_cancelling_a_run_stops_its_stages(harness: Harness, tmp_path: Path) -> None:
    pid_file = tmp_path / "stage.pid"
    source = write(tmp_path / "repo", {
        "forever.py": f"""
            import os, time
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(600)
        """,
    })
    p = pipeline("forever", batch("forever", "forever.py", limit=600))

    async def scenario() -> None:
        task = asyncio.create_task(harness.run_async(p, source))
        while not pid_file.exists() or not pid_file.read_text():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())

    assert not _alive(int(pid_file.read_text()))
    (finished,) = harness.recorder.of(RunFinished)
    assert finished.state is RunState.CANCELLED
    assert harness.recorder.finished("forever").state is StageState.CANCELLED


def test_a_run_finishing_leaves_the_workspace_of_a_concurrent_run_alone(
    harness: Harness, tmp_path: Path
) -> None:
    started, go = tmp_path / "slow-started", tmp_path / "go"
    quick = write(tmp_path / "quick", {"quick.py": "print('quick')"})
    slow = write(tmp_path / "slow", {
        # Runs in its workspace until the quick run has finished, then reads a file of it.
        "slow.py": f"""
            import pathlib, time
            pathlib.Path({str(started)!r}).touch()
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.02)
            print(open('data.txt').read())
        """,
        "data.txt": "still here",
    })

    async def scenario() -> tuple[RunOutcome, RunOutcome]:
        slow_run = asyncio.create_task(harness.run_async(pipeline("slow", batch("slow", "slow.py")), slow))
        while not started.exists():
            await asyncio.sleep(0.02)
        quick_outcome = await harness.run_async(pipeline("quick", batch("quick", "quick.py")), quick)
        go.touch()
        return quick_outcome, await slow_run

    quick_outcome, slow_outcome = asyncio.run(scenario())

    assert quick_outcome.state is RunState.SUCCEEDED
    assert slow_outcome.state is RunState.SUCCEEDED, slow_outcome.reason
    assert harness.recorder.logs("slow") == ["still here"]
    assert list((tmp_path / "state" / "runs").iterdir()) == []


def test_a_backend_error_fails_its_stage_and_lets_the_others_of_the_step_finish(
    harness: Harness, tmp_path: Path
) -> None:
    source = write(tmp_path / "repo", {"ok.py": "import time; time.sleep(0.5); print('finished')"})
    original = harness.backend.run_batch

    async def flaky_backend(job):  # type: ignore[no-untyped-def]
        if job.stage.name == "broken":
            raise OSError("disk full")
        return await original(job)

    harness.backend.run_batch = flaky_backend  # type: ignore[method-assign]
    p = pipeline("ok, broken", batch("ok", "ok.py"), batch("broken", "ok.py"))

    outcome = harness.run(p, source)

    assert outcome.state is RunState.FAILED
    assert outcome.reason == "stage broken failed: internal error in the local backend: OSError: disk full"
    assert harness.recorder.logs("ok") == ["finished"]
    assert harness.recorder.finished("ok").state is StageState.SUCCEEDED
