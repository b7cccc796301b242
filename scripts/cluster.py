#!/usr/bin/env python3
"""A real single-node Kubernetes test cluster, built and started by the project itself.

    python scripts/cluster.py build    # build/cache binaries and images only
    python scripts/cluster.py up       # build what is missing, start what is not running, wait until Ready
    python scripts/cluster.py status   # what runs, where the kubeconfig is, which stage image to use
    python scripts/cluster.py down     # stop everything started here, clean mounts/netns/containers
    python scripts/cluster.py down --purge   # ... and delete the whole state folder (images included)
    python scripts/cluster.py helm     # print the path of the helm binary (built from its Go module)

Standard library only. Needs root, Go, and Debian's packages (installed with apt-get when missing).
See docs/test-cluster.md for the design, what is cached where and troubleshooting.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# --- what the cluster is -------------------------------------------------------------------------

# 1.34 is the newest minor whose kubelet still starts on cgroup v1 without `failCgroupV1: false`.
K8S_VERSION = "v1.34.4"
STAGE_IMAGE = "docker.io/library/bodywork-stage:bookworm"  # pods may say "bodywork-stage:bookworm"
STAGE_IMAGE_SHORT = "bodywork-stage:bookworm"
PAUSE_IMAGE = "bodywork.local/pause:1"
NODE_NAME = "bodywork-node"

BRIDGE = "bodywork0"  # created by us; the CNI bridge plugin attaches pods to it
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
NODE_IP = "10.244.0.1"  # the bridge's address: a stable node IP that does not depend on the host's NICs
SERVICE_CIDR = "10.96.0.0/24"
API_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
ETCD_CLIENT_PORT = 12379  # not 2379, so a stray etcd on the machine does not collide with ours
ETCD_PEER_PORT = 12380
KUBELET_PORT = 10250
# CoreDNS answers on the node address: pods reach it over the bridge, without kube-proxy in the path.
CLUSTER_DNS_IP = NODE_IP
CLUSTER_DOMAIN = "cluster.local"
COREDNS_HEALTH_PORT = 18080  # loopback only
COREDNS_READY_PORT = 18181

STATE_DIR = Path(os.environ.get("BODYWORK_CLUSTER_STATE", "/tmp/bodywork-test-cluster"))
CACHE_DIR = Path(os.environ.get("BODYWORK_CACHE_DIR", Path.home() / ".cache" / "bodywork-gitops"))
K8S_DIR = CACHE_DIR / "k8s" / K8S_VERSION
BIN_DIR = K8S_DIR / "bin"
IMAGES_DIR = CACHE_DIR / "images"

LOG_DIR = STATE_DIR / "logs"
PID_DIR = STATE_DIR / "pids"
PKI_DIR = STATE_DIR / "pki"
CONTAINERD_DIR = STATE_DIR / "containerd"
CONTAINERD_SOCK = CONTAINERD_DIR / "containerd.sock"
KUBELET_DIR = STATE_DIR / "kubelet"
CNI_CONF_DIR = STATE_DIR / "cni" / "net.d"
CNI_IPAM_DIR = STATE_DIR / "cni" / "ipam"
ETCD_DATA_DIR = STATE_DIR / "etcd"
CONFIG_DIR = STATE_DIR / "config"
ADMIN_KUBECONFIG = STATE_DIR / "admin.kubeconfig"
CLUSTER_JSON = STATE_DIR / "cluster.json"

K8S_BINARIES = [
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl",
]
# Start order; `down` stops in reverse. containerd must be up before the kubelet.
COMPONENTS = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "coredns",
]
DEBIAN_PACKAGES = {  # a file each package provides -> package
    "/usr/bin/containerd": "containerd",
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/sbin/debootstrap": "debootstrap",
    "/usr/bin/openssl": "openssl",
    "/usr/sbin/iptables": "iptables",
    "/usr/sbin/conntrack": "conntrack",
    "/usr/bin/ip": "iproute2",  # /bin/ip on merged-/usr systems is the same file
}
STAGE_PACKAGES = ["python3", "python3-pip", "python3-venv", "ca-certificates"]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class ClusterError(Exception):
    """An expected failure: printed as a clear message, exit code 1."""


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, check: bool = True, capture: bool = False, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise ClusterError carrying its output."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, timeout=timeout, text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-3000:] if capture else ""
        raise ClusterError(f"command failed ({result.returncode}): {shlex.join(cmd)}\n{detail}")
    return result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_if_changed(path: Path, text: str) -> None:
    """Rewrite only on change: kube-proxy exits when its configuration file is touched."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


# --- host packages -------------------------------------------------------------------------------

def ensure_host_packages() -> None:
    """Install Debian's containerd, runc, CNI plugins, debootstrap... when missing."""
    if os.geteuid() != 0:
        raise ClusterError("the test cluster needs root (containerd, runc, mounts, network namespaces)")
    missing = sorted({pkg for path, pkg in DEBIAN_PACKAGES.items()
                      if not Path(path).exists() and not shutil.which(Path(path).name)})
    if not missing:
        return
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if run(install, check=False, env=env).returncode:
        run(["apt-get", "update"], env=env)
        run(install, env=env)


# --- Kubernetes binaries -------------------------------------------------------------------------

def go_env() -> dict[str, str]:
    # Static binaries; GOTOOLCHAIN is left alone so an older local Go fetches the toolchain the go.mod
    # asks for (1.24+) through the module proxy.
    return dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")


