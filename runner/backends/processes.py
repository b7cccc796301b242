"""Child processes for stages: started in their own session, read line by line, killed as a group.

A stage may start children of its own; killing only the direct child would leave them running, so
every stage gets a process group and is always stopped through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.backends.isolation import Isolation

# A line longer than this is cut into pieces, so that output with no newlines cannot exhaust memory.
MAX_LINE_BYTES = 16 * 1024
# Time a stage gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE_SECONDS = 3.0

# Environment variables of the runner's own process that a stage inherits; everything else (the
# service's tokens and webhook secrets among them) stays out of stage processes.
INHERITED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST", "PIP_CERT", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy",
)


def stage_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"  # so that print() reaches the log as it happens
    env.update(extra)
    return env


# Colour and cursor sequences (ESC [ ... letter) mean nothing in a log viewer or a Slack message.
_TERMINAL_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def printable(raw: bytes) -> str:
    """Bytes from a stage as one readable line: terminal escapes dropped, invalid UTF-8 and other
    control characters replaced."""
    text = _TERMINAL_ESCAPES.sub("", raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    return "".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in text)


class StageProcess:
    """One running stage process; its output goes line by line to `on_line`."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        on_line: Callable[[str], None],
        isolation: Isolation | None = None,
    ) -> None:
        self.process = process
        self.isolation = isolation
        self._reader = asyncio.create_task(self._pump(on_line))

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        on_line: Callable[[str], None],
        isolation: Isolation | None = None,
    ) -> StageProcess:
        """With `isolation` (:mod:`runner.backends.isolation`) the stage dies with this process, is
        recorded until it stops, and runs as the stage user where there is one."""
        options: dict[str, Any] = {"start_new_session": True}
        if isolation is not None:
            env = isolation.prepare(argv, cwd, env)
            options = isolation.spawn_options()
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            **options,
        )
        if isolation is not None:
            isolation.started(process.pid, env)
        return cls(process, on_line, isolation)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def _pump(self, on_line: Callable[[str], None]) -> None:
        stream = self.process.stdout
        assert stream is not None
        pending = b""
        while chunk := await stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(printable(line))
            while len(pending) > MAX_LINE_BYTES:
                on_line(printable(pending[:MAX_LINE_BYTES]))
                pending = pending[MAX_LINE_BYTES:]
        if pending:
            on_line(printable(pending))

    async def wait(self, timeout: float | None = None) -> int:
        """The exit code; raises TimeoutError (leaving the process running) after `timeout` seconds."""
        code = await asyncio.wait_for(self.process.wait(), timeout)
        # The whole output has been read once the pipe closes, even if children still hold it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        return code

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def stop(self) -> None:
        """Stops the stage and every process it started: SIGTERM, then SIGKILL after a grace period."""
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), TERMINATE_GRACE_SECONDS)
        # Children may ignore SIGTERM or outlive the leader: the group is always finished off.
        self.signal_group(signal.SIGKILL)
        await self.process.wait()
        if self.isolation is not None:
            self.isolation.stopped(self.process.pid)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        # A detached grandchild (its own session) may still hold the output pipe open; the pipe and the
        # transport are released now rather than whenever that process ends.
        transport = getattr(self.process, "_transport", None)
        if transport is not None:
            transport.close()
