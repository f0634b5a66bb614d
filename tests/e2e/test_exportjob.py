"""ExportJob end to end: kubectl apply → operator → Job on the local node → worker → PostgreSQL and S3."""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from headwater_localcluster.services import PostgresServer, S3Server

from tests.fixtures.cluster import Cluster, Kubectl, KubectlError, poll
from tests.fixtures.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.s3]

ROWS = 250


@dataclass
class ExportSetup:
    kubectl: Kubectl
    dsn: str
    s3: S3Server
    bucket: str

    def manifest(self, name: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "database": {"secretRef": {"name": "db"}},
            "tasks": [
                {
                    "name": "agency",
                    "select": "SELECT id, name FROM agency ORDER BY id",
                    "delete": "DELETE FROM agency",
                }
            ],
            "destination": {
                "s3": {
                    "bucket": self.bucket,
                    "prefix": "exports",
                    "endpoint": self.s3.endpoint_url,
                    "credentialsSecretRef": {"name": "s3"},
                }
            },
            "backoffLimit": 0,
        }
        body.update(spec)
        return {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "ExportJob",
            "metadata": {"name": name},
            "spec": body,
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.get_json("exportjob", name).get("status") or {})

    def wait_phase(self, name: str, *phases: str, timeout: float = 120) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        return poll(
            reached,
            timeout=timeout,
            message=lambda: f"exportjob {name} not in {phases}: {json.dumps(self.status(name))}",
        )

    def wait_ready(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """The status once Ready is True; on time-out, the status, the pods and their logs."""

        def ready() -> dict[str, Any] | None:
            status = self.status(name)
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            return status if conditions.get("Ready") == "True" else None

        return poll(ready, timeout=timeout, message=lambda: self.describe(name))

    def describe(self, name: str) -> str:
        pods = self.kubectl.get_json("pods", "-l", f"headwater.dev/exportjob={name}")["items"]
        logs = [self.kubectl("logs", p["metadata"]["name"], "--all-containers") for p in pods]
        return (
            f"exportjob {name}: {json.dumps(self.status(name), indent=1)}\n"
            f"pods: {json.dumps([p.get('status') for p in pods], indent=1)}\nlogs: {logs}"
        )

    def rows(self) -> int:
        with psycopg.connect(self.dsn) as connection:
            row = connection.execute("SELECT count(*) FROM agency").fetchone()
            assert row is not None
            return int(row[0])

    def objects(self) -> list[str]:
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listing.get("Contents", [])]


def export_setup(cluster: Cluster, namespace: str, database: str, s3: S3Server, bucket: str) -> ExportSetup:
    """A table of ROWS rows in `database`, and the Secrets an ExportJob in `namespace` refers to."""
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("CREATE TABLE agency (id integer PRIMARY KEY, name text NOT NULL)")
        connection.execute(
            "INSERT INTO agency SELECT i, 'agency ' || i || ', \"quoted\"' FROM generate_series(1, %s) AS i",
            (ROWS,),
        )
    kubectl = cluster.kubectl.in_namespace(namespace)
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db"},
                "stringData": {"dsn": database},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3"},
                "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            },
        ]
    )
    return ExportSetup(kubectl, database, s3, bucket)


@pytest.fixture
def setup(
    operator: OperatorProcess,
    cluster: Cluster,
    restricted_namespace: str,
    postgres: PostgresServer,
    database: str,
    s3: S3Server,
    bucket: str,
) -> ExportSetup:
    return export_setup(cluster, restricted_namespace, database, s3, bucket)


def test_one_off_export_reaches_ready_with_its_file_in_s3(setup: ExportSetup) -> None:
    setup.kubectl.apply(setup.manifest("kb"))
    setup.kubectl.wait("exportjob/kb", "condition=Ready", timeout=120)  # what users and GitOps tools do

    status = setup.status("kb")
    assert status["phase"] == "Succeeded"
    assert status["observedGeneration"] == 1
    [task] = status["tasks"]
    assert task["name"] == "agency"
    assert task["rows"] == ROWS
    [key] = setup.objects()
    assert task["uri"] == f"s3://{setup.bucket}/{key}"
    assert key.startswith("exports/agency-")
    assert key.endswith(".csv.gz")
    body = setup.s3.client().get_object(Bucket=setup.bucket, Key=key)["Body"].read()
    assert task["bytes"] == len(body)
    records = list(csv.reader(io.StringIO(gzip.decompress(body).decode())))
    assert records[0] == ["id", "name"]
    assert records[1] == ["1", 'agency 1, "quoted"']
    assert len(records) == ROWS + 1
    assert setup.rows() == 0, "the delete query runs after the verified upload"
    assert status["lastSuccessfulTime"]
    events = setup.kubectl.get_json("events", "--field-selector=involvedObject.name=kb")["items"]
    assert "Exported" in {event["reason"] for event in events}


