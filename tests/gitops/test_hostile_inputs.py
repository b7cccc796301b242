"""Thousands of hostile requests against `bodywork serve` on loopback: no 5xx, no traceback in its log.

The service runs as a child process under uvicorn, exactly as deployed; its log is a file checked
after each group of requests. The cases are generated (:mod:`tests.gitops.hostile`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator

import httpx
import pytest

from gitops.refs import ref_problem

from . import hostile
from .conftest import API_TOKEN, GITHUB_SECRET, GITLAB_SECRET
from .gitserver import free_port
from .helpers import ServiceProcess, github_headers, github_push, gitlab_headers

pytestmark = pytest.mark.timeout(240)

SENT: list[int] = []


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("hostile")
    config = root / "service.yaml"
    # The repositories' URLs lead nowhere: an accepted push fails fast at its fetch.
    config.write_text(f"""
service:
  data_dir: {root / "data"}
  api_token_env: API_TOKEN
  max_body_bytes: 1048576
  fetch_attempts: 1
  fetch_retry_seconds: 0
  quiet_period_seconds: 0
  backend: local
  limits:
    header_timeout_seconds: 1
    body_timeout_seconds: 1
repositories:
  - url: {root / "missing.git"}
    provider: github
    name: acme/pipelines
    webhook_secret_env: GH_SECRET
    deploy_branches: [main]
    preview_branches: ["feature/*"]
    deploy_tags: ["v*"]
  - url: {root / "missing-too.git"}
    provider: gitlab
    name: group/ml-project
    webhook_secret_env: GL_SECRET
    deploy_branches: [main]
    preview_branches: ["feature/*"]
    deploy_tags: ["v*"]
