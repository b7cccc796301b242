"""What one HTTP client may cost the service: the ``service.limits`` settings. Pure values.

A hostile client can open connections, send headers or bodies slowly, or send large unsigned bodies
(a GitHub signature can only be checked once the whole body is in). Each of these is bounded here;
``docs/service.md`` ("What a hostile client can cost") says what the bounds add up to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops.config_reader import ConfigReader


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 256
    """Open connections at once; beyond it uvicorn answers 503 (overload, not bad input)."""
    max_buffered_bytes: int = 64 * 1024 * 1024
    """Request bodies held in memory at once, across all requests; a body that would pass it answers
    429 with ``Retry-After``, so a few large unsigned bodies cannot take the process's memory."""
    header_timeout_seconds: float = 10.0
    """A connection that has not sent a complete request head this long after it opened (or after
    its previous answer) is closed: slow-drip headers hold no connection for long."""
    body_timeout_seconds: float = 30.0
    """A request body not received in full this long after its head answers 408."""
    keep_alive_seconds: float = 5.0
    """An idle keep-alive connection is closed after this long."""


_KEYS = ("max_connections", "max_buffered_bytes", "header_timeout_seconds", "body_timeout_seconds",
         "keep_alive_seconds")


def read_limits(reader: ConfigReader, raw: Any, path: str = "service.limits") -> HttpLimits:
    data: Mapping[str, Any] = reader.mapping(raw, path)
    reader.unknown_keys(data, _KEYS, path)
    defaults = HttpLimits()
    return HttpLimits(
        max_connections=reader.integer(data, "max_connections", path, defaults.max_connections, 1),
        max_buffered_bytes=reader.integer(
            data, "max_buffered_bytes", path, defaults.max_buffered_bytes, 1024
        ),
        header_timeout_seconds=_positive(reader, data, "header_timeout_seconds", path,
                                         defaults.header_timeout_seconds),
        body_timeout_seconds=_positive(reader, data, "body_timeout_seconds", path,
                                       defaults.body_timeout_seconds),
        keep_alive_seconds=_positive(reader, data, "keep_alive_seconds", path, defaults.keep_alive_seconds),
    )


def _positive(reader: ConfigReader, data: Mapping[str, Any], key: str, path: str, default: float) -> float:
    value = reader.number(data, key, path, default)
    if value == 0:
        reader.problem(f"{path}.{key}", "must be more than 0 seconds")
        return default
    return value
