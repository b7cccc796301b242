"""What the watches deliver, as plain data: the input of the progress reducers. No I/O.

:mod:`.watching` produces these from the API server's watch events and followed logs; the reducers in
:mod:`.job_progress` and :mod:`.rollout_progress` consume them, and their tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.backends.kubernetes.errors import KubeError

Obj = dict[str, Any]


@dataclass(frozen=True)
class Update:
    """An object was added, modified or deleted (the initial list arrives as ADDED)."""

    kind: str
    type: str
    obj: Obj


@dataclass(frozen=True)
class LogText:
    """A line of the followed log `key` (a pod's uid)."""

    key: str
    line: str


@dataclass(frozen=True)
class LogEnd:
    """The followed log `key` ended: its container ended, or following it failed."""

    key: str


@dataclass(frozen=True)
class Broken:
    """A watch gave up: the error says why (forbidden, unreachable, ...)."""

    error: KubeError


Observation = Update | LogText | LogEnd
Item = Observation | Broken
