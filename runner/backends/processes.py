"""Child processes for stages: started in their own session, read line by line, killed as a group.

A stage may start children of its own; killing only the direct child would leave them running, so
every stage gets a process group and is always stopped through it.

Processes are started off the event loop. ``asyncio.create_subprocess_exec`` forks, runs the child's
set-up (``preexec_fn``: the stage user, the death signal) and waits for its ``exec`` on the loop's
thread: 10-20 ms in which the service answers no webhook, each time a stage starts. Here one thread
of its own starts them, and the exit is watched through a pidfd (a thread where there is none).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import threading
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
        process: subprocess.Popen[bytes],
        output: tuple[asyncio.ReadTransport, asyncio.StreamReader],
        on_line: Callable[[str], None],
        isolation: Isolation | None = None,
    ) -> None:
        self.process = process
        self.isolation = isolation
        self._exited = _exit_of(process)
        self._pipe, self._output = output
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
            options = isolation.spawn_options(env)
        loop = asyncio.get_running_loop()
        spawn = asyncio.wrap_future(_SPAWNER.submit(_popen, argv, cwd, env, options))
        try:
            process = await asyncio.shield(spawn)
        except asyncio.CancelledError:  # whoever asked has gone: what was started is stopped at once
            spawn.add_done_callback(_stop_unwanted)
            raise
        if isolation is not None:
            isolation.started(process.pid, env)
        output = asyncio.StreamReader(limit=2 * MAX_LINE_BYTES, loop=loop)
        pipe, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output, loop=loop), process.stdout
        )
        return cls(process, (pipe, output), on_line, isolation)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def _pump(self, on_line: Callable[[str], None]) -> None:
        pending = b""
        while chunk := await self._output.read(65536):
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
        code = await asyncio.wait_for(asyncio.shield(self._exited), timeout)
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
            await asyncio.wait_for(asyncio.shield(self._exited), TERMINATE_GRACE_SECONDS)
        # Children may ignore SIGTERM or outlive the leader: the group is always finished off.
        self.signal_group(signal.SIGKILL)
        await asyncio.shield(self._exited)
        if self.isolation is not None:
            self.isolation.stopped(self.process.pid)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        # A detached grandchild (its own session) may still hold the output pipe open; the pipe is
        # released now rather than whenever that process ends.
        self._pipe.close()


# One thread, alive as long as the process: the death signal (PR_SET_PDEATHSIG) is sent when the
# *thread* that started a stage ends, so a pool that retires idle threads would kill stages.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage-spawner")


def _popen(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], options: dict[str, Any]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, **options,
    )


def _stop_unwanted(spawn: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if spawn.cancelled() or spawn.exception() is not None:
        return
    process = spawn.result()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdout is not None:
        process.stdout.close()
    _exit_of(process)  # reaps it


def _exit_of(process: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future of `process`'s exit code, set once it has exited (and been reaped)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    def settle(code: int) -> None:
        if not exited.done():
            exited.set_result(code)

    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # macOS, or Linux before 5.3: a thread waits instead
        def wait() -> None:
            code = process.wait()
            with contextlib.suppress(RuntimeError):  # the loop closed first
                loop.call_soon_threadsafe(settle, code)

        threading.Thread(target=wait, name=f"wait-{process.pid}", daemon=True).start()
        return exited

    def readable() -> None:  # the pidfd is readable once the process has exited
        loop.remove_reader(pidfd)
        os.close(pidfd)
        settle(process.wait())

    loop.add_reader(pidfd, readable)
    return exited
