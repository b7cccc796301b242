"""The import-linter contracts in pyproject.toml: kept by the tree, broken by a deliberately wrong import.

Each wrong import is added to a copy of the packages in a temporary folder, where `lint-imports` must
fail and name the contract it broke; the tree itself must keep every contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runner", "gitops", "chatops")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.timeout(60)


def lint_imports(folder: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path, so it reads the packages found there.
    # A wide terminal, so that no contract name is wrapped in the report.
    environment = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=50,
    )


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


# (module to change, the line added to it, the contract that must break)
APSCHEDULER = "apscheduler only in runner.cron and gitops.schedules.timer"
WRONG_IMPORTS = [
    (
        "runner/engine.py",
        "import gitops.settings",
        "layers: chatops above gitops above runner",
    ),
    ("runner/dag.py", "from chatops import __doc__ as _", "layers: chatops above gitops above runner"),
    ("gitops/queue.py", "import chatops", "layers: chatops above gitops above runner"),
    (
        "runner/backends/local.py",
        "from runner.backends.kubernetes import manifests",
        "the backends are independent: local and kubernetes",
    ),
    (
        "runner/commands/secrets.py",
        "from runner.commands import services",
        "the bodywork subcommands are independent of each other",
    ),
    (
        "gitops/webhooks/gitlab.py",
        "from gitops.webhooks import github",
        "the webhook parsers are independent: github and gitlab",
    ),
    (
        "gitops/statuses/github.py",
        "from gitops.statuses import gitlab",
        "the commit-status providers are independent: github and gitlab",
    ),
    ("runner/config.py", "import yaml", "yaml only in runner.yaml_io"),
    ("gitops/mirrors.py", "import pygit2", "pygit2 only in runner.git_mirror"),
    (
        "runner/backends/kubernetes/manifests.py",
        "from kubernetes import client",
        "kubernetes and urllib3 only in runner.backends.kubernetes.api",
    ),
    (
        "runner/commands/services.py",
        "import urllib3",
        "kubernetes and urllib3 only in runner.backends.kubernetes.api",
    ),
    (
        "gitops/extensions.py",
        "from starlette.routing import Route",
        "starlette only in gitops.web and chatops.routes",
    ),
    ("chatops/handlers.py", "import starlette", "starlette only in gitops.web and chatops.routes"),
    ("gitops/service.py", "import uvicorn", "uvicorn (and its h11) only in gitops.commands.serve"),
    ("gitops/runs.py", "import httpx", "httpx only in gitops.statuses.http"),
    ("gitops/queue.py", "import sqlite3", "sqlite3 only in the gitops.store package"),
    (
        "runner/ini_layout.py",
        "import configparser as _",
        "configparser only in runner.ini_files and runner.backends.pip_config",
    ),
    ("chatops/notifier.py", "import slack_sdk", "slack_sdk only in chatops.slack_api"),
    ("gitops/service.py", "import apscheduler", APSCHEDULER),
    ("runner/schedule.py", "import apscheduler", APSCHEDULER),
]


@pytest.mark.parametrize(
    ("module", "line", "contract"), WRONG_IMPORTS, ids=[w[0] + ":" + w[1] for w in WRONG_IMPORTS]
)
def test_a_wrong_import_breaks_its_contract(tree_copy: Path, module: str, line: str, contract: str) -> None:
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{line}  # deliberately wrong\n")

    result = lint_imports(tree_copy)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout, result.stdout
    assert module.removesuffix(".py").removesuffix("/__init__").replace("/", ".") in result.stdout


def test_every_third_party_library_has_an_adapter_contract() -> None:
    """A new library must get its adapter module and its contract entry, as the contracts say."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    imported = {module for module in graph.modules if module.split(".")[0] not in PACKAGES}
    third_party = {name for name in imported if name not in sys.stdlib_module_names}
    guarded = {
        name
        for contract in contracts()
        if contract["type"] == "forbidden"
        for name in contract["forbidden_modules"]
    }
    assert third_party, "the graph lists no external package: include_external_packages is off?"
    assert sorted(third_party - guarded) == []
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        distribution = requirement.split(">")[0].split("<")[0].split("=")[0].strip().lower()
        module = {"pyyaml": "yaml"}.get(distribution, distribution)
        assert module in guarded, f"{requirement}: no contract names its module {module!r}"
