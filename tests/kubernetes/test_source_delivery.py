"""Stage pods fetch their run's code from the in-cluster service: the bootstrap's download and the shelf
(no cluster: the bootstrap runs as a subprocess against a loopback HTTP server)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.kubernetes import bootstrap
from runner.backends.kubernetes.packing import pack
from runner.backends.kubernetes.shelf import SourceShelf

BOOTSTRAP = Path(bootstrap.__file__)


class ArchiveServer:
    """Answers GET /sources/ns/name with `archive` for the right bearer token; `answers` scripts statuses."""

    def __init__(self, archive: bytes, token: str) -> None:
        self.archive, self.token = archive, token
        self.answers: list[int] = []
        self.seen: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append(self.headers.get("Authorization", ""))
                status = server.answers.pop(0) if server.answers else 200
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    status = 401
                body = server.archive if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sources/ns/kt-src-1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    source = tmp_path / "repo"
    source.mkdir()
    (source / "main.py").write_text("import sys\nprint('ran', sys.argv[1:])\n")
    return source


@pytest.fixture
def server(repository: Path) -> Iterator[ArchiveServer]:
    served = ArchiveServer(pack(repository).data, token="run-token")
    yield served
    served.close()


def run_bootstrap(tmp_path: Path, url: str, token: str, digest: str) -> subprocess.CompletedProcess[str]:
    code, work = tmp_path / "code", tmp_path / "work"
    code.mkdir()
    work.mkdir()
    (code / "source.url").write_text(url)
    (code / "source.token").write_text(token)
    (code / "source.sha256").write_text(digest)
    env = {
        **os.environ,
        "BODYWORK_CODE_DIR": str(code),
        "BODYWORK_WORK_DIR": str(work),
        "BODYWORK_MODULE": "main.py",
        "BODYWORK_ARGS": '["--x"]',
        "GIT_COMMIT_HASH": "f" * 40,
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_bootstrap_downloads_the_runs_code_with_its_token_and_runs_it(
    tmp_path: Path, server: ArchiveServer
) -> None:
    digest = hashlib.sha256(server.archive).hexdigest()
    server.answers = [503]  # the service is restarting: the pod waits for it

    done = run_bootstrap(tmp_path, server.url, "run-token", digest)

    assert done.returncode == 0, done.stderr
    assert "ran ['--x']" in done.stdout
    assert f"fetched {len(server.archive)} bytes of source from the service" in done.stdout
    assert "the service is not answering (503" in done.stdout
    assert server.seen == ["Bearer run-token", "Bearer run-token"]


def test_the_bootstrap_refuses_bytes_that_are_not_the_runs_archive(
    tmp_path: Path, server: ArchiveServer
) -> None:
    done = run_bootstrap(tmp_path, server.url, "run-token", "0" * 64)
    assert done.returncode == 2
    assert "is not this run's (sha256" in done.stderr and "ran" not in done.stdout


@pytest.mark.parametrize("status", [401, 404])
def test_a_refused_token_fails_the_pod_saying_the_runs_objects_are_gone(
    tmp_path: Path, server: ArchiveServer, status: int
) -> None:
    server.answers = [status]
    done = run_bootstrap(tmp_path, server.url, "run-token", hashlib.sha256(server.archive).hexdigest())
    assert done.returncode == 2
    assert f"the service refused this run's code ({status}" in done.stderr
    assert "run the pipeline again" in done.stderr


def test_a_token_opens_only_its_own_archive_and_survives_a_new_shelf_on_the_same_folder(
    tmp_path: Path,
) -> None:
    shelf = SourceShelf(tmp_path / "shelf")
    token = shelf.token("team-a", "kt-src-1")
    assert shelf.opens("team-a", "kt-src-1", token)
    assert not shelf.opens("team-a", "kt-src-2", token)
    assert not shelf.opens("team-b", "kt-src-1", token)
    assert SourceShelf(tmp_path / "shelf").opens("team-a", "kt-src-1", token)  # a restarted service
    assert not SourceShelf(tmp_path / "other").opens("team-a", "kt-src-1", token)
    with pytest.raises(ValueError):
        shelf.path("..", "kt-src-1")
