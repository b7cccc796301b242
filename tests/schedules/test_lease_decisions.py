"""Who holds the scheduler's Lease: the pure decision of runner.backends.kubernetes.lease."""

from __future__ import annotations

from typing import Any

import pytest

from runner.backends.kubernetes.lease import Observed, Step, decide, record_of


def lease(holder: str | None, renewed: str = "t1", transitions: int = 0) -> dict[str, Any]:
    spec = {"holderIdentity": holder, "renewTime": renewed, "leaseTransitions": transitions}
    return {"spec": {**spec, "leaseDurationSeconds": 15}}


OTHER = lease("pod-b")

# lease, what we observed (record, since), monotonic now -> step
CASES = [
    pytest.param(None, None, 100.0, Step.CREATE, id="no lease yet: create it"),
    pytest.param(lease("pod-a"), None, 100.0, Step.RENEW, id="ours: renew"),
    pytest.param(lease(None), None, 100.0, Step.TAKE_OVER, id="released: take over"),
    pytest.param(lease(""), None, 100.0, Step.TAKE_OVER, id="released (empty): take over"),
    pytest.param(OTHER, None, 100.0, Step.WAIT, id="held, never observed: wait"),
    pytest.param(
        OTHER, Observed(record_of(OTHER["spec"]), 90.0), 100.0, Step.WAIT, id="held, renewed 10 s ago"
    ),
    pytest.param(
        OTHER,
        Observed(record_of(OTHER["spec"]), 80.0),
        100.0,
        Step.TAKE_OVER,
        id="unchanged for longer than its duration: take over",
    ),
    pytest.param(
        lease("pod-b", renewed="t2"),
        Observed(record_of(OTHER["spec"]), 0.0),
        100.0,
        Step.WAIT,
        id="renewed since we looked: wait, whatever the clocks say",
    ),
]


@pytest.mark.parametrize(("current", "observed", "now", "step"), CASES)
def test_decide(current: dict[str, Any] | None, observed: Observed | None, now: float, step: Step) -> None:
    assert decide(current, "pod-a", observed, now, 15) is step
