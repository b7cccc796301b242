"""The GitOps service: webhooks in, runs through ``runner``, commit statuses out.

Layer rule: ``gitops`` uses ``runner`` and never ``chatops``; each external library (starlette, uvicorn,
pygit2, httpx, sqlite3) is imported by one adapter module only (import-linter contracts in pyproject.toml).
"""
