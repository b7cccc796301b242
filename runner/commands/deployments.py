"""``bodywork deployments list|delete``: a deployment is one pipeline's objects in one environment
(namespace): its services, Jobs and code ConfigMaps, found by their labels."""

from __future__ import annotations

import argparse
from typing import Any

from runner.commands.cluster import add_cluster_arguments, connected, print_table
from runner.errors import FatalError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "deployments",
        help="list or delete pipelines deployed on Kubernetes",
        description=__doc__,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list deployed pipelines (every namespace unless --namespace)")
    add_cluster_arguments(listing, namespace_help="only this namespace (default: all)")
    delete = actions.add_parser("delete", help="delete a pipeline's services, Jobs and code (not secrets)")
    delete.add_argument("pipeline", help="the pipeline's name")
    delete.add_argument(
        "--with-namespace", action="store_true", help="also delete the namespace (and all it holds)"
    )
    add_cluster_arguments(delete, namespace_help="the deployment's namespace (required)")
    return parser


def run(args: argparse.Namespace) -> int:
    from runner.backends.kubernetes import inventory

    with connected(args) as api:
        if args.action == "list":
            deployments = inventory.list_deployments(api, args.namespace)
            if not deployments:
                print("no deployments")
                return 0
            rows = [
                [
                    d.namespace,
                    d.pipeline,
                    ", ".join(sorted(d.services)) or "-",
                    str(d.jobs),
                    ", ".join(sorted(c for c in d.commits if c)),
                    d.last_run,
                    d.last_at,
                ]
                for d in deployments
            ]
            print_table(rows, ["NAMESPACE", "PIPELINE", "SERVICES", "JOBS", "COMMITS", "LAST RUN", "AGE"])
            return 0
        if not args.namespace:
            raise FatalError("say which namespace: --namespace NS (see `bodywork deployments list`)")
        deleted = inventory.delete_deployment(
            api, args.namespace, args.pipeline, with_namespace=args.with_namespace
        )
    if not deleted:
        raise FatalError(f"nothing of pipeline {args.pipeline} in namespace {args.namespace}")
    summary = ", ".join(f"{count} {kind}" for kind, count in deleted.items())
    print(f"deleted pipeline {args.pipeline} in namespace {args.namespace}: {summary}")
    return 0
