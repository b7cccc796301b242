"""GET /sources/{namespace}/{name}: where in-cluster stage pods download their code (the Kubernetes
backend decides; tests/helm/test_service_in_cluster.py shows it on the real cluster). Here: what the
endpoint answers before it asks a backend, and for a backend that ships code itself (local)."""

from __future__ import annotations

from tests.gitops.conftest import ServiceFactory


def test_a_download_without_a_bearer_token_is_refused_before_anything_else(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]:
        answer = service.client.get("/sources/team-a/kt-src-1", headers=headers)
        assert answer.status_code == 401
        assert "missing bearer token" in answer.json()["error"]


def test_a_service_whose_backend_ships_code_itself_serves_no_sources(make_service: ServiceFactory) -> None:
    service = make_service()  # the local backend
    answer = service.client.get("/sources/team-a/kt-src-1", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 404
    assert "does not serve sources" in answer.json()["error"]
