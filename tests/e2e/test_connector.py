"""Connector end to end: kubectl apply → operator → CronJob / Deployment on the local node → ingest worker →
PostgreSQL, against files dropped on a volume or in an S3 bucket and a local fake of the Tago.io API.

Issue 4's acceptance:
- a file Connector with a mapping, a CSV dropped where it watches: the rows appear in the final table and
  the status figures match (`test_file_connector_*`, `test_file_watcher_*`);
- the same file again is a no-op (`test_file_connector_*`);
- the same, with the files in an S3 bucket (`test_s3_file_connector_*`);
- an HTTP Connector against the fake Tago server loads data hour by hour and resumes from its cursor after
  its pod is killed mid-run (`test_tago_connector_resumes_*`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_localcluster.services import PostgresServer, S3Server

from tests.fakes.apis import FakeTago, energy
from tests.fixtures.cluster import Cluster, Kubectl, poll
from tests.fixtures.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

CSV = "Date and Time,Hourly\n" + "".join(f"2024-03-01 {h:02d}:00,{h}.5\n" for h in range(24))


@dataclass
class Setup:
    cluster: Cluster
    kubectl: Kubectl
    namespace: str
    dsn: str

    def claim_folder(self, claim: str) -> Path:
        return self.cluster.claim_folder(self.namespace, claim)

    def connector(self, name: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"database": {"secretRef": {"name": "db"}}}
        body.update(spec)
        return {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": name},
            "spec": body,
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.get_json("connector", name).get("status") or {})

    def wait_status(self, name: str, check: Any, *, timeout: float, what: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if check(status) else None

        return poll(
            reached,
            timeout=timeout,
            interval=1.0,
            message=lambda: f"connector {name}: {what}; status {json.dumps(self.status(name))}",
        )

    def allowed(self, user: str, verb: str, connector: str, subresource: str = "") -> bool:
        """Whether the API server's authorizer lets `user` do `verb` on a Connector of this namespace."""
        attributes = {
            "namespace": self.namespace,
            "group": "headwater.dev",
            "resource": "connectors",
            "subresource": subresource,
            "name": connector,
            "verb": verb,
        }
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": attributes},
        }
        answer = json.loads(self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review)))
        return bool(answer["status"]["allowed"])

    def scalar(self, statement: str, *params: Any) -> Any:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(statement, params).fetchone()
        return None if row is None else row[0]

    def tables_ready(self) -> bool:
        return bool(self.scalar("SELECT to_regclass('public.fact_energy_hourly') IS NOT NULL"))


@pytest.fixture
def setup(
    operator: OperatorProcess, cluster: Cluster, namespace: str, postgres: PostgresServer, database: str
) -> Setup:
    kubectl = cluster.kubectl.in_namespace(namespace)
    kubectl.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"dsn": database}}
    )
    return Setup(cluster, kubectl, namespace, database)


def file_spec(**file: Any) -> dict[str, Any]:
    return {
        "type": "file",
        "mapping": {"name": "energy_hourly"},
        "datasourceId": "farm-meter-01",
        "file": {"volume": {"claimName": "landing", "path": "incoming"}, "stableSeconds": 1, **file},
    }


