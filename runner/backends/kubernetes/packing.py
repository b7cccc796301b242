"""Packs a run's checkout into a deterministic tar.gz, cut into ConfigMap-sized base64 chunks.

Deterministic (sorted names, zero mtimes and owners, no gzip timestamp) so the same tree always gives
the same digest, and the ConfigMaps named by it can be reused by every pod of the commit.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runner.backends.base import StageError

# A ConfigMap holds at most 1 MiB in total; keep a margin for the object's metadata.
CHUNK_BYTES = 900 * 1024
SKIPPED_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Archive:
    data: bytes
    digest: str

    def chunks(self, size: int = CHUNK_BYTES) -> list[str]:
        """The archive as base64 text (ConfigMap binaryData), `size` raw bytes per chunk."""
        pieces = [self.data[i : i + size] for i in range(0, len(self.data), size)] or [b""]
        return [base64.b64encode(piece).decode() for piece in pieces]


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isfile():
        info.mode = 0o755 if info.mode & 0o100 else 0o644
    elif info.isdir():
        info.mode = 0o755
    return info


def _write(source_dir: Path, out: BinaryIO, compresslevel: int) -> None:
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=compresslevel) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _walk(source_dir):
            relative = path.relative_to(source_dir).as_posix()
            tar.add(path, arcname=relative, recursive=False, filter=_normalized)


def pack_to_file(source_dir: Path, target: Path) -> str:
    """`source_dir` as a tar.gz written to `target`, streamed (no size limit); its sha256.

    For the service's downloads: a large repository never sits in memory, and compression level 6
    keeps packing a 50 MB checkout to seconds.
    """
    with target.open("wb") as out:
        _write(source_dir, out, compresslevel=6)
    digest = hashlib.sha256()
    with target.open("rb") as packed:
        for block in iter(lambda: packed.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack(source_dir: Path, *, max_chunks: int = 8) -> Archive:
    """`source_dir` (without .git and caches) as a tar.gz; StageError when it is too large to ship."""
    buffer = io.BytesIO()
    _write(source_dir, buffer, compresslevel=9)
    data = buffer.getvalue()
    limit = CHUNK_BYTES * max_chunks
    if len(data) > limit:
        raise StageError(
            f"the repository is {len(data) / 2**20:.1f} MiB once compressed; the Kubernetes backend ships "
            f"code in ConfigMaps and accepts at most {limit / 2**20:.1f} MiB: keep data and models out "
            "of the repository (download them in a stage instead), raise max_source_chunks, or run "
            "the service in the cluster (its stage pods download their code from it, with no limit)"
        )
    return Archive(data, hashlib.sha256(data).hexdigest())


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name in SKIPPED_DIRS and path.is_dir():
            continue
        found.append(path)
        if path.is_dir() and not path.is_symlink():
            found.extend(_walk(path))
    return found
