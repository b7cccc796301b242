"""Everything the command line can raise ends as ``error: <message>`` and exit code 1, never a
traceback (issue 13, item 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops.config_reader import SettingsError
from gitops.extensions import ExtensionError
from runner.backends.base import StageError
from runner.backends.kubernetes.errors import PermanentError
from runner.config import ConfigError
from runner.errors import FatalError
from runner.git_mirror import GitError

pytestmark = pytest.mark.timeout(60)

PIPELINE = """version: "1.1"
pipeline:
  name: demo
  docker_image: bodyworkml/bodywork-core:3.1
  DAG: prepare
stages:
  prepare:
    executable_module_path: prepare.py
    cpu_request: 0.1
    memory_request_mb: 64
    batch:
      max_completion_time_seconds: 30
      retries: 0
logging:
  log_level: INFO
"""


def bodywork(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_every_expected_error_has_one_base() -> None:
    for kind in (SettingsError, ExtensionError, StageError, PermanentError, ConfigError, GitError):
        assert issubclass(kind, FatalError), kind


def test_a_missing_kubeconfig_is_a_message_naming_no_flag_run_lacks(tmp_path: Path) -> None:
    (tmp_path / "bodywork.yaml").write_text(PIPELINE)
    (tmp_path / "prepare.py").write_text("print(1)\n")
    result = bodywork("run", "--backend", "kubernetes", "--kubeconfig", "/nope", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot load Kubernetes credentials from /nope")
    assert "--in-cluster" not in result.stderr


def test_service_settings_name_path_value_hint_and_line(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(
        "service:\n  backend: local\n  backend_options:\n    cach_dir: /tmp/x\n    isolate_stages: 'yes'\n"
        "    stage_niceness: high\n  limits:\n    max_conections: 3\n"
    )
    result = bodywork("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[1:] == [
        "  service.backend_options.cach_dir -> unknown option of the local backend; did you mean "
        "'cache_dir' (line 4)",
        "  service.backend_options.isolate_stages -> must be true or false, not 'yes' (line 5)",
        "  service.backend_options.stage_niceness -> must be a whole number, not 'high' (line 6)",
        "  service.limits.max_conections -> unknown setting; did you mean 'max_connections'; see "
        "docs/service.md for the accepted keys (line 8)",
    ]


def _ini_project(root: Path, secret_line: str) -> None:
    (root / "stage1").mkdir()
    (root / "bodywork.ini").write_text(
        "[default]\nPROJECT_NAME=demo\nDOCKER_IMAGE=bodyworkml/bodywork-core:latest\n\n"
        "[workflow]\nDAG=stage1\n\n[logging]\nLOG_LEVEL=INFO\n"
    )
    (root / "stage1" / "config.ini").write_text(
        "[default]\nSTAGE_TYPE=batch\nEXECUTABLE_SCRIPT=main.py\nCPU_REQUEST=0.5\nMEMORY_REQUEST_MB=100\n\n"
        f"[batch]\nMAX_COMPLETION_TIME_SECONDS=30\nRETRIES=2\n\n[secrets]\n{secret_line}\n"
    )
    (root / "stage1" / "main.py").write_text("print(1)\n")
    (root / "stage1" / "requirements.txt").write_text("")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1BAD-VAR=not a secret name!", "[secrets] 1BAD-VAR -> is not an environment variable name"),
        ("GOOD_VAR=not a secret name!", '[secrets] GOOD_VAR -> must be a secret name: letters, digits, '
                                        "'-' and '.', got \"not a secret name!\""),
    ],
)
@pytest.mark.parametrize("command", ["validate", "migrate"])
def test_an_ini_secret_that_cannot_be_one_is_refused_by_validate_and_migrate(
    tmp_path: Path, line: str, problem: str, command: str
) -> None:
    _ini_project(tmp_path, line)
    result = bodywork(command, ".", cwd=tmp_path)
    assert result.returncode == 1
    assert f"stage1/config.ini {problem}" in result.stdout + result.stderr
    assert "report this bug" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