def write_wrapper_module(src: Path) -> None:
    """A module requiring k8s.io/kubernetes, with each staging module replaced by its published version.

    The published k8s.io/kubernetes go.mod requires its staging modules at v0.0.0 and replaces them with
    ./staging/src/...; those replaces do not apply to a dependency, so we repeat them with real versions.
    """
    if shutil.which("go") is None:
        raise ClusterError("Go is required to build Kubernetes (https://go.dev/dl/); `go` is not on PATH")
    src.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as empty:
        info = json.loads(run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"],
                              capture=True, cwd=Path(empty), env=go_env()).stdout)
    upstream = Path(info["GoMod"]).read_text()
    staging = [line.split()[0] for line in upstream.splitlines() if "=> ./staging/src/" in line]
    minor_patch = K8S_VERSION.split(".", 1)[1]  # v1.34.4 -> 34.4
    replaces = "\n".join(f"\t{mod} => {mod} v0.{minor_patch}" for mod in staging)
    go_line = next(line for line in upstream.splitlines() if line.startswith("go "))
    godebug = next((line for line in upstream.splitlines() if line.startswith("godebug ")), "")
    (src / "go.mod").write_text(
        f"module bodywork.local/k8s-build\n\n{go_line}\n\n{godebug}\n\n"
        f"require k8s.io/kubernetes {K8S_VERSION}\n\nreplace (\n{replaces}\n)\n"
    )
    # Importing the commands from a file behind a build tag makes `go mod tidy` keep every dependency.
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{name}"' for name in K8S_BINARIES)
    (src / "tools.go").write_text(
        f'//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n{imports}\n)\n'
    )