def test_bad_sql_fails_with_a_clear_reason_and_deletes_nothing(setup: ExportSetup) -> None:
    manifest = setup.manifest(
        "bad-sql",
        tasks=[{"name": "agency", "select": "SELECT nope FROM agency", "delete": "DELETE FROM agency"}],
    )
    setup.kubectl.apply(manifest)
    status = setup.wait_phase("bad-sql", "Failed")
    assert status["reason"] == "InvalidQuery"
    assert "nope" in status["message"]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["status"] == "True"
    assert setup.rows() == ROWS
    assert setup.objects() == []


def test_missing_secret_stalls_without_running(setup: ExportSetup) -> None:
    manifest = setup.manifest("no-secret", database={"secretRef": {"name": "absent"}})
    setup.kubectl.apply(manifest)
    status = setup.wait_phase("no-secret", "Stalled")
    assert status["reason"] == "SecretNotFound"
    assert "absent" in status["message"]
    assert setup.rows() == ROWS
    # The Secret appears: the run proceeds without anyone touching the ExportJob.
    setup.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "absent"},
            "stringData": {"dsn": setup.dsn},
        }
    )
    setup.wait_ready("no-secret", timeout=120)


def test_scheduled_export_runs_as_a_cronjob(setup: ExportSetup) -> None:
    setup.kubectl.apply(setup.manifest("nightly", schedule="0 3 * * *", timeZone="Europe/Athens"))
    setup.wait_ready("nightly", timeout=60)
    assert setup.status("nightly")["phase"] == "Scheduled"
    [cronjob] = setup.kubectl.get_json("cronjobs")["items"]
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
    assert cronjob["spec"]["timeZone"] == "Europe/Athens"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert setup.kubectl.get_json("jobs")["items"] == []

    # Dropping the schedule turns it into a one-off export and retires the CronJob.
    setup.kubectl.apply(setup.manifest("nightly"))
    poll(lambda: setup.kubectl.get_json("cronjobs")["items"] == [], timeout=30, message="CronJob not retired")
    setup.wait_ready("nightly", timeout=120)
    assert setup.status("nightly")["phase"] == "Succeeded"


def test_reapplying_and_restarting_change_nothing(setup: ExportSetup, operator: OperatorProcess) -> None:
    manifest = setup.manifest("steady")
    setup.kubectl.apply(manifest)
    setup.wait_ready("steady", timeout=120)

    def children() -> dict[str, str]:
        found = {}
        for kind in ("jobs", "serviceaccounts", "cronjobs"):
            for item in setup.kubectl.get_json(kind)["items"]:
                found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        return found

    before = children()
    status_before = setup.status("steady")
    operator.restart()
    # The restarted operator resumes every ExportJob; give it time to do (nothing) for this one.
    resumed = f"reconciled ExportJob {setup.kubectl.namespace}/steady"
    poll(lambda: operator.log().count(resumed) >= 2 or None, timeout=30, message="operator did not resume")
    server_side = json.dumps(manifest)
    setup.kubectl(
        "apply", "--server-side", "--field-manager=kubectl-client-side-apply", "-f", "-", input=server_side
    )
    try:
        setup.kubectl("diff", "--server-side", "-f", "-", input=server_side)
    except KubectlError as error:  # exit 1 means a difference
        pytest.fail(f"the operator changed what the user applied:\n{error}")
    assert children() == before
    after = setup.kubectl.get_json("exportjob", "steady")
    assert after["metadata"]["generation"] == 1
    assert after["status"]["phase"] == "Succeeded"
    assert after["status"] == status_before, "a second reconcile rewrites no status (transition times kept)"
    bookkeeping = [
        key for key in after["metadata"].get("annotations") or {} if key.startswith("headwater.dev/")
    ]
    assert bookkeeping == [], "handling a change costs no write of the operator's own to the resource"


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    setup: ExportSetup, operator: OperatorProcess
) -> None:
    for index in range(3):
        setup.kubectl.apply(
            setup.manifest(f"crash-{index}", tasks=[{"name": "agency", "select": "SELECT 1"}])
        )
    operator.kill()
    operator.start()
    for index in range(3):
        setup.wait_ready(f"crash-{index}")
    jobs = [item["metadata"]["name"] for item in setup.kubectl.get_json("jobs")["items"]]
    assert sorted(jobs) == [f"crash-{index}-export-1" for index in range(3)]


