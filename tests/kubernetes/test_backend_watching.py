"""The watch/log bridge against a small HTTP server on loopback that streams like the API server does
(chunked responses held open). The server keeps pods with a history of versioned events, as the API
server does: a list answers the pods matching the label selector and the current resourceVersion; a
watch from version V streams the matching events after V (410 Gone when V is older than the history
kept), then holds the stream open for new ones. So the tests show that lines arrive while a stream is
still open, that a watch resumes from the last version it saw without repeats or gaps, that a 410 leads
to a new list, and that closing the watcher unblocks its threads at once (the server sees the client go
while it still holds the stream open). The real-cluster tests cover the real server."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from runner.backends.kubernetes.api import KubeApi
from runner.backends.kubernetes.observations import LogEnd, LogText, Update
from runner.backends.kubernetes.watching import Watcher
from tests.kubernetes.conftest import loopback_kubeconfig

Obj = dict[str, Any]


class FakeApiServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.changed = threading.Condition()
        self.version = 0
        self.pods: dict[str, Obj] = {}
        self.history: list[tuple[int, str, Obj]] = []
        self.oldest = 0  # a watch from before this version is answered 410 Gone
        self.epoch = 0  # end_watches() ends the watch streams of earlier epochs
        self.lists = 0
        self.watched_from: list[str] = []  # the resourceVersion each watch asked for
        self.hung_up = threading.Event()  # a client went away while its watch was held open
        self.release = threading.Event()  # lets the log stream go on

    def apply(self, kind: str, name: str, labels: dict[str, str], **status: str) -> int:
        """Records an ADDED, MODIFIED or DELETED pod under the next resourceVersion."""
        with self.changed:
            self.version += 1
            metadata = {"name": name, "uid": name, "labels": labels, "resourceVersion": str(self.version)}
            pod = {"metadata": metadata, "status": status}
            if kind == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = pod
            self.history.append((self.version, kind, pod))
            self.changed.notify_all()
            return self.version

    def compact(self) -> None:
        """Forgets the history up to now, as etcd's compaction does."""
        with self.changed:
            self.oldest = self.version
            self.history.clear()

    def wait_for_watches(self, count: int) -> None:
        """Returns once `count` watches have been asked for (fails the test after 10 s)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.watched_from) >= count, 10), self.watched_from

    def end_watches(self) -> None:
        """Ends every open watch stream, as the server does when a watch's timeoutSeconds pass."""
        with self.changed:
            self.epoch += 1
            self.changed.notify_all()


def _selected(pod: Obj, selector: str) -> bool:
    labels = pod["metadata"]["labels"]
    for term in filter(None, selector.split(",")):
        key, sign, value = term.partition("=")
        if sign != "=" or key.endswith("!"):
            raise ValueError(f"this fake understands equality selectors only, got {term!r}")
        if labels.get(key) != value:
            return False
    return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeApiServer

    def chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")  # so the client never reuses a watch's connection
        self.end_headers()
        self.close_connection = True

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/api/v1/namespaces/ns/pods" and not url.path.endswith("/log"):
            self.send_error(404)
        elif url.path.endswith("/log"):
            self.stream_log()
        elif query.get("watch") == "true":
            self.stream_watch(query.get("labelSelector", ""), query.get("resourceVersion"))
        else:
            self.answer_list(query.get("labelSelector", ""))

    def stream_log(self) -> None:
        self.start_stream()
        self.chunk("first line\nsecond ")
        self.server.release.wait(10)
        self.chunk("line\n")
        self.end_stream()

    def answer_list(self, selector: str) -> None:
        server = self.server
        with server.changed:
            server.lists += 1
            items = [pod for pod in server.pods.values() if _selected(pod, selector)]
            listing = {"metadata": {"resourceVersion": str(server.version)}, "items": items}
        body = json.dumps(listing).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream_watch(self, selector: str, since: str | None) -> None:
        server = self.server
        gone = threading.Event()
        threading.Thread(target=self._await_hangup, args=(gone,), daemon=True).start()
        self.start_stream()
        with server.changed:
            server.watched_from.append(since or "")
            server.changed.notify_all()
            epoch = server.epoch
            if since is not None and int(since) < server.oldest:
                expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
                self.chunk(json.dumps({"type": "ERROR", "object": expired}) + "\n")
                self.end_stream()
                return
            if since is None:  # from now: the current objects first, as ADDED
                cursor, events = server.version, [(server.version, "ADDED", p) for p in server.pods.values()]
            else:
                cursor, events = int(since), []
            while True:
                events += [e for e in server.history if e[0] > cursor]
                for version, kind, pod in events:
                    cursor = max(cursor, version)
                    if _selected(pod, selector):
                        self.chunk(json.dumps({"type": kind, "object": pod}) + "\n")
                events = []
                if server.epoch != epoch:
                    self.end_stream()
                    return
                if gone.is_set():
                    server.hung_up.set()
                    return
                server.changed.wait()

    def _await_hangup(self, gone: threading.Event) -> None:
        """Blocks until the client closes its end (it sends nothing more on a watch)."""
        with contextlib.suppress(OSError):
            self.connection.recv(1)
        gone.set()
        with self.server.changed:
            self.server.changed.notify_all()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.end_watches()
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(server: FakeApiServer, tmp_path: Path) -> Iterator[KubeApi]:
    client = KubeApi(kubeconfig=str(loopback_kubeconfig(tmp_path, server.server_address[1])))
    yield client
    client.close()


