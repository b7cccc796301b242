"""``bodywork run``: runs a pipeline from a folder or a Git URL, showing progress as it happens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from runner.backends import BACKEND_NAMES, create_backend
from runner.backends.base import Backend
from runner.config import load_pipeline
from runner.console import ConsoleReporter
from runner.engine import Engine, RunRequest
from runner.errors import FatalError
from runner.events import EventBus
from runner.git_mirror import head_commit, uncommitted_changes
from runner.git_source import fetch_commit, is_git_url
from runner.model import Pipeline
from runner.secrets_file import load_secrets_file

# Appended to the commit of a folder whose files differ from it, as `git describe --dirty` does.
DIRTY_SUFFIX = "-dirty"

SECRETS_HELP = """\
secrets file format (YAML): `secrets:` maps secret names to {KEY: value}; `groups:` maps a
secrets_group to secrets of its own, used first by pipelines in that group. A stage's
`secrets: {ENV_VAR: secret-name}` reads key ENV_VAR of that secret."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a pipeline from a folder or a Git URL",
        description="Runs the bodywork.yaml pipeline of SOURCE. Services keep running until Ctrl-C.",
        epilog=SECRETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", nargs="?", default=".", help="a folder or a Git URL (default: .)")
    parser.add_argument("--branch", help="branch to clone, for a Git URL")
    parser.add_argument("--commit", help="commit to check out, for a Git URL (full or short SHA)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="local", help="default: local")
    parser.add_argument("--secrets-file", type=Path, help="YAML file of secrets for a local run")
    parser.add_argument("--namespace", help="Kubernetes namespace (default: the pipeline's)")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument(
        "--image", help="run every stage in this image instead of the pipeline's docker_image"
    )
    parser.add_argument(
        "--once", action="store_true",
        help="local backend: stop the services and exit after the run instead of serving until Ctrl-C",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bodywork-source-") as scratch:
        source_dir, commit = _resolve_source(args, Path(scratch))
        pipeline = load_pipeline(source_dir)
        for notice in pipeline.notices:
            print(f"notice: {notice}", file=sys.stderr)
        backend = create_backend(args.backend, **_backend_options(args, pipeline))
        request = RunRequest(pipeline, source_dir, commit, environment=args.namespace)
        return asyncio.run(_run_then_serve(backend, request, serve=args.backend == "local" and not args.once))


def _resolve_source(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    if is_git_url(args.source):
        print(f"fetching {args.source} ...", file=sys.stderr)
        return fetch_commit(args.source, scratch, args.branch, args.commit)
    if args.branch or args.commit:
        raise FatalError("--branch and --commit apply to a Git URL; for a folder, check it out first")
    folder = Path(args.source)
    if not folder.is_dir():
        raise FatalError(f"{args.source} is neither a folder nor a Git URL (https://, ssh://, file://)")
    commit = head_commit(folder)
    if commit is None:
        return folder, _content_hash(folder)
    changes = uncommitted_changes(folder)
    if changes:
        # The files run as they are, so the commit must not pass for what ran.
        commit = f"{commit}{DIRTY_SUFFIX}"
        shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
        print(
            f"notice: {folder} has uncommitted changes ({shown}); they run as they are, with "
            f"GIT_COMMIT_HASH={commit}; commit them, or stash them to run the commit itself",
            file=sys.stderr,
        )
    return folder, commit


def _content_hash(folder: Path) -> str:
    """A stand-in for GIT_COMMIT_HASH outside Git: the same files give the same 40 hex digits."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _backend_options(args: argparse.Namespace, pipeline: Pipeline) -> dict[str, Any]:
    if args.backend == "local":
        if args.secrets_file is None:
            return {}
        return {
            "secrets": load_secrets_file(args.secrets_file, pipeline.pipeline.secrets_group),
            "secrets_file": args.secrets_file,
        }
    if args.secrets_file is not None:
        raise FatalError(
            "--secrets-file is for local runs; on Kubernetes create the secrets in the cluster with "
            "`bodywork secrets create`"
        )
    options: dict[str, Any] = {}
    if args.kubeconfig is not None:
        options["kubeconfig"] = args.kubeconfig
    if args.image is not None:
        options["image"] = args.image
    return options


async def _run_then_serve(backend: Backend, request: RunRequest, serve: bool) -> int:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    engine = Engine(backend, EventBus(ConsoleReporter()))
    serving = False
    try:
        outcome = await engine.run(request)
        services = request.pipeline.service_stages()
        if serve and outcome.succeeded and services:
            for stage in services:
                assert stage.service is not None
                print(f"service {stage.name} is serving on http://127.0.0.1:{stage.service.port}/")
            print("press Ctrl-C to stop the services", flush=True)
            serving = True
            await asyncio.Event().wait()
        return 0 if outcome.succeeded else 1
    except asyncio.CancelledError:
        print("\nstopping the services ..." if serving else "\nrun interrupted", file=sys.stderr)
        # Stopping services the user was done with is the normal end of a successful run.
        return 0 if serving else 130
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await backend.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
