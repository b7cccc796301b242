"""Backends run stages somewhere: ``local`` (processes on this machine) and ``kubernetes``.

Each implements :class:`runner.backends.base.Backend`; :func:`create_backend` maps a name to one.
"""

from __future__ import annotations

import inspect
from typing import Any

from runner.backends.base import Backend

BACKEND_NAMES = ("local", "kubernetes")


def _backend_class(name: str) -> type[Any]:
    if name == "local":
        from runner.backends.local import LocalBackend

        return LocalBackend
    if name == "kubernetes":
        from runner.backends.kubernetes import KubernetesBackend

        return KubernetesBackend
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")


def backend_options(name: str) -> dict[str, object]:
    """The options the backend called `name` takes (its constructor's keyword arguments), each with
    its annotation, so that a configuration can be checked before the backend is built."""
    parameters = inspect.signature(_backend_class(name)).parameters
    found: dict[str, object] = {
        p.name: p.annotation for p in parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }
    if name == "kubernetes":  # the rest of its options are its settings' fields
        from dataclasses import fields

        from runner.backends.kubernetes.settings import KubernetesSettings

        found.update({f.name: f.type for f in fields(KubernetesSettings)})
    return found


def create_backend(name: str, **options: Any) -> Backend:
    """The backend called `name`, configured with `options` (see each backend's constructor)."""
    backend: Backend = _backend_class(name)(**options)
    return backend
