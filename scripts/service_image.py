#!/usr/bin/env python3
"""The service's image for the test cluster, built without Docker or a registry.

    python scripts/service_image.py build            # build (cached by content), print its image.json
    python scripts/service_image.py build --import   # ... and import it into the test cluster's containerd

The image is the stage image's Debian layer (debootstrap bookworm with python3, see scripts/cluster.py)
plus one layer holding this project and its dependencies, installed with pip into /opt/bodywork/lib,
a `bodywork` launcher on the PATH and a non-root user 10001. It is the same image the Dockerfile
builds for users (their base is python:3.11-slim), named `bodywork.local/bodywork-gitops:<key>`, where
the key is a hash of the project's files, the base image and this recipe: an unchanged tree is not
rebuilt, a changed one gets a new tag. `--revision N` makes a distinct image of the same tree (the
tests' `helm upgrade` to a new image). Standard library only; needs root for the import.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster  # the sibling script: image archives, the stage image, containerd

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "bodywork.local/bodywork-gitops"
RECIPE = "service-image-1"
KEEP_BUILDS = 4  # a tree and its --revision variant, and the previous tree's
USER_ID = 10001
SOURCES = ("pyproject.toml", "README.md", "runner", "gitops", "chatops")
LAUNCHER = """\
#!/usr/bin/python3
import sys

sys.path.insert(0, "/opt/bodywork/lib")
from gitops.cli import main

sys.exit(main())
"""


def project_digest() -> str:
    """A hash of every file pip would install from (sources, templates, metadata)."""
    digest = hashlib.sha256()
    for top in SOURCES:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def base_layer(stage_archive: Path, work: Path) -> tuple[Path, str, bytes, bytes]:
    """The stage image's layer blob (extracted to `work`), its diff id, and its /etc/passwd and group."""
    with tarfile.open(stage_archive) as archive:

        def blob(digest: str) -> bytes:
            member = archive.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
            assert member is not None
            return member.read()

        index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        (layer,), (diff_id,) = manifest["layers"], config["rootfs"]["diff_ids"]
        path = work / "base-layer.tar.gz"
        path.write_bytes(blob(layer["digest"]))
    with tarfile.open(path, "r:gz") as rootfs:
        passwd = rootfs.extractfile("./etc/passwd").read()  # type: ignore[union-attr]
        group = rootfs.extractfile("./etc/group").read()  # type: ignore[union-attr]
    return path, diff_id, passwd, group


def build_app_layer(rootfs: Path, passwd: bytes, group: bytes) -> None:
    """/opt/bodywork/lib (the project and its dependencies), /usr/local/bin/bodywork, user 10001."""
    rootfs.chmod(0o755)  # the layer's "./" entry sets the image root's mode
    lib = rootfs / "opt" / "bodywork" / "lib"
    lib.mkdir(parents=True)
    # The host's Python must be 3.11, like bookworm's: the same wheels (cp311, manylinux) fit the image.
    if sys.version_info[:2] != (3, 11):
        raise cluster.ClusterError(
            f"the service image needs the wheels of Python 3.11 (Debian bookworm's), but this is "
            f"Python {sys.version_info[0]}.{sys.version_info[1]}; run it with a 3.11 interpreter"
        )
    # Compiled here: the image's root file system is read-only in the chart's pod.
    cluster.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib), str(ROOT)],
        capture=True,
        timeout=900,
    )
    shutil.rmtree(lib / "bin", ignore_errors=True)  # console scripts naming the host's interpreter
    launcher = rootfs / "usr" / "local" / "bin" / "bodywork"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    etc = rootfs / "etc"
    etc.mkdir()
    user = f"bodywork:x:{USER_ID}:{USER_ID}::/tmp:/usr/sbin/nologin\n"
    (etc / "passwd").write_bytes(passwd + user.encode())
    (etc / "group").write_bytes(group + f"bodywork:x:{USER_ID}:\n".encode())
    for path in [etc / "passwd", etc / "group"]:
        path.chmod(0o644)


def build(revision: int = 0) -> dict[str, str]:
    with cluster.cluster_lock("build"):  # the stage image is shared with `cluster.py up`
        stage = cluster.build_stage_image()
    key = hashlib.sha256(
        "\n".join([RECIPE, stage["manifest_digest"], project_digest(), str(revision)]).encode()
    ).hexdigest()[:16]
    name = f"{REPOSITORY}:{key}"
    folder = cluster.IMAGES_DIR / f"bodywork-gitops-{key}"
    meta_path = folder / "image.json"
    if meta_path.exists():
        meta_path.touch()  # recently used: pruned last
        meta: dict[str, str] = json.loads(meta_path.read_text())
        return meta
    cluster.log(f"building the service image {name}")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp)
        base_blob, base_diff_id, passwd, group = base_layer(Path(stage["archive"]), work)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        build_app_layer(rootfs, passwd, group)
        layer = work / "layer.tar"
        cluster.run(
            ["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", str(rootfs), "-cf", str(layer), "."]
        )
        ca_file = "/etc/ssl/certs/ca-certificates.crt"
        config = {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "PYTHONUNBUFFERED=1",
                "PYTHONDONTWRITEBYTECODE=1",
                "HOME=/tmp",
                f"SSL_CERT_FILE={ca_file}",
                f"REQUESTS_CA_BUNDLE={ca_file}",
            ],
            "Entrypoint": ["bodywork"],
            "Cmd": ["serve", "--host", "0.0.0.0"],
            "User": f"{USER_ID}:{USER_ID}",
            "WorkingDir": "/tmp",
            "ExposedPorts": {"8000/tcp": {}},
            "Labels": {
                "org.opencontainers.image.title": "bodywork-gitops",
                "org.opencontainers.image.revision": str(revision),
            },
        }
        digest = cluster.write_oci_archive(
            folder / "image.tar", name, layer, config, base_layers=((base_blob, base_diff_id),)
        )
    meta = {
        "name": name,
        "repository": REPOSITORY,
        "tag": key,
        "manifest_digest": digest,
        "archive": str(folder / "image.tar"),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    prune(keep=KEEP_BUILDS)
    return meta


def prune(keep: int) -> None:
    """Deletes all but the `keep` newest builds: every change of the code makes a new one (~125 MB)."""
    builds = sorted(cluster.IMAGES_DIR.glob("bodywork-gitops-*/image.json"), key=lambda p: p.stat().st_mtime)
    for meta in builds[:-keep]:
        shutil.rmtree(meta.parent, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build (cached) and print the image's metadata")
    build_command.add_argument(
        "--import", dest="import_", action="store_true", help="import it into the test cluster's containerd"
    )
    build_command.add_argument("--revision", type=int, default=0, help="a distinct image of the same tree")
    args = parser.parse_args(argv)
    try:
        cluster.IMAGES_DIR.mkdir(parents=True, exist_ok=True)
        with (cluster.IMAGES_DIR / "bodywork-gitops.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a given tree at a time
            meta = build(args.revision)
            if args.import_:  # under the build lock: a concurrent build's pruning keeps its hands off
                with cluster.cluster_lock("import"):
                    cluster.import_images([meta])
    except cluster.ClusterError as error:
        print(f"service_image.py: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
