"""examples/train-and-serve on the real cluster: Jobs prepare the data and train a scikit-learn model,
then the scoring service answers a POST through the API server's service proxy with a prediction."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.kubernetes import KubernetesBackend
from runner.backends.kubernetes.api import KubeApi
from runner.config import load_pipeline
from runner.engine import Engine, RunOutcome, RunRequest
from runner.events import EventBus, LogLine, StageFinished, StageState
from tests.kubernetes.conftest import KubeCluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-and-serve"
COMMIT = "e" * 40


@pytest.fixture
def environment(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"bw-example-{uuid.uuid4().hex[:8]}"
    yield name
    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    api.delete("Namespace", name)
    api.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_and_serve_deploys_and_the_service_predicts(
    kube_cluster: KubeCluster, environment: str, tmp_path: Path
) -> None:
    source = shutil.copytree(EXAMPLE, tmp_path / "train-and-serve")
    pipeline = load_pipeline(source)
    events: list[object] = []

    async def scenario() -> RunOutcome:
        backend = KubernetesBackend(
            kubeconfig=kube_cluster.kubeconfig, images={"*": kube_cluster.stage_image}
        )
        try:
            engine = Engine(backend, EventBus(events.append))
            return await engine.run(RunRequest(pipeline, source, COMMIT, environment=environment))
        finally:
            await backend.close()

    outcome = asyncio.run(scenario())
    logs = [e.line for e in events if isinstance(e, LogLine)]
    assert outcome.succeeded, f"{outcome.reason}\n" + "\n".join(logs[-40:])
    finished = {e.stage: e.state for e in events if isinstance(e, StageFinished)}
    assert finished == {
        "prepare-data": StageState.SUCCEEDED,
        "train-model": StageState.SUCCEEDED,
        "scoring-service": StageState.SUCCEEDED,
    }
    assert any(line.startswith("test accuracy") for line in logs)

    api = KubeApi(kubeconfig=kube_cluster.kubeconfig)
    try:
        measurements = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        status, body = api.service_proxy(
            "POST", environment, "scoring-service", 5000, "iris/v1/score", json_body=measurements
        )
    finally:
        api.close()
    assert status == 200, body[:500]
    answer = json.loads(body)
    assert answer["species_prediction"] == "setosa"
    assert answer["model_commit"] == COMMIT
