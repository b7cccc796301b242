"""Backends run stages somewhere: ``local`` (processes on this machine) and ``kubernetes``.

Each implements :class:`runner.backends.base.Backend`; :func:`create_backend` maps a name to one.
"""

from __future__ import annotations

from typing import Any

from runner.backends.base import Backend

BACKEND_NAMES = ("local", "kubernetes")


def create_backend(name: str, **options: Any) -> Backend:
    """The backend called `name`, configured with `options` (see each backend's constructor)."""
    if name == "local":
        from runner.backends.local import LocalBackend

        return LocalBackend(**options)
    if name == "kubernetes":
        from runner.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(**options)
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
