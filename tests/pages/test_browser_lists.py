"""The runs list (filters, paging) and the environment page in headless Chromium; and that nothing
from outside (a branch name, a commit message, a log line) becomes markup or script."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from gitops.service import Service
from gitops.store import NewRun
from tests.gitops.conftest import API_TOKEN, ServiceFactory
from tests.gitops.gitserver import free_port
from tests.gitops.helpers import RunningService, SourceRepo, pipeline_files, wait_until

from .conftest import Browser
from .helpers import PATIENCE, gated_script, log_texts, push, wait_for, with_service_stage

pytestmark = pytest.mark.timeout(180)  # `browser`: added by tests/conftest.py (the fixture)


def service_object(running: RunningService) -> Service:
    app: Any = running.server.config.app
    service: Service = app.state.service
    return service


def queue_runs(running: RunningService, count: int, repository: str = "github:acme/retired") -> None:
    """`count` runs of a repository that is no longer configured: each fails as soon as it starts."""
    store = service_object(running).require_store()
    for index in range(count):
        new = NewRun(repository, "github", f"refs/heads/old-{index}", f"{index:040x}", "retired", None, False,
                     "deploy", "webhook", f"old-{index}")
        store.submit(store.accept, new, [f"old-{index}"]).result()


def follow(driver: WebDriver, element: WebElement) -> None:
    """Clicks `element` (a link or a submit button) and waits for the page it leads to."""
    old = driver.find_element(By.TAG_NAME, "main")
    element.click()
    WebDriverWait(driver, PATIENCE).until(lambda _: _left_the_page(old))


def _left_the_page(element: WebElement) -> bool:
    """`expected_conditions.staleness_of`, also for Chromium's other way of saying so: while the old
    document is being replaced it sometimes answers "Node with given id does not belong to the
    document" rather than "stale element reference"."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def rows(driver: WebDriver) -> list[list[str]]:
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")]


