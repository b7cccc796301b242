"""Who may read the pages and the read API (``pages.access``), and who may re-run and cancel."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import pytest

from gitops.settings import SettingsError, load_settings
from tests.gitops.conftest import API_TOKEN, ServiceFactory
from tests.gitops.helpers import RunningService, SourceRepo, pipeline_files
from tests.pages.helpers import push
from tests.web.clients import new_client

pytestmark = pytest.mark.timeout(120)

PAGES_TOKEN = "pages-read-token-4242"


def pages_section(tmp_path: Path, body: str) -> str:
    token_file = tmp_path / "pages-token"
    token_file.write_text(PAGES_TOKEN + "\n")
    return "pages:\n" + body.replace("TOKEN_FILE", str(token_file))


def finished_run(service: RunningService, repo: SourceRepo) -> str:
    service.client.headers["Authorization"] = f"Bearer {API_TOKEN}"  # the test's own reads of the API
    sha = repo.commit(pipeline_files(dag="prepare"))
    repo.push()
    run_id = push(service, "refs/heads/main", sha)
    service.wait_for(run_id)
    return run_id


def login(service: RunningService, token: str) -> httpx.Client:
    client = new_client(service)
    answer = client.post("/login", data={"token": token, "next": "/environments"})
    assert answer.status_code == 303 and answer.headers["location"] == "/environments", answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert token not in cookie
    return client


def test_token_access_guards_pages_and_the_read_api_but_not_health_or_metrics(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    service = make_service(pages_section(tmp_path, "  access: token\n  token_file: TOKEN_FILE\n"))
    run_id = finished_run(service, github_repo)
    anonymous = new_client(service)
    pages = ("/", f"/runs/{run_id}", "/environments", "/environments/pipelines", f"/runs/{run_id}/log.txt",
             f"/runs/{run_id}/events")
    for path in pages:
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F"), path
    for path in ("/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/logs"):
        answer = anonymous.get(path)
        assert answer.status_code == 401 and "bearer token" in answer.json()["error"], path
        for token in (PAGES_TOKEN, API_TOKEN):
            assert anonymous.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert anonymous.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # Bytes beyond ASCII in the cookie and the token are refused like any wrong value (no 500).
    forged = {b"Cookie": "bodywork_session=operator.\u00e9t\u00e9".encode(),
              b"Authorization": "Bearer d\u00e9j\u00e0".encode()}
    assert anonymous.get("/api/runs", headers=forged).status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/login", "/static/style.css"):
        assert anonymous.get(path).status_code == 200, path

    wrong = anonymous.post("/login", data={"token": "guess", "next": "/"})
    assert wrong.status_code == 401 and "neither the API token nor the pages token" in wrong.text
    reader = login(service, PAGES_TOKEN)
    page = reader.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "stage prepare says hello" in page.text
    assert "Re-run" not in page.text  # a reader has no buttons ...
    refused = reader.post(f"/runs/{run_id}/rerun", data={"csrf": "x"})
    assert refused.status_code == 403 and "need the API token" in refused.text  # ... and no way around
    reader.post("/logout")
    assert reader.get("/").status_code == 303


def test_an_operator_reruns_and_cancels_from_the_page_with_a_csrf_value(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    service = make_service(pages_section(tmp_path, "  access: token\n  token_file: TOKEN_FILE\n"))
    run_id = finished_run(service, github_repo)
    operator = login(service, API_TOKEN)
    page = operator.get(f"/runs/{run_id}").text
    assert "Re-run" in page and "Cancel" not in page  # a finished run cannot be cancelled
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf is not None
    assert operator.post(f"/runs/{run_id}/rerun", data={"csrf": "forged"}).status_code == 403
    rerun = operator.post(f"/runs/{run_id}/rerun", data={"csrf": csrf.group(1)})
    assert rerun.status_code == 303
    new_id = rerun.headers["location"].rsplit("/", 1)[1]
    assert new_id != run_id
    again = service.run(new_id)
    old = service.run(run_id)
    assert (again["commit"], again["ref"], again["trigger"]) == (old["commit"], old["ref"], "manual")
    assert operator.post(f"/runs/{new_id}/cancel", data={"csrf": csrf.group(1)}).status_code == 303
    assert service.wait_for(new_id)["state"] in ("cancelled", "succeeded")  # it may have been quicker


def test_proxy_access_believes_the_user_header_only_from_a_trusted_address(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    trusting = make_service(pages_section(tmp_path, "  access: proxy\n"))
    assert trusting.client.get("/").status_code == 401
    answer = trusting.client.get("/", headers={"X-Forwarded-Email": "ada@example.com"})
    assert answer.status_code == 200 and "ada@example.com" in answer.text
    signed_in = {"X-Forwarded-Email": "ada@example.com"}
    assert trusting.client.get("/api/runs", headers=signed_in).status_code == 200
    assert trusting.client.get("/api/runs").status_code == 401


def test_proxy_access_refuses_a_header_from_elsewhere(make_service: ServiceFactory, tmp_path: Path) -> None:
    distrusting = make_service(pages_section(
        tmp_path,
        "  access: proxy\n  proxy_user_header: X-Auth-Request-User\n  trusted_proxies: [10.0.0.0/8]\n",
    ))
    # The test's requests come from 127.0.0.1, which is not the proxy: the header proves nothing.
    assert distrusting.client.get("/", headers={"X-Auth-Request-User": "mallory"}).status_code == 401


def test_pages_without_any_token_are_closed_and_say_how_to_open_them(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    service = make_service(pages_section(tmp_path, "  proxy_user_header: X-User\n"))
    assert service.settings.pages.access == "open"  # on loopback
    closed = dataclasses.replace(
        service.settings, host="0.0.0.0", api_token=None,
        pages=dataclasses.replace(service.settings.pages, access="token"),
    )
    with RunningService(closed) as running:
        for path in ("/", "/api/runs"):
            answer = running.client.get(path)
            assert answer.status_code == 403 and "the pages are closed" in answer.json()["error"], path
            assert "docs/pages.md" in answer.json()["error"]
        assert running.client.get("/healthz").status_code == 200


def test_the_login_form_never_redirects_off_the_site(make_service: ServiceFactory, tmp_path: Path) -> None:
    service = make_service(pages_section(tmp_path, "  access: token\n  token_file: TOKEN_FILE\n"))
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = service.client.post("/login", data={"token": PAGES_TOKEN, "next": target})
        assert answer.headers["location"] == "/", target


def settings_problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    config = tmp_path / "service.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ or {}, [])
    return caught.value.problems


def test_pages_settings_default_to_open_on_a_laptop_and_closed_elsewhere(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("service:\n  host: 127.0.0.1\n")
    assert load_settings(config, {}, []).pages.access == "open"
    config.write_text("service:\n  host: 0.0.0.0\n  api_token_env: T\n")
    assert load_settings(config, {"T": "x"}, []).pages.access == "token"
    config.write_text("service:\n  host: 0.0.0.0\npages: open\n")
    assert load_settings(config, {}, []).pages.access == "open"
    config.write_text("service:\n  host: 0.0.0.0\n")
    closed = load_settings(config, {}, []).pages  # no token anywhere: closed, not a start-up error
    assert (closed.access, closed.token) == ("token", None)
    [problem] = settings_problems(tmp_path, "service:\n  host: 0.0.0.0\npages:\n  access: token\n")
    assert problem.startswith("pages.access -> the pages and the read API show logs")
    assert "pages.token_env" in problem and "pages.access: proxy" in problem
    problems = settings_problems(
        tmp_path, "pages:\n  access: everyone\n  trusted_proxies: [10.0.0.0/8, proxy.local]\n  tokn_env: X\n"
    )
    assert "pages.access -> must be one of open, token, proxy, not 'everyone' (line 2)" in problems
    wrong_network = "must be an address or a network (10.0.0.0/8), not 'proxy.local'"
    assert f"pages.trusted_proxies.1 -> {wrong_network} (line 3)" in problems
    assert any(p.startswith("pages.tokn_env -> unknown setting; did you mean 'token_env'") for p in problems)
    assert settings_problems(tmp_path, "service:\n  log_format: yaml\n") == [
        "service.log_format -> must be one of text, json, not 'yaml' (line 2)"
    ]