@pytest.mark.slow
def test_file_connector_loads_a_dropped_csv_and_the_same_file_again_is_a_noop(setup: Setup) -> None:
    landing = setup.claim_folder("landing")
    setup.kubectl.apply(setup.connector("meter-files", interval="1m", **file_spec()))
    status = setup.wait_status(
        "meter-files", lambda s: s.get("phase") == "Scheduled", timeout=60, what="not Scheduled"
    )
    assert status["workloadName"] == "meter-files-ingest"
    [cronjob] = setup.kubectl.get_json("cronjobs")["items"]
    assert cronjob["spec"]["schedule"] == "* * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"

    incoming = landing / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "march.csv").write_text(CSV)

    status = setup.wait_status(
        "meter-files", lambda s: s.get("rowsLoaded") == 24, timeout=180, what="rows never reported loaded"
    )
    assert setup.scalar("SELECT count(*) FROM fact_energy_hourly") == 24
    assert setup.scalar("SELECT sum(energy_kwh) FROM fact_energy_hourly") == sum(h + 0.5 for h in range(24))
    assert (status["batches"], status["rowsRejected"], status["qualityScore"]) == (1, 0, 1.0)
    assert status["lastBatchId"] == str(setup.scalar("SELECT id FROM ingest_batch"))
    assert status["lastSuccessfulTime"]
    assert status["lastRunTime"]
    assert (landing / "processed" / "march.csv").exists()
    assert not (incoming / "march.csv").exists()
    loaded_at = setup.scalar("SELECT max(created_at) FROM fact_energy_hourly")

    # The same file again: a duplicate, nothing changes.
    (incoming / "march.csv").write_text(CSV)
    poll(
        lambda: not (incoming / "march.csv").exists(),
        timeout=180,
        interval=1.0,
        message="the copy was never picked up",
    )
    status = setup.wait_status(
        "meter-files", lambda s: s.get("phase") == "Scheduled", timeout=60, what="run did not finish"
    )
    assert setup.scalar("SELECT count(*) FROM fact_energy_hourly") == 24
    assert setup.scalar("SELECT max(created_at) FROM fact_energy_hourly") == loaded_at
    assert setup.scalar("SELECT count(*) FROM ingest_batch") == 1
    assert (status["rowsLoaded"], status["batches"]) == (24, 1)


def keys(s3: S3Server, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_file_connector_loads_an_uploaded_csv_and_the_same_file_again_is_a_noop(
    setup: Setup, s3: S3Server, bucket: str
) -> None:
    setup.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3"},
                "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
            },
            setup.connector(
                "meter-s3",
                schedule="0 0 1 1 *",
                type="file",
                mapping={"name": "energy_hourly"},
                datasourceId="farm-meter-01",
                file={
                    "s3": {
                        "bucket": bucket,
                        "prefix": "incoming",
                        "endpoint": s3.endpoint_url,
                        "forcePathStyle": True,
                        "credentialsSecretRef": {"name": "s3"},
                    }
                },
            ),
        ]
    )
    setup.wait_status("meter-s3", lambda s: s.get("phase") == "Scheduled", timeout=60, what="not Scheduled")
    s3.client().put_object(Bucket=bucket, Key="incoming/march.csv", Body=CSV.encode())

    setup.kubectl("create", "job", "--from=cronjob/meter-s3-ingest", "meter-s3-first")
    setup.kubectl.wait("job/meter-s3-first", "condition=Complete", timeout=180)
    status = setup.wait_status(
        "meter-s3", lambda s: s.get("rowsLoaded") == 24, timeout=60, what="rows never reported loaded"
    )
    assert (status["batches"], status["rowsRejected"]) == (1, 0)
    assert setup.scalar("SELECT count(*) FROM fact_energy_hourly") == 24
    assert keys(s3, bucket) == ["processed/march.csv"]

    # The same file again: a duplicate, moved aside, nothing loaded.
    s3.client().put_object(Bucket=bucket, Key="incoming/march.csv", Body=CSV.encode())
    setup.kubectl("create", "job", "--from=cronjob/meter-s3-ingest", "meter-s3-again")
    setup.kubectl.wait("job/meter-s3-again", "condition=Complete", timeout=180)
    moved = keys(s3, bucket)
    assert len(moved) == 2
    assert all(key.startswith("processed/march.") for key in moved)
    assert setup.scalar("SELECT count(*) FROM ingest_batch") == 1
    assert setup.scalar("SELECT count(*) FROM fact_energy_hourly") == 24