def version_ldflags() -> str:
    """Stamp the version `make` would: without it every binary reports v0.0.0-master."""
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": K8S_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "buildDate": "1970-01-01T00:00:00Z"}
    flags = ["-s", "-w"]
    for package in ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]:
        flags += [f"-X {package}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def build_kubernetes() -> Path:
    """Build etcd and the Kubernetes binaries once per version into ~/.cache/bodywork-gitops/k8s/<v>/bin."""
    stamp = BIN_DIR / "build-info.json"
    if stamp.exists() and all((BIN_DIR / name).exists() for name in [*K8S_BINARIES, "etcd"]):
        return BIN_DIR
    src = K8S_DIR / "src"
    log(f"building Kubernetes {K8S_VERSION} and etcd from Go modules (first run only: ~15 min on 2 cores)")
    started = time.monotonic()
    write_wrapper_module(src)
    run(["go", "mod", "tidy"], cwd=src, env=go_env())
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    build_log = K8S_DIR / "build.log"
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in K8S_BINARIES] + ["go.etcd.io/etcd/server/v3"]
    with build_log.open("w") as out:
        # One invocation: the packages share one compilation of their common dependencies.
        result = subprocess.run(
            ["go", "build", "-trimpath", f"-ldflags={version_ldflags()}", "-o", f"{BIN_DIR}/", *packages],
            cwd=src, env=go_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0:
        raise ClusterError(f"go build failed; see {build_log}:\n{tail(build_log)}")
    # `go build` names go.etcd.io/etcd/server/v3 after its last non-version element.
    if (BIN_DIR / "server").exists():
        (BIN_DIR / "server").rename(BIN_DIR / "etcd")
    seconds = round(time.monotonic() - started)
    stamp.write_text(json.dumps({"version": K8S_VERSION, "build_seconds": seconds,
                                 "go": run(["go", "version"], capture=True).stdout.strip()}, indent=2))
    log(f"built Kubernetes {K8S_VERSION} in {seconds}s")
    return BIN_DIR


# --- CoreDNS and helm (Go tools built from their modules, one folder per version) -----------------

COREDNS_VERSION = "v1.14.1"  # the CoreDNS of Kubernetes 1.34's era (client-go v0.34)
HELM_VERSION = "v3.19.5"  # the Helm 3 minor built against Kubernetes 1.34 (client-go v0.34)
# Only the plugins our Corefile uses: the full plugin set pulls in every cloud SDK and triples the build.
COREDNS_PLUGINS = ["bind", "cache", "errors", "forward", "health", "kubernetes", "loop", "ready"]
COREDNS_MAIN = """\
// A CoreDNS with only the plugins the test cluster's Corefile uses (CoreDNS's own
// "compile-time plugin selection": each plugin registers itself when imported).
package main

import (
	"github.com/coredns/coredns/coremain"
%s
)

func main() { coremain.Run() }
"""


def build_go_tool(name: str, module: str, version: str, package: str, ldflags: str,
                  main_source: str | None = None) -> Path:
    """Build one command from the Go module proxy into ~/.cache/bodywork-gitops/<name>/<version>/bin/.

    A wrapper module pins `module@version`; with `main_source` the wrapper is itself the main package
    (CoreDNS with a plugin selection), otherwise a tools.go keeps `package` for `go mod tidy`.
    """
    folder = CACHE_DIR / name / version
    binary = folder / "bin" / name
    recipe = hashlib.sha256("\n".join([module, package, ldflags, main_source or ""]).encode()).hexdigest()
    stamp = folder / "build-info.json"

    def up_to_date() -> bool:
        return binary.exists() and stamp.exists() and json.loads(stamp.read_text()).get("recipe") == recipe

    if up_to_date():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test sessions may ask for helm at once
        if up_to_date():
            return binary
        if shutil.which("go") is None:
            raise ClusterError(f"Go is required to build {name} (https://go.dev/dl/); `go` is not on PATH")
        log(f"building {name} {version} from the Go module proxy (first run only)")
        started = time.monotonic()
        src = folder / "src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        go_mod = f"module bodywork.local/{name}-build\n\ngo 1.24\n\nrequire {module} {version}\n"
        (src / "go.mod").write_text(go_mod)
        if main_source is None:
            (src / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
            target = package
        else:
            (src / "main.go").write_text(main_source)
            target = "."
        build_log = folder / "build.log"
        with build_log.open("w") as out:
            for cmd in [["go", "mod", "tidy"],
                        ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(binary), target]]:
                result = subprocess.run(cmd, cwd=src, env=go_env(), stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
                if result.returncode != 0:
                    raise ClusterError(f"{shlex.join(cmd)} failed; see {build_log}:\n{tail(build_log)}")
        seconds = round(time.monotonic() - started)
        stamp.write_text(json.dumps({"version": version, "recipe": recipe, "build_seconds": seconds,
                                     "go": run(["go", "version"], capture=True).stdout.strip()}, indent=2))
        log(f"built {name} {version} in {seconds}s")
    return binary


def build_coredns() -> Path:
    imports = "\n".join(f'\t_ "github.com/coredns/coredns/plugin/{plugin}"' for plugin in COREDNS_PLUGINS)
    return build_go_tool("coredns", "github.com/coredns/coredns", COREDNS_VERSION, "",
                         "-s -w", COREDNS_MAIN % imports)


def build_helm() -> Path:
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for package in ["helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"]:
        flags += [f"-X {package}.k8sVersionMajor={major}", f"-X {package}.k8sVersionMinor={minor}"]
    return build_go_tool("helm", "helm.sh/helm/v3", HELM_VERSION, "helm.sh/helm/v3/cmd/helm", " ".join(flags))


# --- images (no registry: OCI archives imported into containerd) -------------------------------

PAUSE_SOURCE = """\
// pause: the pod sandbox process. Holds the pod's namespaces, reaps zombies, exits on SIGTERM/SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def write_oci_archive(archive: Path, name: str, layer_tar: Path, config: dict[str, Any],
                      base_layers: tuple[tuple[Path, str], ...] = ()) -> str:
    """Write an OCI image layout as a tar archive; return the manifest digest.

    The image is `base_layers` (gzipped blobs with their diff ids, e.g. another image's layers) plus
    one new gzipped layer made of `layer_tar`.
    """
    diff_id = "sha256:" + sha256_file(layer_tar)
    gz_path = layer_tar.with_suffix(".tar.gz")
    with layer_tar.open("rb") as raw, gzip.GzipFile(gz_path, "wb", compresslevel=1, mtime=0) as packed:
        shutil.copyfileobj(raw, packed, 1 << 20)
    image_config = {
        "architecture": go_arch(), "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [*(base[1] for base in base_layers), diff_id]},
        "history": [{"created_by": "scripts/cluster.py"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + sha256_file(blob), "size": blob.stat().st_size}
                   for blob in [*(base[0] for base in base_layers), gz_path]],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest_bytes),
            "platform": {"architecture": go_arch(), "os": "linux"},
            # containerd names the imported image after this annotation.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }

    def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
        info = tarfile.TarInfo(arcname)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add_bytes(tar, "index.json", json.dumps(index).encode())
        add_bytes(tar, f"blobs/sha256/{manifest_digest[7:]}", manifest_bytes)
        add_bytes(tar, f"blobs/sha256/{config_digest[7:]}", config_bytes)
        for blob in [*(base[0] for base in base_layers), gz_path]:
            tar.add(blob, arcname=f"blobs/sha256/{sha256_file(blob)}")
    partial.rename(archive)
    gz_path.unlink()
    return manifest_digest


def cached_image(key_parts: list[str], name: str, build_rootfs: Callable[[Path], None],
                 config: dict[str, Any]) -> dict[str, str]:
    """Build an image archive once per content key under ~/.cache/bodywork-gitops/images/<key>/."""
    key = hashlib.sha256("\n".join([name, *key_parts]).encode()).hexdigest()[:16]
    folder = IMAGES_DIR / f"{name.rsplit('/', 1)[-1].replace(':', '-')}-{key}"
    meta_path = folder / "image.json"
    if meta_path.exists():
        meta: dict[str, str] = json.loads(meta_path.read_text())
        return meta
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as work:
        rootfs = Path(work) / "rootfs"
        rootfs.mkdir()
        build_rootfs(rootfs)
        layer = Path(work) / "layer.tar"
        # GNU tar keeps owners, modes, hard links and xattrs exactly as debootstrap left them.
        run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--exclude=./dev/*",
             "--exclude=./proc/*", "--exclude=./sys/*", "-C", str(rootfs), "-cf", str(layer), "."])
        digest = write_oci_archive(folder / "image.tar", name, layer, config)
    meta = {"name": name, "manifest_digest": digest, "archive": str(folder / "image.tar")}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def build_pause_image() -> dict[str, str]:
    def build_rootfs(rootfs: Path) -> None:
        src = rootfs.parent / "pause-src"
        src.mkdir()
        (src / "go.mod").write_text("module bodywork.local/pause\n\ngo 1.21\n")
        (src / "main.go").write_text(PAUSE_SOURCE)
        run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(rootfs / "pause"), "."],
            cwd=src, env=go_env())

    go_version = run(["go", "version"], capture=True).stdout.strip()
    return cached_image([PAUSE_SOURCE, go_version], PAUSE_IMAGE, build_rootfs,
                        {"Entrypoint": ["/pause"], "User": "65535:65535"})


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources), for debootstrap."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in text.split("\n\n"):  # deb822: URIs: + Suites: in one stanza
            lines = [line for line in stanza.splitlines() if ":" in line and not line.startswith("#")]
            fields = dict(line.split(":", 1) for line in lines)
            suites = fields.get("Suites", "").split()
            if "bookworm" in suites and fields.get("URIs"):
                return fields["URIs"].split()[0]
        for line in text.splitlines():  # one-line: deb [opts] URL suite components
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
                return words[1]
    return "http://deb.debian.org/debian"


def build_stage_image() -> dict[str, str]:
    mirror = debian_mirror()
    ca_digest = sha256_file(HOST_CA_BUNDLE) if HOST_CA_BUNDLE.exists() else "no-host-ca"

    def build_rootfs(rootfs: Path) -> None:
        log(f"debootstrap bookworm from {mirror} (about a minute)")
        debootstrap_log = IMAGES_DIR / "debootstrap.log"
        with debootstrap_log.open("w") as out:
            result = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(STAGE_PACKAGES)}",
                 "bookworm", str(rootfs), mirror],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ClusterError(f"debootstrap failed; see {debootstrap_log}:\n{tail(debootstrap_log)}")
        # The registries sit behind a TLS proxy that only the host trusts: give pods the host's bundle.
        if HOST_CA_BUNDLE.exists():
            shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        # Stages `pip install` into the image's Python, as they did on Bodywork's own images.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)

    ca_file = "/etc/ssl/certs/ca-certificates.crt"
    config = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                "PYTHONUNBUFFERED=1", f"SSL_CERT_FILE={ca_file}", f"REQUESTS_CA_BUNDLE={ca_file}",
                f"PIP_CERT={ca_file}", "PIP_DISABLE_PIP_VERSION_CHECK=1"],
        "Cmd": ["python3"],
        "WorkingDir": "/",
    }
    recipe = json.dumps([STAGE_PACKAGES, config, "recipe-1"])
    return cached_image(["bookworm", mirror, ca_digest, recipe], STAGE_IMAGE, build_rootfs, config)


def build_images() -> list[dict[str, str]]:
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    return [build_pause_image(), build_stage_image()]


def ctr(*args: str, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["ctr", "--address", str(CONTAINERD_SOCK), "--namespace", "k8s.io", *args],
               capture=capture, check=check)


def import_images(images: list[dict[str, str]]) -> None:
    """Import each archive unless containerd already holds that exact manifest under that name."""
    listing = ctr("images", "ls").stdout.splitlines()[1:]
    present = {(cols[0], cols[2]) for cols in (line.split() for line in listing) if len(cols) >= 3}
    for image in images:
        if (image["name"], image["manifest_digest"]) in present:
            continue
        log(f"importing {image['name']} into containerd")
        ctr("images", "import", image["archive"])


# --- certificates and kubeconfigs --------------------------------------------------------------

def openssl(*args: str) -> None:
    run(["openssl", *args], capture=True)


def issue_cert(name: str, subject: str, usage: str, sans: list[str] | None = None) -> None:
    """Key + certificate signed by our CA. usage: serverAuth or clientAuth."""
    key, crt = PKI_DIR / f"{name}.key", PKI_DIR / f"{name}.crt"
    if crt.exists() and key.exists():
        return
    ext = PKI_DIR / f"{name}.ext"
    lines = ["[v3]", "basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment", f"extendedKeyUsage={usage}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    csr = PKI_DIR / f"{name}.csr"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", subject,
            "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(PKI_DIR / "ca.crt"),
            "-CAkey", str(PKI_DIR / "ca.key"),
            "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", str(ext), "-extensions", "v3",
            "-out", str(crt))
    csr.unlink()
    ext.unlink()


def kubeconfig(path: Path, cert: str, server: str = f"https://127.0.0.1:{API_PORT}") -> None:
    def b64(name: str) -> str:
        return base64.b64encode((PKI_DIR / name).read_bytes()).decode()

    path.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: bodywork-test
          cluster:
            server: {server}
            certificate-authority-data: {b64("ca.crt")}
        users:
        - name: {cert}
          user:
            client-certificate-data: {b64(cert + ".crt")}
            client-key-data: {b64(cert + ".key")}
        contexts:
        - name: bodywork-test
          context: {{cluster: bodywork-test, user: {cert}, namespace: default}}
        current-context: bodywork-test
        """))
    path.chmod(0o600)


def generate_pki() -> None:
    """CA, serving and client certificates, the service-account key pair, and a kubeconfig per client."""
    PKI_DIR.mkdir(parents=True, exist_ok=True)
    PKI_DIR.chmod(0o700)
    if not (PKI_DIR / "ca.crt").exists():
        openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", str(PKI_DIR / "ca.key"),
                "-subj", "/CN=bodywork-test-ca", "-days", "3650", "-sha256", "-out", str(PKI_DIR / "ca.crt"))
    if not (PKI_DIR / "sa.key").exists():
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(PKI_DIR / "sa.key"))
        openssl("pkey", "-in", str(PKI_DIR / "sa.key"), "-pubout", "-out", str(PKI_DIR / "sa.pub"))
    issue_cert("apiserver", "/CN=kube-apiserver", "serverAuth", [
        "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost",
        "IP:127.0.0.1", f"IP:{API_SERVICE_IP}", f"IP:{NODE_IP}"])
    issue_cert("kubelet-serving", f"/CN={NODE_NAME}", "serverAuth",
               [f"DNS:{NODE_NAME}", "DNS:localhost", "IP:127.0.0.1", f"IP:{NODE_IP}"])
    clients = {
        "admin": "/O=system:masters/CN=bodywork-admin",
        "apiserver-kubelet-client": "/CN=kube-apiserver-kubelet-client",
        "controller-manager": "/CN=system:kube-controller-manager",
        "scheduler": "/CN=system:kube-scheduler",
        "kubelet": f"/O=system:nodes/CN=system:node:{NODE_NAME}",
        "kube-proxy": "/CN=system:kube-proxy",
        "coredns": "/CN=system:coredns",
    }
    for name, subject in clients.items():
        issue_cert(name, subject, "clientAuth")
    for name in ["controller-manager", "scheduler", "kubelet", "kube-proxy", "coredns"]:
        if not (CONFIG_DIR / f"{name}.kubeconfig").exists():
            kubeconfig(CONFIG_DIR / f"{name}.kubeconfig", name)
    if not ADMIN_KUBECONFIG.exists():
        kubeconfig(ADMIN_KUBECONFIG, "admin")


