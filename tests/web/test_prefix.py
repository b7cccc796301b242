"""The service behind a path prefix, the path of ``service.public_url``: every page links, posts and
streams under it, requests answer with it and without it (a proxy may forward either), the login stays
under it (its redirects and its cookie), and a public URL that cannot be the base of links is refused."""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gitops.service import Service
from gitops.settings import Settings, SettingsError, load_settings
from gitops.web import create_app
from tests.fakes.github_api import FakeGitHub
from tests.gitops.conftest import API_TOKEN, GITHUB_SECRET, ServiceFactory
from tests.gitops.helpers import (
    ZERO,
    RunningService,
    SourceRepo,
    github_headers,
    github_push,
    pipeline_files,
    wait_until,
)
from tests.pages.helpers import gated_script
from tests.web.clients import new_client

pytestmark = pytest.mark.timeout(120)

PREFIX = "/ml/bodywork"
PUBLIC_URL = f"http://bodywork.example.invalid{PREFIX}"
PAGES_TOKEN = "pages-read-token-5151"


def prefixed_service(make_service: ServiceFactory, tmp_path: Path) -> RunningService:
    token_file = tmp_path / "pages-token"
    token_file.write_text(PAGES_TOKEN + "\n")
    return make_service(f"pages:\n  access: token\n  token_file: {token_file}\n", public_url=PUBLIC_URL)


def both(path: str) -> tuple[str, str]:
    """`path` as a proxy that keeps the prefix forwards it, and as one that strips it."""
    return PREFIX + path, path


def deliver(client: httpx.Client, path: str, sha: str) -> str:
    content = json.dumps(github_push("acme/pipelines", "refs/heads/main", ZERO, sha)).encode()
    answer = client.post(path, content=content, headers=github_headers(content, GITHUB_SECRET))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


class Urls(HTMLParser):
    """Every URL a page holds, as (tag, attribute, value): links, sources, form actions, the stream."""

    ATTRIBUTES = ("href", "src", "action", "data-events")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.forms: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(values)
        self.found += [(tag, name, value) for name, value in values.items() if name in self.ATTRIBUTES]


def off_prefix(urls: list[tuple[str, str, str]], service: RunningService) -> list[tuple[str, str, str]]:
    """The URLs that lead to the service but not under the prefix. In the page itself (``#L3``,
    ``?page=2``) and other sites (GitHub's commit page) are fine."""
    ours = {urlsplit(service.base_url).netloc, urlsplit(PUBLIC_URL).netloc}
    wrong = []
    for tag, name, value in urls:
        parts = urlsplit(value)
        if value.startswith(("#", "?")) or (parts.scheme in ("http", "https") and parts.netloc not in ours):
            continue
        under = PREFIX + "/"
        back = parse_qs(parts.query).get("next", [under])[0]  # the login link's page to return to
        if not value.startswith(under) or parts.scheme or parts.netloc or not back.startswith(under):
            wrong.append((tag, name, value))
    return wrong