def test_file_watcher_deployment_loads_dropped_files(setup: Setup) -> None:
    landing = setup.claim_folder("landing")
    setup.kubectl.apply(setup.connector("watcher", **file_spec(watch=True, pollSeconds=1)))
    setup.kubectl.wait("connector/watcher", "condition=Ready", timeout=90)
    assert setup.status("watcher")["phase"] == "Watching"
    [deployment] = setup.kubectl.get_json("deployments")["items"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert setup.kubectl.get_json("cronjobs")["items"] == []

    incoming = landing / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "march.csv").write_text(CSV)
    (incoming / "empty.csv").write_text("")
    poll(
        lambda: setup.tables_ready() and setup.scalar("SELECT count(*) FROM fact_energy_hourly") == 24,
        timeout=90,
        interval=1.0,
        message="rows never loaded",
    )
    poll(
        lambda: (landing / "rejected" / "empty.csv").exists(),
        timeout=30,
        message="the empty file was not moved to rejected",
    )
    assert (landing / "processed" / "march.csv").exists()

    # The watcher never terminates: it writes its figures into the status itself, after each load.
    status = setup.wait_status(
        "watcher",
        lambda s: (s.get("rowsLoaded"), s.get("batches")) == (24, 1),
        timeout=60,
        what="the watcher never wrote its figures",
    )
    assert status["rowsLoaded"] == setup.scalar("SELECT count(*) FROM fact_energy_hourly")
    assert status["batches"] == setup.scalar("SELECT count(*) FROM ingest_batch WHERE status = 'loaded'")
    assert status["lastLoadTime"]
    assert status["phase"] == "Watching", "the phase stays the operator's"
    connector = setup.kubectl.get_json("connector", "watcher", "--show-managed-fields")
    managers = {(f["manager"], f.get("subresource")) for f in connector["metadata"]["managedFields"]}
    assert ("headwater-worker", "status") in managers

    # With a token that may patch this Connector's status, and nothing else.
    worker = f"system:serviceaccount:{setup.namespace}:watcher-worker"
    assert setup.kubectl.get_json("role", "watcher-status-writer")["rules"][0]["resourceNames"] == ["watcher"]
    assert setup.allowed(worker, "patch", "watcher", "status")
    assert not setup.allowed(worker, "patch", "another", "status")
    assert not setup.allowed(worker, "patch", "watcher")
    assert not setup.allowed(worker, "list", "")

    # Suspending scales the watcher to zero; the operator's status writes keep the worker's figures.
    manifest = setup.connector("watcher", suspend=True, **file_spec(watch=True, pollSeconds=1))
    setup.kubectl.apply(manifest)
    poll(
        lambda: setup.kubectl.get_json("deployments")["items"][0]["spec"]["replicas"] == 0,
        timeout=30,
        message="not scaled to zero",
    )
    status = setup.wait_status(
        "watcher", lambda s: s.get("reason") == "Suspended", timeout=30, what="not reported suspended"
    )
    assert (status["rowsLoaded"], status["batches"]) == (24, 1)

    # Once it no longer watches, its grant goes with its Deployment.
    setup.kubectl.apply(setup.connector("watcher", schedule="0 0 1 1 *", **file_spec()))
    poll(
        lambda: (
            not any(
                setup.kubectl.get_json(kind)["items"] for kind in ("deployments", "roles", "rolebindings")
            )
        ),
        timeout=30,
        message="the watcher's Deployment, Role or RoleBinding was not deleted",
    )
    assert not setup.allowed(worker, "patch", "watcher", "status")


SOIL_MAPPING = """\
dataset: soil_moisture
granularity: raw
columns:
  "Zeit (UTC±)": ts
  "Feuchte (%)": moisture
coercions:
  ts: datetime
  moisture: float
primary_key: [device_id, ts]
validation_rules:
  schema:
    required: [ts, moisture]
conflict_resolution:
  strategy: update
  on_columns: [device_id, ts]
  update_columns: [moisture]
table:
  columns:
    moisture: numeric(5,2)
target_table: soil_moisture
staging_table: staging_soil_moisture
"""


def test_a_mapping_in_a_configmap_ingests_into_the_table_it_declares(setup: Setup) -> None:
    landing = setup.claim_folder("landing")
    setup.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "soil-mapping"},
            "data": {"soil.yaml": SOIL_MAPPING},
        }
    )
    spec = file_spec(watch=True, pollSeconds=1)
    spec["mapping"] = {"configMapRef": {"name": "soil-mapping", "key": "soil.yaml"}}
    setup.kubectl.apply(setup.connector("soil", **spec))
    assert not setup.scalar("SELECT to_regclass('public.soil_moisture') IS NOT NULL"), "nobody created it"

    incoming = landing / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "probe.csv").write_text(
        "Zeit (UTC±),Feuchte (%)\n2024-04-01T06:00:00+02:00,31.25\n2024-04-01T07:00:00+02:00,32\n",
        encoding="utf-8",
    )
    status = setup.wait_status(
        "soil", lambda s: s.get("rowsLoaded") == 2, timeout=120, what="rows never reported loaded"
    )
    assert status["batches"] == 1
    assert setup.scalar("SELECT sum(moisture)::text FROM soil_moisture") == "63.25"
    assert setup.scalar("SELECT min(ts) FROM soil_moisture") == datetime(2024, 4, 1, 4, tzinfo=UTC)


