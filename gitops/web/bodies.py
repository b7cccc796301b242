"""Request bodies read within bounds: a size per request, a byte budget across requests, a deadline.

Every way a body can go wrong ends as :class:`BodyRefused` with the answer to give (400, 408, 413,
429): a client that declares more than it sends and hangs up, one that drips bytes, one whose bodies
would together fill the memory. None of them reaches the log as a traceback.
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.requests import ClientDisconnect, Request

# A refused body is still read and dropped for this long (up to this many bytes), so that a client
# still sending gets the answer instead of a connection reset ("lingering close", as nginx does).
_DRAIN_SECONDS = 2.0
_DRAIN_BYTES = 64 * 1024 * 1024


class BodyRefused(Exception):
    """The body was not taken; `status` and `message` are the answer."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class ByteBudget:
    """Bytes of request bodies held at once by every request together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


def declared_length(request: Request) -> int | None:
    """The Content-Length as a number, None when absent; 400 when it is not a decimal number."""
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise BodyRefused(400, "the Content-Length header is not a number of bytes")
    return int(text)


async def read_body(request: Request, limit: int, budget: ByteBudget, timeout: float) -> bytes:
    """The whole body: at most `limit` bytes, within `timeout` seconds, while `budget` allows."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        await drain(request)
        raise BodyRefused(413, f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    held = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                if held + len(chunk) > limit:
                    raise BodyRefused(413, f"the body is larger than the limit of {limit} bytes")
                if not budget.take(len(chunk)):
                    raise BodyRefused(
                        429, "the service holds too many request bodies at once; retry shortly", 5
                    )
                held += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"the body was not received within {timeout:g} seconds") from None
    except ClientDisconnect:
        raise BodyRefused(400, "the client disconnected before sending the whole body") from None
    finally:
        budget.give(held)
    return b"".join(chunks)


async def drain(request: Request) -> None:
    """Reads and drops what the client is still sending, within bounds (see ``_DRAIN_SECONDS``).

    A client that asked ``Expect: 100-continue`` has sent nothing yet and gets the answer at once."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    deadline = time.monotonic() + _DRAIN_SECONDS
    dropped = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for chunk in request.stream():
                dropped += len(chunk)
                if dropped > _DRAIN_BYTES or time.monotonic() > deadline:
                    return
    except (TimeoutError, ClientDisconnect):
        return