def seen(item: object) -> tuple[str, str, str]:
    assert isinstance(item, Update), item
    return item.type, item.obj["metadata"]["name"], item.obj["status"].get("phase", "-")


@pytest.mark.timeout(30)
def test_log_lines_arrive_while_the_stream_is_still_open(server: FakeApiServer, api: KubeApi) -> None:
    async def scenario() -> list[object]:
        async with Watcher(api) as watcher:
            watcher.follow_log("ns", "p", "k")
            first = await watcher.next(5)
            assert not server.release.is_set()  # the server still holds the rest back
            server.release.set()
            return [first, await watcher.next(5), await watcher.next(5)]

    assert asyncio.run(scenario()) == [LogText("k", "first line"), LogText("k", "second line"), LogEnd("k")]


@pytest.mark.timeout(30)
def test_a_watch_lists_then_follows_and_lists_again_after_410(server: FakeApiServer, api: KubeApi) -> None:
    server.apply("ADDED", "p", {"a": "b"})
    server.apply("ADDED", "q", {"a": "c"})  # not selected: never delivered

    async def scenario() -> list[tuple[str, str, str]]:
        updates = []
        async with Watcher(api) as watcher:
            watcher.watch("Pod", "ns", labels={"a": "b"})
            updates.append(seen(await watcher.next(5)))
            server.apply("MODIFIED", "q", {"a": "c"}, phase="Running")
            server.apply("MODIFIED", "p", {"a": "b"}, phase="Running")
            updates.append(seen(await watcher.next(5)))
            with server.changed:  # the watch ends, p changes and the history is compacted: missed
                server.end_watches()
                server.apply("MODIFIED", "p", {"a": "b"}, phase="Succeeded")
                server.compact()
            updates.append(seen(await watcher.next(5)))
            server.wait_for_watches(3)  # from the relist's version, held open
        assert server.hung_up.wait(10), "closing the watcher did not close the held-open watch"
        return updates

    updates = asyncio.run(scenario())
    assert updates == [("ADDED", "p", "-"), ("MODIFIED", "p", "Running"), ("ADDED", "p", "Succeeded")]
    assert server.lists == 2  # the relist after 410 shows the change the watch missed
    assert server.watched_from[:2] == ["2", "4"]  # from the list's version, then the last one seen


@pytest.mark.timeout(30)
def test_a_watch_the_server_ends_resumes_from_the_last_version_without_repeats(
    server: FakeApiServer, api: KubeApi
) -> None:
    server.apply("ADDED", "p", {"a": "b"})

    async def scenario() -> list[tuple[str, str, str]]:
        updates = []
        async with Watcher(api) as watcher:
            watcher.watch("Pod", "ns", labels={"a": "b"})
            updates.append(seen(await watcher.next(5)))
            server.apply("MODIFIED", "p", {"a": "b"}, phase="Running")
            updates.append(seen(await watcher.next(5)))
            server.end_watches()  # like timeoutSeconds passing: the watcher watches again
            server.wait_for_watches(2)
            server.apply("ADDED", "r", {"a": "other"})
            server.apply("DELETED", "p", {"a": "b"}, phase="Running")
            server.apply("ADDED", "s", {"a": "b"})
            updates.append(seen(await watcher.next(5)))
            updates.append(seen(await watcher.next(5)))
        return updates

    updates = asyncio.run(scenario())
    # Nothing repeated from before the re-watch, nothing unselected, nothing missed.
    assert updates == [
        ("ADDED", "p", "-"),
        ("MODIFIED", "p", "Running"),
        ("DELETED", "p", "Running"),
        ("ADDED", "s", "-"),
    ]
    assert server.lists == 1
    assert server.watched_from == ["1", "2"]