def test_an_interval_without_an_exact_cron_stalls_clearly(setup: Setup) -> None:
    setup.kubectl.apply(setup.connector("odd", interval="7m", **file_spec()))
    status = setup.wait_status("odd", lambda s: s.get("phase") == "Stalled", timeout=60, what="not Stalled")
    assert status["reason"] == "InvalidInterval"
    assert "7m" in status["message"]
    assert setup.kubectl.get_json("cronjobs")["items"] == []


@pytest.fixture
def tago() -> Iterator[FakeTago]:
    fake = FakeTago({"device-token-1": "meter-a"})
    fake.delay = 0.4  # slow enough to catch the run mid-way
    fake.start()
    yield fake
    fake.stop()


def test_tago_connector_resumes_from_its_cursor_after_its_pod_is_killed(setup: Setup, tago: FakeTago) -> None:
    setup.kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tago"},
                "stringData": {"meter-a": "device-token-1"},
            },
            setup.connector(
                "tago-energy",
                type="tago",
                schedule="0 0 1 1 *",
                mapping={"name": "api_energy_hourly"},
                deviceIds=["meter-a"],
                credentialsSecretRef={"name": "tago"},
                lookbackDays=1,
                http={"baseUrl": tago.url, "timeoutSeconds": 5, "maxRetries": 1},
            ),
        ]
    )
    setup.wait_status(
        "tago-energy", lambda s: s.get("phase") == "Scheduled", timeout=60, what="not Scheduled"
    )
    horizon = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = horizon - timedelta(days=1)
    setup.kubectl("create", "job", "--from=cronjob/tago-energy-ingest", "tago-energy-now")

    def cursor() -> datetime | None:
        if not setup.tables_ready():
            return None
        value = setup.scalar("SELECT cursor FROM api_fetch_cursor WHERE device_id = 'meter-a'")
        return value if isinstance(value, datetime) else None

    # Kill the pod once a few hours are in, well before the 24 are.
    def four_hours_in() -> datetime | None:
        current = cursor()
        return current if current is not None and current >= start + timedelta(hours=4) else None

    reached = poll(
        four_hours_in,
        timeout=120,
        interval=0.2,
        message="the first pod never loaded four hours",
    )
    assert reached < horizon
    [pod] = setup.kubectl.get_json("pods", "-l", "job-name=tago-energy-now")["items"]
    setup.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
    at_kill = cursor()
    assert at_kill is not None
    assert at_kill < horizon

    setup.kubectl.wait("job/tago-energy-now", "condition=Complete", timeout=180)
    assert cursor() == horizon
    rows = setup.scalar("SELECT count(*) FROM fact_energy_hourly")
    assert rows == 24, "every hour exactly once"
    with psycopg.connect(setup.dsn) as conn:
        values = conn.execute("SELECT ts, energy_kwh FROM fact_energy_hourly").fetchall()
    assert all(value == energy(ts) for ts, value in values)

    starts = [r.query["start_date"] for r in tago.received("/data")]
    # Hours loaded before the kill were not fetched again: the second pod began at the cursor.
    firsts = sorted(set(starts))
    assert len(firsts) == 24
    assert len(starts) - len(firsts) <= 1, "at most the hour in flight at the kill is asked twice"

    status = setup.wait_status(
        "tago-energy", lambda s: s.get("rowsLoaded") == 24, timeout=60, what="figures never reported"
    )
    assert status["batches"] == 24
    assert status["cursor"] == horizon.strftime("%Y-%m-%dT%H:%M:%SZ")
