"""Small builders for pipelines and source folders used by the runner's tests."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

from runner.model import BatchSettings, Pipeline, PipelineSettings, ServiceSettings, Stage


def batch(name: str, module: str, *, retries: int = 0, limit: int = 30, **kw: object) -> Stage:
    return Stage(
        name=name,
        executable_module_path=module,
        cpu_request=0.1,
        memory_request_mb=64,
        batch=BatchSettings(max_completion_time_seconds=limit, retries=retries),
        **kw,  # type: ignore[arg-type]
    )


def service(name: str, module: str, port: int, *, startup: int = 10, **kw: object) -> Stage:
    return Stage(
        name=name,
        executable_module_path=module,
        cpu_request=0.1,
        memory_request_mb=64,
        service=ServiceSettings(max_startup_time_seconds=startup, replicas=1, port=port),
        **kw,  # type: ignore[arg-type]
    )


def pipeline(dag: str, *stages: Stage, run_on_failure: str | None = None, name: str = "test") -> Pipeline:
    steps = tuple(tuple(s.strip() for s in step.split(",")) for step in dag.split(">>"))
    return Pipeline(
        version="1.1",
        pipeline=PipelineSettings(
            name=name, docker_image="bodywork-stage:bookworm", dag=steps, run_on_failure=run_on_failure
        ),
        stages={s.name: s for s in stages},
    )


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


HTTP_SERVICE = """
import http.server, os, sys
ANSWER = os.environ.get("ANSWER", "{answer}").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(ANSWER)
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
"""


def wheel(folder: Path, name: str, version: str, files: dict[str, str], requires_python: str = "") -> Path:
    """A real, installable pure-Python wheel built by hand, so that tests need no index."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        **files,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + (f"Requires-Python: {requires_python}\n" if requires_python else ""),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in contents.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(text.encode())}")
        record.append(f"{dist}.dist-info/RECORD,,")
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def failing_sdist(folder: Path, name: str, version: str, message: str) -> Path:
    """A source distribution whose build fails with `message`, as old packages do on a newer Python."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.tar.gz"
    members = {
        "setup.py": f"import sys\nsys.stderr.write({message!r} + '\\n')\nraise SystemExit(1)\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    with tarfile.open(path, "w:gz") as archive:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
