"""The GitOps service: webhooks in, runs through ``runner``, commit statuses out.

Layer rule: ``gitops`` uses ``runner`` and never ``chatops`` (which plugs in through
:mod:`gitops.extensions`); each external library is imported by one adapter only: starlette by
``gitops.web``, uvicorn by ``gitops.commands.serve``, httpx by ``gitops.statuses.http``, sqlite3 by
``gitops.store`` (and pygit2 by ``runner.git_mirror``, which ``gitops.mirrors`` uses).
"""
