"""Conformance with Bodywork on the corpus of real pipeline configs in ../shared/conformance.

Every file's verdict (loads or is rejected) must equal Bodywork's own verdict in manifest.json, except
the deliberate differences listed in DELIBERATE with their reason and our exact message. Then every
schema "1.0" file and ini project that Bodywork accepted must migrate to a "1.1" bodywork.yaml that
validates and loads into an equal pipeline. The corpus is test data from public repositories: it is
read in place, never copied into this project.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitops.cli import main
from runner.config import ConfigError, load_pipeline, parse_pipeline_yaml
from runner.ini_layout import read_project_ini, read_stage
from runner.migration import to_yaml
from runner.model import Pipeline

from .conftest import CONFORMANCE_REPORT


def _find_corpus() -> Path:
    """``../shared/conformance`` beside the checkout; in a linked git worktree, beside the main checkout
    (whose ``.git`` the worktree's ``.git`` file names); ``$BODYWORK_CONFORMANCE_CORPUS`` overrides both."""
    if "BODYWORK_CONFORMANCE_CORPUS" in os.environ:
        return Path(os.environ["BODYWORK_CONFORMANCE_CORPUS"])
    root = Path(__file__).resolve().parents[2]
    beside = root.parent / "shared" / "conformance"
    git = root / ".git"
    if not (beside / "manifest.json").is_file() and git.is_file():
        # "gitdir: <main checkout>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().partition(":")[2].strip())
        return gitdir.parents[2].parent / "shared" / "conformance"
    return beside


CORPUS = _find_corpus()
# The corpus missing fails the conformance tests (never skips them): a checkout without it would
# otherwise pass with conformance unchecked.
NO_CORPUS = "(corpus missing)"


def _require_corpus() -> None:
    if not (CORPUS / "manifest.json").is_file():
        pytest.fail(
            f"conformance corpus not found at {CORPUS}: it is ../shared/conformance beside the checkout "
            "(or beside the main checkout of a git worktree); set BODYWORK_CONFORMANCE_CORPUS to its "
            "folder to use another place",
            pytrace=False,
        )


@dataclass(frozen=True)
class Deliberate:
    reason: str
    problems: tuple[str, ...]


# Files whose verdict differs from Bodywork's on purpose. Key: path in the corpus (for an ini fixture
# file: "<snapshot dir>/<file>").
DELIBERATE = {
    "yaml/bodywork-pipeline-with-aporia-monitoring--8fda66a--bodywork.yaml": Deliberate(
        "Bodywork ignored unknown keys, so the misspelt `secrets-group` was silently dropped and the "
        "pipeline ran without its secrets group; we reject it and name the right key",
        ('pipeline.secrets-group -> unknown key; did you mean "secrets_group"? (line 6)',),
    ),
    "yaml/bodywork-mlops-demo--93b3731--bodywork.yaml": Deliberate(
        "a dotted key `project.usage_stats` nested inside `project:` was ignored by Bodywork (usage "
        "stats stayed on); we reject it and say how to write it",
        (
            'project."project.usage_stats" -> unknown key; did you mean "usage_stats"? Keys are '
            "not dotted paths: write usage_stats: inside this section (line 6)",
        ),
    ),
    "ini/bodywork-core--ecac13e/stage_15_bad_service_data/config.ini": Deliberate(
        "a service without INGRESS: Bodywork 1.0.1 rejected it, 0.2.23 read it as no ingress; we "
        "follow 0.2.23 (with a notice) so the 9 snapshots written before March 2021 load",
        (),
    ),
}


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "manifest.json").read_text())
    return data


def _bodywork_accepts_yaml(entry: dict[str, Any]) -> bool:
    # "Bodywork 3.0.12: valid" or "Bodywork 3.0.0rc3 (final 1.0 schema): valid | Bodywork 2.1.7 ..."
    first = str(entry["bodywork_verdict"]).split(" | ")[0]
    return first.endswith(": valid")


def _bodywork_accepts_ini(entry: dict[str, Any]) -> bool:
    return "valid" in (entry["bodywork_1_0_1"], entry["bodywork_0_2_23"])


def _ours(load: Callable[[], object]) -> tuple[bool, tuple[str, ...]]:
    try:
        load()
    except ConfigError as error:
        return False, tuple(error.problems)
    return True, ()


def _loader(path: Path) -> Callable[[], object]:
    return lambda: load_pipeline(path)


def _ini_fixture(root: Path, name: str) -> Callable[[], object]:
    def load() -> object:
        if name.endswith("bodywork.ini"):
            settings, problems = read_project_ini(root / name, name)
            if settings is None:
                raise ConfigError(name, problems)
            return settings
        stage, problems, _ = read_stage(root, name.split("/")[0])
        if stage is None:
            raise ConfigError(name, problems)
        return stage

    return load


@dataclass
class _Row:
    files: int = 0
    agree: int = 0
    deliberate: int = 0
    disagree: int = 0


