"""``bodywork services list|delete``: the service stages deployed on Kubernetes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from runner.commands.cluster import add_cluster_arguments, connected, print_table
from runner.errors import FatalError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "services",
        help="list or delete the services deployed on Kubernetes",
        description="Lists the service stages deployed on Kubernetes (URL, replicas ready/total, "
        "commit, age), or deletes one with its Service and Ingress.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list services (every namespace unless --namespace)")
    add_cluster_arguments(listing, namespace_help="only this namespace (default: all)")
    delete = actions.add_parser("delete", help="delete a service: its Deployment, Service and Ingress")
    delete.add_argument("name", help="the service's name (its stage name, as `services list` shows it)")
    add_cluster_arguments(delete, namespace_help="the service's namespace (required)")
    return parser


def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {"list": _list, "delete": _delete}
    return handlers[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from runner.backends.kubernetes.inventory import list_services

    with connected(args) as api:
        services = list_services(api, args.namespace)
    if not services:
        print("no services deployed" + (f" in namespace {args.namespace}" if args.namespace else ""))
        return 0
    rows = [
        [
            s.namespace,
            s.name,
            s.url + (f" (ingress {s.ingress_path})" if s.ingress_path else ""),
            f"{s.ready}/{s.replicas}",
            s.commit[:12],
            s.age,
        ]
        for s in services
    ]
    print_table(rows, ["NAMESPACE", "NAME", "URL", "READY", "COMMIT", "AGE"])
    return 0


def _delete(args: argparse.Namespace) -> int:
    from runner.backends.kubernetes.inventory import delete_service

    if not args.namespace:
        raise FatalError(
            "say which namespace the service is in: --namespace NS (see `bodywork services list`)"
        )
    with connected(args) as api:
        deleted = delete_service(api, args.namespace, args.name)
    if not deleted:
        raise FatalError(
            f"no service {args.name} in namespace {args.namespace}; `bodywork services list` shows them"
        )
    print(f"deleted service {args.name} in namespace {args.namespace} ({', '.join(deleted)})")
    return 0
