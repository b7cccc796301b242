"""The pages in headless Chromium behind a proxy that serves the service at a path and strips it
(``service.public_url`` ends in that path): the login, the style sheet, a run followed live, the links."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.gitops.conftest import API_TOKEN, ServiceFactory
from tests.gitops.helpers import SourceRepo, pipeline_files, wait_until

from .conftest import Browser
from .helpers import gated_script, log_texts, push, stage_state, wait_for
from .proxy import StrippingProxy

pytestmark = pytest.mark.timeout(180)  # `browser`: added by tests/conftest.py (the fixture)
PREFIX = "/ml/bodywork"


def test_behind_a_proxy_at_a_path_a_run_is_followed_live_after_the_login(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, tmp_path: Path,
    screenshots: Path,
) -> None:
    gate = tmp_path / "gate"
    files = pipeline_files(dag="prepare >> train", scripts={
        "train.py": gated_script(gate, "loading the data", "model trained: accuracy 0.97"),
    })
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service(
        "pages:\n  access: token\n  token_env: API_TOKEN\n",
        public_url=f"http://bodywork.example.invalid{PREFIX}",
    )
    run_id = push(service, "refs/heads/main", sha)
    service.client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    wait_until(lambda: any(s["stage"] == "train" and s["state"] == "running"
                           for s in service.run(run_id)["stages"]), what="train running")

    with StrippingProxy(service.base_url, PREFIX) as proxy:
        driver = browser()
        driver.get(f"{proxy.url}/runs/{run_id}")  # signed out: on to the login form, under the prefix
        wait_for(driver, "return document.getElementsByName('token').length > 0", "the login form")
        assert driver.current_url.startswith(f"{proxy.url}/login?next=")
        driver.find_element(By.NAME, "token").send_keys(API_TOKEN)
        driver.find_element(By.XPATH, "//button[text()='Log in']").click()
        wait_for(driver, "return document.getElementById('run-state') !== null", "the run page")
        assert driver.current_url == f"{proxy.url}/runs/{run_id}"
        cookie = driver.get_cookie("bodywork_session")
        assert cookie is not None and cookie["path"] == PREFIX
        # The style sheet and the script came through the proxy: the page is styled, and it is live.
        assert driver.execute_script("return document.styleSheets[0].cssRules.length") > 0
        assert stage_state(driver, "train") == "running"
        driver.execute_script("window.stillTheSamePage = true;")
        wait_for(driver, "return document.querySelectorAll('#log > div').length > 0", "the first lines")

        gate.touch()

        wait_for(driver, "return document.getElementById('run-state').textContent === 'succeeded'", "success")
        assert "model trained: accuracy 0.97" in log_texts(driver)
        assert driver.execute_script("return window.stillTheSamePage === true"), "the page was reloaded"
        driver.save_screenshot(str(screenshots / "run-behind-a-prefix.png"))
        anchor = driver.find_element(By.CSS_SELECTOR, "#log > div:last-child a").get_attribute("href")
        assert anchor is not None and anchor.startswith(f"{proxy.url}/runs/{run_id}#L")

        driver.find_element(By.LINK_TEXT, "Environments").click()
        wait_for(driver, "return location.pathname.endsWith('/environments')", "the environments page")
        assert driver.current_url == f"{proxy.url}/environments"
        driver.find_element(By.LINK_TEXT, "pipelines").click()
        wait_for(driver, "return document.querySelector('h1').textContent.includes('pipelines')", "pipelines")
        assert driver.current_url == f"{proxy.url}/environments/pipelines"