def test_verdicts_agree_with_bodywork_on_the_whole_corpus() -> None:
    _require_corpus()
    started = time.monotonic()
    manifest = _manifest()
    cases: list[tuple[str, str, bool, Callable[[], object]]] = []  # row, key, bodywork, load
    for entry in [*manifest["yaml"], *manifest["yaml_docs"]]:
        version = entry["version"]
        if entry["file"].startswith("yaml-docs/"):
            group = "docs examples"
        elif version == '"1.1"':
            group = 'yaml "1.1" (pipeline:)'
        elif version == '"1.0"':
            group = 'yaml "1.0" (project:)'
        else:
            group = "yaml, no or unknown version"
        path = CORPUS / entry["file"]
        cases.append((group, entry["file"], _bodywork_accepts_yaml(entry), _loader(path)))
    for entry in manifest["ini"]:
        root = CORPUS / entry["dir"]
        cases.append(
            (
                "ini projects",
                entry["dir"],
                _bodywork_accepts_ini(entry),
                _loader(root),
            )
        )
        for name, verdict in entry["other_files_bodywork_1_0_1"].items():
            cases.append(
                (
                    "ini fixture files (1.0.1)",
                    f"{entry['dir']}/{name}",
                    str(verdict).startswith("valid"),
                    _ini_fixture(root, name),
                )
            )

    rows: dict[str, _Row] = {}
    disagreements: list[str] = []
    for row_name, key, bodywork, load in cases:
        row = rows.setdefault(row_name, _Row())
        row.files += 1
        ours, problems = _ours(load)
        if key in DELIBERATE:
            expected = DELIBERATE[key]
            assert ours != bodywork, f"{key} is listed as a deliberate difference but agrees"
            assert problems == expected.problems, key
            row.deliberate += 1
        elif ours == bodywork:
            row.agree += 1
        else:
            row.disagree += 1
            verdict = "accepted" if bodywork else "rejected"
            disagreements.append(f"{key}: Bodywork {verdict} it, we did not: {list(problems)}")
    assert set(DELIBERATE) <= {key for _, key, _, _ in cases}

    total = _Row()
    for row in rows.values():
        for field in ("files", "agree", "deliberate", "disagree"):
            setattr(total, field, getattr(total, field) + getattr(row, field))
    table = [f"{'':30} {'files':>6} {'agree':>6} {'deliberate':>11} {'disagree':>9}"]
    for name, row in [*rows.items(), ("total", total)]:
        table.append(
            f"{name:30} {row.files:>6} {row.agree:>6} {row.deliberate:>11} {row.disagree:>9}"
        )
    table.append(f"corpus: {CORPUS} ({time.monotonic() - started:.2f}s)")
    table += [f"deliberate: {key}: {d.reason}" for key, d in DELIBERATE.items()]
    print("\n" + "\n".join(table))
    CONFORMANCE_REPORT[:] = table
    assert disagreements == []
    assert total.disagree == 0


def _accepted_1_0_files() -> list[str]:
    if not (CORPUS / "manifest.json").is_file():
        return [NO_CORPUS]
    manifest = _manifest()
    return [
        e["file"]
        for e in [*manifest["yaml"], *manifest["yaml_docs"]]
        if e["version"] == '"1.0"' and _bodywork_accepts_yaml(e) and e["file"] not in DELIBERATE
    ]


def _accepted_ini_projects() -> list[str]:
    if not (CORPUS / "manifest.json").is_file():
        return [NO_CORPUS]
    return [e["dir"] for e in _manifest()["ini"] if _bodywork_accepts_ini(e)]


@pytest.mark.parametrize("name", _accepted_1_0_files())
def test_schema_1_0_files_migrate_to_an_equal_pipeline(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_corpus()
    shutil.copyfile(CORPUS / name, tmp_path / "bodywork.yaml")
    loaded = load_pipeline(tmp_path)
    assert loaded.source_schema == "1.0"
    assert main(["migrate", str(tmp_path)]) == 0
    assert main(["validate", str(tmp_path)]) == 0
    migrated = load_pipeline(tmp_path)
    assert migrated.source_schema == "1.1"
    assert migrated.notices == ()
    assert migrated == loaded
    assert (tmp_path / "bodywork.yaml.1.0.bak").read_bytes() == (CORPUS / name).read_bytes()
    _assert_renders_equal(loaded)


@pytest.mark.parametrize("name", _accepted_ini_projects())
def test_ini_projects_migrate_to_a_yaml_that_passes_check_files(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_corpus()
    project = tmp_path / "project"
    shutil.copytree(CORPUS / name, project)  # a scratch copy: migrate writes into the folder
    loaded = load_pipeline(project)
    assert loaded.source_schema == "ini"
    assert main(["migrate", str(project)]) == 0
    capsys.readouterr()
    assert main(["validate", str(project), "--check-files"]) == 0
    assert capsys.readouterr().out.startswith("bodywork.yaml is valid: ")
    migrated = load_pipeline(project, check_files=True)
    assert migrated.source_schema == "1.1"
    assert migrated == loaded
    _assert_renders_equal(loaded)


def _assert_renders_equal(pipeline: Pipeline) -> None:
    assert parse_pipeline_yaml(to_yaml(pipeline)) == pipeline


def test_the_corpus_location_is_resolved_from_this_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BODYWORK_CONFORMANCE_CORPUS", raising=False)
    assert _find_corpus().parent.name == "shared"
    assert (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file()
