"""The service's Prometheus metrics: the only module that imports prometheus_client.

Each :class:`~gitops.service.Service` owns one :class:`Metrics` with a registry of its own (two
services in one process, as in the tests, never share counters). The rest of the service calls the
small methods below and never touches a metric object, so the names, labels and buckets live here:

=====================================================  =================================================
``bodywork_webhooks_total{provider, answer}``          webhook deliveries and how they were answered
``bodywork_queue_depth``                               runs waiting in the queue (read at scrape time)
``bodywork_runs_total{environment, outcome}``          runs that ended, by final status
``bodywork_run_duration_seconds{environment, outcome}`` a run's time from its start to its end
``bodywork_stage_duration_seconds{stage, outcome}``    a stage's time from its first attempt to its end
``bodywork_status_calls_total{provider, outcome}``     calls to the commit status APIs (ok, failed)
``bodywork_slack_calls_total{method, outcome}``        calls to the Slack Web API (counted by ChatOps)
``bodywork_store_write_seconds``                       a group commit of the store (before fsync)
=====================================================  =================================================
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gitops.store import RunRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`Metrics.exposition`."""

# Pipelines run from seconds (a print stage) to hours (training).
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
# A commit is an fsync: well under a millisecond on tmpfs, tens of milliseconds on a busy disk.
_WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, float("inf"))


def _outcome(ok: bool) -> str:
    return "ok" if ok else "failed"


class Metrics:
    """The counters and histograms of one service; `queue_depth` is asked at each scrape."""

    def __init__(self, queue_depth: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._webhooks = Counter(
            "bodywork_webhooks", "Webhook deliveries by provider and answer",
            ["provider", "answer"], registry=registry,
        )
        self._runs = Counter(
            "bodywork_runs", "Runs that ended, by environment and final status",
            ["environment", "outcome"], registry=registry,
        )
        self._run_seconds = Histogram(
            "bodywork_run_duration_seconds", "Time from a run's start to its end",
            ["environment", "outcome"], buckets=_DURATION_BUCKETS, registry=registry,
        )
        self._stage_seconds = Histogram(
            "bodywork_stage_duration_seconds", "Time from a stage's first attempt to its end",
            ["stage", "outcome"], buckets=_DURATION_BUCKETS, registry=registry,
        )
        self._status_calls = Counter(
            "bodywork_status_calls", "Calls to the commit status APIs by provider and outcome",
            ["provider", "outcome"], registry=registry,
        )
        self._slack_calls = Counter(
            "bodywork_slack_calls", "Calls to the Slack Web API by method and outcome",
            ["method", "outcome"], registry=registry,
        )
        self._store_write = Histogram(
            "bodywork_store_write_seconds", "Duration of one group commit of the store, before its fsync",
            buckets=_WRITE_BUCKETS, registry=registry,
        )
        depth = Gauge("bodywork_queue_depth", "Runs waiting in the queue", registry=registry)
        if queue_depth is not None:
            depth.set_function(lambda: float(queue_depth()))

    # -- what the service reports ---------------------------------------------------------------

    def webhook(self, provider: str, answer: str) -> None:
        """A delivery to ``/webhooks/<provider>`` answered `answer` (accepted, ignored, unauthorized...)."""
        self._webhooks.labels(provider, answer).inc()

    def run_changed(self, run: RunRecord) -> None:
        """Each change of a run's status; counts the final ones (a run reaches one final status once)."""
        if not run.state.is_final:
            return
        self._runs.labels(run.environment, run.state.value).inc()
        if run.started_at is not None and run.finished_at is not None:
            seconds = max(0.0, run.finished_at - run.started_at)
            self._run_seconds.labels(run.environment, run.state.value).observe(seconds)

    def stage_finished(self, stage: str, outcome: str, seconds: float) -> None:
        self._stage_seconds.labels(stage, outcome).observe(max(0.0, seconds))

    def status_call(self, provider: str, ok: bool) -> None:
        """One call to a commit status API; `ok` when it was answered 2xx."""
        self._status_calls.labels(provider, _outcome(ok)).inc()

    def slack_call(self, method: str, ok: bool) -> None:
        """One call to the Slack Web API (``chat.postMessage``, ...); for ChatOps, through
        ``service.metrics``. `ok` when Slack answered ``"ok": true``."""
        self._slack_calls.labels(method, _outcome(ok)).inc()

    def store_write(self, seconds: float) -> None:
        self._store_write.observe(seconds)

    # -- scraping -------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
