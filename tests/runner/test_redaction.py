"""Secrets are masked where they stand as words, and never mangle other words that contain them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runner.backends.local import LocalBackend
from runner.events import RunState
from runner.redaction import MASK, Redactor
from tests.runner.builders import batch, pipeline, write
from tests.runner.conftest import Harness, Recorder


def _redactor(*values: str) -> Redactor:
    redactor = Redactor()
    redactor.track(values)
    return redactor


def test_a_word_like_secret_is_masked_only_where_it_stands_alone() -> None:
    mask = _redactor("bodywork").mask

    assert mask("/home/me/bodywork-gitops/runs/x") == "/home/me/bodywork-gitops/runs/x"
    assert mask("mybodywork bodyworks bodywork_2") == "mybodywork bodyworks bodywork_2"
    assert mask("password=bodywork; 'bodywork' /bodywork/ bodywork.") == (
        f"password={MASK}; '{MASK}' /{MASK}/ {MASK}."
    )


def test_long_values_are_masked_even_inside_other_words() -> None:
    token = "ghp_a1B2c3D4e5F6g7H8"
    assert _redactor(token).mask(f"url=https://x{token}y@host") == f"url=https://x{MASK}y@host"


def test_a_secret_containing_another_is_masked_whole_and_short_values_never() -> None:
    mask = _redactor("abc-123", "abc-123-xyz", "yes").mask
    assert mask("k=abc-123-xyz and abc-123, yes") == f"k={MASK} and {MASK}, yes"


def test_values_added_after_tracking_are_masked() -> None:
    values: set[str] = set()
    redactor = Redactor()
    redactor.track(values)
    assert redactor.mask("s3cr3t") == "s3cr3t"
    values.add("s3cr3t")
    assert redactor.mask("s3cr3t") == MASK


def test_stage_output_keeps_paths_and_masks_the_secret(tmp_path: Path, venv_cache: Path) -> None:
    backend = LocalBackend(
        cache_dir=venv_cache, state_dir=tmp_path / "state", secrets={"db": {"DB_PASSWORD": "bodywork"}}
    )
    harness = Harness(backend, Recorder())
    source = write(tmp_path / "repo", {
        "use.py": """
            import os
            print("checkout in /srv/bodywork-gitops/runs")
            print("connecting with password", os.environ["DB_PASSWORD"])
            raise SystemExit("login as bodywork failed")
        """,
    })
    p = pipeline("use", batch("use", "use.py", secrets=(("DB_PASSWORD", "db"),)))

    outcome = harness.run(p, source)
    asyncio.run(backend.close())

    assert outcome.state is RunState.FAILED
    assert harness.recorder.logs("use") == [
        "checkout in /srv/bodywork-gitops/runs",
        f"connecting with password {MASK}",
        f"login as {MASK} failed",
    ]