# --- host networking ---------------------------------------------------------------------------

def uplink_mtu() -> int:
    """MTU of the default-route interface: pods use it too, so large packets are not silently dropped."""
    route = run(["ip", "-4", "route", "show", "default"], capture=True, check=False).stdout.split()
    if "dev" in route:
        mtu_file = Path(f"/sys/class/net/{route[route.index('dev') + 1]}/mtu")
        if mtu_file.exists():
            return int(mtu_file.read_text())
    return 1500


def setup_host_network() -> None:
    for key, value in {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}.items():
        path = Path("/proc/sys") / key
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value)
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addresses = run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], capture=True).stdout
    if f" {NODE_IP}/" not in addresses:
        run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "mtu", str(uplink_mtu()), "up"])


# --- configuration files -----------------------------------------------------------------------

def write_configs() -> None:
    for folder in [CONFIG_DIR, CNI_CONF_DIR, CNI_IPAM_DIR, CONTAINERD_DIR, KUBELET_DIR, LOG_DIR, PID_DIR]:
        folder.mkdir(parents=True, exist_ok=True)
    write_if_changed(CONFIG_DIR / "containerd.toml", textwrap.dedent(f"""\
        version = 2
        root = "{CONTAINERD_DIR}/root"
        state = "{CONTAINERD_DIR}/state"
        disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                            "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
        [grpc]
          address = "{CONTAINERD_SOCK}"
        [ttrpc]
          address = "{CONTAINERD_SOCK}.ttrpc"
        [plugins."io.containerd.internal.v1.opt"]
          path = "{CONTAINERD_DIR}/opt"
        [plugins."io.containerd.grpc.v1.cri"]
          sandbox_image = "{PAUSE_IMAGE}"
          # Caps pods' oom_score_adj at containerd's own: on machines without CAP_SYS_RESOURCE (like the
          # CI VMs) runc cannot lower it to the kubelet's -998 for sandboxes and every pod fails to start.
          restrict_oom_score_adj = true
          [plugins."io.containerd.grpc.v1.cri".containerd]
            snapshotter = "overlayfs"
            default_runtime_name = "runc"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
              runtime_type = "io.containerd.runc.v2"
              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
                SystemdCgroup = false
          [plugins."io.containerd.grpc.v1.cri".cni]
            bin_dir = "/usr/lib/cni"
            conf_dir = "{CNI_CONF_DIR}"
        """))
    cni = {
        "cniVersion": "0.4.0", "name": "bodywork",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "mtu": uplink_mtu(),
             "ipam": {"type": "host-local", "dataDir": str(CNI_IPAM_DIR),
                      "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    write_if_changed(CNI_CONF_DIR / "10-bodywork.conflist", json.dumps(cni, indent=2))
    # JSON is YAML: the kubelet and kube-proxy read these files as is.
    kubelet_config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "0.0.0.0", "port": KUBELET_PORT, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(PKI_DIR / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(PKI_DIR / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(PKI_DIR / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",  # PID 1 is not systemd; cgroup v1 is only warned about in 1.34
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCK}",
        "failSwapOn": False,
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [CLUSTER_DNS_IP],
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        # Images cannot be pulled again (no registry): never garbage-collect them, never evict for disk.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        "podCIDR": POD_SUBNET,
        "podLogsDir": str(STATE_DIR / "pod-logs"),  # not /var/log/pods: `down` cleans up what it made
        "maxPods": 110,
    }
    write_if_changed(CONFIG_DIR / "kubelet.yaml", json.dumps(kubelet_config, indent=2))
    proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(CONFIG_DIR / "kube-proxy.kubeconfig")},
        "mode": "iptables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": NODE_NAME,
        "bindAddress": "0.0.0.0", "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},  # leave the host's conntrack table size alone
        "nodePortAddresses": ["primary"],  # NodePorts on the node IP only, not on every host address
    }
    write_if_changed(CONFIG_DIR / "kube-proxy.yaml", json.dumps(proxy_config, indent=2))
    write_if_changed(CONFIG_DIR / "Corefile", corefile())


def corefile() -> str:
    """Cluster names from the API (CoreDNS's kubernetes plugin), everything else from the host's resolver."""
    return textwrap.dedent(f"""\
        .:53 {{
            bind {CLUSTER_DNS_IP}
            errors
            health 127.0.0.1:{COREDNS_HEALTH_PORT}
            ready 127.0.0.1:{COREDNS_READY_PORT}
            kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
                kubeconfig {CONFIG_DIR / "coredns.kubeconfig"} bodywork-test
                pods insecure
                fallthrough in-addr.arpa ip6.arpa
                ttl 5
            }}
            forward . /etc/resolv.conf
            cache 30
            loop
        }}
        """)


def component_command(name: str) -> list[str]:
    pki, cfg = PKI_DIR, CONFIG_DIR
    commands = {
        "etcd": [
            str(BIN_DIR / "etcd"), "--name=bodywork", f"--data-dir={ETCD_DATA_DIR}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-cluster=bodywork=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--listen-metrics-urls=http://127.0.0.1:12381",
            "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
        ],
        "kube-apiserver": [
            str(BIN_DIR / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={NODE_IP}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            str(BIN_DIR / "kube-controller-manager"),
            f"--kubeconfig={cfg / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={cfg / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={cfg / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1", "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
        ],
        "kube-scheduler": [
            str(BIN_DIR / "kube-scheduler"),
            f"--kubeconfig={cfg / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={cfg / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={cfg / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1", "--leader-elect=false",
        ],
        "containerd": ["containerd", f"--config={cfg / 'containerd.toml'}"],
        "kubelet": [
            str(BIN_DIR / "kubelet"), f"--config={cfg / 'kubelet.yaml'}",
            f"--kubeconfig={cfg / 'kubelet.kubeconfig'}", f"--root-dir={KUBELET_DIR}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1",
        ],
        "kube-proxy": [str(BIN_DIR / "kube-proxy"), f"--config={cfg / 'kube-proxy.yaml'}"],
        "coredns": [str(CACHE_DIR / "coredns" / COREDNS_VERSION / "bin" / "coredns"), "-conf",
                    str(cfg / "Corefile")],
    }
    return commands[name]


# --- processes ---------------------------------------------------------------------------------

def process_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) is not running."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_pid(name: str) -> int | None:
    """The pid of a component we started, if that process is still alive."""
    pid_file = PID_DIR / f"{name}.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        # Not /proc/PID/cmdline: it reads empty for a moment while a large binary is being exec'd.
        program = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except (ValueError, OSError, IndexError):
        return None
    # The pid may have been reused by another program since we wrote it down.
    if not process_alive(pid) or Path(program).name != Path(component_command(name)[0]).name:
        return None
    return pid


COMPONENT_PORTS = {"etcd": ETCD_CLIENT_PORT, "kube-apiserver": API_PORT, "kubelet": KUBELET_PORT}


def ensure_port_free(name: str) -> None:
    """Fail clearly when another program holds a port we need (its health check would fool us)."""
    port = COMPONENT_PORTS.get(name)
    if port is None:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            raise ClusterError(
                f"{name} needs TCP port {port}, which another process holds ({error.strerror}); is another "
                f"cluster running? See `ss -ltnp 'sport = :{port}'`, or stop it with its own tooling"
            ) from None


def start_component(name: str) -> None:
    if read_pid(name):
        return
    ensure_port_free(name)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
    with log_path.open("a") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} starting {name} =====\n")
        out.flush()
        # Own session and no inherited pipes: the process outlives this script and never holds a caller's
        # stdout open (a `subprocess.run(capture_output=True)` of `up` returns as soon as `up` is done).
        process = subprocess.Popen(component_command(name), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    (PID_DIR / f"{name}.pid").write_text(str(process.pid))
    if name in RESTART_ON_CHANGE:
        started_with(name).write_text(sha256_file(CONFIG_DIR / RESTART_ON_CHANGE[name]))
    log(f"started {name} (pid {process.pid}, log {log_path})")


def stop_pid(pid: int, name: str, grace: float = 15.0) -> None:
    """SIGTERM the process group we started, then SIGKILL it after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaps it if it happens to be our child
        if not process_alive(pid):
            return
        time.sleep(0.2)
    log(f"{name} (pid {pid}) ignored SIGTERM; killing it")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_component(name: str) -> None:
    pid = read_pid(name)
    if pid:
        log(f"stopping {name} (pid {pid})")
        stop_pid(pid, name)
    (PID_DIR / f"{name}.pid").unlink(missing_ok=True)


# Components that read their configuration file only at start-up (kube-proxy exits by itself on a change).
RESTART_ON_CHANGE = {"kubelet": "kubelet.yaml", "coredns": "Corefile"}


def started_with(name: str) -> Path:
    """Where the hash of the configuration a running component was started with is kept."""
    return PID_DIR / f"{name}.config-sha256"


def restart_if_reconfigured(name: str) -> None:
    """Stop a running component started with another configuration than the current one (the next
    start_component reads the new one). A file rewritten and rewritten back restarts nothing."""
    current = sha256_file(CONFIG_DIR / RESTART_ON_CHANGE[name])
    if not read_pid(name):
        return
    record = started_with(name)
    if not record.exists():  # started before configurations were recorded: take it as current
        record.write_text(current)
    elif record.read_text() != current:
        log(f"{name}'s configuration changed: restarting it")
        stop_component(name)


def fail_with_log(name: str, message: str) -> None:
    log_path = LOG_DIR / f"{name}.log"
    raise ClusterError(f"{message}\n--- last lines of {log_path} ---\n{tail(log_path)}")


def wait_for(description: str, check: Callable[[], bool], component: str, timeout: float = 180.0) -> None:
    """Poll check() until it returns true; fail early, with the log, if the component died."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:
            last_error = f"{type(error).__name__}: {error}"
        if not read_pid(component):
            fail_with_log(component, f"{component} exited while waiting for {description}")
        time.sleep(1)
    fail_with_log(component, f"timed out after {timeout:.0f}s waiting for {description} ({last_error})")


# --- talking to the API server with the standard library --------------------------------------

def api_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.crt"))
    context.load_cert_chain(str(PKI_DIR / "admin.crt"), str(PKI_DIR / "admin.key"))
    return context


def api(method: str, path: str, body: dict[str, Any] | None = None,
        timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"https://127.0.0.1:{API_PORT}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=api_context(), timeout=timeout) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def api_ready() -> bool:
    return api("GET", "/readyz")[0] == 200


def node_ready() -> bool:
    status, node = api("GET", f"/api/v1/nodes/{NODE_NAME}")
    if status != 200 or not isinstance(node, dict):
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def default_service_account_exists() -> bool:
    return api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200


def allow_apiserver_to_reach_kubelet() -> None:
    """Bind the apiserver's kubelet client identity to system:kubelet-api-admin (logs, exec, port-forward)."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bodywork:apiserver-kubelet-client"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:kubelet-api-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "kube-apiserver-kubelet-client"}],
    }
    status, answer = api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    if status not in (201, 409):
        raise ClusterError(f"could not create the apiserver->kubelet RBAC binding: {status} {answer}")


def allow_coredns_to_read_services() -> None:
    """What CoreDNS's kubernetes plugin watches: services, endpointslices and namespaces."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "bodywork:coredns"},
        "rules": [{"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
                  {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                   "verbs": ["list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bodywork:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "bodywork:coredns"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}],
    }
    for kind, body in [("clusterroles", role), ("clusterrolebindings", binding)]:
        status, answer = api("POST", f"/apis/rbac.authorization.k8s.io/v1/{kind}", body)
        if status not in (201, 409):
            raise ClusterError(f"could not create the CoreDNS RBAC {kind}: {status} {answer}")


def coredns_ready() -> bool:
    url = f"http://127.0.0.1:{COREDNS_READY_PORT}/ready"
    return bool(urllib.request.urlopen(url, timeout=3).status == 200)


# --- commands ----------------------------------------------------------------------------------

def find_kubectl() -> str | None:
    built = BIN_DIR / "kubectl"
    return str(built) if built.exists() else shutil.which("kubectl")


def external_cluster() -> str | None:
    """KUBECONFIG naming a reachable cluster other than ours: use it instead of starting one."""
    path = os.environ.get("KUBECONFIG", "")
    if not path or not Path(path).is_file() or Path(path).resolve() == ADMIN_KUBECONFIG.resolve():
        return None
    kubectl = find_kubectl()
    if kubectl is None:
        log(f"KUBECONFIG={path} is set and no kubectl is available to check it; using it as is")
        return path
    probe = run([kubectl, "--kubeconfig", path, "get", "--raw", "/readyz", "--request-timeout=5s"],
                capture=True, check=False)
    if probe.returncode == 0:
        return path
    log(f"KUBECONFIG={path} is not reachable ({probe.stderr.strip()[:200]}); starting our own cluster")
    return None


def write_cluster_json(kubeconfig_path: str, external: bool = False,
                       helm: Path | None = None) -> dict[str, Any]:
    info = {
        "kubeconfig": kubeconfig_path,
        "stage_image": STAGE_IMAGE_SHORT,
        "stage_image_full": STAGE_IMAGE,
        "pause_image": PAUSE_IMAGE,
        "kubernetes_version": K8S_VERSION,
        "node_name": None if external else NODE_NAME,
        "external": external,
        "state_dir": str(STATE_DIR),
        "logs": str(LOG_DIR),
        "cluster_dns": None if external else CLUSTER_DNS_IP,
        "helm": str(helm) if helm else None,
        "kubectl": find_kubectl(),
    }
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    CLUSTER_JSON.write_text(json.dumps(info, indent=2) + "\n")
    return info


def cmd_build(_: argparse.Namespace) -> int:
    ensure_host_packages()
    build_kubernetes()
    build_coredns()
    log(f"helm {HELM_VERSION} at {build_helm()}")
    for image in build_images():
        log(f"image {image['name']} {image['manifest_digest']} at {image['archive']}")
    return 0


def cmd_helm(_: argparse.Namespace) -> int:
    """Print the path of the helm binary, building it first if needed (no root, no cluster)."""
    print(build_helm())
    return 0


def cmd_up(_: argparse.Namespace) -> int:
    started = time.monotonic()
    external = external_cluster()
    if external:
        write_cluster_json(external, external=True, helm=build_helm())
        log(f"using the cluster of KUBECONFIG={external}")
        print(external)
        return 0
    ensure_host_packages()
    build_kubernetes()
    build_coredns()
    helm = build_helm()  # not a cluster component, but the chart's tests need it: cached like the rest
    images = build_images()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    write_configs()
    generate_pki()
    setup_host_network()

    start_component("etcd")
    wait_for("etcd health", lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health", timeout=3).status == 200, "etcd", 60)
    start_component("kube-apiserver")
    wait_for("kube-apiserver /readyz", api_ready, "kube-apiserver", 180)
    allow_apiserver_to_reach_kubelet()
    allow_coredns_to_read_services()
    restart_if_reconfigured("coredns")
    start_component("coredns")
    start_component("kube-controller-manager")
    start_component("kube-scheduler")
    start_component("containerd")
    wait_for("the containerd socket", lambda: ctr("version", check=False).returncode == 0, "containerd", 60)
    import_images(images)
    restart_if_reconfigured("kubelet")  # e.g. a new clusterDNS; running pods are left alone
    start_component("kubelet")
    start_component("kube-proxy")
    wait_for(f"node {NODE_NAME} Ready", node_ready, "kubelet", 240)
    wait_for("the default ServiceAccount", default_service_account_exists, "kube-controller-manager", 120)
    wait_for("CoreDNS /ready", coredns_ready, "coredns", 60)
    for name in COMPONENTS:  # something that crashed after starting is not a working cluster
        if not read_pid(name):
            fail_with_log(name, f"{name} is not running")
    write_cluster_json(str(ADMIN_KUBECONFIG), helm=helm)
    log(f"cluster ready in {time.monotonic() - started:.0f}s; stage image {STAGE_IMAGE_SHORT}")
    print(ADMIN_KUBECONFIG)
    return 0


def our_shim_pids() -> list[int]:
    """containerd-shim processes serving our containerd (they outlive containerd by design)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(CONTAINERD_SOCK).encode() in argv:
            pids.append(int(proc.name))
    return pids


def remove_containers() -> list[str]:
    """Kill and delete every container of our containerd; return their network namespace paths."""
    netns: list[str] = []
    if not read_pid("containerd"):
        return netns
    for cid in ctr("containers", "ls", "-q", check=False).stdout.split():
        info = ctr("containers", "info", cid, check=False).stdout
        try:
            namespaces = json.loads(info)["Spec"]["linux"]["namespaces"]
            netns += [ns["path"] for ns in namespaces if ns.get("type") == "network" and ns.get("path")]
        except (ValueError, KeyError, TypeError):
            pass
        ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
    time.sleep(1)
    for cid in ctr("containers", "ls", "-q", check=False).stdout.split():
        ctr("tasks", "delete", "--force", cid, check=False)
        ctr("containers", "delete", cid, check=False)
    return sorted(set(netns))


def unmount_under(folder: Path) -> None:
    """Unmount everything mounted below folder (secrets, projected volumes, shm, rootfs), deepest first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point.startswith(str(folder) + "/"):
            mounts.append(mount_point)
    for mount_point in sorted(set(mounts), key=len, reverse=True):
        run(["umount", "-l", mount_point], check=False, capture=True)


def remove_cni_iptables_rules() -> None:
    """The bridge plugin's masquerade rules of pods whose CNI DEL never ran (we deleted the containers)."""
    saved = run(["iptables-save", "-t", "nat"], capture=True, check=False).stdout
    chains = set()
    for line in saved.splitlines():
        if line.startswith("-A POSTROUTING") and 'name: \\"bodywork\\"' in line:
            args = shlex.split(line)[2:]
            run(["iptables", "-t", "nat", "-D", "POSTROUTING", *args], check=False, capture=True)
            if "-j" in args:
                chains.add(args[args.index("-j") + 1])
    for chain in chains:
        run(["iptables", "-t", "nat", "-F", chain], check=False, capture=True)
        run(["iptables", "-t", "nat", "-X", chain], check=False, capture=True)


def cmd_down(args: argparse.Namespace) -> int:
    for name in ["coredns", "kubelet", "kube-proxy"]:
        stop_component(name)
    netns = remove_containers()
    stop_component("containerd")
    for pid in our_shim_pids():
        stop_pid(pid, "containerd-shim", grace=5)
    for name in ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]:
        stop_component(name)
    unmount_under(STATE_DIR)
    for path in netns:
        run(["umount", path], check=False, capture=True)
        Path(path).unlink(missing_ok=True)
    remove_cni_iptables_rules()
    if (BIN_DIR / "kube-proxy").exists():  # drop the KUBE-* chains kube-proxy left behind
        run([str(BIN_DIR / "kube-proxy"), "--cleanup"], check=False, capture=True)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE], check=False, capture=True)
    if args.purge:
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        log(f"removed {STATE_DIR}")
    else:
        # A later `up` starts a fresh cluster; certificates, logs and containerd's images are kept.
        for folder in [ETCD_DATA_DIR, KUBELET_DIR, CNI_IPAM_DIR, CONTAINERD_DIR / "state", PID_DIR,
                       STATE_DIR / "pod-logs"]:
            shutil.rmtree(folder, ignore_errors=True)
        CLUSTER_JSON.unlink(missing_ok=True)
    log("cluster stopped")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    print(f"kubernetes version: {K8S_VERSION}")
    print(f"stage image:        {STAGE_IMAGE_SHORT}  ({STAGE_IMAGE})")
    print(f"state folder:       {STATE_DIR}")
    built = "built" if (BIN_DIR / "build-info.json").exists() else "not built"
    print(f"binaries:           {BIN_DIR} ({built})")
    running = {name: read_pid(name) for name in COMPONENTS}
    for name, pid in running.items():
        print(f"  {name:<24} {'running, pid ' + str(pid) if pid else 'not running'}")
    healthy = False
    if all(running.values()):
        try:
            healthy = api_ready() and node_ready()
        except OSError as error:
            print(f"api server: {error}")
    print(f"kubeconfig:         {ADMIN_KUBECONFIG if ADMIN_KUBECONFIG.exists() else '(none yet)'}")
    print(f"cluster:            {'READY' if healthy else 'NOT READY'}")
    if CLUSTER_JSON.exists():
        print(f"{CLUSTER_JSON}:\n{CLUSTER_JSON.read_text()}", end="")
    return 0 if healthy else 3


@contextlib.contextmanager
def cluster_lock(command: str) -> Iterator[None]:
    """Serialize build/up/down across processes (pytest-xdist workers each run the session fixture)."""
    if command in ("status", "helm"):  # helm: build_go_tool serializes its own builds
        yield
        return
    lock_path = STATE_DIR.with_name(STATE_DIR.name + ".lock")  # outside the folder `down --purge` removes
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another cluster.py ({lock_path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build and cache binaries and images only").set_defaults(func=cmd_build)
    commands.add_parser("up", help="start the cluster (building what is missing)").set_defaults(func=cmd_up)
    down = commands.add_parser("down", help="stop the cluster and clean up")
    down.add_argument("--purge", action="store_true", help="also delete the state folder (images included)")
    down.set_defaults(func=cmd_down)
    commands.add_parser("status", help="show what runs").set_defaults(func=cmd_status)
    commands.add_parser("helm", help="print the path of the helm binary (building it when missing)"
                        ).set_defaults(func=cmd_helm)
    args = parser.parse_args(argv)
    try:
        with cluster_lock(args.command):
            code: int = args.func(args)
            return code
    except ClusterError as error:
        print(f"cluster.py {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
