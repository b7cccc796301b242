"""Scheduled re-runs: schedules declared in bodywork.yaml (or the service config) fire runs of their
environment through the same queue as a push. See docs/schedules.md."""
