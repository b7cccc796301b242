"""``bodywork secrets create|list|delete``: secrets for stages on Kubernetes. Values are never printed.

A secret NAME of group GROUP is the Secret object ``GROUP-NAME`` in the pipeline's namespace, labelled
with the group; each ``--data KEY=VALUE`` becomes the env var KEY of every stage that names the secret.
"""

from __future__ import annotations

import argparse
from typing import Any

from runner.commands.cluster import add_cluster_arguments, connected, print_table
from runner.errors import FatalError

_NAMESPACE_HELP = "the pipeline's namespace (its `namespace`, or its name made a DNS label)"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "secrets",
        help="create, list or delete secrets that stages read as env vars (Kubernetes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a secret from KEY=VALUE pairs")
    create.add_argument("name", help="the secret's name, as stages name it under `secrets:`")
    create.add_argument("--group", required=True, help="the pipeline's secrets_group")
    create.add_argument(
        "--data", nargs="+", required=True, metavar="KEY=VALUE", help="the env vars the secret holds"
    )
    create.add_argument("--replace", action="store_true", help="replace a secret that already exists")
    add_cluster_arguments(create, namespace_help=_NAMESPACE_HELP + " (required)")
    listing = actions.add_parser("list", help="list secrets: names, groups and keys, never values")
    listing.add_argument("--group", help="only this group")
    add_cluster_arguments(listing, namespace_help="only this namespace (default: all)")
    delete = actions.add_parser("delete", help="delete a secret")
    delete.add_argument("name")
    delete.add_argument("--group", required=True)
    add_cluster_arguments(delete, namespace_help=_NAMESPACE_HELP + " (required)")
    return parser


def parse_data(pairs: list[str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FatalError(f"--data takes KEY=VALUE pairs; got {pair.split('=')[0]!r} without '='")
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise FatalError(f"--data key {key!r} is not a valid env var name (letters, digits, _)")
        data[key] = value
    return data


def run(args: argparse.Namespace) -> int:
    from runner.backends.kubernetes import inventory
    from runner.backends.kubernetes.errors import Conflict

    if args.action != "list" and not args.namespace:
        raise FatalError(f"say which namespace: --namespace NS ({_NAMESPACE_HELP})")
    with connected(args) as api:
        if args.action == "create":
            data = parse_data(args.data)
            try:
                replaced = inventory.create_secret(
                    api, args.namespace, args.group, args.name, data, replace=args.replace
                )
            except Conflict:
                raise FatalError(
                    f"secret {args.name} of group {args.group} already exists in namespace "
                    f"{args.namespace}; pass --replace to overwrite it"
                ) from None
            verb = "replaced" if replaced else "created"
            print(
                f"{verb} secret {args.name} (group {args.group}, keys {', '.join(sorted(data))}) "
                f"in namespace {args.namespace}"
            )
            return 0
        if args.action == "list":
            secrets = inventory.list_secrets(api, args.namespace, args.group)
            if not secrets:
                print("no secrets")
                return 0
            rows = [[s.namespace, s.group, s.name, ", ".join(s.keys), s.age] for s in secrets]
            print_table(rows, ["NAMESPACE", "GROUP", "NAME", "KEYS", "AGE"])
            return 0
        if not inventory.delete_secret(api, args.namespace, args.group, args.name):
            raise FatalError(f"no secret {args.name} of group {args.group} in namespace {args.namespace}")
        print(f"deleted secret {args.name} of group {args.group} in namespace {args.namespace}")
        return 0
