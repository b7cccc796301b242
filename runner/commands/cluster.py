"""The cluster options and output shared by ``services``, ``secrets`` and ``deployments``.

Kept apart from the commands so that each command module stays independent of the others (an
import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runner.errors import FatalError


def add_cluster_arguments(parser: argparse.ArgumentParser, *, namespace_help: str) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--in-cluster", action="store_true", help="use the service account of the pod this runs in"
    )
    parser.add_argument("--namespace", "-n", help=namespace_help)


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Any]:
    """A KubeApi for the cluster the arguments name; Kubernetes errors become FatalError."""
    from runner.backends.kubernetes.api import KubeApi
    from runner.backends.kubernetes.errors import KubeError

    try:
        api = KubeApi(kubeconfig=args.kubeconfig, context=args.context, in_cluster=args.in_cluster)
    except KubeError as error:
        raise FatalError(str(error)) from error
    try:
        yield api
    except KubeError as error:
        raise FatalError(str(error)) from error
    finally:
        api.close()


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
