"""Benchmark: how fast slash commands are acknowledged while webhooks pour in.

Prints the p50/p99/max acknowledgement time of signed ``/bodywork status`` and ``/bodywork runs``
commands sent at ``--command-rate`` per second while GitHub webhooks arrive at ``--rate`` per second
(default 200/s) for ``--seconds`` (default 10 s). Slack allows 3 s; the target is p99 < 300 ms.

The service (``bodywork serve``), the Git server and the fake Slack each run in a process of their own,
so the load generator does not share their interpreters. Usage:
``.venv/bin/python benchmarks/bench_slack.py [--rate 200] [--seconds 10] [--command-rate 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_service import SECRET, delivery_for, served_pipeline  # noqa: E402
from service_load import GitServerProcess, percentile  # noqa: E402
from service_load import offered_load as _offered_load  # noqa: E402

from tests.chatops.slack_requests import SIGNING_SECRET, command_body, signed  # noqa: E402
from tests.gitops.gitserver import free_port  # noqa: E402
from tests.gitops.helpers import ServiceProcess, wait_until  # noqa: E402


class FakeSlackProcess:
    def __init__(self) -> None:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from tests.fakes.slack_api import FakeSlack;"
            "fake = FakeSlack().__enter__(); print(fake.api_base, fake.token, flush=True); sys.stdin.read()"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.api_base, self.token = self.process.stdout.readline().split()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


async def commands(port: int, rate: float, seconds: float) -> list[float]:
    """Signed slash commands at `rate` per second (open loop, each on a free connection)."""

    def request(index: int) -> tuple[bytes, dict[str, str]]:
        text = "status" if index % 2 else "runs acme/pipelines"
        body = command_body(text, "U0BENCH", response_url=f"https://hooks.slack.invalid/{index}")  # unique
        return body, signed(body, int(time.time()))

    latencies, answers, _ = await _offered_load(
        port, rate, seconds, request, connections=8, path="/slack/commands"
    )
    assert set(answers) <= {200}, answers
    return latencies


def _commands_in_process(
    port: int, rate: float, seconds: float, out: multiprocessing.Queue[list[float]]
) -> None:
    out.put(asyncio.run(commands(port, rate, seconds)))


async def offered_load(port: int, rate: float, seconds: float, sha: str) -> tuple[list[float], int, float]:
    """Webhooks pushing `sha` at `rate` per second, each body distinct; (latencies, accepted, duration)."""
    latencies, answers, duration = await _offered_load(port, rate, seconds, delivery_for(sha))
    return latencies, answers.get(202, 0), duration


async def both(port: int, args: argparse.Namespace, sha: str) -> tuple[list[float], list[float], int]:
    """Webhooks from this process; slash commands from a process of their own, so that neither
    sender's scheduling shows up in the other's latencies."""
    if args.without_slack:
        latencies, accepted, _ = await offered_load(port, args.rate, args.seconds, sha)
        return latencies, [], accepted
    results: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    sender = multiprocessing.Process(
        target=_commands_in_process, args=(port, args.command_rate, args.seconds, results)
    )
    sender.start()
    hooks = await offered_load(port, args.rate, args.seconds, sha)
    acks = await asyncio.to_thread(results.get, True, args.seconds + 60)
    sender.join(timeout=10)
    return hooks[0], acks, hooks[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--command-rate", type=float, default=5.0, help="slash commands per second")
    parser.add_argument(
        "--without-slack", action="store_true", help="baseline: no slack section, webhooks only"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-slack-") as folder:
        work = Path(folder)
        repo, sha = served_pipeline(work)
        git_http, slack = GitServerProcess(repo.bare.parent), FakeSlackProcess()
        try:
            config = work / "service.yaml"
            slack_section = (
                ""
                if args.without_slack
                else f"""
slack:
  bot_token_env: SLACK_BOT_TOKEN
  signing_secret_env: SLACK_SIGNING_SECRET
  api_base: {slack.api_base}
  channel: "#deploys"
  grants: [{{users: [U0BENCH]}}]
"""
            )
            config.write_text(f"""
service:
  data_dir: {work / "data"}
  backend: local
repositories:
  - url: {git_http.url("pipelines")}
    provider: github
    name: acme/pipelines
    webhook_secret_env: BENCH_SECRET
    deploy_branches: [main]
{slack_section}""")
            port = free_port()
            environ = {
                "BENCH_SECRET": SECRET,
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            }
            service = ServiceProcess(config, port, environ, work / "service.log").start()
            try:
                asyncio.run(offered_load(port, 20, 1, sha))  # warm up: mirror, venv, connections
                wait_until(
                    lambda: not service.client.get("/api/runs", params={"state": "queued"}).json()["runs"],
                    timeout=120,
                    what="warm-up runs",
                )
                hooks, acks, accepted = asyncio.run(both(port, args, sha))
            finally:
                service.stop()
        finally:
            git_http.close()
            slack.close()
    print(
        f"webhooks at an offered {args.rate:.0f}/s for {args.seconds:.0f} s: "
        f"{accepted} of {len(hooks)} accepted, "
        f"p50 {percentile(hooks, 50) * 1000:.1f} ms, p99 {percentile(hooks, 99) * 1000:.1f} ms"
    )
    if not acks:
        return 0
    print(
        f"slash commands at {args.command_rate:.0f}/s meanwhile ({len(acks)}): acknowledged "
        f"p50 {percentile(acks, 50) * 1000:.1f} ms, p99 {percentile(acks, 99) * 1000:.1f} ms, "
        f"max {max(acks) * 1000:.1f} ms (target p99 < 300 ms; Slack allows 3000 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