def test_an_export_deleted_and_applied_again_runs_again(setup: ExportSetup) -> None:
    manifest = setup.manifest("again", tasks=[{"name": "agency", "select": "SELECT 1"}])
    setup.kubectl.apply(manifest)
    setup.wait_ready("again")
    first_run = setup.kubectl.get_json("job", "again-export-1")["metadata"]["uid"]
    first_owner = setup.kubectl.get_json("exportjob", "again")["metadata"]["uid"]
    setup.kubectl.delete("exportjob", "again", wait=True)
    setup.kubectl.apply(manifest)

    def rerun() -> dict[str, Any] | None:
        # The earlier run's Job keeps the name until the garbage collector deletes it: the new ExportJob
        # must wait for it, then run its own instead of reporting the old one's result.
        job = setup.kubectl.get_or_none("job", "again-export-1")
        owner = setup.kubectl.get_json("exportjob", "again")
        if job is None or job["metadata"]["uid"] == first_run:
            return None
        conditions = {c["type"]: c["status"] for c in (owner.get("status") or {}).get("conditions") or ()}
        return owner if conditions.get("Ready") == "True" else None

    again = poll(rerun, timeout=120, message="the ExportJob applied again did not run again")
    assert again["metadata"]["uid"] != first_owner
    assert again["status"]["phase"] == "Succeeded"


def test_unreachable_destination_is_retried_then_fails(setup: ExportSetup) -> None:
    manifest = setup.manifest("nowhere", backoffLimit=1)
    manifest["spec"]["destination"]["s3"]["endpoint"] = "http://127.0.0.1:9"
    setup.kubectl.apply(manifest)
    status = setup.wait_phase("nowhere", "Failed", timeout=240)
    assert status["reason"] == "DestinationUnavailable"
    [job] = setup.kubectl.get_json("jobs")["items"]
    assert job["status"]["failed"] == 2, "one retry after the first failure"
    assert setup.rows() == ROWS


def test_worker_pods_are_restricted_and_use_their_own_service_account(setup: ExportSetup) -> None:
    setup.kubectl.apply(setup.manifest("secure"))
    setup.wait_ready("secure", timeout=120)
    [pod] = setup.kubectl.get_json("pods", "-l", "headwater.dev/exportjob=secure")["items"]
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "secure-worker"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    rendered = json.dumps(pod)
    assert setup.dsn not in rendered, "the DSN travels only by Secret reference"


def test_metrics_count_reconciles(setup: ExportSetup, operator: OperatorProcess) -> None:
    setup.kubectl.apply(setup.manifest("measured"))
    setup.wait_ready("measured", timeout=120)
    metrics = operator.metrics()
    assert 'headwater_reconciles_total{kind="ExportJob",result="ok"}' in metrics
    assert "headwater_reconcile_duration_seconds_bucket" in metrics


def test_tasks_from_a_dsl_configmap_export_only_the_named_ones_to_a_volume(
    setup: ExportSetup, cluster: Cluster
) -> None:
    with psycopg.connect(setup.dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE source (id integer PRIMARY KEY)")
        connection.execute("INSERT INTO source SELECT generate_series(1, 5)")
    setup.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "dsl"},
                "data": {
                    "agency.select.sql": "COPY (SELECT * FROM agency ORDER BY id) TO STDOUT WITH CSV HEADER",
                    "agency.delete.sql": "DELETE FROM agency",
                    "source.select.sql": "SELECT * FROM source",
                    "source.delete.sql": "DELETE FROM source",
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "exports"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        ]
    )
    manifest = setup.manifest(
        "dsl",
        tasks=None,
        tasksFrom={"configMapRef": {"name": "dsl"}},
        only=["source"],
        destination={"volume": {"claimName": "exports", "path": "kb"}},
    )
    del manifest["spec"]["tasks"]
    setup.kubectl.apply(manifest)
    setup.wait_ready("dsl", timeout=120)
    [task] = setup.status("dsl")["tasks"]
    assert task["name"] == "source"
    assert task["rows"] == 5
    # The local node keeps a claim's files in a folder of its own root: the file is really there.
    folder = cluster.claim_folder(str(setup.kubectl.namespace), "exports") / "kb"
    [written] = list(folder.glob("source-*.csv.gz"))
    assert task["uri"] == f"pvc://exports/kb/{written.name}"
    assert gzip.decompress(written.read_bytes()).decode().splitlines() == ["id", "1", "2", "3", "4", "5"]
    assert setup.rows() == ROWS, "agency was not selected: its rows stay"