def test_every_page_links_posts_and_streams_under_the_prefix_with_and_without_it_in_the_request(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    service = prefixed_service(make_service, tmp_path)
    done_sha = github_repo.commit(pipeline_files(dag="prepare"))
    github_repo.push()
    done = deliver(service.client, PREFIX + "/webhooks/github", done_sha)
    service.client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    service.wait_for(done)
    gate = tmp_path / "gate"
    gated = pipeline_files(dag="prepare", scripts={"prepare.py": gated_script(gate, "waiting", "done")})
    running_sha = github_repo.commit(gated)
    github_repo.push()
    running = deliver(service.client, "/webhooks/github", running_sha)
    wait_until(lambda: [s["state"] for s in service.run(running)["stages"]] == ["running"], what="the stage")

    anonymous = new_client(service)
    answer = anonymous.post(PREFIX + "/login", data={"token": API_TOKEN, "next": PREFIX + "/"})
    assert answer.status_code == 303, answer.text
    # What a browser sends through either proxy: the cookie it got for the prefix, on every request.
    session = answer.cookies["bodywork_session"]
    operator = new_client(service, headers={"Cookie": f"bodywork_session={session}"})
    pages = ("/", "/?environment=pipelines", f"/runs/{done}", f"/runs/{running}", "/environments",
             "/environments/pipelines", "/runs/nope", "/login")
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for page in pages:
        for path in both(page):
            html = operator.get(path)
            assert html.status_code == (404 if page == "/runs/nope" else 200), path
            urls = Urls(html.text).found
            assert urls and off_prefix(urls, service) == [], (path, off_prefix(urls, service))
            seen[path] = urls
    for path in both("/login"):  # signed out, the page links to the login with the page to return to
        login_links = [v for _, _, v in Urls(new_client(service).get(path).text).found if "/login?" in v]
        assert login_links == [f"{PREFIX}/login?next={PREFIX}/login"], path
    assert seen[PREFIX + "/"] == seen["/"]  # the same page, whichever way the request came

    run_page = seen[f"{PREFIX}/runs/{running}"]
    assert ("link", "href", f"{PREFIX}/static/style.css") in run_page
    assert ("script", "src", f"{PREFIX}/static/run.js") in run_page
    assert ("main", "data-events", f"{PREFIX}/runs/{running}/events") in run_page
    assert ("form", "action", f"{PREFIX}/runs/{running}/rerun") in run_page
    assert ("form", "action", f"{PREFIX}/runs/{running}/cancel") in run_page
    assert ("form", "action", f"{PREFIX}/logout") in run_page
    assert ("form", "action", f"{PREFIX}/") in seen[PREFIX + "/"]  # the filters

    # Every link and source answers (as the browser would request it: with the prefix).
    targets = {value.split("#")[0] for urls in seen.values() for tag, name, value in urls
               if value.startswith(PREFIX + "/") and tag != "form" and name != "data-events"}
    assert len(targets) >= 10, targets
    for target in sorted(targets):
        assert operator.get(target).status_code == 200, target
    with operator.stream("GET", f"{PREFIX}/runs/{running}/events") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert "event: logs" in next(stream.iter_text())

    # The forms post under the prefix and send the browser back under it.
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', operator.get(f"{PREFIX}/runs/{running}").text)
    assert csrf is not None
    cancelled = operator.post(f"{PREFIX}/runs/{running}/cancel", data={"csrf": csrf.group(1)})
    assert (cancelled.status_code, cancelled.headers["location"]) == (303, f"{PREFIX}/runs/{running}")
    rerun = operator.post(f"/runs/{done}/rerun", data={"csrf": csrf.group(1)})  # a proxy that strips it
    assert rerun.status_code == 303 and rerun.headers["location"].startswith(f"{PREFIX}/runs/")
    gate.touch()
    service.wait_for(rerun.headers["location"].rsplit("/", 1)[1])
    logout = operator.post(f"{PREFIX}/logout")
    assert (logout.status_code, logout.headers["location"]) == (303, f"{PREFIX}/")
    assert f"Path={PREFIX}" in logout.headers["set-cookie"]


def test_webhooks_the_api_health_and_metrics_answer_with_and_without_the_prefix(
    make_service: ServiceFactory, github_repo: SourceRepo, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    service = prefixed_service(make_service, tmp_path)
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    runs = {}
    for number, webhook in enumerate(both("/webhooks/github")):
        sha = github_repo.commit(pipeline_files(dag="prepare", name=f"demo{number}"))
        github_repo.push()
        runs[sha] = deliver(service.client, webhook, sha)
        for path in both(f"/api/runs/{runs[sha]}"):
            answer = service.client.get(path, headers=bearer)
            assert answer.status_code == 200, path
            assert answer.json()["url"] == f"{PUBLIC_URL}/runs/{runs[sha]}", path
        service.client.headers.update(bearer)
        assert service.wait_for(runs[sha])["state"] == "succeeded"
    def final(sha: str) -> bool:
        return [s.state for s in fake_github.accepted(sha)][-1:] == ["success"]

    for sha, run_id in runs.items():
        wait_until(functools.partial(final, sha), what="the success status")
        # The commit's statuses link to the run under the prefix.
        assert {s.target_url for s in fake_github.accepted(sha)} == {f"{PUBLIC_URL}/runs/{run_id}"}
    anonymous = new_client(service)
    for name in ("/healthz", "/readyz", "/metrics", "/static/style.css"):
        for path in both(name):
            assert anonymous.get(path).status_code == 200, path
    bare = anonymous.get(PREFIX + "?state=failed")  # the public URL as written: on to its runs list
    assert (bare.status_code, bare.headers["location"]) == (307, f"{PREFIX}/?state=failed")
    assert anonymous.get(PREFIX + "x/healthz").status_code == 404  # not the prefix, only its letters
    assert anonymous.get(PREFIX + PREFIX + "/healthz").status_code == 404  # stripped once, no more


def test_the_login_redirects_and_its_cookie_stay_under_the_prefix(
    make_service: ServiceFactory, github_repo: SourceRepo, tmp_path: Path
) -> None:
    service = prefixed_service(make_service, tmp_path)
    anonymous = new_client(service)
    for path in both("/environments/pipelines"):
        answer = anonymous.get(path + "?x=1")
        assert answer.status_code == 303, path
        back = "%2Fml%2Fbodywork%2Fenvironments%2Fpipelines%3Fx%3D1"
        assert answer.headers["location"] == f"{PREFIX}/login?next={back}"
    form = anonymous.get(f"{PREFIX}/login", params={"next": "https://evil.example/"}).text
    assert 'name="next" value="/ml/bodywork/"' in form

    reader = new_client(service)
    answer = reader.post(f"{PREFIX}/login", data={"token": PAGES_TOKEN, "next": f"{PREFIX}/environments?a=b"})
    assert (answer.status_code, answer.headers["location"]) == (303, f"{PREFIX}/environments?a=b")
    cookie = answer.headers["set-cookie"]
    assert f"Path={PREFIX};" in cookie or cookie.endswith(f"Path={PREFIX}"), cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert reader.get(f"{PREFIX}/environments").status_code == 200  # the cookie goes with the prefix ...
    assert reader.get("/environments").status_code == 303  # ... and nowhere else on the host
    assert reader.get(f"{PREFIX}/environments").status_code == 200

    elsewhere = ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
                 "http:evil.example", "/", "/environments", f"{PREFIX}x/runs", f"{PREFIX}/../elsewhere",
                 f"{PREFIX}/%2e%2e/elsewhere", f"https://bodywork.example.invalid{PREFIX}/", "")
    for target in elsewhere:
        answer = new_client(service).post(f"{PREFIX}/login", data={"token": PAGES_TOKEN, "next": target})
        assert (answer.status_code, answer.headers["location"]) == (303, f"{PREFIX}/"), target
    kept = new_client(service).post("/login", data={"token": PAGES_TOKEN, "next": PREFIX})
    assert kept.headers["location"] == PREFIX


def settings_problem(tmp_path: Path, public_url: str) -> str:
    config = tmp_path / "service.yaml"
    config.write_text(f"service:\n  public_url: {public_url!r}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {}, [])
    [problem] = caught.value.problems
    return problem


def test_a_public_url_that_cannot_be_the_base_of_links_is_refused_with_what_to_write(tmp_path: Path) -> None:
    start = "service.public_url -> "
    fix = "which would land in the middle of every link made from it; write 'https://example.com/bodywork'"
    assert settings_problem(tmp_path, "https://example.com/bodywork?team=ml") == (
        f"{start}'https://example.com/bodywork?team=ml' has a query ('?team=ml'), {fix} (line 2)"
    )
    assert settings_problem(tmp_path, "https://example.com/bodywork/#runs") == (
        f"{start}'https://example.com/bodywork/#runs' has a fragment ('#runs'), which would swallow the "
        "path of every link made from it; write 'https://example.com/bodywork' (line 2)"
    )
    characters = "use letters, digits and - . _ ~ between single slashes"
    assert settings_problem(tmp_path, "https://example.com/ml team/bodywork") == (
        f"{start}'https://example.com/ml team/bodywork' has the segment 'ml team' in its path, which would "
        f"break the links made from it; {characters}: write 'https://example.com/ml-team/bodywork' (line 2)"
    )
    for url, what, fixed in [
        ("https://example.com/a//b", "an empty segment ('//')", "https://example.com/a/b"),
        ("https://example.com/a/../b", "the segment '..'", "https://example.com/a/b"),
        ('https://example.com/a"b', "the segment 'a\"b'", "https://example.com/a-b"),
        ("https://example.com/caf%C3%A9", "the segment 'caf%C3%A9'", "https://example.com/caf-C3-A9"),
    ]:
        assert settings_problem(tmp_path, url) == (
            f"{start}{url!r} has {what} in its path, which would break the links made from it; "
            f"{characters}: write {fixed!r} (line 2)"
        )
    assert settings_problem(tmp_path, "example.com/bodywork") == (
        f"{start}'example.com/bodywork' is not an http:// or https:// URL with a host; "
        "write e.g. 'https://example.com/bodywork' (line 2)"
    )
    password = settings_problem(tmp_path, "https://ci:s3cret@example.com/bodywork")
    assert password == (
        f"{start}holds a user name or password (before '@'), which every commit status and link would "
        "show; write 'https://example.com/bodywork' (line 2)"
    )
    config = tmp_path / "service.yaml"
    config.write_text("service:\n  public_url: https://example.com:8443/ml/bodywork/\n")
    settings = load_settings(config, {}, [])
    assert settings.public_url == "https://example.com:8443/ml/bodywork"
    assert settings.path_prefix == "/ml/bodywork"


def test_a_prefix_that_begins_one_of_the_services_own_paths_is_refused() -> None:
    taken = [("/runs", "/runs/{run_id}/events"), ("/static", "/static"), ("/api/runs", "/api/runs")]
    for prefix, route in taken:
        service = Service(Settings(public_url=f"https://example.com{prefix}"), extensions=[])
        with pytest.raises(SettingsError) as caught:
            create_app(service)
        assert caught.value.problems == [
            f"service.public_url -> its path {prefix!r} begins the service's own path {route!r}: a request "
            "without the prefix could not be told from one with it; serve the service under another "
            "path, e.g. 'https://example.com/bodywork'"
        ]
    for fine in ("/bodywork", "/api/bodywork", "/ml/runs"):
        create_app(Service(Settings(public_url=f"https://example.com{fine}"), extensions=[]))
