"""What the operator does for every kind: logs are JSON, and of several peered replicas exactly one acts
while the others stand by."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import Cluster, Kubectl, poll
from tests.fixtures.operator import OperatorProcess

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
PEERING_CRD = REPO / "charts" / "headwater" / "crds" / "clusterkopfpeerings.kopf.dev.yaml"


def suspended_export(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "headwater.dev/v1alpha1",
        "kind": "ExportJob",
        "metadata": {"name": name},
        "spec": {
            "database": {"secretRef": {"name": "db"}},
            "tasks": [{"name": "t", "select": "SELECT 1"}],
            "destination": {"volume": {"claimName": "exports"}},
            "suspend": True,
        },
    }


@pytest.fixture
def peered(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path, namespace: str
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two replicas peered under a fresh peering object, priorities 20 (acts) and 10 (stands by)."""
    cluster.kubectl("apply", "--server-side", "-f", str(PEERING_CRD))
    cluster.kubectl.wait("crd/clusterkopfpeerings.kopf.dev", "condition=Established")
    peering = f"peering-{namespace}"
    cluster.kubectl.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}}
    )
    replicas = tuple(
        OperatorProcess(
            cluster,
            tmp_path / f"replica-{priority}.log",
            arguments=("--log-format=json", f"--peering={peering}", f"--priority={priority}"),
        )
        for priority in (20, 10)
    )
    operator.stop()  # the session's standalone operator would act regardless of peering
    try:
        for replica in replicas:
            replica.start()
        yield replicas[0], replicas[1]
    finally:
        for replica in replicas:
            replica.stop()
        cluster.kubectl.delete("clusterkopfpeering", peering)
        operator.start()


def reconciled(replica: OperatorProcess, namespace: str, name: str) -> bool:
    return f"reconciled ExportJob {namespace}/{name}" in replica.log()


def test_of_two_peered_replicas_only_the_higher_priority_acts_and_logs_json(
    peered: tuple[OperatorProcess, OperatorProcess], kubectl: Kubectl, namespace: str
) -> None:
    active, standby = peered
    kubectl.apply(suspended_export("peered"))
    kubectl.wait("exportjob/peered", "condition=Ready", timeout=60)
    assert reconciled(active, namespace, "peered")
    assert not reconciled(standby, namespace, "peered")
    assert len(kubectl.get_json("jobs")["items"]) == 1
    for line in filter(None, active.log().splitlines()):
        record = json.loads(line)
        assert {"message", "timestamp", "severity"} <= set(record) or {"message", "levelname"} <= set(record)


@pytest.mark.slow
def test_the_standby_replica_takes_over_when_the_active_one_dies(
    peered: tuple[OperatorProcess, OperatorProcess], kubectl: Kubectl, namespace: str
) -> None:
    active, standby = peered
    active.kill()
    # The dead replica's keep-alive must expire (kopf's peering lifetime: 60 s) before the standby resumes.
    poll(lambda: "Resuming operations" in standby.log(), timeout=150, message="the standby never resumed")
    kubectl.apply(suspended_export("after-failover"))
    kubectl.wait("exportjob/after-failover", "condition=Ready", timeout=60)
    assert reconciled(standby, namespace, "after-failover")