""")
    environ = {"GH_SECRET": GITHUB_SECRET, "GL_SECRET": GITLAB_SECRET, "API_TOKEN": API_TOKEN}
    process = ServiceProcess(config, free_port(), environ, root / "service.log").start()
    yield process
    process.stop()


def _send(service: ServiceProcess, cases: Iterable[hostile.Case]) -> list[tuple[hostile.Case, int, str]]:
    """Sends every case on one keep-alive connection; returns those answered otherwise than expected."""
    wrong = []
    with httpx.Client(base_url=service.client.base_url, timeout=10) as client:
        for case in cases:
            headers = {k.encode(): v.encode("latin-1") for k, v in case.headers.items()}
            answer = client.request(case.method, case.path, content=case.body, headers=headers)
            SENT.append(answer.status_code)
            bad = answer.status_code >= 500 or (
                case.expected is not None and answer.status_code != case.expected
            )
            if bad:
                wrong.append((case, answer.status_code, answer.text[:200]))
    return wrong


def _assert_clean_log(service: ServiceProcess) -> None:
    text = service.log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert "Exception in ASGI application" not in text, text[-3000:]


@pytest.mark.parametrize(
    "group",
    ["nesting_cases", "encoding_cases", "wrong_type_cases", "ref_cases"],
)
def test_generated_bodies_get_4xx_never_5xx(service: ServiceProcess, group: str) -> None:
    cases = list(getattr(hostile, group)(GITHUB_SECRET, GITLAB_SECRET, API_TOKEN))
    assert len(cases) > 100
    wrong = _send(service, cases)
    assert wrong == [], [(c.what, status, text[:80]) for c, status, text in wrong[:30]]
    _assert_clean_log(service)


def test_query_parameters_and_headers(service: ServiceProcess) -> None:
    cases = [*hostile.query_cases(API_TOKEN), *hostile.header_cases(GITHUB_SECRET, GITLAB_SECRET)]
    wrong = _send(service, cases)
    assert wrong == [], [(c.what, status, text[:80]) for c, status, text in wrong[:30]]
    _assert_clean_log(service)


def test_random_bytes_and_mutations(service: ServiceProcess) -> None:
    wrong = _send(service, hostile.random_cases(GITHUB_SECRET, GITLAB_SECRET, API_TOKEN, 2600))
    assert wrong == [], [(c.what, status, text[:80]) for c, status, text in wrong[:30]]
    _assert_clean_log(service)


def _push(service: ServiceProcess, ref: str, head_commit: str | None = None) -> httpx.Response:
    payload = github_push(hostile.REPOSITORY, ref, hostile.ZERO, "e" * 40, head_commit=head_commit)
    body = hostile.dumps(payload)
    headers = github_headers(body, GITHUB_SECRET)
    answer = service.client.post("/webhooks/github", content=body, headers=headers)
    SENT.append(answer.status_code)
    return answer


def test_refs_that_git_accepts_are_accepted(service: ServiceProcess) -> None:
    for name in hostile.valid_branch_names():
        assert ref_problem(f"refs/heads/{name}") is None
        answer = _push(service, f"refs/heads/{name}")
        assert answer.status_code == 202, (name, answer.text)


def test_an_invalid_ref_is_refused_naming_the_field(service: ServiceProcess) -> None:
    answer = _push(service, "refs/heads/feature/../../x")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("'ref' contains '..'")
    answer = _push(service, "refs/tags/v1", head_commit="not-a-sha")
    assert answer.status_code == 400 and "'head_commit.id' must be a full" in answer.json()["error"]


def _raw(service: ServiceProcess, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    sock.sendall(request)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data and b'"}' in data:
            break
    return data


def test_truncated_bodies_leave_no_traceback(service: ServiceProcess) -> None:
    token_headers = gitlab_headers(GITLAB_SECRET)
    for path, headers in (
        ("/webhooks/github", github_headers(b"x", GITHUB_SECRET)),
        ("/webhooks/gitlab", token_headers),
        ("/api/runs", {"Authorization": f"Bearer {API_TOKEN}"}),
    ):
        for declared, sent in ((100, 1), (5000, 4999), (10, 0)):
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            sock = _raw(service, head.encode() + b"{" * sent)
            sock.close()
            SENT.append(0)
    time.sleep(0.5)  # let the service notice the disconnections
    assert service.client.get("/healthz").status_code == 200
    _assert_clean_log(service)


def test_slow_bodies_answer_408_and_slow_heads_are_closed(service: ServiceProcess) -> None:
    headers = gitlab_headers(GITLAB_SECRET)
    head = "POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    slow_body = _raw(service, head.encode() + b"{")
    slow_head = _raw(service, b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")
    answer = _answer(slow_body)  # body_timeout_seconds is 1
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert slow_head.recv(100) == b""  # closed without a word: header_timeout_seconds is 1
    for sock in (slow_body, slow_head):
        sock.close()
    SENT.extend([408, 0])
    _assert_clean_log(service)


def test_a_busy_keep_alive_connection_outlives_the_header_timeout(service: ServiceProcess) -> None:
    # One connection asking every 50 ms for three times header_timeout_seconds: each head arrives at
    # once, so none of them is slow, and the connection must stay open (a load balancer or a busy
    # webhook sender keeps its connections this way).
    sock = _raw(service, b"")
    started = time.monotonic()
    answered = 0
    while time.monotonic() - started < 3.0:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 200"), (answered, answer)
        answered += 1
        SENT.append(200)
        time.sleep(0.05)
    sock.close()
    assert answered > 20


def test_an_oversized_body_gets_its_413(service: ServiceProcess) -> None:
    body = b"{" * (2 * 1024 * 1024)
    for path, headers in (
        ("/webhooks/github", github_headers(body, GITHUB_SECRET)),
        ("/webhooks/gitlab", gitlab_headers(GITLAB_SECRET)),
    ):
        for _ in range(5):  # the client sends the whole body before it reads: it still gets the answer
            answer = httpx.post(f"{service.client.base_url}{path}", content=body, headers=headers, timeout=10)
            SENT.append(answer.status_code)
            assert answer.status_code == 413, answer.text
            assert "larger than the limit of 1048576 bytes" in answer.json()["error"]
    _assert_clean_log(service)


def test_thousands_of_requests_were_sent_and_none_failed(service: ServiceProcess) -> None:
    """Runs last: the whole module's count."""
    assert len(SENT) >= 5000, len(SENT)
    assert not [s for s in SENT if s >= 500]
    assert service.client.get("/readyz").status_code == 200
    _assert_clean_log(service)