def test_the_runs_list_filters_and_pages(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, screenshots: Path
) -> None:
    main = github_repo.commit(pipeline_files(), message="train on the new data")
    github_repo.push()
    feature = github_repo.commit(pipeline_files(), message="try a deeper model", branch="feature/deep")
    github_repo.push("feature/deep")
    service = make_service()
    queue_runs(service, 27)
    ours = [push(service, "refs/heads/main", main), push(service, "refs/heads/feature/deep", feature)]
    service.wait_for(ours[0])  # else the manual run of main would supersede it
    manual = service.client.post("/api/runs", json={"repository": "acme/pipelines", "ref": "main"},
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert manual.status_code == 202, manual.text
    ours.append(manual.json()["run_id"])
    for run_id in ours:
        assert service.wait_for(run_id)["state"] == "succeeded"
    wait_until(lambda: not service.client.get("/api/runs", params={"state": "queued"}).json()["runs"],
               what="the retired runs to fail")

    driver = browser()
    driver.get(service.base_url + "/")
    first = rows(driver)
    assert len(first) == 25
    assert [row[0] for row in first[:3]] == ours[::-1]
    driver.save_screenshot(str(screenshots / "runs.png"))
    follow(driver, driver.find_element(By.LINK_TEXT, "older →"))
    assert len(rows(driver)) == 5 and "page=2" in driver.current_url
    follow(driver, driver.find_element(By.LINK_TEXT, "← newer"))
    assert len(rows(driver)) == 25

    def apply(**choices: str) -> list[list[str]]:
        driver.get(service.base_url + "/")
        for name, value in choices.items():
            field = driver.find_element(By.NAME, name)
            if field.tag_name == "select":
                Select(field).select_by_visible_text(value)
            else:
                field.send_keys(value)
        follow(driver, driver.find_element(By.CSS_SELECTOR, "#filters button"))
        return rows(driver)

    assert [r[0] for r in apply(repository="acme/pipelines")] == ours[::-1]
    assert [r[0] for r in apply(trigger="manual")] == [ours[2]]
    assert [r[0] for r in apply(branch="feature/deep")] == [ours[1]]
    preview = service.run(ours[1])["environment"]
    assert [r[0] for r in apply(environment=preview)] == [ours[1]]
    failed = apply(state="failed")
    assert len(failed) == 25 and {r[1] for r in failed} == {"failed"}
    assert [r[0] for r in apply(state="succeeded", branch="main")] == [ours[2], ours[0]]
    # The filters stay chosen on the page they produced, and a clear link drops them.
    assert Select(driver.find_element(By.NAME, "state")).first_selected_option.text == "succeeded"
    follow(driver, driver.find_element(By.LINK_TEXT, "clear"))
    assert len(rows(driver)) == 25
    # A bad filter is answered with what would be right, not an error page of the framework.
    driver.get(service.base_url + "/?state=exploded")
    assert "state 'exploded' is not one of queued, running" in driver.find_element(By.TAG_NAME, "main").text


def test_the_environment_page_shows_what_is_deployed_where(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, screenshots: Path
) -> None:
    port = free_port()
    first = github_repo.commit(with_service_stage(pipeline_files(), "scoring", port), message="first model")
    github_repo.push()
    service = make_service()
    deployed = push(service, "refs/heads/main", first)
    run = service.wait_for(deployed)
    assert run["state"] == "succeeded", (run["reason"], run["problems"])
    broken = github_repo.commit({"train.py": "raise SystemExit(1)\n"}, message="break training")
    github_repo.push()
    failed = push(service, "refs/heads/main", broken)
    assert service.wait_for(failed)["state"] == "failed"

    driver = browser()
    driver.get(service.base_url + "/environments")
    driver.find_element(By.LINK_TEXT, "pipelines").click()
    facts = driver.find_element(By.CSS_SELECTOR, ".card dl.facts").text
    # The failed run did not replace what the first one deployed.
    assert first[:10] in facts and broken[:10] not in facts
    assert deployed in facts
    service_link = driver.find_element(By.CSS_SELECTOR, "ul.services a")
    assert service_link.text == f"http://127.0.0.1:{port}"
    assert [r[0] for r in rows(driver)] == [failed, deployed]
    assert driver.find_element(By.ID, "schedule").text.endswith("No schedule.")
    driver.save_screenshot(str(screenshots / "environment.png"))


def test_nothing_from_outside_becomes_markup_or_script(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, tmp_path: Path,
    screenshots: Path,
) -> None:
    gate = tmp_path / "gate"
    branch = "feature/<img/src=x/onerror=window.pwned=1>"
    message = '<script>window.pwned=2</script> fix "quotes" & <b>bold</b>'
    live_line = '<img src=x onerror="window.pwned=3"><script>window.pwned=4</script>'
    files = pipeline_files(dag="prepare", scripts={
        "prepare.py": gated_script(gate, "<b>rendered</b> &amp; </div></main>", live_line),
    })
    sha = github_repo.commit(files, message=message, branch=branch)
    github_repo.push(branch)
    service = make_service()
    run_id = push(service, f"refs/heads/{branch}", sha)
    wait_until(lambda: service.client.get(f"/api/runs/{run_id}/logs").json()["lines"], what="a first line")

    driver = browser()
    driver.get(f"{service.base_url}/runs/{run_id}")
    gate.touch()
    wait_for(driver, "return document.getElementById('run-state').textContent === 'succeeded'", "success")
    assert log_texts(driver)[-2:] == ["<b>rendered</b> &amp; </div></main>", live_line]
    main = driver.find_element(By.TAG_NAME, "main").text
    assert branch[len("feature/"):] in main and message in main
    for page in ("/", f"/runs/{run_id}", f"/environments/{service.run(run_id)['environment']}"):
        driver.get(service.base_url + page)
        time.sleep(0)  # nothing to wait for: a handler would have run while the page loaded
        injected = driver.execute_script(
            "return [window.pwned, document.querySelectorAll('main img, main b, main script').length]"
        )
        assert injected == [None, 0], (page, injected)
        assert branch[len("feature/"):] in driver.find_element(By.TAG_NAME, "main").text, page
    driver.save_screenshot(str(screenshots / "environment-preview.png"))


def test_the_environment_page_shows_the_schedule_and_its_next_fire(
    make_service: ServiceFactory, github_repo: SourceRepo, browser: Browser, screenshots: Path
) -> None:
    files = pipeline_files()
    files["bodywork.yaml"] = files["bodywork.yaml"].replace(
        "  DAG: prepare >> train\n",
        "  DAG: prepare >> train\n  schedule:\n    cron: '30 4 * * 1'\n    timezone: Europe/Berlin\n",
    )
    sha = github_repo.commit(files, message="retrain every Monday")
    github_repo.push()
    service = make_service()
    run = service.wait_for(push(service, "refs/heads/main", sha))
    assert run["state"] == "succeeded", run["reason"]
    [described] = service.client.get("/api/schedules").json()["schedules"]

    driver = browser()
    driver.get(f"{service.base_url}/environments/pipelines")
    schedule = driver.find_element(By.ID, "schedule").text.splitlines()
    next_fire = datetime.fromisoformat(described["next_fire"]).astimezone(UTC)
    assert schedule == ["Schedule", "Cron", "30 4 * * 1 (Europe/Berlin)", "Next fire",
                        f"{next_fire:%Y-%m-%d %H:%M:%S} UTC", "Declared in", "bodywork.yaml"]
    driver.save_screenshot(str(screenshots / "environment-scheduled.png"))
