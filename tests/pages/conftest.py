"""Fixtures for the pages' tests: the service of tests/gitops, and headless Chromium under Selenium.

The browser is Debian's ``chromium`` driven by Debian's ``chromium-driver``, both named by path, so
Selenium never looks for (or downloads) a browser or a driver. Without them the ``browser`` tests fail:
CI must install them (``scripts/bootstrap --system``). Screenshots go to ``artifacts/screenshots/``
(ignored by git; ``BODYWORK_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

from tests.fakes.fixtures import fake_github, fake_gitlab
from tests.gitops.conftest import git_http, git_root, github_repo, make_service, venv_cache

__all__ = ["fake_github", "fake_gitlab", "git_http", "git_root", "github_repo", "make_service", "venv_cache"]

CHROMIUM = os.environ.get("BODYWORK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BODYWORK_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("BODYWORK_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))

Browser = Callable[..., webdriver.Chrome]


def _require(path: str, package: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"{path} is missing: install Debian's {package} (scripts/bootstrap --system, or "
            f"apt-get install -y chromium chromium-driver); browser tests never download a browser",
            pytrace=False,
        )


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """``browser(javascript=True)``: a fresh headless Chromium (closed after the test)."""
    _require(CHROMIUM, "chromium")
    _require(CHROMEDRIVER, "chromium-driver")
    # Were Selenium to reach for selenium-manager (to find or fetch a browser), it would fail here.
    monkeypatch.setenv("SE_MANAGER_PATH", str(tmp_path / "no-selenium-manager"))
    started: list[webdriver.Chrome] = []

    def start(javascript: bool = True) -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                         f"--user-data-dir={tmp_path / f'chromium-{len(started)}'}"):
            options.add_argument(argument)
        if not javascript:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        service = DriverService(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
        driver = webdriver.Chrome(options=options, service=service)
        driver.set_page_load_timeout(20)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
