"""What the pages' tests share: pipelines whose stages wait for a gate, pushes, waiting in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.gitops.conftest import GITHUB_SECRET
from tests.gitops.helpers import RunningService

PATIENCE = 30
"""Upper bound of every wait for something the page must show (never a timing assertion)."""


def gated_script(gate: Path, before: str, after: str, exit_code: int = 0) -> str:
    """A stage that prints `before`, waits until the file `gate` exists, prints `after`, exits."""
    return (
        "import os, sys, time\n"
        f"print({before!r}, flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n"
        "    time.sleep(0.05)\n"
        f"print({after!r}, flush=True)\n"
        f"sys.exit({exit_code})\n"
    )


def push(service: RunningService, ref: str, sha: str) -> str:
    """A signed GitHub push of `sha` to `ref` of acme/pipelines; the id of the run it queued."""
    return service.push(ref, sha, GITHUB_SECRET)


def wait_for(driver: WebDriver, script: str, what: str) -> Any:
    """Waits until `script` (JavaScript returning a value) returns something truthy in the page."""
    return WebDriverWait(driver, PATIENCE, poll_frequency=0.05).until(
        lambda d: d.execute_script(script), message=f"the page never showed {what}"
    )


def stage_state(driver: WebDriver, stage: str) -> str:
    text: str = driver.execute_script(
        "var box = document.querySelector('[data-stage-box=\"' + arguments[0] + '\"] .st');"
        "return box ? box.textContent : '';",
        stage,
    )
    return text


def log_texts(driver: WebDriver) -> list[str]:
    lines: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#log > div > span'))"
        ".map(function (x) { return x.textContent; });"
    )
    return lines


def with_service_stage(files: dict[str, str], name: str, port: int) -> dict[str, str]:
    """`files` (of :func:`tests.gitops.helpers.pipeline_files`) with a service stage `name` appended to
    the DAG, answering HTTP on `port`."""
    yaml = files["bodywork.yaml"]
    dag_line = next(line for line in yaml.splitlines() if line.strip().startswith("DAG:"))
    yaml = yaml.replace(dag_line, f"{dag_line} >> {name}")
    stage = (
        f"  {name}:\n    executable_module_path: {name}.py\n    cpu_request: 0.1\n"
        f"    memory_request_mb: 64\n    service:\n      max_startup_time_seconds: 30\n"
        f"      replicas: 1\n      port: {port}\n      ingress: false\n"
    )
    yaml = yaml.replace("logging:\n", stage + "logging:\n")
    script = (
        "from http.server import HTTPServer, SimpleHTTPRequestHandler\n"
        f"HTTPServer(('127.0.0.1', {port}), SimpleHTTPRequestHandler).serve_forever()\n"
    )
    return {**files, "bodywork.yaml": yaml, f"{name}.py": script}
