"""Each environment's stages run as a user of their own: a preview branch's stage cannot read a
production stage's secrets through /proc, nor read or change production's artifacts.

Real processes started as the local backend starts them (root switching to the stage users)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from runner.backends.base import ARTIFACTS_DIR_VARIABLE
from runner.backends.isolation import STAGE_UID_BASE, Isolation
from runner.backends.processes import StageProcess

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root"),
]

PRODUCTION = """import os, time
open(os.path.join(os.environ["BODYWORK_ARTIFACTS_DIR"], "model.bin"), "w").write("weights")
print(f"production pid {os.getpid()} uid {os.getuid()}", flush=True)
time.sleep(30)
"""
PREVIEW = """import os, sys
production, artifacts = sys.argv[1], sys.argv[2]
print(f"preview uid {os.getuid()}", flush=True)
attempts = {
    "environ": lambda: open(f"/proc/{production}/environ", "rb").read(),
    "artifact": lambda: open(os.path.join(artifacts, "model.bin")).read(),
    "listing": lambda: os.listdir(artifacts),
    "write": lambda: open(os.path.join(artifacts, "model.bin"), "w").write("poisoned"),
}
for what, attempt in attempts.items():
    try:
        print(f"{what}: DONE {attempt()!r}", flush=True)
    except OSError as error:
        print(f"{what}: denied ({type(error).__name__})", flush=True)
"""


def _workspace(root: Path, name: str) -> tuple[Path, Path]:
    workspace = root / "workspaces" / name
    artifacts = root / "environments" / name / "artifacts"
    workspace.mkdir(parents=True)
    artifacts.mkdir(parents=True)
    return workspace, artifacts


def test_a_preview_stage_cannot_reach_a_production_stage_s_secrets_or_artifacts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    isolation = Isolation.for_state_dir(state)
    production_dir, production_artifacts = _workspace(state, "production")
    preview_dir, preview_artifacts = _workspace(state, "preview")

    async def scenario() -> list[str]:
        lines: list[str] = []
        env = {"PATH": os.environ["PATH"], ARTIFACTS_DIR_VARIABLE: str(production_artifacts),
               "DATABASE_PASSWORD": "production-secret-4242"}
        production = await StageProcess.start(
            [sys.executable, "-c", PRODUCTION], production_dir, env, lines.append, isolation
        )
        try:
            for _ in range(500):
                if any(line.startswith("production pid") for line in lines):
                    break
                await asyncio.sleep(0.02)
            preview_env = {"PATH": os.environ["PATH"], ARTIFACTS_DIR_VARIABLE: str(preview_artifacts)}
            argv = [sys.executable, "-c", PREVIEW, str(production.pid), str(production_artifacts)]
            preview = await StageProcess.start(argv, preview_dir, preview_env, lines.append, isolation)
            await preview.wait(30)
        finally:
            await production.stop()
        return lines

    lines = asyncio.run(scenario())
    production_uid = int(next(x for x in lines if x.startswith("production pid")).split()[-1])
    preview_uid = int(next(x for x in lines if x.startswith("preview uid")).split()[-1])
    assert production_uid >= STAGE_UID_BASE and preview_uid >= STAGE_UID_BASE
    assert production_uid != preview_uid
    for what in ("environ", "artifact", "listing", "write"):
        assert f"{what}: denied (PermissionError)" in lines, lines
    assert (production_artifacts / "model.bin").read_text() == "weights"
    # The same environment keeps its user after a restart (a new Isolation reads the record).
    again = Isolation.for_state_dir(state).user_for({ARTIFACTS_DIR_VARIABLE: str(production_artifacts)})
    assert again is not None and again.uid == production_uid
