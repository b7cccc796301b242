"""Source archives kept by an in-cluster service for its stage pods to fetch, and the tokens that open them.

When the service runs in the cluster, a run's code does not travel in ConfigMaps (which cap a
repository at a few MiB): the backend puts the run's archive on this shelf, under the namespace and
the name of the Secret that carries the run's token to its pods, and the pods download it from the
service (``GET /sources/<namespace>/<name>`` with the token as a bearer token).

A token is an HMAC of ``namespace/name`` under a key that never leaves the service's data folder, so
it opens that one archive and nothing else, and the service keeps no token table that a restart could
lose. The backend only serves an archive while the Secret still exists: once the run's objects are
gone (pruned, torn down, namespace deleted), its token no longer works.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
from pathlib import Path

_KEY_FILE = "shelf.key"
_SUFFIX = ".tar.gz"


class SourceShelf:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = self._load_key()

    def _load_key(self) -> bytes:
        path = self.folder / _KEY_FILE
        if not path.exists():
            # Written once, readable by the service only; O_EXCL: two processes never write two keys.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_bytes()
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        return path.read_bytes()

    def token(self, namespace: str, name: str) -> str:
        return hmac.new(self._key, f"{namespace}/{name}".encode(), hashlib.sha256).hexdigest()

    def opens(self, namespace: str, name: str, token: str) -> bool:
        """Whether `token` is the token of `namespace/name` (compared in constant time)."""
        return hmac.compare_digest(self.token(namespace, name).encode(), token.encode())

    def path(self, namespace: str, name: str) -> Path:
        if "/" in namespace or "/" in name or namespace.startswith(".") or name.startswith("."):
            raise ValueError(f"not a Kubernetes object name: {namespace}/{name}")
        return self.folder / namespace / f"{name}{_SUFFIX}"

    def put(self, namespace: str, name: str, archive: Path) -> Path:
        """Keeps a copy of `archive` as `namespace/name` (names carry the digest: an existing one is it)."""
        target = self.path(namespace, name)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
            shutil.copyfile(archive, partial)
            partial.rename(target)  # atomic: a pod never downloads half an archive
        return target

    def find(self, namespace: str, name: str) -> Path | None:
        target = self.path(namespace, name)
        return target if target.is_file() else None

    def names(self, namespace: str) -> list[str]:
        folder = self.folder / namespace
        if not folder.is_dir():
            return []
        return sorted(p.name.removesuffix(_SUFFIX) for p in folder.glob(f"*{_SUFFIX}"))

    def remove(self, namespace: str, name: str) -> None:
        self.path(namespace, name).unlink(missing_ok=True)

    def remove_namespace(self, namespace: str) -> None:
        if "/" not in namespace and not namespace.startswith("."):
            shutil.rmtree(self.folder / namespace, ignore_errors=True)
