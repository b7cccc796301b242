"""Validation of a parsed bodywork.yaml (schema "1.1", and the older "1.0") into the typed model.

Pure: takes the plain values from :mod:`runner.yaml_io` and returns a :class:`Pipeline` or every problem
found, each as ``<dotted.path> -> <message>`` with the line it came from.

- :mod:`.keys`: the vocabulary (versions, each section's keys, value patterns, examples);
- :mod:`.checker`: reading one value in its type, reporting a problem with its path and line;
- :mod:`.document`: the version, the sections, ``pipeline:`` and ``logging:``, the cross-checks;
- :mod:`.stages`: each stage and its ``batch:`` or ``service:``.
"""

from __future__ import annotations

from runner.yaml_schema.checker import dotted
from runner.yaml_schema.document import describe, validate_document
from runner.yaml_schema.keys import K8S_NAME, OLD_SCHEMA_VERSION, SCHEMA_VERSION

__all__ = ["K8S_NAME", "OLD_SCHEMA_VERSION", "SCHEMA_VERSION", "describe", "dotted", "validate_document"]
