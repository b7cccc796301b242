"""The command of every stage pod. Standard library only: it runs in the stage image's python3.

Shipped to the cluster in an immutable ConfigMap and mounted, with the run's source archive, at
BODYWORK_CODE_DIR. It

1. gets the run's source archive: joins its chunks (``source.tar.gz.000``, ``.001``, ...) or, when the
   service runs in the cluster, downloads it from the service (``source.url``, with the run's token
   ``source.token`` from the run's Secret) and checks it is the run's archive (``source.sha256``); then
   extracts it into BODYWORK_WORK_DIR (an emptyDir), refusing members that would leave it;
2. when the stage has requirements, makes a virtual environment for them, cached under
   BODYWORK_CACHE_DIR keyed by the Python version and the requirements (built in a temporary folder and
   renamed into place, so concurrent pods never share a half-built one), with pip's cache beside it;
3. runs the stage's module with its args from the module's folder (a ``.ipynb`` notebook through the
   notebook executor shipped next to this file): a service replaces the bootstrap (exec); a batch stage
   runs as its child, and its exit is printed as the last line, tagged with a random session printed
   before any stage code ran, so the backend learns the outcome from the log stream at once.

Anything it prints becomes the stage's log; a problem exits with code 2 and a message saying what to fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SOURCE_PREFIX = "source.tar.gz."
SESSION_PREFIX = "[bodywork] session "
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SOURCE_URL, SOURCE_TOKEN, SOURCE_DIGEST = "source.url", "source.token", "source.sha256"
# The service may be restarting (an upgrade) when a pod starts: wait for it this long.
DOWNLOAD_PATIENCE_SECONDS = 300


def say(message: str) -> None:
    print(f"[bodywork] {message}", flush=True)


def fail(message: str) -> None:
    print(f"[bodywork] error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def source_archive(code_dir: Path, work_dir: Path) -> Path:
    """The run's archive in `work_dir`: downloaded from the service, or joined from the ConfigMap chunks."""
    archive = work_dir / "source.tar.gz"
    if (code_dir / SOURCE_URL).exists():
        download(code_dir, archive)
        return archive
    chunks = sorted(p for p in code_dir.iterdir() if p.name.startswith(SOURCE_PREFIX))
    if not chunks:
        fail(f"no source archive in {code_dir}; the run's ConfigMaps are not mounted")
    with archive.open("wb") as out:
        for chunk in chunks:
            out.write(chunk.read_bytes())
    return archive


