"""The operator does its whole job with the Helm chart's RBAC and nothing more: it runs here with a token
of the chart's ServiceAccount, exports end to end, grants a watching Connector's worker its status (no
`escalate` needed: it holds that permission itself), and is refused everything it should not need."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from headwater_localcluster.services import PostgresServer, S3Server

from tests.e2e.test_exportjob import ROWS, ExportSetup, export_setup
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import OperatorProcess
from tests.integration.test_helm_chart import Clients, Release, install, uninstall

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.s3]

WATCHER = {
    "apiVersion": "headwater.dev/v1alpha1",
    "kind": "Connector",
    "metadata": {"name": "watcher"},
    "spec": {
        "type": "file",
        "mapping": {"name": "energy_hourly"},
        "database": {"secretRef": {"name": "db"}},
        "file": {"volume": {"claimName": "landing", "path": "incoming"}, "watch": True},
    },
}


@pytest.fixture
def chart_release(cluster: Cluster, crds: list[str]) -> Iterator[Release]:
    clients = Clients(cluster.kubeconfig)
    release = install(clients, {})  # parked: its own operator pods never run
    yield release
    uninstall(clients, release)


def token_kubeconfig(cluster: Cluster, release: Release, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount with a short-lived token."""
    account = release.account.rsplit(":", 1)[1]
    token = cluster.kubectl("create", "token", account, f"--namespace={release.namespace}", "--duration=1h")
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "chart-operator", "user": {"token": token.strip()}}]
    for context in config["contexts"]:
        context["context"]["user"] = "chart-operator"
    path.write_text(yaml.safe_dump(config))
    return path


def test_operator_exports_end_to_end_under_the_charts_service_account(
    cluster: Cluster,
    operator: OperatorProcess,
    chart_release: Release,
    restricted_namespace: str,
    postgres: PostgresServer,
    database: str,
    s3: S3Server,
    bucket: str,
    tmp_path: Path,
) -> None:
    setup: ExportSetup = export_setup(cluster, restricted_namespace, database, s3, bucket)
    chart_operator = OperatorProcess(
        cluster,
        tmp_path / "operator.log",
        kubeconfig=token_kubeconfig(cluster, chart_release, tmp_path / "kc"),
    )
    operator.stop()  # the session's operator runs as cluster admin: it must not help
    try:
        chart_operator.start()
        cluster.claim_folder(restricted_namespace, "landing")
        setup.kubectl.apply([setup.manifest("under-rbac"), WATCHER])
        setup.kubectl.wait("exportjob/under-rbac", "condition=Ready", timeout=120)
        assert setup.status("under-rbac")["tasks"][0]["rows"] == ROWS
        setup.kubectl.wait("connector/watcher", "condition=Ready", timeout=120)
        role = setup.kubectl.get_json("role", "watcher-status-writer")
        assert role["rules"][0]["resources"] == ["connectors/status"]
        setup.kubectl.get_json("rolebinding", "watcher-status-writer")
        # Refused by RBAC, that is: a namespace of an earlier test still terminating refuses new objects
        # with a 403 too, whoever asks.
        refused = [
            line
            for line in chart_operator.log().splitlines()
            if ("Forbidden" in line or " 403" in line) and "is being terminated" not in line
        ]
        assert refused == []
    finally:
        chart_operator.stop()
        operator.start()
    clients = Clients(cluster.kubeconfig)
    for verb, resource in (("get", "secrets"), ("list", "secrets"), ("create", "pods")):
        assert not clients.can_i(chart_release.account, verb, resource, "--all-namespaces"), (verb, resource)
