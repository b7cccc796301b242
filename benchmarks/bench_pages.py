"""Benchmark of the run page: its first render with 10,000 log lines (target: < 300 ms).

Prints, over a few repetitions (median and worst):
1. the server's answer: the time to the last byte of ``GET /runs/{id}`` on loopback (store reads,
   the Jinja2 template, the HTML over HTTP), and the page's size;
2. the template alone (no HTTP; the lines already read from the store);
3. in headless Chromium (Debian's chromium and chromium-driver, when installed): navigation start to
   the first contentful paint and to the load event (``performance`` timings of the page).

The service runs `bodywork serve` as a child process on a store prepared here: one finished run of
three stages whose 10,000 lines look like a training log (some carry ``<``, ``&`` and quotes, which
the page escapes). Usage: ``.venv/bin/python benchmarks/bench_pages.py [--lines 10000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from gitops.status import RunStatus  # noqa: E402
from gitops.store import LogRecord, NewRun, Store  # noqa: E402
from gitops.web import views  # noqa: E402
from gitops.web.templating import render_text  # noqa: E402
from tests.gitops.gitserver import free_port  # noqa: E402
from tests.gitops.helpers import ServiceProcess  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
STAGES = ("prepare-data", "train-model", "scoring-service")


def prepare(data_dir: Path, lines: int) -> str:
    """A store with one finished run of `lines` log lines; returns its id."""
    store = Store(data_dir / "store.sqlite3")
    try:
        new = NewRun("github:acme/pipelines", "github", "refs/heads/main", "a" * 40, "pipelines", None,
                     False, "deploy", "webhook", "bench")
        run = store.accept(new, []).run
        store.mark_running(run.id)
        store.set_pipeline(run.id, "train-and-serve", [[s] for s in STAGES], "pipelines")
        now = time.time()
        batch = []
        for index in range(lines):
            stage = STAGES[index * len(STAGES) // lines]
            text = (f"epoch {index // 100} batch {index % 100}: loss=0.{index % 997:03d} "
                    f"accuracy=0.{index % 991:03d} <lr & momentum> \"ok\"")
            batch.append((stage, text, now + index / 1000))
        store.add_logs(run.id, batch)
        for stage in STAGES:
            store.stage_started(run.id, stage, "batch", 1, now)
            store.stage_finished(run.id, stage, "succeeded", 1, now, now + 5, "")
        store.finish(run.id, RunStatus.SUCCEEDED, "")
        return run.id
    finally:
        store.close()


def template_only(data_dir: Path, run_id: str, repeat: int) -> list[float]:
    store = Store(data_dir / "store.sqlite3")
    try:
        run = store.get(run_id)
        assert run is not None
        stages, lines = store.stages(run_id), store.logs(run_id, 0, 10_000)
    finally:
        store.close()

    def fetch(after: int, limit: int) -> list[LogRecord]:
        return [x for x in lines if x.id > after][:limit]

    class Visitor:
        can_read, operator, user, csrf = True, False, "", ""

    context = {
        "run": run, "steps": views.stage_views(run, stages), "headline": views.headline(run),
        "duration": "", "commit_url": None, "stage_names": ["service", *STAGES], "stage": "", "search": "",
        "visitor": Visitor(),
    }
    timings = []
    for _ in range(repeat):
        context["log"] = views.LogLines(fetch)
        started = time.perf_counter()
        render_text("run.html", context)
        timings.append(time.perf_counter() - started)
    return timings


def in_chromium(url: str, repeat: int) -> list[tuple[float, float]] | None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return None
    os.environ["SE_MANAGER_PATH"] = "/nonexistent/selenium-manager"  # never fetch a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        timings = []
        for _ in range(repeat + 1):
            driver.get("about:blank")
            driver.get(url)
            paint, load = driver.execute_script(
                "var p = performance.getEntriesByName('first-contentful-paint')[0];"
                "var n = performance.getEntriesByType('navigation')[0];"
                "return [p ? p.startTime : -1, n.loadEventEnd];"
            )
            timings.append((paint / 1000, load / 1000))
        return timings[1:]  # the first load also starts the browser's caches
    finally:
        driver.quit()


def over_http(url: str, repeat: int) -> tuple[list[float], list[float], int]:
    """Times to the first and to the last byte of the page, and its size."""
    first, last, size = [], [], 0
    with httpx.Client(timeout=30) as client:
        client.get(url)  # warm: templates compiled, connection open
        for _ in range(repeat):
            started = time.perf_counter()
            with client.stream("GET", url) as response:
                chunks = response.iter_bytes()
                size = len(next(chunks))
                first.append(time.perf_counter() - started)
                size += sum(len(chunk) for chunk in chunks)
            last.append(time.perf_counter() - started)
    return first, last, size


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:6.1f} ms, worst {max(values) * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        run_id = prepare(data_dir, args.lines)
        config = Path(folder) / "service.yaml"
        config.write_text(f"service:\n  data_dir: {data_dir}\n  backend: local\n")
        port = free_port()
        service = ServiceProcess(config, port, {}, Path(folder) / "service.log").start()
        try:
            url = f"http://127.0.0.1:{port}/runs/{run_id}"
            first, last, size = over_http(url, args.repeat)
            print(f"run page with {args.lines} log lines ({size / 1024:.0f} KiB of HTML)")
            print(f"  server, first byte over HTTP:       {summary(first)}")
            print(f"  server, last byte over HTTP:        {summary(last)}")
            alone = template_only(data_dir, run_id, args.repeat)
            print(f"  template alone (lines in memory):   {summary(alone)}")
            browser = in_chromium(url, args.repeat)
            if browser is None:
                print("  chromium: not installed (apt-get install chromium chromium-driver)")
            else:
                paints = [p for p, _ in browser]
                print(f"  chromium, first contentful paint:   {summary(paints)}   (target < 300 ms)")
                print(f"  chromium, load event:               {summary([load for _, load in browser])}")
            print(f"  (this machine's load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
