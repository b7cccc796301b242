"""The service's own log: plain text by default, JSON lines with ``--log-format json`` (or
``service.log_format: json``), one object per record for a log shipper (Loki, Elasticsearch).

A record carries the run, environment and stage it is about: :func:`run_context` binds the run for
everything logged while it executes (tasks it starts inherit the binding, as context variables do), and
a call can name a stage with ``extra={"stage": name}``. A stage's own output is not here: it is in the
store, on the run page.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

FORMATS = ("text", "json")
CONTEXT_FIELDS = ("run_id", "environment", "stage")

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("bodywork_log_context")


@contextmanager
def run_context(**fields: str) -> Iterator[None]:
    """Adds `fields` (``run_id``, ``environment``, ``stage``) to every record logged inside."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the bound context on each record, unless the call named the field itself (``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get({}).items():
            if not getattr(record, key, None):
                setattr(record, key, value)
        return True


def record_context(record: logging.LogRecord) -> dict[str, str]:
    return {key: str(value) for key in CONTEXT_FIELDS if (value := getattr(record, key, None))}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context fields,
    and the traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        data: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_context(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-11-29 18:00:00,123 INFO gitops.runs: message [run_id=... environment=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        context = record_context(record)
        if context:
            text += " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]"
        return text


def configure(log_format: str = "text", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Sends every log record (uvicorn's too) to `stream` (stderr) in `log_format`."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
