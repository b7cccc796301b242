"""The expected failures of the command line: each becomes exit code 1 and a readable message."""

from __future__ import annotations


class FatalError(Exception):
    """A failure the user can fix; the message names the problem and the fix.

    The one base of everything the command line reports as ``error: <message>`` with exit code 1:
    configuration errors (bodywork.yaml, the service's settings, extensions), Git errors, and a
    backend's errors (:class:`runner.backends.base.StageError`)."""
