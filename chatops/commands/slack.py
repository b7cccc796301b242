"""``bodywork slack manifest --public-url URL [--socket-mode]``: prints the Slack app's manifest."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chatops.manifest import manifest


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "slack", help="Slack app set-up", description="Slack app set-up (see docs/chatops.md)."
    )
    actions = parser.add_subparsers(dest="slack_action", metavar="ACTION", required=True)
    printer = actions.add_parser(
        "manifest",
        help="print a Slack app manifest to paste into 'Create an app → From a manifest'",
        description="Prints the app manifest (JSON): bot scopes, the slash command, interactivity and, "
        "over HTTP, the request URLs under --public-url.",
    )
    printer.add_argument(
        "--public-url", help="the service's public base URL, e.g. https://bodywork.example.com"
    )
    printer.add_argument(
        "--socket-mode", action="store_true", help="use Socket Mode (no public URL; needs an app-level token)"
    )
    printer.add_argument("--command", default="/bodywork", help="the slash command (default: /bodywork)")
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.socket_mode and not args.public_url:
        print("error: --public-url is required unless --socket-mode is given (Slack must reach the service)")
        return 1
    if args.public_url and not args.public_url.startswith("https://") and not args.socket_mode:
        print("note: Slack only calls https:// request URLs; put the service behind TLS")
    print(json.dumps(manifest(args.public_url, args.socket_mode, args.command), indent=2))
    return 0
