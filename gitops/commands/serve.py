"""``bodywork serve``: the GitOps service under uvicorn. The only module that uses uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gitops import logs
from gitops.extensions import ExtensionError, discover
from gitops.service import Service
from gitops.settings import Settings, SettingsError, load_settings
from gitops.web import create_app
from runner.errors import FatalError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the GitOps service: webhooks in, runs, commit statuses out",
        description="Run the GitOps service. Settings come from --config (YAML), then BODYWORK_* "
        "environment variables; secrets only from environment variables or mounted files.",
    )
    parser.add_argument(
        "--config", type=Path, default=os.environ.get("BODYWORK_CONFIG"),
        help="the service's YAML config file (default: $BODYWORK_CONFIG)",
    )
    parser.add_argument("--host", help="address to listen on (overrides the config)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides the config)")
    parser.add_argument(
        "--log-format", choices=logs.FORMATS,
        help="the service's log: text (default) or json, one JSON object per line (overrides the config)",
    )
    return parser


def serve(settings: Settings, sock: socket.socket | None = None, **service_options: Any) -> None:
    """Runs the service until it receives SIGINT/SIGTERM (or `sock`'s server is told to exit)."""
    server = build_server(settings, **service_options)
    asyncio.run(server.serve(sockets=[sock] if sock is not None else None))


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline on receiving a request's head.

    uvicorn times out idle keep-alive connections, but not one that sends its request line and
    headers a byte at a time (slowloris): those are closed once ``header_timeout`` has passed while
    the connection waits for a request head. The wait starts when the connection opens and again
    after each answer, so a busy keep-alive connection is never mistaken for a slow one."""

    header_timeout = 10.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        self._watchdog = self.loop.call_later(self._check_interval(), self._check_head)

    def _check_interval(self) -> float:
        return max(0.05, self.header_timeout / 4)

    def _check_head(self) -> None:
        if self.transport.is_closing():
            return
        # A request whose head is in is bounded by the body timeout and the handler, not here.
        head_awaited = self.conn.their_state is h11.IDLE
        if head_awaited and self.loop.time() - self._waiting_since >= self.header_timeout:
            self.transport.close()
            return
        self._watchdog = self.loop.call_later(self._check_interval(), self._check_head)

    def on_response_complete(self) -> None:
        self._waiting_since = self.loop.time()  # the next request's head is awaited from now
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._watchdog.cancel()
        super().connection_lost(exc)


class _Server(uvicorn.Server):
    """Tells the service when shutting down begins, before the open connections are waited for: the
    run pages' live streams then end (browsers reconnect later) instead of holding the graceful
    shutdown until its timeout."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.draining = True
        await super().shutdown(sockets)


def build_server(settings: Settings, **service_options: Any) -> uvicorn.Server:
    service = Service(settings, **service_options)
    app = create_app(service)
    limits = settings.limits
    protocol = type(
        "ServiceProtocol", (HeadTimeoutProtocol,), {"header_timeout": limits.header_timeout_seconds}
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the root logger, in the service's format
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=int(max(1, limits.keep_alive_seconds)),
        h11_max_incomplete_event_size=16 * 1024,  # request line and headers
    )
    return _Server(config, service)


def run(args: argparse.Namespace) -> int:
    try:
        extensions = discover()  # once: the instances that parse their sections are the ones started
        settings = load_settings(args.config, extensions=extensions)
    except (SettingsError, ExtensionError) as error:
        raise FatalError(str(error)) from None
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if overrides:
        if settings.public_url == f"http://{settings.host}:{settings.port}":  # the derived default
            host = overrides.get("host", settings.host)
            overrides["public_url"] = f"http://{host}:{overrides.get('port', settings.port)}"
        settings = dataclasses.replace(settings, **overrides)
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    logs.configure(args.log_format or settings.log_format, level)
    print(f"bodywork serve: listening on http://{settings.host}:{settings.port}", flush=True)
    serve(settings, extensions=extensions)
    return 0
