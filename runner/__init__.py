"""The pipeline engine: bodywork.yaml, the DAG, stages, retries, time limits, rollbacks and backends.

Layer rule: ``runner`` knows nothing of webhooks, Git hosting or chat. It never imports ``gitops`` or
``chatops`` (import-linter contracts in pyproject.toml). Everything it tells the outside world goes out as
plain event dataclasses (:mod:`runner.events`) to whoever subscribed.
"""
