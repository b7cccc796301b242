"""The pages in headless Chromium: a run followed live, a failure's reason, the runs list's filters,
the environment page, and that nothing from outside (branch names, log lines) becomes markup."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.gitops.conftest import API_TOKEN, ServiceFactory
from tests.gitops.helpers import SourceRepo, pipeline_files, wait_until

from .conftest import Browser
from .helpers import PATIENCE, gated_script, log_texts, push, stage_state, wait_for

pytestmark = pytest.mark.timeout(180)  # `browser`: added by tests/conftest.py (the fixture)
LINES = "#log > div > span"


def test_a_running_run_is_seen_live_without_a_reload(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, tmp_path: Path,
    screenshots: Path,
) -> None:
    gate = tmp_path / "gate"
    files = pipeline_files(dag="prepare >> train", scripts={
        "train.py": gated_script(gate, "loading the data", "model trained: accuracy 0.97"),
    })
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    wait_until(lambda: any(s["stage"] == "train" and s["state"] == "running"
                           for s in service.run(run_id)["stages"]), what="train running")

    driver = browser()
    driver.get(f"{service.base_url}/runs/{run_id}")
    assert stage_state(driver, "train") == "running"
    assert driver.find_element(By.ID, "run-state").text == "running"
    assert driver.find_element(By.ID, "headline").text == "Running step 2 of 2: train"
    driver.execute_script("window.stillTheSamePage = true;")
    wait_for(driver, "return document.querySelectorAll('#log > div').length > 0", "the first lines")
    assert "model trained: accuracy 0.97" not in log_texts(driver)
    driver.save_screenshot(str(screenshots / "run-running.png"))

    gate.touch()

    wait_for(driver, "return document.getElementById('run-state').textContent === 'succeeded'", "success")
    assert stage_state(driver, "train") == "succeeded"
    assert stage_state(driver, "prepare") == "succeeded"
    assert "model trained: accuracy 0.97" in log_texts(driver)
    assert driver.execute_script("return window.stillTheSamePage === true"), "the page was reloaded"
    assert driver.find_element(By.ID, "headline").text == "Deployed pipelines"
    duration = driver.find_element(By.CSS_SELECTOR, '[data-stage-box="train"] .duration').text
    assert duration.endswith("s"), duration
    driver.save_screenshot(str(screenshots / "run.png"))

    # A line links to itself; the whole log downloads as text.
    trained = "//div[@id='log']/div[.//span[text()='model trained: accuracy 0.97']]"
    line = driver.find_element(By.XPATH, trained)
    anchor = line.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert anchor == f"{service.base_url}/runs/{run_id}#{line.get_attribute('id')}"
    download = service.client.get(f"/runs/{run_id}/log.txt")
    assert download.headers["content-disposition"] == f'attachment; filename="bodywork-run-{run_id}.log"'
    assert "[train] model trained: accuracy 0.97\n" in download.text
    assert "[prepare] stage prepare says hello\n" in download.text


def test_the_log_filters_by_stage_and_text_with_and_without_javascript(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser
) -> None:
    sha = github_repo.commit(pipeline_files(dag="prepare >> train"))
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    service.wait_for(run_id)
    for javascript in (True, False):
        driver = browser(javascript=javascript)
        driver.get(f"{service.base_url}/runs/{run_id}")
        Select(driver.find_element(By.NAME, "stage")).select_by_visible_text("train")
        driver.find_element(By.CSS_SELECTOR, "#log-filter button").click()
        assert shown_lines(driver, ["stage train says hello"]) == ["stage train says hello"], javascript
        search = driver.find_element(By.NAME, "q")
        Select(driver.find_element(By.NAME, "stage")).select_by_visible_text("all")
        search.send_keys("PREPARE says")
        driver.find_element(By.CSS_SELECTOR, "#log-filter button").click()
        assert shown_lines(driver, ["stage prepare says hello"]) == ["stage prepare says hello"], javascript


def shown_lines(driver: WebDriver, expected: list[str]) -> list[str]:
    """The log lines on show once they are `expected`, or as they are after the patience runs out.
    Without JavaScript the filter is a form: its click starts loading a new page, and reading the old
    one meanwhile finds stale elements."""
    seen: list[str] = []

    def settled(_: WebDriver) -> bool:
        seen[:] = [x.text for x in driver.find_elements(By.CSS_SELECTOR, LINES) if x.is_displayed()]
        return seen == expected

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, PATIENCE, poll_frequency=0.05,
                      ignored_exceptions=[StaleElementReferenceException]).until(settled)
    return seen


def test_a_failed_run_says_why_at_the_top(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, screenshots: Path
) -> None:
    files = pipeline_files(dag="prepare >> train", scripts={
        "train.py": "import sys\nprint('the training data is empty', flush=True)\nsys.exit(3)\n",
    })
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    assert service.wait_for(run_id)["state"] == "failed"

    driver = browser()
    driver.get(f"{service.base_url}/runs/{run_id}")
    headline = driver.find_element(By.ID, "headline")
    assert headline.text.startswith("Failed (pipeline): stage train failed"), headline.text
    assert "banner failed" in (headline.get_attribute("class") or "")
    dag = driver.find_element(By.CLASS_NAME, "dag")
    assert headline.location["y"] < dag.location["y"] < driver.find_element(By.ID, "log").location["y"]
    assert stage_state(driver, "train") == "failed"
    reason = driver.find_element(By.CSS_SELECTOR, '[data-stage-box="train"] .reason').text
    assert reason == "exited with code 3", reason
    commit = driver.find_element(By.LINK_TEXT, sha[:10]).get_attribute("href")
    assert commit is not None and commit.endswith(f"/acme/pipelines/commit/{sha}")
    driver.save_screenshot(str(screenshots / "run-failed.png"))


def test_an_operator_logs_in_cancels_a_running_run_and_reruns_it(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, tmp_path: Path
) -> None:
    files = pipeline_files(dag="prepare", scripts={
        "prepare.py": gated_script(tmp_path / "never", "waiting for a gate that never opens", ""),
    })
    sha = github_repo.commit(files)
    github_repo.push()
    service = make_service()
    run_id = push(service, "refs/heads/main", sha)
    wait_until(lambda: [s["state"] for s in service.run(run_id)["stages"]] == ["running"], what="the stage")

    driver = browser()
    driver.get(f"{service.base_url}/runs/{run_id}")
    assert not driver.find_elements(By.XPATH, "//button[text()='Cancel']")  # not logged in: no buttons
    driver.find_element(By.LINK_TEXT, "log in").click()
    driver.find_element(By.NAME, "token").send_keys(API_TOKEN)
    driver.find_element(By.XPATH, "//button[text()='Log in']").click()
    # Back on the run page, now with the buttons.
    wait_for(driver, "return document.evaluate(\"//button[text()='Cancel']\", document).iterateNext()",
             "the cancel button")
    assert driver.current_url == f"{service.base_url}/runs/{run_id}"
    driver.find_element(By.XPATH, "//button[text()='Cancel']").click()
    wait_for(driver, "return document.getElementById('run-state').textContent === 'cancelled'", "cancelled")
    assert driver.find_element(By.ID, "headline").text == "Cancelled: cancelled through the API"
    assert not driver.find_elements(By.XPATH, "//button[text()='Cancel']")

    driver.find_element(By.XPATH, "//button[text()='Re-run']").click()
    wait_for(driver, f"return location.pathname !== '/runs/{run_id}'", "the new run's page")
    new_id = driver.current_url.rsplit("/", 1)[1]
    assert service.run(new_id)["commit"] == sha and service.run(new_id)["trigger"] == "manual"
    assert service.client.post(f"/api/runs/{new_id}/cancel",
                               headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 202