def download(code_dir: Path, archive: Path) -> None:
    """Downloads the run's archive from the service with the run's token; only the run's bytes pass."""
    url = (code_dir / SOURCE_URL).read_text().strip()
    token = (code_dir / SOURCE_TOKEN).read_text().strip()
    expected = (code_dir / SOURCE_DIGEST).read_text().strip()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # in-cluster: never a proxy
    deadline = time.monotonic() + DOWNLOAD_PATIENCE_SECONDS
    delay = 1.0
    while True:
        try:
            digest = hashlib.sha256()
            with opener.open(request, timeout=60) as response, archive.open("wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
            break
        except urllib.error.HTTPError as error:
            if error.code < 500:
                fail(
                    f"the service refused this run's code ({error.code} {error.reason}): the run's "
                    "objects have been removed since; run the pipeline again"
                )
            problem = f"{error.code} {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            problem = str(getattr(error, "reason", error))
        if time.monotonic() + delay > deadline:
            fail(f"cannot download this run's code from {url} ({problem}); is the service running?")
        say(f"the service is not answering ({problem}); trying again in {delay:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    if digest.hexdigest() != expected:
        fail(
            f"the code downloaded from {url} is not this run's (sha256 {digest.hexdigest()[:12]}, "
            f"expected {expected[:12]})"
        )
    say(f"fetched {archive.stat().st_size} bytes of source from the service")


def extract(archive: Path, work_dir: Path) -> Path:
    root = (work_dir / "src").resolve()
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            inside = target.is_relative_to(root) and not member.isdev()
            if inside and member.issym():
                inside = (target.parent / member.linkname).resolve().is_relative_to(root)
            elif inside and member.islnk():
                inside = (root / member.linkname).resolve().is_relative_to(root)
            if not inside:
                say(f"skipped archive member {member.name!r}: it would leave the source folder")
                continue
            members.append(member)
        tar.extractall(root, members=members)  # members checked above
    archive.unlink()
    return root


def environment_python(requirements: list[str], cache_dir: Path) -> str:
    """The interpreter to run the stage with: the system one, or a cached venv with the requirements."""
    if not requirements:
        return sys.executable
    if os.path.exists(CA_BUNDLE):
        os.environ.setdefault("PIP_CERT", CA_BUNDLE)
        os.environ.setdefault("SSL_CERT_FILE", CA_BUNDLE)
        os.environ.setdefault("REQUESTS_CA_BUNDLE", CA_BUNDLE)
    os.environ.setdefault("PIP_CACHE_DIR", str(cache_dir / "pip"))
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    key = json.dumps([sys.version, sorted(requirements)])
    venvs = cache_dir / "venvs"
    venv = venvs / hashlib.sha256(key.encode()).hexdigest()[:20]
    python = venv / "bin" / "python"
    if python.exists():
        say(f"requirements already installed (cached environment {venv.name})")
        return str(python)
    venvs.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{venv.name}.", dir=venvs))
    started = time.monotonic()
    say(f"installing requirements: {' '.join(requirements)}")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
        subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--no-input", *requirements],
            check=True,
        )
    except subprocess.CalledProcessError as error:
        shutil.rmtree(building, ignore_errors=True)
        fail(f"installing the requirements failed ({error}); check their names and versions")
    try:
        building.rename(venv)
    except OSError:  # another pod finished the same environment first: use theirs
        shutil.rmtree(building, ignore_errors=True)
    say(f"requirements installed in {time.monotonic() - started:.1f} s")
    return str(python)


def main() -> None:
    code_dir = Path(os.environ.get("BODYWORK_CODE_DIR", "/bodywork/code"))
    work_dir = Path(os.environ.get("BODYWORK_WORK_DIR", "/bodywork/work"))
    cache_dir = Path(os.environ.get("BODYWORK_CACHE_DIR", "/bodywork/cache"))
    module = os.environ.get("BODYWORK_MODULE", "")
    args = [str(a) for a in json.loads(os.environ.get("BODYWORK_ARGS", "[]"))]
    requirements = [str(r) for r in json.loads(os.environ.get("BODYWORK_REQUIREMENTS", "[]"))]
    commit = os.environ.get("GIT_COMMIT_HASH", "?")
    session = secrets.token_hex(16)
    if os.environ.get("BODYWORK_STAGE_KIND") == "batch":
        # First, before anything else (pip, the stage) could print a line that looks like it.
        print(f"{SESSION_PREFIX}{session}", flush=True)

    root = extract(source_archive(code_dir, work_dir), work_dir)
    path = (root / module).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        fail(f"executable_module_path {module!r} is not a file of commit {commit}")
    python = environment_python(requirements, cache_dir)
    os.chdir(path.parent)
    if path.suffix == ".ipynb":
        argv = [python, "-u", str(code_dir / "notebook.py"), str(path), *args]
    else:
        argv = [python, "-u", str(path), *args]
    say(f"running {module} at commit {commit[:12]}")
    sys.stdout.flush()
    if os.environ.get("BODYWORK_STAGE_KIND") != "batch":
        os.execv(python, argv)  # a service: it is PID 1 and receives the kubelet's signals itself
    sys.exit(run_batch(python, argv, session))


def run_batch(python: str, argv: list[str], session: str) -> int:
    """Runs a batch stage as a child and reports its exit on the log at once, with this pod's session.

    The backend reads the session (printed before any stage code runs, kept from the stage) and takes
    the report as the attempt's end: that is seconds sooner than the kubelet's pod status.
    """
    child = subprocess.Popen(argv, executable=python)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _frame: child.send_signal(received))
    code = child.wait()
    code = 128 - code if code < 0 else code
    print(f"{SESSION_PREFIX}{session} exited with code {code}", flush=True)
    return code


if __name__ == "__main__":
    main()
