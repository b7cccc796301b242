"""A fake Socket Mode endpoint: the WebSocket that ``apps.connections.open`` hands out, on loopback.

``FakeSocketMode(slack)`` makes the fake Slack's ``apps.connections.open`` answer a one-time
``ws://127.0.0.1:PORT/link/?ticket=...`` URL. A client that connects gets ``hello``; the test then sends
envelopes (``send(type, payload)``) and waits for their acknowledgements (``{"envelope_id", "payload"?}``,
within 3 s, as Slack demands). ``disconnect()`` asks the client to reconnect with a fresh URL, as Slack
does every few hours. The WebSocket framing (RFC 6455) is written out here with the standard library:
client frames must be masked, pings are answered with pongs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .slack_api import MAX_MESSAGE_TEXT, FakeSlack
from .slack_blocks import block_errors

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ACK_SECONDS = 3.0


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    after: float
    """Seconds between the envelope and its acknowledgement."""


class ProtocolViolation(Exception):
    pass


def _frame(opcode: int, data: bytes) -> bytes:
    header = bytes([0x80 | opcode])
    if len(data) < 126:
        header += bytes([len(data)])
    elif len(data) < 65536:
        header += bytes([126]) + struct.pack("!H", len(data))
    else:
        header += bytes([127]) + struct.pack("!Q", len(data))
    return header + data


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(conn, 2)
    if not second & 0x80:
        raise ProtocolViolation("client frames must be masked (RFC 6455 5.1)")
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exact(conn, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exact(conn, 8))[0]
    mask = _read_exact(conn, 4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(conn, length)))
    return first & 0x0F, data


class _Connection:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.open = True

    def send(self, opcode: int, data: bytes) -> None:
        with self.lock:
            self.conn.sendall(_frame(opcode, data))

    def close(self) -> None:
        self.open = False
        with contextlib.suppress(OSError):
            self.send(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()


class FakeSocketMode:
    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.acks: dict[str, Ack] = {}
        self.violations: list[str] = []
        self.connections_made = 0
        self._tickets: set[str] = set()
        self._sent_at: dict[str, float] = {}
        self._current: _Connection | None = None
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        self._issue_url()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed = True
        if self._current is not None:
            self._current.close()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._server.close()
        self._thread.join(timeout=5)

    def _issue_url(self) -> None:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        port = self._server.getsockname()[1]
        self.slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id=A0FAKE"

    # What a test does.

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections_made >= count and self._current, timeout):
                raise TimeoutError(f"no Socket Mode client connected ({self.connections_made} connections)")

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Sends an envelope; returns its id."""
        envelope_id = f"{uuid.uuid4()}-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind in ("slash_commands", "interactive"),
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._cond:
            connection = self._current
            self._sent_at[envelope_id] = time.monotonic()
        if connection is None:
            raise ConnectionError("no client connected")
        connection.send(0x1, json.dumps(envelope).encode())
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"envelope {envelope_id} was not acknowledged")
            return self.acks[envelope_id]

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's ``disconnect`` message, then the socket closes; a new URL is handed out."""
        self._issue_url()
        with self._cond:
            connection, self._current = self._current, None
        if connection is not None:
            connection.send(0x1, json.dumps({"type": "disconnect", "reason": reason}).encode())
            connection.close()

    # Serving.

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return False
            request += chunk
        lines = request.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        target = lines[0].split(" ")[1]
        ticket = parse_qs(urlsplit(target).query).get("ticket", [""])[0]
        if ticket not in self._tickets or headers.get("upgrade", "").lower() != "websocket":
            self.violations.append(f"bad handshake: {lines[0]} (a ticket is good for one connection)")
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return False
        self._tickets.discard(ticket)
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest()
        ).decode()
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        return True

    def _serve(self, conn: socket.socket) -> None:
        if not self._handshake(conn):
            conn.close()
            return
        connection = _Connection(conn)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKE"}}
        connection.send(0x1, json.dumps(hello).encode())
        with self._cond:
            self._current = connection
            self.connections_made += 1
            self._cond.notify_all()
        try:
            self._read_loop(connection)
        except (ConnectionError, OSError):
            pass
        except ProtocolViolation as violation:
            self.violations.append(str(violation))
        finally:
            connection.open = False

    def _read_loop(self, connection: _Connection) -> None:
        while connection.open:
            opcode, data = _read_frame(connection.conn)
            if opcode == 0x9:
                connection.send(0xA, data)
            elif opcode == 0x8:
                return
            elif opcode == 0x1:
                self._on_text(data)

    def _on_text(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            envelope_id = message["envelope_id"]
        except (ValueError, KeyError, TypeError):
            self.violations.append(f"not an acknowledgement: {data[:200]!r}")
            return
        with self._cond:
            sent = self._sent_at.pop(envelope_id, None)
            if sent is None:
                self.violations.append(
                    f"acknowledged an unknown or already acknowledged envelope {envelope_id}"
                )
                return
            after = time.monotonic() - sent
            if after > ACK_SECONDS:
                self.violations.append(
                    f"envelope {envelope_id} acknowledged after {after:.1f}s (Slack allows 3 s)"
                )
            payload = message.get("payload")
            if payload is not None:
                self.violations += [f"envelope {envelope_id}: {p}" for p in _reply_problems(payload)]
            self.acks[envelope_id] = Ack(envelope_id, payload, after)
            self._cond.notify_all()


def _reply_problems(payload: Any) -> list[str]:
    """What Slack refuses in an acknowledgement's payload (a slash command's answer): as a message."""
    if not isinstance(payload, dict):
        return [f"the payload must be an object, not {payload!r:.100}"]
    text = payload.get("text")
    if not text and not payload.get("blocks"):
        return ["an answer needs text or blocks"]
    problems = block_errors(payload["blocks"]) if "blocks" in payload else []
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        problems.append(f"text: at most {MAX_MESSAGE_TEXT} characters, not {len(text)}")
    return problems
