"""The expected failures of the command line: each becomes exit code 1 and a readable message."""

from __future__ import annotations


class FatalError(Exception):
    """A failure the user can fix; the message names the problem and the fix."""
